"""Recording and exact replay through ``SimManager`` (SPEC §5.2, §5.3, §2.5).

Files here are written by the C++ recorder from real runs and read back by
``SimManager.from_replay`` / ``ReplayVectorEnv``: every exported tensor must come back
bit-identical at every step, in every reset mode, with every kind of reset. The byte-level
reader on test-written files is ``test_replay_format.py``.
"""

from __future__ import annotations

import dataclasses
import datetime
import gc
import math
import os
import re
import signal
import struct
import subprocess
import sys
import time
import warnings
import zlib

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from helpers import STEP_OUTPUTS, scheduled_resets, step_replay_to_its_end

import escape_room_env as er
from escape_room_env.replay import (
    EndRecord,
    HashRecord,
    ReplayFile,
    ReplayTruncatedWarning,
    ResetRecord,
    StepRecord,
)

MODES = ("same_step", "next_step", "disabled")
ACTION_MAX = np.array([n - 1 for n in er.action.NUM_CHOICES], dtype=np.int32)
# Every output tensor of SPEC §3 (the views are slices of `observation`).
OUTPUTS = (
    *STEP_OUTPUTS,
    "final_observation",
    "elapsed_steps",
    "doors_opened",
    "final_progress",
    "final_elapsed_steps",
    "final_doors_opened",
)
# Written only on SAME_STEP done steps and left unchanged otherwise: a replay of a recording
# that did not start from a fresh manager cannot know what earlier episodes left there.
FINALS = ("final_observation", "final_progress", "final_elapsed_steps", "final_doors_opened")


# -- helpers ---------------------------------------------------------------------------------


def snapshot(sim: er.SimManager) -> dict[str, np.ndarray]:
    out = {name: sim.tensor(name).to_numpy().copy() for name in OUTPUTS}
    out["state_hashes"] = sim.state_hashes().copy()
    return out


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray], where: str, skip=()) -> None:
    for name, value in want.items():
        if name in skip:
            continue
        assert got[name].dtype == value.dtype, f"{name} dtype {where}"
        assert np.array_equal(got[name], value), f"{name} differs {where}"


def wild_actions(rng: np.random.Generator, shape) -> np.ndarray:
    """Actions with components outside their ranges too (the core clamps them)."""
    return rng.integers(-3, 12, size=shape).astype(np.int32)


def clamped(actions: np.ndarray) -> np.ndarray:
    return np.clip(actions, 0, ACTION_MAX).astype(np.int8)


@dataclasses.dataclass
class Run:
    snaps: list[dict[str, np.ndarray]]  # after each step
    records: list  # the STEP / RSET records the file must hold, in order (HASH left out)
    counts: dict[str, int]


def drive(sim: er.SimManager, steps: int, seed: int) -> Run:
    """``steps`` steps of wild random actions with every kind of manual reset on a schedule.

    The reset tensor flag, ``reset_worlds`` without seeds, with a seed array and with an int
    seed, and ``reseed``. In DISABLED mode frozen worlds are reset (by flag or at once), some
    only after staying frozen for a step or two.
    """
    rng = np.random.default_rng(seed)
    W = sim.num_worlds
    actions, reset = sim.action_tensor().to_numpy(), sim.reset_tensor().to_numpy()
    done = sim.done_tensor().to_numpy()
    disabled = sim.autoreset_mode is AutoresetMode.DISABLED
    snaps, records = [], []
    counts = dict.fromkeys(("flag", "mask", "seeds", "int_seed", "reseed", "frozen", "done"), 0)

    def reset_worlds(mask, seeds=None, key="mask"):
        mask = np.ones(W, bool) if mask is None else np.asarray(mask, bool)
        if seeds is None:
            sim.reset_worlds(mask)
            full = None
        else:
            if isinstance(seeds, int):
                full = (np.uint64(seeds) + np.arange(W, dtype=np.uint64)).astype(np.uint64)
                sim.reset_worlds(mask, seeds=seeds)
            else:
                full = np.asarray(seeds, np.uint64)
                sim.reset_worlds(mask, seeds=full)
            full = np.where(mask, full, np.uint64(0)).astype(np.uint64)
        records.append(ResetRecord(mask, full))
        counts[key] += 1

    for i in range(steps):
        if disabled:
            for w in np.flatnonzero(done[:, 0, 0] == 1):
                counts["frozen"] += 1
                if (i + w) % 3 == 0:
                    continue  # stays frozen one more step
                if (i + w) % 2:
                    reset[w] = 1
                else:
                    reset_worlds(np.arange(W) == w)
        if i % 23 == 7:
            reset[rng.integers(W)] = 1
            counts["flag"] += 1
        for mask, seeds, kind in scheduled_resets(rng, i, W, max_int_seed=1000):
            reset_worlds(mask, seeds, kind)
        if i % 137 == 100:
            seed = int(rng.integers(0, 1000))
            sim.reseed(seed)
            records.append(ResetRecord(np.ones(W, bool), np.uint64(seed) + np.arange(W, dtype=np.uint64)))
            counts["reseed"] += 1
        actions[:] = wild_actions(rng, actions.shape)
        records.append(StepRecord(i, reset != 0, clamped(actions)))
        sim.step()
        snaps.append(snapshot(sim))
        counts["done"] += int((done[:, 0, 0] == 1).sum())
    return Run(snaps, records, counts)


