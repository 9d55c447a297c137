"""Small helpers shared by the test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import tempfile

import numpy as np

import escape_room_env as er

#: Every exported tensor of the manager, from the core's own list.
ALL_TENSOR_NAMES = tuple(name for name, kind in er._core.Manager.arrays() if kind == 0)


def get(sim: er.SimManager, name: str) -> er.Tensor:
    """``sim.<name>_tensor()``."""
    return getattr(sim, f"{name}_tensor")()


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


def some_worlds(rng: np.random.Generator, num_worlds: int) -> np.ndarray:
    """A random reset mask of about half the worlds, never empty (an empty mask resets nothing)."""
    mask = rng.random(num_worlds) < 0.5
    mask[rng.integers(num_worlds)] = True
    return mask
