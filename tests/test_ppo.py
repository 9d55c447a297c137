"""The PPO trainer: advantages under NEXT_STEP, episode statistics, training runs, saving and
loading policies (weights only), the CLI."""

import dataclasses
import json
import os
import pickle
import subprocess
import sys

import gymnasium
import numpy as np
import pytest
from helpers import OUTSIDE_SOURCE

torch = pytest.importorskip("torch", reason="the PPO trainer needs torch")

import escape_room_env as er
from escape_room_env.ppo import (
    Agent,
    Args,
    _DeviceEpisodeStats,
    _EpisodeLog,
    compute_advantages,
    load_agent,
    train,
)


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


def test_agent_heads_are_the_categorical_distributions_of_their_logits():
    torch.manual_seed(3)
    agent = Agent(obs_dim=87, hidden=32)
    for layer in agent.actor[::2]:  # sharper logits than at initialisation
        torch.nn.init.normal_(layer.weight, std=0.5)
    obs = torch.randn(64, 87)
    logits = agent.actor(obs).split((4, 8, 5), dim=-1)
    heads = [torch.distributions.Categorical(logits=part) for part in logits]
    action = torch.stack([h.sample() for h in heads], dim=-1)
    _, logprob, entropy, value = agent.get_action_and_value(obs, action)
    want_logprob = sum(h.log_prob(a) for h, a in zip(heads, action.unbind(-1)))
    torch.testing.assert_close(logprob, want_logprob, rtol=0, atol=2e-6)
    torch.testing.assert_close(entropy, sum(h.entropy() for h in heads), rtol=0, atol=2e-6)
    torch.testing.assert_close(value, agent.get_value(obs), rtol=0, atol=0)
    # Gumbel-max sampling draws each head's choices with its probabilities, and never a padding slot.
    one = obs[:1].expand(200_000, -1)
    sampled = agent.get_action_and_value(one)[0]
    for k, head in enumerate(heads):
        counts = torch.bincount(sampled[:, k], minlength=8)
        assert counts[(4, 8, 5)[k] :].sum() == 0
        frequencies = counts[: (4, 8, 5)[k]].double() / len(sampled)
        assert (frequencies - head.probs[0].double()).abs().max() < 0.005