def replay_with_manager(path, **kwargs) -> list[dict[str, np.ndarray]]:
    """Every step of ``path`` through ``SimManager.from_replay``, checking the step counter."""
    with er.SimManager.from_replay(path, **kwargs) as sim:
        assert sim.has_replay()
        _, total = sim.get_replay_step_count()
        snaps = []
        for i in range(total):
            assert sim.get_replay_step_count() == (i, total)
            last = sim.replay_step()
            assert last is (i == total - 1), f"replay_step() returned {last} at step {i + 1} of {total}"
            snaps.append(snapshot(sim))
        assert sim.get_replay_step_count() == (total, total)
        with pytest.raises(er.EscapeRoomError):
            sim.replay_step()
    return snaps


def record_spans(data: bytes) -> list[tuple[bytes, int, int]]:
    """(tag, start, end) of each record of a replay file (records start at 96 + config_bytes)."""
    (config_bytes,) = struct.unpack_from("<Q", data, 48)
    pos, spans = 96 + config_bytes, []
    while pos + 8 <= len(data):
        tag, length = struct.unpack_from("<4sI", data, pos)
        spans.append((tag, pos, pos + 12 + length))
        pos += 12 + length
    return spans


def fix_crc(data: bytearray, start: int, end: int) -> None:
    """Recompute the CRC of the record at [start, end): crc32 over tag + len + payload."""
    struct.pack_into("<I", data, end - 4, zlib.crc32(bytes(data[start : end - 4])))


