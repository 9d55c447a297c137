"""The PPO trainer: advantages under NEXT_STEP, a tiny training run, saving, the CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import OUTSIDE_SOURCE

torch = pytest.importorskip("torch", reason="the PPO trainer needs torch")

from escape_room_env.ppo import Agent, Args, compute_advantages, load_agent, train


def test_advantages_bootstrap_truncation_from_the_terminal_value_and_cut_at_every_done():
    # One env, 4 steps: step 1 ends truncated, step 2 is the NEXT_STEP reset step.
    rewards = torch.tensor([[1.0], [2.0], [0.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [7.0], [2.0]])  # values[2] = V(terminal observation)
    truncated_done = torch.tensor([[0.0], [1.0], [0.0], [0.0]])
    no_termination = torch.zeros(4, 1)
    gamma, lam = 0.9, 0.8
    adv = compute_advantages(rewards, values, torch.tensor([4.0]), no_termination, truncated_done, gamma, lam)
    d3 = 3.0 + gamma * 4.0 - 2.0
    d2 = 0.0 + gamma * 2.0 - 7.0
    d1 = 2.0 + gamma * 7.0 - 1.0  # bootstraps from the terminal observation's value
    d0 = 1.0 + gamma * 1.0 - 0.5
    expected = [d0 + gamma * lam * d1, d1, d2 + gamma * lam * d3, d3]
    np.testing.assert_allclose(adv.flatten().numpy(), expected, rtol=1e-6)


def test_advantages_do_not_bootstrap_a_terminated_episode():
    rewards = torch.tensor([[1.0], [0.0]])
    values = torch.tensor([[0.25], [9.0]])
    done = torch.tensor([[1.0], [0.0]])
    adv = compute_advantages(rewards, values, torch.tensor([0.0]), done, done, 0.99, 0.95)
    assert adv[0, 0].item() == pytest.approx(1.0 - 0.25)


def test_agent_samples_valid_multidiscrete_actions():
    agent = Agent(obs_dim=87, hidden=32)
    with torch.no_grad():
        action, logprob, entropy, value = agent.get_action_and_value(torch.randn(256, 87))
    assert action.shape == (256, 3) and action.dtype == torch.long
    for k, n in enumerate((4, 8, 5)):
        assert int(action[:, k].min()) >= 0 and int(action[:, k].max()) < n
    assert logprob.shape == entropy.shape == value.shape == (256,)
    # Maximum entropy at initialisation is close to log(4 * 8 * 5).
    assert float(entropy.mean()) == pytest.approx(np.log(160), rel=0.01)


def test_tiny_training_run_saves_a_policy_that_loads_and_acts(tmp_path):
    result = train(
        Args(
            num_envs=32,
            num_steps=16,
            total_timesteps=32 * 16 * 3,
            progress_bar=False,
            log_every=0,
            save_dir=str(tmp_path),
            run_name="tiny",
        )
    )
    assert result.global_step == 32 * 16 * 3
    run = tmp_path / "tiny"
    assert (run / "policy.pt").exists() and (run / "args.json").exists()
    rows = (run / "progress.csv").read_text().splitlines()
    assert rows[0].split(",")[:2] == ["global_step", "seconds"] and len(rows) == 4
    summary = json.loads((run / "summary.json").read_text())
    assert summary["global_step"] == 32 * 16 * 3
    agent = load_agent(run / "policy.pt")
    assert agent.act(torch.zeros(2, 87)).shape == (2, 3)


def test_cli_train_runs_and_reports(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "escape_room_env.cli",
            "train",
            "--num-envs",
            "16",
            "--num-steps",
            "8",
            "--total-timesteps",
            "384",
            "--no-progress-bar",
            "--log-every",
            "1",
            "--save-dir",
            str(tmp_path),
            "--run-name",
            "cli",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "step" in out.stdout and "sps" in out.stdout
    assert "done: 384 steps" in out.stdout
    assert (tmp_path / "cli" / "policy.pt").exists()


def test_cli_help_lists_the_training_flags():
    out = subprocess.run(
        [sys.executable, "-m", "escape_room_env.cli", "train", "--help"],
        cwd=OUTSIDE_SOURCE,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for flag in ("--num-envs", "--total-timesteps", "--max-minutes", "--learning-rate", "--no-progress-bar"):
        assert flag in out.stdout