def test_observation_statistics_added_in_batches_are_those_of_all_the_observations():
    from escape_room_env.ppo import _ObservationStatistics

    torch.manual_seed(5)
    batches = [torch.randn(n, 87) * torch.linspace(0.01, 3.0, 87) + 2.0 for n in (1024, 7, 300)]
    agent = Agent(obs_dim=87, hidden=8)
    stats = _ObservationStatistics(agent)
    for batch in batches:
        stats.add(batch)
    everything = torch.cat(batches).double()
    assert stats.count == 1331
    torch.testing.assert_close(stats.mean, everything.mean(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(stats.var, everything.var(0, correction=0), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(agent.obs_mean, everything.mean(0).float())
    torch.testing.assert_close(agent.obs_scale, (everything.var(0, correction=0) + 1e-8).rsqrt().float())
    # The networks see the normalised observations, clamped to [-10, 10].
    obs = torch.cat(batches)
    want = ((obs - agent.obs_mean) * agent.obs_scale).clamp(-10, 10)
    assert torch.equal(agent.normalize(obs), want) and float(want.abs().max()) <= 10.0
    torch.testing.assert_close(agent.get_value(obs), agent.get_value(want, normalized=True), rtol=0, atol=0)


def test_a_policy_saved_without_observation_statistics_loads_with_the_identity(tmp_path):
    agent = Agent(obs_dim=87, hidden=8)
    old = {k: v for k, v in agent.state_dict().items() if k not in ("obs_mean", "obs_scale")}
    torch.save({"state_dict": old, "obs_dim": 87, "args": {"hidden": 8}}, tmp_path / "old.pt")
    loaded = load_agent(tmp_path / "old.pt")
    assert torch.equal(loaded.obs_mean, torch.zeros(87)) and torch.equal(loaded.obs_scale, torch.ones(87))
    obs = torch.rand(16, 87)
    assert torch.equal(loaded.act(obs), agent.act(obs))


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
    # The observation statistics travel with the policy: z (always 0) has mean 0 and variance 0.
    assert float(agent.obs_mean[2]) == 0.0 and float(agent.obs_scale[2]) == 1e4
    assert 0.0 < float(agent.obs_mean[1]) < 1.25 and bool((agent.obs_scale > 0).all())


def test_training_without_observation_normalisation_keeps_the_identity():
    args = Args(num_envs=8, num_steps=4, total_timesteps=64, progress_bar=False, log_every=0, save_dir=None)
    agent = train(dataclasses.replace(args, normalize_obs=False)).agent
    assert torch.equal(agent.obs_mean, torch.zeros(87)) and torch.equal(agent.obs_scale, torch.ones(87))


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


def test_cli_train_in_a_pipe_prints_plain_log_lines_without_a_progress_bar(tmp_path):
    # the progress bar is on by default; stdout and stderr are pipes here, as in `| tee log`
    args = ("--num-envs", "16", "--num-steps", "8", "--total-timesteps", "256", "--log-every", "1")
    out = subprocess.run(
        [sys.executable, "-m", "escape_room_env.cli", "train", *args, "--save-dir", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "\r" not in out.stdout and "\r" not in out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("step ")]
    assert len(lines) == 2  # 256 steps in updates of 16 x 8: one log line per update
    assert "done: 256 steps" in out.stdout


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


# -- episode statistics and the one rollout path ------------------------------------------------

# Levels where random actions open the door (button a, beside the spawn) in most episodes and
# reach the exit in a few: (num_agents, level, episode_len).
LEVELS = [(1, "#####\n#EEE#\n#111#\n#aS.#\n#####", 16), (2, "######\n#EEEE#\n#1111#\n#aSS.#\n######", 24)]


def record_episode_statistics_log(infos: dict, log: _EpisodeLog) -> None:
    """The oracle: the episodes gymnasium's RecordEpisodeStatistics reports in ``infos``."""
    if "episode" in infos:
        done = np.flatnonzero(infos["_episode"])
        log.extend(
            done.size,
            infos["episode"]["r"][done].tolist(),
            infos["progress"][done].tolist(),
            (infos["termination_reason"][done] == 1).tolist(),
            (infos["doors_opened"][done] >= 1).tolist(),
        )


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param("cuda", marks=pytest.mark.skipif(not er.cuda_available(), reason="needs a CUDA GPU")),
    ],
)
@pytest.mark.parametrize(("num_agents", "level", "episode_len"), LEVELS, ids=["1 agent", "2 agents"])
def test_episode_statistics_are_those_of_gymnasiums_record_episode_statistics(
    num_agents, level, episode_len, device
):
    """The same steps into a numpy env under RecordEpisodeStatistics and the trainer's env (torch
    outputs on ``device``) under _DeviceEpisodeStats: the same episodes, returns, progress,
    escapes and first doors, in the same order, with a window smaller than the number of
    episodes."""
    n, rollout = 6 * num_agents, 10

    def make(**torch_outputs):
        return er.EscapeRoomVectorEnv(
            n, num_agents=num_agents, levels=[level], episode_len=episode_len, seed=5, num_threads=1, copy=False,
            **torch_outputs,
        )  # fmt: skip

    reference = gymnasium.wrappers.vector.RecordEpisodeStatistics(make())
    envs = make(device=device, torch_outputs=True)
    want, got = _EpisodeLog(window=40), _EpisodeLog(window=40)
    stats = _DeviceEpisodeStats(rollout, n, device)
    reference.reset(seed=5)
    envs.reset(seed=5)
    rng = np.random.default_rng(1)
    for t in range(12 * rollout):
        actions = rng.integers(0, (4, 8, 5), size=(n, 3))
        record_episode_statistics_log(reference.step(actions)[4], want)
        _, reward, terminated, truncated, infos = envs.step(torch.from_numpy(actions).to(device))
        stats.add(t % rollout, reward, terminated, truncated, infos)
        if t % rollout == rollout - 1:
            stats.flush(got)
    assert want.count > want.returns.maxlen  # the window keeps the latest episodes
    assert any(want.escaped) and not all(want.escaped) and any(want.door) and not all(want.door)
    assert got.count == want.count == reference.episode_count
    for field in ("returns", "progress", "escaped", "door"):
        assert list(getattr(got, field)) == list(getattr(want, field)), field
    assert got.summary() == want.summary()


def tiny(**overrides) -> Args:
    """A run short enough for a test in which 200-step episodes still end."""
    options = {"num_envs": 4, "num_steps": 64, "total_timesteps": 4 * 64 * 4, "hidden": 32}
    return Args(**{**options, "progress_bar": False, "log_every": 0, "save_dir": None, **overrides})


def test_training_is_deterministic_and_independent_of_the_simulators_thread_count():
    runs = [train(tiny(num_threads=threads)) for threads in (1, 2, 1)]
    assert all(run.global_step == 1024 and run.episodes >= 4 for run in runs)
    first = runs[0]
    for run in runs[1:]:
        for field in ("episodes", "mean_return", "mean_progress", "escape_rate", "first_door_rate"):
            assert getattr(run, field) == getattr(first, field), field
        for (name, a), b in zip(first.agent.state_dict().items(), run.agent.state_dict().values()):
            assert torch.equal(a, b), name


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("num_steps", 0, "num_steps must be >= 1, got 0"),
        ("num_minibatches", 0, "num_minibatches must be >= 1, got 0"),
        ("hidden", -3, "hidden must be >= 1, got -3"),
        ("total_timesteps", 0, "total_timesteps must be >= 1, got 0"),
        ("max_minutes", float("nan"), "max_minutes must be >= 0, got nan"),
        ("learning_rate", float("inf"), "learning_rate must be a finite number >= 0, got inf"),
        ("device", "tpu9", "device must be 'cpu', 'cuda' or 'cuda:<index>', got 'tpu9'"),
    ],
)
def test_train_rejects_settings_that_cannot_train_before_anything_runs(tmp_path, field, value, message):
    with pytest.raises(ValueError) as error:
        train(tiny(save_dir=str(tmp_path), **{field: value}))
    assert str(error.value) == message
    assert list(tmp_path.iterdir()) == []  # no run folder