def quietly_open(path) -> tuple[er.SimManager, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sim = er.SimManager.from_replay(path, num_threads=1)
    return sim, caught


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("num_agents", [1, 2, 3, 4])
@pytest.mark.parametrize("mode", MODES)
def test_round_trip_of_500_steps_with_every_kind_of_reset_is_exact(tmp_path, mode, num_agents):
    path = tmp_path / "run.bin"
    W, steps = 9, 500  # 9 worlds: a two-byte reset bitset with padding bits
    sim = er.SimManager(
        num_worlds=W, num_agents=num_agents, rand_seed=3, autoreset_mode=mode, episode_len=30, num_threads=2
    )
    sim.start_recording(path, seed=11)
    run = drive(sim, steps, seed=num_agents)
    assert sim.stop_recording() == steps
    sim.close()

    # The schedule really exercised what it claims to.
    counts = run.counts
    assert counts["flag"] and counts["mask"] and counts["seeds"] and counts["int_seed"] and counts["reseed"]
    assert counts["done"] >= 20, counts
    if mode == "disabled":
        assert counts["frozen"] > counts["done"] // 2, counts
    if mode == "same_step":
        assert any(s["final_observation"].any() for s in run.snaps)

    # The file: exactly the steps (reset flags, clamped actions) and resets (masks, seeds) made.
    with ReplayFile(path) as replay:
        records = list(replay)
    assert [r for r in records if not isinstance(r, HashRecord)] == [*run.records, EndRecord(steps)]
    hashes = [r for r in records if isinstance(r, HashRecord)]
    assert [h.step for h in hashes] == list(range(0, steps + 1, 50))
    for h in hashes[1:]:
        assert np.array_equal(h.hashes, run.snaps[h.step - 1]["state_hashes"]), h.step

    meta = er.SimManager.read_replay_metadata(path)
    assert (meta.num_worlds, meta.num_agents, meta.num_steps, meta.complete) == (W, num_agents, steps, True)
    assert meta.autoreset_mode is er.AutoresetMode[mode.upper()]

    # SimManager.from_replay: every output, every step.
    for i, got in enumerate(replay_with_manager(path)):
        assert_same(got, run.snaps[i], f"at step {i + 1} (from_replay)")

    # ReplayVectorEnv: the same through the gymnasium API.
    N = W * num_agents
    envs = er.wrappers.ReplayVectorEnv(path)
    assert len(run.snaps) == steps
    for i, (obs, rewards, terminated, truncated, infos) in enumerate(step_replay_to_its_end(envs, steps)):
        want = run.snaps[i]
        where = f"at step {i + 1} (ReplayVectorEnv)"
        assert_same(snapshot(envs.sim), want, where)  # done, steps_remaining, ... underneath
        assert np.array_equal(obs, want["observation"].reshape(N, -1)), where
        assert np.array_equal(rewards, want["reward"].reshape(N)), where
        assert np.array_equal(terminated, want["terminated"].reshape(N)), where
        assert np.array_equal(truncated, want["truncated"].reshape(N)), where
        assert np.array_equal(infos["progress"], want["progress"].reshape(N)), where
        assert np.array_equal(infos["elapsed_step"], want["elapsed_steps"].reshape(N)), where
        if mode != "same_step":
            assert np.array_equal(infos["termination_reason"], want["termination_reason"].reshape(N))
        else:
            done = (want["done"] == 1).reshape(N)
            assert np.array_equal(infos.get("_final_obs", np.zeros(N, bool)), done), where
            for env in np.flatnonzero(done):
                assert np.array_equal(
                    infos["final_obs"][env], want["final_observation"].reshape(N, -1)[env]
                ), where


def test_recording_with_a_seed_reproduces_a_fresh_manager_with_that_rand_seed(tmp_path):
    path = tmp_path / "seeded.bin"
    kwargs = {"num_worlds": 5, "num_agents": 2, "episode_len": 30, "num_threads": 1}
    recorded = er.SimManager(rand_seed=1000, **kwargs)
    recorded.step(nstep=20)  # mid-episode: a seed needs no warning, it reseeds every world
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recorded.start_recording(path, seed=7)
    fresh = er.SimManager(rand_seed=7, **kwargs)
    assert_same(snapshot(recorded), snapshot(fresh), "right after start_recording(seed=7)")
    rng = np.random.default_rng(0)
    snaps = []
    for i in range(120):
        actions = wild_actions(rng, (5, 2, 3))
        recorded.action_tensor().to_numpy()[:] = actions
        fresh.action_tensor().to_numpy()[:] = actions
        recorded.step()
        fresh.step()
        snaps.append(snapshot(recorded))
        assert_same(snaps[-1], snapshot(fresh), f"at step {i + 1}")
    recorded.stop_recording()

    meta = er.SimManager.read_replay_metadata(path)
    assert meta.start == "seed"
    assert meta.world_seeds == tuple(7 + w for w in range(5))
    assert meta.world_episodes == (0,) * 5
    for i, got in enumerate(replay_with_manager(path)):
        assert_same(got, snaps[i], f"at step {i + 1}")


@pytest.mark.parametrize("how", ["construction", "reseed", "reset_worlds", "reset_every_world_by_mask"])
def test_recording_that_continues_episodes_from_episode_start_starts_fresh(tmp_path, how):
    path = tmp_path / "fresh.bin"
    sim = er.SimManager(num_worlds=4, rand_seed=21, episode_len=25, num_threads=1)
    if how != "construction":
        sim.step(nstep=13)
        if how == "reseed":
            sim.reseed(99)
        elif how == "reset_worlds":
            sim.reset_worlds()
        else:
            sim.reset_worlds(np.array([True, True, False, False]))
            sim.reset_worlds(np.array([False, False, True, True]), seeds=[0, 0, 5, 6])
    seeds, episodes = sim._state("seed").copy(), sim._state("episode").copy()
    before = snapshot(sim)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "reset" warning
        sim.start_recording(path, continue_episodes=True)
    assert_same(snapshot(sim), before, "after start_recording (nothing may change)")
    rng = np.random.default_rng(1)
    snaps = []
    for _ in range(60):
        sim.action_tensor().to_numpy()[:] = wild_actions(rng, (4, 1, 3))
        sim.step()
        snaps.append(snapshot(sim))
    sim.stop_recording()

    meta = er.SimManager.read_replay_metadata(path)
    assert meta.start == "fresh"
    assert meta.world_seeds == tuple(int(s) for s in seeds)
    assert meta.world_episodes == tuple(int(e) for e in episodes)
    with er.SimManager.from_replay(path) as replay:
        assert_same(snapshot(replay), before, "at the start of the replay", skip=FINALS)
    for i, got in enumerate(replay_with_manager(path)):
        assert_same(got, snaps[i], f"at step {i + 1}", skip=FINALS)


@pytest.mark.parametrize("mode", MODES)
def test_recording_that_continues_episodes_mid_episode_resets_every_world_with_a_warning(tmp_path, mode):
    path = tmp_path / "mid.bin"
    sim = er.SimManager(num_worlds=4, rand_seed=5, autoreset_mode=mode, episode_len=25, num_threads=1)
    sim.step(nstep=9)
    sim.reset_worlds(np.array([True, True, True, False]))  # one world still mid-episode
    episodes = sim._state("episode").copy()
    with pytest.warns(UserWarning, match="reset"):
        sim.start_recording(path, continue_episodes=True)
    assert (sim.steps_remaining_tensor().to_numpy() == 25).all()
    assert (sim._state("episode") == episodes + 1).all()  # an unseeded reset: e_w += 1
    rng = np.random.default_rng(2)
    snaps = []
    for _ in range(60):
        sim.action_tensor().to_numpy()[:] = wild_actions(rng, (4, 1, 3))
        if mode == "disabled":
            sim.reset_tensor().to_numpy()[:] = sim.done_tensor().to_numpy()[:, 0, 0]
        sim.step()
        snaps.append(snapshot(sim))
    sim.stop_recording()
    meta = er.SimManager.read_replay_metadata(path)
    assert meta.start == "reset"
    assert meta.world_episodes == tuple(int(e) + 1 for e in episodes)
    for i, got in enumerate(replay_with_manager(path)):
        assert_same(got, snaps[i], f"at step {i + 1}", skip=FINALS)


@pytest.mark.parametrize("k", [1, 7, 64])
def test_step_nstep_records_k_step_records_with_the_reset_flags_on_the_first(tmp_path, k):
    path = tmp_path / "nstep.bin"
    sim = er.SimManager(num_worlds=3, num_agents=2, rand_seed=4, num_threads=1)
    sim.start_recording(path, seed=4, checksum_interval=3)
    sim.step(nstep=2)
    actions = np.array([[[3, 0, 2], [9, -1, 4]], [[1, 7, 0], [0, 3, 7]], [[2, 2, 2], [3, 5, 1]]], np.int32)
    sim.action_tensor().to_numpy()[:] = actions
    sim.reset_tensor().to_numpy()[:] = [0, 5, 0]
    sim.step(nstep=k)
    want = snapshot(sim)
    assert sim.stop_recording() == k + 2
    with ReplayFile(path) as replay:
        steps = [r for r in replay if isinstance(r, StepRecord)]
        hashes = [r.step for r in replay if isinstance(r, HashRecord)]
    assert len(steps) == k + 2
    assert [r.reset.tolist() for r in steps[2:]] == [[False, True, False]] + [[False] * 3] * (k - 1)
    for r in steps[2:]:
        assert np.array_equal(r.actions, clamped(actions))
    total = k + 2
    assert hashes == sorted({0, *range(3, total + 1, 3), total})
    assert_same(replay_with_manager(path)[-1], want, "after the last step")


#: The manager the load_replay tests record with (and load into).
LOAD_REPLAY_CONFIG = {
    "num_worlds": 4,
    "num_agents": 2,
    "episode_len": 30,
    "autoreset_mode": "next_step",
    "num_threads": 1,
}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_worlds": 3}, "num_worlds"),
        ({"num_worlds": 3, "num_agents": 1, "episode_len": 10}, "num_worlds"),  # the first one is named
        ({"num_agents": 1}, "num_agents"),
        ({"episode_len": 31}, "episode_len"),
        ({"autoreset_mode": "disabled"}, "autoreset_mode"),
        ({"rooms": ["double_button", "cube_button"]}, "rooms"),
        ({"reward": {"slack_penalty": -0.01}}, "reward"),
    ],
)
def test_load_replay_is_deprecated_and_names_the_first_differing_config_field(tmp_path, kwargs, field):
    path = tmp_path / "run.bin"
    with er.SimManager(**LOAD_REPLAY_CONFIG) as sim, sim.recording(path, seed=1):
        sim.step(nstep=5)
    with er.SimManager(**{**LOAD_REPLAY_CONFIG, **kwargs}) as other:
        with pytest.warns(DeprecationWarning, match="from_replay"), pytest.raises(ValueError) as info:
            other.load_replay(path)
        message = str(info.value)
        assert message.startswith(f"load_replay: {field} "), message
        assert not other.has_replay()


