"""``escape-room record / replay / info`` (SPEC §5.3, §7): subprocess smoke runs with tiny budgets.

The files the CLI writes are also opened in-process and checked against what was asked for.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import step_spans

import escape_room_env as er
from escape_room_env.replay import ReplayFile, StepRecord

ESCAPE_ROOM = shutil.which("escape-room")


def cli(*args: str, check_rc: int | None = 0) -> subprocess.CompletedProcess:
    command = [ESCAPE_ROOM] if ESCAPE_ROOM else [sys.executable, "-m", "escape_room_env.cli"]
    proc = subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )
    if check_rc is not None:
        assert proc.returncode == check_rc, (
            f"rc {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """``escape-room record OUT --steps 200 --num-worlds 4`` (random actions)."""
    path = tmp_path_factory.mktemp("cli") / "random.bin"
    proc = cli("record", path, "--steps", 200, "--num-worlds", 4)
    assert "recorded 200 steps of 4 worlds" in proc.stdout and "random actions" in proc.stdout
    return path


def test_record_writes_a_complete_file_of_random_actions(recorded):
    meta = er.SimManager.read_replay_metadata(recorded)
    assert (meta.num_worlds, meta.num_agents, meta.num_steps, meta.complete) == (4, 1, 200, True)
    with ReplayFile(recorded) as replay:
        actions = np.stack([r.actions for r in replay if isinstance(r, StepRecord)])
    assert actions.shape == (200, 4, 1, 3)
    for component, n in enumerate(er.action.NUM_CHOICES):  # every choice of every component occurs
        assert set(np.unique(actions[..., component])) == set(range(n))


def test_replay_verify_exits_0_and_says_verified(recorded):
    proc = cli("replay", recorded, "--verify")
    assert "replayed 200 steps of 4 worlds" in proc.stdout
    assert "verified" in proc.stdout
    assert "5 checkpoints" in proc.stdout  # steps 0, 50, 100, 150, 200


def test_info_prints_the_metadata(recorded):
    proc = cli("info", recorded)
    fields = dict(line.split(None, 1) for line in proc.stdout.splitlines() if line.strip())
    assert fields["num_worlds"] == "4"
    assert fields["num_steps"] == "200"
    assert fields["seed"] == "0"
    assert fields["complete"] == "True"
    assert fields["autoreset_mode"] == "SAME_STEP"


def test_info_json_is_machine_readable(recorded):
    info = json.loads(cli("info", recorded, "--json").stdout)
    meta = er.SimManager.read_replay_metadata(recorded)
    assert info["num_worlds"] == 4 and info["num_steps"] == 200 and info["seed"] == 0
    assert info["num_agents"] == 1 and info["complete"] is True
    assert info["autoreset_mode"] == "SAME_STEP" and info["checksum_interval"] == 50
    assert info["rooms"] == list(meta.rooms) and info["rules_version"] == er.RULES_VERSION
    assert info["created"] == meta.created.isoformat()
    assert info["config"]["world_seeds"] == [0, 1, 2, 3]


def test_record_options_reach_the_file(tmp_path):
    path = tmp_path / "options.bin"
    cli(
        "record", path, "--steps", 30, "--num-worlds", 3, "--num-agents", 2, "--seed", 17,
        "--episode-len", 9, "--autoreset-mode", "next_step", "--checksum-interval", 7,
    )  # fmt: skip
    info = json.loads(cli("info", path, "--json").stdout)
    assert (info["num_worlds"], info["num_agents"], info["num_steps"], info["seed"]) == (3, 2, 30, 17)
    assert (info["episode_len"], info["autoreset_mode"], info["checksum_interval"]) == (9, "NEXT_STEP", 7)
    assert info["config"]["world_seeds"] == [17, 18, 19]
    assert "verified" in cli("replay", path, "--verify").stdout


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> Path:
    from escape_room_env.ppo import Args, train

    save_dir = tmp_path_factory.mktemp("ppo")
    args = Args(
        num_envs=8, num_steps=8, total_timesteps=64, save_dir=str(save_dir), run_name="p",
        progress_bar=False, log_every=0,
    )  # fmt: skip
    train(args)
    path = save_dir / "p" / "policy.pt"
    assert path.exists()
    return path


def test_record_with_a_saved_policy_records_the_policys_actions(tmp_path, policy):
    from escape_room_env.ppo import load_agent

    path = tmp_path / "policy.bin"
    proc = cli("record", path, "--steps", 40, "--num-worlds", 4, "--policy", policy)
    assert f"policy {policy}" in proc.stdout
    assert "verified" in cli("replay", path, "--verify").stdout

    agent = load_agent(policy)
    with ReplayFile(path) as replay:
        recorded = [r.actions for r in replay if isinstance(r, StepRecord)]
    with er.SimManager.from_replay(path) as sim:
        obs = sim.observation_tensor().to_numpy()
        for i, actions in enumerate(recorded):
            with torch.no_grad():
                chosen = agent.act(torch.from_numpy(obs.reshape(-1, obs.shape[-1]).copy())).numpy()
            assert np.array_equal(chosen.reshape(actions.shape), actions), f"step {i + 1}"
            sim.replay_step()


@pytest.mark.parametrize("how", ["action_with_crc_fixed", "flipped_byte"])
def test_replay_of_a_tampered_file_exits_1_with_an_error(tmp_path, recorded, how):
    data = bytearray(recorded.read_bytes())
    start, end = step_spans(bytes(data))[120]
    if how == "action_with_crc_fixed":
        # Another in-range rotate for world 1 (it turns the agent: the yaw is in the state hash),
        # then make the CRC right again.
        rotate = start + 8 + 1 + 3 * 1 + 2
        data[rotate] = (data[rotate] + 1) % 5
        struct.pack_into("<I", data, end - 4, zlib.crc32(bytes(data[start : end - 4])))
        expected = "diverged"
    else:
        data[start + 8 + 5] ^= 0x01
        expected = f"byte {start}"
    bad = tmp_path / "tampered.bin"
    bad.write_bytes(bytes(data))
    proc = cli("replay", bad, "--verify", check_rc=1)
    assert "error:" in proc.stderr and expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "verified" not in proc.stdout


def test_info_of_a_file_that_is_not_a_replay_exits_1(tmp_path):
    bad = tmp_path / "notes.bin"
    bad.write_bytes(b"hello, world, this is not a replay file" * 4)
    for args in (("info", bad), ("info", bad, "--json"), ("replay", bad)):
        proc = cli(*args, check_rc=1)
        assert "error:" in proc.stderr and "bad magic" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_replay_verify_of_a_truncated_file_reports_only_the_checkpoints_it_verified(tmp_path):
    path = tmp_path / "full.bin"
    with er.SimManager(num_worlds=3, num_threads=1) as sim, sim.recording(path, seed=2, checksum_interval=16):
        sim.step(nstep=40)
    data = path.read_bytes()
    start, end = step_spans(data)[29]  # cut inside step 30: steps 1..29 and the hashes of 0 and 16 remain
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[: (start + end) // 2])
    proc = cli("replay", cut, "--verify")
    assert "ReplayTruncatedWarning" in proc.stderr
    assert "replayed 29 steps" in proc.stdout
    assert "at 2 checkpoints" in proc.stdout, proc.stdout


def test_info_without_a_file_reports_the_build_and_the_gpus():
    from escape_room_env import _core

    out = cli("info").stdout
    assert f"CUDA backend built: {_core.CUDA_BUILT}; GPUs usable now: {_core.cuda_device_count()}" in out
    assert f"CUDA available: {_core.cuda_device_count() > 0}" in out