# -- policy files: weights only (issue 14, item 12) ---------------------------------------------


def test_a_saved_policy_holds_only_tensors_and_plain_values(tmp_path):
    args = tiny(num_envs=8, num_steps=8, total_timesteps=64, save_dir=str(tmp_path), run_name="p")
    result = train(args)
    checkpoint = torch.load(tmp_path / "p" / "policy.pt", weights_only=True)
    assert set(checkpoint) == {"state_dict", "obs_dim", "args"}
    assert checkpoint["obs_dim"] == 87 and checkpoint["args"] == dataclasses.asdict(args)
    agent = load_agent(tmp_path / "p" / "policy.pt")
    for (name, a), b in zip(result.agent.state_dict().items(), agent.state_dict().values()):
        assert torch.equal(a, b), name
    assert agent.obs_dim == 87


class RunsCode:
    """Unpickling this calls ``os.system``: it creates the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.mark.parametrize("how", ["torch.save", "pickle protocol 2", "pickle protocol 5"])
def test_load_agent_refuses_a_file_that_would_run_code_without_running_it(tmp_path, how):
    marker, path = tmp_path / "ran.txt", tmp_path / "policy.pt"
    payload = {
        "state_dict": Agent(87, 8).state_dict(),
        "obs_dim": 87,
        "args": {"hidden": 8},
        "x": RunsCode(marker),
    }
    if how == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(RunsCode(marker), protocol=int(how[-1])))
    with pytest.raises(ValueError) as error:
        load_agent(path)
    assert not marker.exists()
    assert str(error.value) == (
        f"{path} is not a policy saved by `escape-room train`: it holds something other than "
        "tensors and plain values, which is refused unread"
    )


def test_load_agent_rejects_files_that_are_not_policies(tmp_path):
    good = {"state_dict": Agent(87, 8).state_dict(), "obs_dim": 87, "args": {"hidden": 8}}
    wrong_width = {**good, "args": {"hidden": 16}}
    extra = {**good, "state_dict": {**good["state_dict"], "critic.9.weight": torch.zeros(1)}}
    doubles = {**good, "state_dict": {k: v.double() for k, v in good["state_dict"].items()}}
    cases = {
        "empty": (b"", "cannot read it as a torch checkpoint (EOFError"),
        "text": (b"not a policy", "refused unread"),
        "a tensor": (torch.zeros(3), "expected a dict with state_dict, obs_dim and args.hidden"),
        "no args": ({**good, "args": None}, "expected a dict with state_dict, obs_dim and args.hidden"),
        "wrong width": (wrong_width, "state_dict['critic.0.weight'] is torch.float32 (8, 87), the network"),
        "extra entry": (extra, "state_dict has unknown entries critic.9.weight"),
        "float64": (doubles, "state_dict['obs_mean'] is torch.float64 (87,)"),
        "huge width": ({**good, "args": {"hidden": 10**30}}, "hidden 1000000000000000000000000000000"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.pt"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            torch.save(content, path)
        with pytest.raises(ValueError) as error:
            load_agent(path)
        assert str(error.value).startswith(f"{path} is not a policy saved by `escape-room train`: "), name
        assert message in str(error.value), (name, str(error.value))
    torch.save(good, tmp_path / "good.pt")
    assert load_agent(tmp_path / "good.pt").act(torch.zeros(2, 87)).shape == (2, 3)
    with pytest.raises(FileNotFoundError):
        load_agent(tmp_path / "missing.pt")