def test_load_replay_into_a_matching_manager_replays_exactly(tmp_path):
    path = tmp_path / "run.bin"
    with er.SimManager(rand_seed=8, **LOAD_REPLAY_CONFIG) as sim:
        sim.start_recording(path, seed=8)
        run = drive(sim, 90, seed=3)
        sim.stop_recording()
    with er.SimManager(rand_seed=123, **LOAD_REPLAY_CONFIG) as other:
        other.step(nstep=17)  # its own state is replaced by the file's
        assert not other.has_replay()
        with pytest.warns(DeprecationWarning, match="from_replay"):
            other.load_replay(path)
        assert other.has_replay() and other.get_replay_step_count() == (0, 90)
        for i in range(90):
            assert other.replay_step() is (i == 89)
            assert_same(snapshot(other), run.snaps[i], f"at step {i + 1}")


def test_several_recordings_in_sequence_each_replay_their_own_segment(tmp_path):
    sim = er.SimManager(num_worlds=4, num_agents=2, rand_seed=2, episode_len=30, num_threads=1)
    segments = {}
    sim.start_recording(tmp_path / "a.bin", seed=5)
    segments["a"] = drive(sim, 70, seed=10).snaps
    sim.stop_recording()
    sim.step(nstep=11)  # not recorded
    with pytest.warns(UserWarning, match="reset"):
        sim.start_recording(tmp_path / "b.bin", continue_episodes=True)
    segments["b"] = drive(sim, 45, seed=11).snaps
    sim.stop_recording()
    with sim.recording(tmp_path / "c.bin", seed=6, checksum_interval=7):
        segments["c"] = drive(sim, 33, seed=12).snaps
    assert not sim.is_recording()
    sim.close()
    for name, snaps in segments.items():
        assert er.SimManager.read_replay_metadata(tmp_path / f"{name}.bin").num_steps == len(snaps)
        for i, got in enumerate(replay_with_manager(tmp_path / f"{name}.bin")):
            assert_same(got, snaps[i], f"at step {i + 1} of {name}.bin", skip=FINALS)


