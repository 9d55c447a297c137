"""Small helpers shared by the test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator

import numpy as np
import pytest

import escape_room_env as er

#: Every exported tensor of the manager, from the core's own list.
ALL_TENSOR_NAMES = tuple(name for name, kind in er._core.Manager.arrays() if kind == 0)
#: The outputs every step writes, in every reset mode (SPEC §3; the views are slices of
#: `observation`, and the final_* tensors and episode counters are left out).
STEP_OUTPUTS = (
    "reward",
    "done",
    "termination_reason",
    "terminated",
    "truncated",
    "steps_remaining",
    "progress",
    "observation",
)


def get(sim: er.SimManager, name: str) -> er.Tensor:
    """``sim.<name>_tensor()``."""
    return getattr(sim, f"{name}_tensor")()


def one_thread_manager(mode, num_worlds: int, seed: int, num_agents: int = 1, **kwargs) -> er.SimManager:
    """A SimManager on one thread (the thread count never changes results) in reset ``mode``."""
    return er.SimManager(
        num_worlds=num_worlds,
        rand_seed=seed,
        num_agents=num_agents,
        autoreset_mode=mode,
        num_threads=1,
        **kwargs,
    )


def random_actions(rng: np.random.Generator, num_worlds: int, num_agents: int) -> np.ndarray:
    """Uniform in-range actions, int32 [W, A, 3]."""
    return np.stack(
        [
            rng.integers(0, 4, (num_worlds, num_agents)),
            rng.integers(0, 8, (num_worlds, num_agents)),
            rng.integers(0, 5, (num_worlds, num_agents)),
        ],
        axis=-1,
    ).astype(np.int32)


#: A working directory for `python -c` / `python -m` subprocesses: those put their cwd first on
#: sys.path, and from the repository root that would be the source tree, without its compiled
#: `_core`, instead of the installed package.
OUTSIDE_SOURCE = tempfile.gettempdir()


def run_python(*args, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
    """``python ARGS...`` run from :data:`OUTSIDE_SOURCE`, its output captured as text."""
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=OUTSIDE_SOURCE,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def step_replay_to_its_end(envs: er.wrappers.ReplayVectorEnv, steps: int) -> Iterator[tuple]:
    """Each step's ``step(None)`` results of a fresh ReplayVectorEnv of ``steps`` steps, checking
    ``replay_progress`` before and after, ``replay_finished`` (set on the last step only), and
    that a step past the end raises; closes ``envs`` at the end."""
    try:
        assert envs.replay_progress == (0, steps)
        for i in range(steps):
            result = envs.step(None)
            assert result[4]["replay_finished"] is (i == steps - 1), f"at step {i + 1}"
            yield result
        assert envs.replay_progress == (steps, steps)
        with pytest.raises(er.EscapeRoomError):
            envs.step(None)
    finally:
        envs.close()


def some_worlds(rng: np.random.Generator, num_worlds: int) -> np.ndarray:
    """A random reset mask of about half the worlds, never empty (an empty mask resets nothing)."""
    mask = rng.random(num_worlds) < 0.5
    mask[rng.integers(num_worlds)] = True
    return mask


def scheduled_resets(rng: np.random.Generator, step: int, num_worlds: int, max_int_seed: int) -> list[tuple]:
    """The ``reset_worlds(mask, seeds)`` calls the random drives make before step ``step``, as
    (mask, seeds, kind): about half the worlds every 41 steps, half with u64 seeds every 59, and
    every world with an int seed below ``max_int_seed`` every 67."""
    calls = []
    if step % 41 == 13:
        calls.append((some_worlds(rng, num_worlds), None, "mask"))
    if step % 59 == 19:
        mask = some_worlds(rng, num_worlds)
        calls.append((mask, rng.integers(0, 2**64, size=num_worlds, dtype=np.uint64), "seeds"))
    if step % 67 == 31:
        calls.append((None, int(rng.integers(0, max_int_seed)), "int_seed"))
    return calls


def step_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every STEP record of a replay file's bytes."""
    (config_bytes,) = struct.unpack_from("<Q", data, 48)
    pos, spans = 96 + config_bytes, []
    while pos + 8 <= len(data):
        tag, length = struct.unpack_from("<4sI", data, pos)
        if tag == b"STEP":
            spans.append((pos, pos + 12 + length))
        pos += 12 + length
    return spans


@contextlib.contextmanager
def sigint_after(seconds: float) -> Iterator[None]:
    """Sends this process SIGINT (Ctrl-C) after `seconds`, unless the block ended first."""
    timer = threading.Timer(seconds, os.kill, args=(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def record_bytes(records: np.ndarray) -> bytes:
    """The bytes of state records field by field (numpy's fancy indexing and stacking copy
    structured records without their padding bytes, so whole-record bytes can differ there)."""
    return b"".join(np.ascontiguousarray(records[name]).tobytes() for name in records.dtype.names)


def as_bytes(array: np.ndarray) -> bytes:
    """An array's bytes; state records' field by field (record_bytes)."""
    return record_bytes(array) if array.dtype.names else array.tobytes()
