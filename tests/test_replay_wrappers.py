"""``wrappers.RecordActions``, ``ReplayVectorEnv`` and ``TrajectoryLogger`` (SPEC §7, §5.2, §5.3).

A gymnasium run through ``RecordActions`` (full and partial resets, int and list seeds) must come
back step by step, outputs and infos alike, through ``ReplayVectorEnv``.
"""

from __future__ import annotations

import re
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from helpers import step_replay_to_its_end

import escape_room_env as er
from escape_room_env.replay import EndRecord, HashRecord, ReplayFile, ResetRecord, StepRecord
from escape_room_env.wrappers import RecordActions, ReplayVectorEnv, TrajectoryLogger

NVEC = np.array(er.action.NUM_CHOICES)


def assert_equal(got, want, where: str) -> None:
    """Exact equality of step results: arrays (object arrays of arrays too), dicts, scalars."""
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        assert sorted(got) == sorted(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            assert_equal(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_equal(g, w, f"{where}[{i}]")
    elif isinstance(want, np.ndarray) and want.dtype == object:
        assert isinstance(got, np.ndarray) and got.dtype == object and got.shape == want.shape, where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_equal(g, w, f"{where}[{i}]")
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), where
        assert got.dtype == want.dtype and np.array_equal(got, want), where
    else:
        assert got == want, where


def gymnasium_run(envs, steps: int, seed: int):
    """A gymnasium run with full and partial resets; returns (first obs, step results, resets made)."""
    base = envs.unwrapped
    N, A, W = base.num_envs, base.num_agents, base.num_worlds
    rng = np.random.default_rng(seed)
    resets = []  # (world mask, full uint64 seeds or None) in the order the core sees them
    first_obs, _ = envs.reset(seed=5)
    resets.append((np.ones(W, bool), np.uint64(5) + np.arange(W, dtype=np.uint64)))
    results = []
    for i in range(steps):
        done_worlds = np.zeros(W, bool)
        if results and base.autoreset_mode is AutoresetMode.DISABLED:
            done_worlds = (results[-1][2] | results[-1][3]).reshape(W, A)[:, 0]
        if i % 17 == 9 or done_worlds.any():
            # partial reset: the done worlds (DISABLED needs them) and a random other one
            world_mask = done_worlds.copy()
            world_mask[rng.integers(W)] = True
            mask = np.repeat(world_mask, A)
            if i % 2:
                seeds = [None] * N
                seeded = np.zeros(W, bool)
                for w in np.flatnonzero(world_mask)[::2]:
                    seeds[w * A : (w + 1) * A] = [1000 + i + w] * A
                    seeded[w] = True
                envs.reset(seed=seeds, options={"reset_mask": mask})
                if seeded.any():
                    full = np.where(seeded, 1000 + i + np.arange(W), 0).astype(np.uint64)
                    resets.append((seeded, full))
                if (world_mask & ~seeded).any():
                    resets.append((world_mask & ~seeded, None))
            else:
                envs.reset(options={"reset_mask": mask})
                resets.append((world_mask, None))
        if i == 40:
            envs.reset()  # a full reset without seed: every world continues its stream
            resets.append((np.ones(W, bool), None))
        actions = rng.integers(0, NVEC, size=(N, 3))
        results.append(envs.step(actions))
    return first_obs, results, resets


CASES = [("next_step", 1), ("next_step", 2), ("same_step", 1), ("same_step", 3), ("disabled", 2)]


@pytest.mark.parametrize(("mode", "num_agents"), CASES)
def test_record_actions_then_replay_vector_env_reproduces_the_run(tmp_path, mode, num_agents):
    path = tmp_path / "run.bin"
    steps, W = 120, 5
    env = er.EscapeRoomVectorEnv(
        num_envs=W * num_agents, num_agents=num_agents, autoreset_mode=mode, seed=0, episode_len=15
    )
    envs = RecordActions(env, path, checksum_interval=20)
    _, results, resets = gymnasium_run(envs, steps, seed=num_agents)
    envs.close()
    assert env.sim.closed
    # The recording starts right after the first full reset (the file's start state), so that
    # reset is not a record of the file.
    resets = resets[1:]

    meta = er.SimManager.read_replay_metadata(path)
    assert meta.complete and meta.num_steps == steps and meta.start == "fresh"
    assert meta.autoreset_mode is er.AutoresetMode[mode.upper()]
    with ReplayFile(path) as replay:
        records = list(replay)
    got_resets = [(r.mask, r.seeds) for r in records if isinstance(r, ResetRecord)]
    assert len(got_resets) == len(resets)
    for k, ((mask, seeds), (want_mask, want_seeds)) in enumerate(zip(got_resets, resets)):
        assert np.array_equal(mask, want_mask), f"reset {k}"
        if want_seeds is None:
            assert seeds is None, f"reset {k}"
        else:
            assert np.array_equal(seeds, want_seeds), f"reset {k}"
    assert sum(isinstance(r, StepRecord) for r in records) == steps
    assert [r.step for r in records if isinstance(r, HashRecord)] == list(range(0, steps + 1, 20))
    assert records[-1] == EndRecord(steps)
    assert sum(any(t | u) for _, _, t, u, _ in results) >= 5  # episodes ended along the way

    replay = ReplayVectorEnv(path)
    assert replay.num_envs == W * num_agents and replay.autoreset_mode is meta.autoreset_mode
    assert replay.single_observation_space == env.single_observation_space
    assert len(results) == steps
    for i, got in enumerate(step_replay_to_its_end(replay, steps)):
        infos = dict(got[4])
        del infos["replay_finished"]  # checked by step_replay_to_its_end
        assert_equal((*got[:4], infos), results[i], f"step {i + 1}")


def test_replay_vector_env_reset_returns_the_first_observation_of_the_recorded_run(tmp_path):
    # The usual gymnasium order: wrap, then reset(seed=...), then step.
    path = tmp_path / "run.bin"
    envs = RecordActions(er.EscapeRoomVectorEnv(num_envs=4, seed=0), path)
    obs, infos = envs.reset(seed=5)
    first = envs.step(np.zeros((4, 3), dtype=np.int64))
    envs.close()
    replay = ReplayVectorEnv(path)
    try:
        got_obs, got_infos = replay.reset()
        assert np.array_equal(got_obs, obs), "reset() must return what the recorded run's reset returned"
        assert_equal(got_infos, infos, "reset infos")
        got = replay.step(None)
        assert np.array_equal(got[0], first[0])
    finally:
        replay.close()


def test_replay_vector_env_reset_before_any_reset_in_the_recording(tmp_path):
    path = tmp_path / "run.bin"
    env = er.EscapeRoomVectorEnv(num_envs=3, seed=4, autoreset_mode="same_step")
    envs = RecordActions(env, path)
    assert not env.sim.is_recording()  # it starts at the first reset or step
    obs = env.sim.observation_tensor().to_numpy().reshape(3, -1).copy()
    results = [envs.step(np.full((3, 3), k % 4)) for k in range(6)]
    envs.close()
    meta = er.SimManager.read_replay_metadata(path)
    assert meta.start == "fresh" and meta.world_seeds == (4, 5, 6)
    replay = ReplayVectorEnv(path, num_threads=1)
    try:
        got_obs, _ = replay.reset()
        assert np.array_equal(got_obs, obs)
        with pytest.raises(ValueError):
            replay.reset(seed=1)
        with pytest.raises(ValueError):
            replay.reset(options={"reset_mask": np.ones(3, bool)})
        for i, want in enumerate(results):
            got = replay.step(np.zeros((3, 3), dtype=np.int64))  # the actions passed in are ignored
            infos = dict(got[4])
            infos.pop("replay_finished")
            assert_equal((*got[:4], infos), want, f"step {i + 1}")
    finally:
        replay.close()


def test_record_actions_finishes_the_file_on_close_and_needs_an_escape_room_env(tmp_path):
    path = tmp_path / "run.bin"
    env = er.EscapeRoomVectorEnv(num_envs=2, seed=0)
    envs = RecordActions(env, path)
    envs.reset(seed=1)
    assert env.sim.is_recording()
    envs.step(np.zeros((2, 3), dtype=np.int64))
    envs.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert er.SimManager.read_replay_metadata(path).complete
    other = gymnasium.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    with pytest.raises(TypeError, match="EscapeRoomVectorEnv"):
        RecordActions(other, tmp_path / "x.bin")
    with pytest.raises(TypeError, match="EscapeRoomVectorEnv"):
        TrajectoryLogger(other)
    other.close()


LINE = re.compile(
    r"step=(\d+) world=(\d+) agent=(\d+) x=(-?\d+\.\d{3}) y=(-?\d+\.\d{3}) yaw_deg=(-?\d+\.\d{2}) "
    r"progress=(-?\d+\.\d{3}) reward=(-?\d+\.\d{4}) done=([01]) action=(\d),(\d),(\d)"
)


@pytest.mark.parametrize(("env_index", "world", "agent"), [(0, 0, 0), (3, 1, 1), (5, 2, 1)])
def test_trajectory_logger_logs_the_agent_of_env_index(tmp_path, env_index, world, agent):
    path = tmp_path / "trajectory.txt"
    env = er.EscapeRoomVectorEnv(num_envs=6, num_agents=2, seed=3, episode_len=10)
    envs = TrajectoryLogger(env, env_index=env_index, filename=path)
    envs.reset(seed=2)
    rng = np.random.default_rng(0)
    want = []
    for _ in range(25):
        actions = rng.integers(0, NVEC, size=(6, 3))
        _, rewards, _, _, infos = envs.step(actions)
        x, y = env.sim._state("agent_pos")[world, agent]
        want.append(
            (
                f"{x:.3f}", f"{y:.3f}", f"{np.degrees(float(env.sim._state('agent_yaw')[world, agent])):.2f}",
                f"{infos['progress'][env_index]:.3f}", f"{rewards[env_index]:.4f}",
                str(int(env.sim.done_tensor().to_numpy()[world, agent, 0])), *map(str, actions[env_index]),
            )
        )  # fmt: skip
    envs.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 25
    for i, line in enumerate(lines):
        m = LINE.fullmatch(line)
        assert m, line
        assert (int(m[1]), int(m[2]), int(m[3])) == (i + 1, world, agent)
        assert m.groups()[3:] == want[i], f"line {i + 1}"


def test_trajectory_logger_rejects_a_bad_env_index(tmp_path):
    env = er.EscapeRoomVectorEnv(num_envs=4, num_agents=2, seed=0)
    for bad in (-1, 4):
        with pytest.raises(ValueError, match="env_index"):
            TrajectoryLogger(env, env_index=bad, filename=tmp_path / "t.txt")
    env.close()