def test_recording_during_a_replay_writes_the_same_records(tmp_path):
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    with er.SimManager(num_worlds=5, num_agents=2, autoreset_mode="disabled", episode_len=20) as sim:
        sim.start_recording(first, seed=3, checksum_interval=10)
        run = drive(sim, 120, seed=4)
        # a reset after the last step
        sim.reset_worlds(np.array([False, True, False, False, True]), seeds=[0, 1, 0, 0, 2])
        sim.stop_recording()
    with er.SimManager.from_replay(first) as replay:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            replay.start_recording(second, checksum_interval=10, continue_episodes=True)
        while not replay.replay_step():
            pass
        assert replay.stop_recording() == 120
    assert er.SimManager.read_replay_metadata(second).start == "fresh"
    with ReplayFile(first) as a, ReplayFile(second) as b:
        assert list(a) == list(b)
    for i, got in enumerate(replay_with_manager(second)[:-1]):
        assert_same(got, run.snaps[i], f"at step {i + 1}")


def test_from_replay_with_one_and_two_threads_is_identical(tmp_path):
    path = tmp_path / "run.bin"
    with er.SimManager(num_worlds=33, num_agents=3, episode_len=40, num_threads=2) as sim:
        sim.start_recording(path, seed=9)
        run = drive(sim, 150, seed=9)
        sim.stop_recording()
    one = replay_with_manager(path, num_threads=1)
    two = replay_with_manager(path, num_threads=2)
    for i in range(150):
        assert_same(one[i], two[i], f"at step {i + 1}")
        assert_same(one[i], run.snaps[i], f"at step {i + 1}")


def test_custom_config_and_extreme_seeds_round_trip(tmp_path):
    path = tmp_path / "custom.bin"
    reward = er.RewardConfig(progress_scale=0.1, slack_penalty=-0.0125, group_bonus=1.5, escape_bonus=2.0)
    sim = er.SimManager(
        num_worlds=4,
        rand_seed=2**64 - 1,
        rooms=["cube_button", "button"],
        episode_len=17,
        reward=reward,
        autoreset_mode="next_step",
        num_threads=1,
    )
    sim.start_recording(path, seed=2**64 - 2, checksum_interval=7)  # s_w wraps around 2**64
    assert sim._state("seed").tolist() == [2**64 - 2, 2**64 - 1, 0, 1]
    rng = np.random.default_rng(3)
    snaps = []
    for i in range(40):
        if i == 10:
            seeds = np.array([2**64 - 1, 2**63, 0, 0], dtype=np.uint64)
            sim.reset_worlds(np.array([True, True, False, False]), seeds=seeds)
        sim.action_tensor().to_numpy()[:] = wild_actions(rng, (4, 1, 3))
        sim.step()
        snaps.append(snapshot(sim))
    sim.stop_recording()
    sim.close()
    meta = er.SimManager.read_replay_metadata(path)
    assert meta.seed == 2**64 - 2  # the recording's seed, not the manager's
    assert meta.world_seeds == (2**64 - 2, 2**64 - 1, 0, 1)
    assert (meta.episode_len, meta.rooms, meta.checksum_interval) == (17, ("cube_button", "button"), 7)
    assert meta.reward == dataclasses.asdict(reward)
    with er.SimManager.from_replay(path) as replay:
        assert replay.reward_config == reward
        assert (replay.rooms, replay.episode_len, replay.rand_seed) == (
            ("cube_button", "button"),
            17,
            2**64 - 2,
        )
        assert replay.autoreset_mode is AutoresetMode.NEXT_STEP
    for i, got in enumerate(replay_with_manager(path)):
        assert_same(got, snaps[i], f"at step {i + 1}")


