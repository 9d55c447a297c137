"""Nothing leaks (SPEC §8): memory, threads and file descriptors come back when managers, vector
envs, recordings and replays go away, and nanobind reports no leaked objects at exit.

Memory is the process's resident set size (RSS) from /proc, measured after a warm-up so that
allocator pools and first-use caches are already in place. These tests skip under the sanitizer
job (its allocator keeps freed memory in quarantine on purpose).
"""

from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import run_python

import escape_room_env as er

MB = 1 << 20
LIMIT = 20 * MB  # the bound on growth over a create-and-destroy loop

pytestmark = pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc")
measures_memory = pytest.mark.skipif(
    os.environ.get("ESCAPE_ROOM_SANITIZE") in ("address", "thread"),
    reason="a sanitizer's quarantine holds freed memory",
)


def rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def num_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def num_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def churn(make, count: int) -> tuple[int, int, int]:
    """Runs ``make(i)`` ``count`` times after a warm-up; growth of RSS, threads and descriptors."""
    for i in range(20):
        make(i)
    gc.collect()
    before = rss(), num_threads(), num_fds()
    for i in range(count):
        make(i)
    gc.collect()
    after = rss(), num_threads(), num_fds()
    return after[0] - before[0], after[1] - before[1], after[2] - before[2]


@measures_memory
def test_500_managers_created_stepped_and_destroyed_grow_rss_under_20_mb():
    actions = np.array([3, 0, 2], np.int32)

    def make(i):
        sim = er.SimManager(num_worlds=16, num_agents=1 + i % 4, rand_seed=i, num_threads=1 + i % 2)
        sim.action_tensor().to_numpy()[:] = actions
        sim.step(nstep=2)
        sim.observation_tensor().to_numpy().sum()
        sim.state_hashes()
        if i % 3 == 0:
            sim.close()
        elif i % 3 == 1:
            with sim:
                pass
        # else: dropped without close()

    grown, threads, fds = churn(make, 500)
    assert grown < LIMIT, f"RSS grew {grown / MB:.1f} MB over 500 managers"
    assert threads == 0, f"{threads} worker threads left behind"
    assert fds == 0, f"{fds} file descriptors left open"


@measures_memory
def test_500_vector_envs_created_stepped_and_closed_grow_rss_under_20_mb():
    actions = np.zeros((8, 3), np.int64)

    def make(i):
        envs = er.EscapeRoomVectorEnv(8, num_agents=1 + i % 2, seed=i, num_threads=1 + i % 2)
        envs.reset(seed=i)
        envs.step(actions)
        if i % 2:
            envs.close()
        # else: dropped without close()

    grown, threads, fds = churn(make, 500)
    assert grown < LIMIT, f"RSS grew {grown / MB:.1f} MB over 500 vector envs"
    assert threads == 0 and fds == 0, (threads, fds)


@measures_memory
def test_big_managers_give_their_memory_back_when_the_last_exported_array_dies():
    # 4096 worlds hold several MB each: a leak of the storage would show at once.
    def make(i):
        sim = er.SimManager(num_worlds=4096, num_threads=1, rand_seed=i)
        kept = sim.observation_tensor().to_numpy()  # an exported view keeps the storage alive
        sim.close()
        del sim
        assert kept.shape == (4096, 1, 87)
        del kept  # now the storage goes

    grown, _, _ = churn(make, 60)
    assert grown < LIMIT, f"RSS grew {grown / MB:.1f} MB over 60 managers of 4096 worlds"


@measures_memory
def test_recording_and_replaying_500_times_leaks_neither_memory_nor_descriptors(tmp_path):
    path = tmp_path / "r.bin"
    bad = tmp_path / "bad.bin"

    def make(i):
        with er.SimManager(num_worlds=4, num_threads=1) as sim:
            sim.start_recording(path, seed=i, checksum_interval=3)
            sim.step(nstep=7)
            sim.stop_recording()
        with er.SimManager.from_replay(path, num_threads=1) as replay:
            while not replay.replay_step():
                pass
        er.SimManager.read_replay_metadata(path)
        data = path.read_bytes()
        bad.write_bytes(data[: 96 + i % (len(data) - 96)])  # a truncated copy: warnings or errors
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                er.SimManager.from_replay(bad, num_threads=1).close()
            except er.ReplayFormatError:
                pass

    grown, threads, fds = churn(make, 500)
    assert grown < LIMIT, f"RSS grew {grown / MB:.1f} MB over 500 recordings"
    assert threads == 0 and fds == 0, (threads, fds)


def test_failed_constructions_and_calls_leak_no_threads_or_descriptors(tmp_path):
    def make(i):
        for kwargs in ({"num_worlds": 0}, {"num_agents": 9}, {"rooms": ["lava"]}, {"episode_len": 0}):
            with pytest.raises(ValueError):
                er.SimManager(num_threads=2, **kwargs)
        with pytest.raises(FileNotFoundError):
            er.SimManager.from_replay(tmp_path / "missing.bin")
        with pytest.raises(er.ReplayFormatError):
            er.SimManager.read_replay_metadata(os.devnull)
        with er.SimManager(num_worlds=2, num_threads=2) as sim, pytest.raises(er.EscapeRoomError):
            sim.start_recording(tmp_path / "no" / "dir.bin", seed=0)

    _, threads, fds = churn(make, 100)
    assert threads == 0 and fds == 0, (threads, fds)


EXIT_SCRIPT = r"""
import sys, tempfile, os, numpy as np, escape_room_env as er
path = os.path.join(tempfile.mkdtemp(), "r.bin")
sim = er.SimManager(num_worlds=8, num_threads=2)
tensors = [getattr(sim, name + "_tensor")() for name in ("observation", "action", "reset", "lidar")]
arrays = [t.to_numpy() for t in tensors]
sim.start_recording(path, seed=1)
sim.step(nstep=5)
sim.stop_recording()
replay = er.SimManager.from_replay(path)
replay.replay_step()
envs = er.EscapeRoomVectorEnv(4, seed=0)
envs.reset()
envs.step(np.zeros((4, 3), np.int64))
left_open = er.SimManager(num_worlds=4)  # never closed: interpreter exit cleans it up
left_open.start_recording(path + ".open", seed=2)
left_open.step(nstep=3)
sim.close()
print(path + ".open", flush=True)
"""


def test_interpreter_exit_reports_no_nanobind_leaks_and_finishes_open_recordings(tmp_path):
    result = run_python("-c", EXIT_SCRIPT)
    assert result.returncode == 0, result.stderr
    assert "leak" not in result.stderr.lower(), result.stderr
    # The manager left open was destroyed at exit, which finished its recording.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meta = er.SimManager.read_replay_metadata(result.stdout.strip())
    assert meta.complete and meta.num_steps == 3