def test_metadata_of_a_real_recording(tmp_path):
    path = tmp_path / "meta.bin"
    before = datetime.datetime.now(datetime.timezone.utc)
    sim = er.SimManager(num_worlds=6, num_agents=3, rand_seed=77, autoreset_mode="disabled")
    with sim, sim.recording(path, seed=40, checksum_interval=13):
        sim.step(nstep=30)
    after = datetime.datetime.now(datetime.timezone.utc)
    meta = er.SimManager.read_replay_metadata(path)
    assert isinstance(meta, er.ReplayMetadata)
    assert (meta.num_worlds, meta.num_agents, meta.num_steps, meta.seed) == (6, 3, 30, 40)
    assert meta.autoreset_mode is AutoresetMode.DISABLED
    assert (meta.rules_version, meta.format_version) == (er.RULES_VERSION, 2)
    assert (meta.checksum_interval, meta.complete, meta.start, meta.episode_len) == (13, True, "seed", 200)
    assert meta.rooms == tuple(er.default_rooms(3))
    assert meta.world_seeds == tuple(range(40, 46)) and meta.world_episodes == (0,) * 6
    assert before - datetime.timedelta(seconds=1) <= meta.created <= after
    assert meta["num_worlds"] == 6 and meta["seed"] == 40 and meta["num_steps"] == 30
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.num_steps = 1  # type: ignore[misc]


# -- the recording API ------------------------------------------------------------------------


def test_recording_state_and_api_errors(tmp_path):
    sim = er.SimManager(num_worlds=2, num_threads=1)
    assert not sim.is_recording() and not sim.has_replay()
    with pytest.raises(er.EscapeRoomError):
        sim.stop_recording()
    with pytest.raises(er.EscapeRoomError):
        sim.replay_step()
    with pytest.raises(er.EscapeRoomError):
        sim.get_replay_step_count()
    with pytest.raises(ValueError, match="checksum_interval"):
        sim.start_recording(tmp_path / "x.bin", checksum_interval=0)
    with pytest.raises(er.EscapeRoomError):
        sim.start_recording(tmp_path / "no" / "such" / "dir.bin")
    assert not sim.is_recording()
    sim.start_recording(tmp_path / "a.bin")
    assert sim.is_recording()
    with pytest.raises(er.EscapeRoomError, match="already recording"):
        sim.start_recording(tmp_path / "b.bin")
    sim.step(nstep=3)
    assert sim.stop_recording() == 3
    assert not sim.is_recording()
    with pytest.raises(RuntimeError, match="boom"), sim.recording(tmp_path / "c.bin", seed=1):
        sim.step()
        raise RuntimeError("boom")
    assert not sim.is_recording()
    meta = er.SimManager.read_replay_metadata(tmp_path / "c.bin")
    assert meta.complete and meta.num_steps == 1
    sim.close()


@pytest.mark.parametrize("end", ["close", "drop"])
def test_close_while_recording_finishes_the_file(tmp_path, end):
    """close(), or dropping the manager without it (its destructor), finishes the recording."""
    path = tmp_path / f"{end}.bin"
    sim = er.SimManager(num_worlds=3, num_threads=1)
    sim.start_recording(path, seed=0, checksum_interval=4)
    sim.step(nstep=10)
    want, outputs = sim.state_hashes().copy(), sim._impl.output_digests().copy()
    if end == "close":
        sim.close()
    else:
        del sim
        gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meta = er.SimManager.read_replay_metadata(path)
        assert meta.complete and meta.num_steps == 10
        with ReplayFile(path) as replay:
            assert list(replay)[-2:] == [HashRecord(10, want, outputs), EndRecord(10)]
    with er.SimManager.from_replay(path, num_threads=1) as replay:
        while not replay.replay_step():
            pass
        np.testing.assert_array_equal(replay.state_hashes(), want)


def test_reset_worlds_with_an_empty_mask_while_recording_keeps_the_file_replayable(tmp_path):
    # reset_worlds accepts an all-False mask (it resets nothing); the recording must stay readable.
    path = tmp_path / "empty_mask.bin"
    with er.SimManager(num_worlds=3, num_threads=1) as sim:
        sim.start_recording(path, seed=1)
        sim.step(nstep=2)
        sim.reset_worlds(np.zeros(3, dtype=bool))
        sim.step(nstep=2)
        want = snapshot(sim)
        sim.stop_recording()
    assert_same(replay_with_manager(path)[-1], want, "after the last step")


def test_u64_seeds_given_as_a_python_list_are_recorded(tmp_path):
    # "one integer per world": Python ints up to 2**64 - 1 (numpy makes such a list float64).
    path = tmp_path / "list_seeds.bin"
    with er.SimManager(num_worlds=2, num_threads=1) as sim:
        sim.start_recording(path, seed=1)
        sim.reset_worlds(None, seeds=[2**64 - 1, 5])
        assert sim._state("seed").tolist() == [2**64 - 1, 5]
        sim.step()
        sim.stop_recording()
    with ReplayFile(path) as replay:
        resets = [r for r in replay if isinstance(r, ResetRecord)]
    assert resets[0].seeds.tolist() == [2**64 - 1, 5]


# -- tampering --------------------------------------------------------------------------------


def recorded_with_a_stop_action(tmp_path, steps=45, interval=10, world=2):
    """A recording where ``world`` always has action (STOP, FORWARD, NONE): a running agent that
    a changed move_amount would move."""
    path = tmp_path / "orig.bin"
    W = 4
    with er.SimManager(num_worlds=W, rand_seed=0, num_threads=1) as sim:
        sim.start_recording(path, seed=5, checksum_interval=interval)
        rng = np.random.default_rng(1)
        for _ in range(steps):
            actions = rng.integers(0, ACTION_MAX + 1, size=(W, 1, 3)).astype(np.int32)
            actions[world, 0] = (
                er.action.move_amount.STOP,
                er.action.move_angle.FORWARD,
                er.action.rotate.NONE,
            )
            sim.action_tensor().to_numpy()[:] = actions
            sim.step()
            assert sim.done_tensor().to_numpy()[world, 0, 0] == 0  # running, never done or frozen
        sim.stop_recording()
    return path, path.read_bytes(), W


@pytest.mark.parametrize("changed_step", [1, 9, 10, 23, 30, 31, 42, 45])
def test_a_changed_action_diverges_at_the_next_checkpoint(tmp_path, changed_step):
    interval, steps, world = 10, 45, 2
    _, data, W = recorded_with_a_stop_action(tmp_path, steps, interval, world)
    step_spans = [s for s in record_spans(data) if s[0] == b"STEP"]
    assert len(step_spans) == steps
    _, start, end = step_spans[changed_step - 1]
    tampered = bytearray(data)
    move_amount = start + 8 + (W + 7) // 8 + world * 3  # A = 1
    assert tampered[move_amount] == er.action.move_amount.STOP
    tampered[move_amount] = er.action.move_amount.FAST
    fix_crc(tampered, start, end)
    bad = tmp_path / "tampered.bin"
    bad.write_bytes(bytes(tampered))

    checkpoint = min(math.ceil(changed_step / interval) * interval, steps)
    with er.SimManager.from_replay(bad) as sim:
        for _ in range(checkpoint - 1):
            sim.replay_step()
        with pytest.raises(er.ReplayDivergenceError) as info:
            sim.replay_step()
    message = str(info.value)
    assert f"step {checkpoint}:" in message or message.endswith(f"step {checkpoint}"), message
    named = [int(w) for w in re.findall(r"world\(s\) ([\d, ]+)", message)[0].split(", ")]
    assert named == [world], message

    envs = er.wrappers.ReplayVectorEnv(bad)
    try:
        for _ in range(checkpoint - 1):
            envs.step(None)
        with pytest.raises(er.ReplayDivergenceError, match=f"step {checkpoint}"):
            envs.step(None)
    finally:
        envs.close()


@pytest.mark.parametrize("hash_step", [0, 20, 45])
def test_a_changed_hash_diverges_at_that_checkpoint(tmp_path, hash_step):
    _, data, _ = recorded_with_a_stop_action(tmp_path)
    hash_spans = {
        struct.unpack_from("<Q", data, start + 8)[0]: (start, end)
        for tag, start, end in record_spans(data)
        if tag == b"HASH"
    }
    assert sorted(hash_spans) == [0, 10, 20, 30, 40, 45]
    start, end = hash_spans[hash_step]
    tampered = bytearray(data)
    tampered[start + 8 + 8 + 8 * 1] ^= 0x40  # world 1's hash
    fix_crc(tampered, start, end)
    bad = tmp_path / "tampered.bin"
    bad.write_bytes(bytes(tampered))
    divergence = pytest.raises(er.ReplayDivergenceError, match=rf"step {hash_step}\b.*world\(s\) 1\b")
    with divergence, er.SimManager.from_replay(bad) as sim:
        for _ in range(hash_step):
            sim.replay_step()


@pytest.mark.parametrize(
    ("tag", "nth"), [(b"STEP", 0), (b"STEP", 27), (b"HASH", 2), (b"END ", 0), (b"RSET", 0)]
)
def test_a_flipped_byte_without_crc_fix_is_a_format_error_at_that_record(tmp_path, tag, nth):
    path = tmp_path / "orig.bin"
    with er.SimManager(num_worlds=3, num_agents=2, num_threads=1) as sim:
        sim.start_recording(path, seed=1, checksum_interval=10)
        sim.step(nstep=20)
        sim.reset_worlds(np.array([True, False, True]), seeds=[4, 0, 5])
        sim.step(nstep=20)
        sim.stop_recording()
    data = path.read_bytes()
    _, start, end = [s for s in record_spans(data) if s[0] == tag][nth]
    tampered = bytearray(data)
    tampered[end - 5] ^= 0x01  # the last payload byte
    bad = tmp_path / "flipped.bin"
    bad.write_bytes(bytes(tampered))
    with pytest.raises(er.ReplayFormatError, match=rf"byte {start}\b") as info:
        er.SimManager.from_replay(bad)
    assert "CRC" in str(info.value)


# -- robustness -------------------------------------------------------------------------------

KILLED_WRITER = r"""
import sys, time
import numpy as np
import escape_room_env as er

sim = er.SimManager(num_worlds=8, rand_seed=0, num_threads=1, episode_len=50)
actions = sim.action_tensor().to_numpy()
rng = np.random.default_rng(0)
sim.start_recording(sys.argv[1], seed=3, checksum_interval=16)
for i in range(10_000):
    actions[:] = rng.integers(-3, 12, size=actions.shape)
    sim.step()
    print(i + 1, flush=True)
    time.sleep(0.001)
"""


def test_a_recording_process_killed_mid_run_leaves_a_replayable_prefix(tmp_path):
    path = tmp_path / "killed.bin"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    printed = 0
    try:
        deadline = time.monotonic() + 60
        for line in child.stdout:
            printed = int(line)
            if printed >= 300 or time.monotonic() > deadline:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert printed >= 300, "the writer did not get going"

    with pytest.warns(ReplayTruncatedWarning):
        sim = er.SimManager.from_replay(path, num_threads=1)
    with sim:
        _, total = sim.get_replay_step_count()
        assert total >= 64 * (printed // 64), (total, printed)
        # The same run, simulated again from the recording's seed, without the file.
        again = er.SimManager(num_worlds=8, rand_seed=3, num_threads=1, episode_len=50)
        rng = np.random.default_rng(0)
        for i in range(total):
            again.action_tensor().to_numpy()[:] = rng.integers(-3, 12, size=(8, 1, 3))
            again.step()
            assert sim.replay_step() is (i == total - 1)  # hash checkpoints verified on the way
            assert np.array_equal(sim.state_hashes(), again.state_hashes()), f"step {i + 1}"
            assert np.array_equal(sim.observation_tensor().to_numpy(), again.observation_tensor().to_numpy())
        again.close()
    with pytest.warns(ReplayTruncatedWarning):
        meta = er.SimManager.read_replay_metadata(path)
    assert not meta.complete and meta.num_steps == total


class _Hang(Exception):
    pass


def test_truncating_a_real_recording_at_every_byte_offset(tmp_path):
    W, A = 2, 2
    path = tmp_path / "full.bin"
    # events: the state hashes after each recorded reset or step, in file order.
    events = []
    with er.SimManager(num_worlds=W, num_agents=A, rand_seed=0, num_threads=1, episode_len=25) as sim:
        rng = np.random.default_rng(0)
        sim.start_recording(path, seed=1, checksum_interval=10)
        for i in range(70):
            if i == 20:
                sim.reset_worlds(np.array([True, False]))
                events.append(sim.state_hashes().copy())
            if i == 33:
                sim.reset_worlds(None, seeds=[7, 8])
                events.append(sim.state_hashes().copy())
            sim.action_tensor().to_numpy()[:] = wild_actions(rng, (W, A, 3))
            sim.step()
            events.append(sim.state_hashes().copy())
        sim.reset_worlds(np.array([False, True]), seeds=[0, 99])  # after the last step
        events.append(sim.state_hashes().copy())
        sim.stop_recording()
    data = path.read_bytes()
    spans = record_spans(data)
    records_start = spans[0][1]
    event_spans = [(tag, end) for tag, _, end in spans if tag in (b"STEP", b"RSET")]
    assert len(event_spans) == len(events) == 73

    cut_path = tmp_path / "cut.bin"

    def on_alarm(signum, frame):
        raise _Hang

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        for cut in range(len(data)):
            cut_path.write_bytes(data[:cut])
            signal.setitimer(signal.ITIMER_REAL, 10.0)
            try:
                if cut < records_start:
                    with pytest.raises(er.ReplayFormatError, match="truncated"):
                        er.SimManager.from_replay(cut_path, num_threads=1)
                    continue
                sim, caught = quietly_open(cut_path)
                with sim:
                    assert [w.category for w in caught] == [ReplayTruncatedWarning], cut
                    kept = [k for k, (_, end) in enumerate(event_spans) if end <= cut]
                    steps = [k for k in kept if event_spans[k][0] == b"STEP"]
                    _, total = sim.get_replay_step_count()
                    assert total == len(steps), cut
                    for i in range(total):
                        assert sim.replay_step() is (i == total - 1)
                        # After the last kept step, the resets kept after it are applied too.
                        want = events[steps[i]] if i < total - 1 else events[kept[-1]]
                        assert np.array_equal(sim.state_hashes(), want), (cut, i)
            except _Hang:
                pytest.fail(f"hang at cut {cut}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert er.SimManager.read_replay_metadata(path).complete


def test_a_replay_manager_dropped_without_close_closes_its_file(tmp_path):
    import gc
    import os
    import warnings

    path = tmp_path / "dropped.bin"
    sim = er.SimManager(num_worlds=2, rand_seed=0)
    with sim.recording(path, seed=1):
        sim.step(3)
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        replay = er.SimManager.from_replay(path)
        replay.replay_step()
        del replay
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) == fds
