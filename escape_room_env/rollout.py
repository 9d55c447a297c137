"""Stateless rollouts from saved states, after MuJoCo's ``rollout`` module: for planning (MCTS,
lookahead), Go-Explore restarts and branching a replay.

``rollout(sim, initial_states, actions)`` steps B copies of ``sim``'s configuration, copy b from
``initial_states[b]`` with ``actions[b]``, and returns every step's observations, rewards and
dones and the final states; ``sim`` itself is not touched. The work runs in the native core
without the GIL, on a thread pool that a :class:`Rollout` keeps between calls.

>>> import numpy as np, escape_room_env as er
>>> sim = er.SimManager(num_worlds=2, rand_seed=3)
>>> states = sim.get_state()
>>> actions = np.zeros((2, 5, 1, 3), dtype=np.int32)  # [B, T, A, 3]
>>> result = er.rollout(sim, states, actions)
>>> result.observation.shape, result.reward.shape, result.final_state["steps_left"].tolist()
((2, 5, 1, 87), (2, 5, 1), [195, 195])
"""

from __future__ import annotations

import ctypes
import dataclasses
import threading
import weakref
from typing import Any

import numpy as np
from typing_extensions import Self

from escape_room_env import _core
from escape_room_env.action import NUM_CHOICES
from escape_room_env.manager import ExecMode, SimManager, _state_dtype_error

__all__ = ["Rollout", "RolloutResult", "rollout"]

_ACTION_NAMES = ("move_amount", "move_angle", "rotate")


@dataclasses.dataclass(frozen=True)
class RolloutResult:
    """What a rollout of B initial states over T steps gives, per copy b and step t."""

    observation: np.ndarray | None
    """float32 [B, T, A, D]: the observations after each step (None with
    ``return_observations=False``)."""
    reward: np.ndarray
    """float32 [B, T, A]."""
    done: np.ndarray
    """bool [B, T, A]."""
    final_state: np.ndarray
    """[B] state records (``SimManager.state_dtype``) after the last step."""
    states: np.ndarray | None = None
    """[B, T] state records after every step, with ``return_states=True`` (else None)."""


class Rollout:
    """A persistent pool of simulators for :func:`rollout` calls (MuJoCo's ``Rollout``): the
    threads and memory of a call are reused by the next one of the same configuration and
    size. Two Python threads may call :meth:`rollout` at once (each gets a simulator of its own).

    The memory of a result's arrays is reused too, each once it and every view of it are gone
    (a loop's ``result = pool.rollout(...)`` alternates between two sets): new memory would cost
    its page faults, up to half the time of a large call. The spare memory is at most twice the
    largest call's result, until :meth:`close`; ``out=`` refills a result you hold instead.

    >>> import numpy as np, escape_room_env as er
    >>> sim = er.SimManager(num_worlds=4)
    >>> with er.Rollout(num_threads=1) as pool:
    ...     first = pool.rollout(sim, sim.get_state(), np.ones((4, 3, 1, 3), np.int32))
    ...     again = pool.rollout(sim, sim.get_state(), np.ones((4, 3, 1, 3), np.int32))
    >>> bool((first.observation == again.observation).all())
    True
    """

    def __init__(self, num_threads: int | None = None):
        self.num_threads = num_threads
        self._idle: dict[tuple, list[SimManager]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._blocks = _Blocks()

    def rollout(
        self,
        sim: SimManager,
        initial_states: np.ndarray,
        actions: Any,
        *,
        return_states: bool = False,
        return_observations: bool = True,
        out: RolloutResult | None = None,
    ) -> RolloutResult:
        """Steps copy b of ``sim``'s configuration from ``initial_states[b]`` with
        ``actions[b, t]`` for t in 0..T-1; see :func:`rollout`. ``out``: the result of an earlier
        call of the same sizes, whose arrays are filled again instead of new ones (as MuJoCo's
        preallocated outputs: no allocation, no page faults; the earlier values are overwritten)."""
        if not isinstance(sim, SimManager):
            raise TypeError(f"sim must be a SimManager (the configuration to copy), got {type(sim).__name__}")
        initial = np.asarray(initial_states)
        if initial.dtype != sim.state_dtype:
            raise _state_dtype_error(sim, "initial_states", initial)
        if initial.ndim != 1 or initial.shape[0] < 1:
            raise ValueError(
                f"initial_states must be a 1-d array of B >= 1 records, got shape {initial.shape}"
            )
        batch, agents = initial.shape[0], sim.num_agents
        plan = _check_actions(actions, batch, agents)
        steps = plan.shape[1]
        key = _config_key(sim, batch)
        manager = self._take(sim, key, batch)
        try:
            # The core writes step-major ([T, B, ...]: each step's slice contiguous); the result's
            # [B, T, ...] arrays are transposed views of them.
            record = sim.state_dtype.itemsize
            if out is None:
                observation, reward, done, states = self._blocks.arrays(
                    (steps, batch, agents, sim.obs_dim) if return_observations else None,
                    (steps, batch, agents),
                    (steps, batch) if return_states else (batch,),
                    sim.state_dtype,
                )
            else:
                observation, reward, done, states = _reusable(
                    out, steps, batch, agents, sim, return_states, return_observations
                )
            taken = manager.rollout_into(
                np.ascontiguousarray(initial).view(np.uint8).reshape(batch, record),
                plan,
                steps,
                observation,
                reward,
                done,
                states.view(np.uint8).reshape(-1),
            )
        finally:
            self._give_back(key, manager)
        if taken < 0:  # a value out of range: nothing was stepped
            raise _bad_action(plan)
        if taken != steps:  # Ctrl-C raises in the call; this is the interpreter exiting
            raise _core.EscapeRoomError(f"the rollout stopped after {taken} of {steps} steps")
        return RolloutResult(
            None if observation is None else observation.swapaxes(0, 1),
            reward.swapaxes(0, 1),
            done.swapaxes(0, 1),
            states[-1] if return_states else states,
            states.swapaxes(0, 1) if return_states else None,
        )

    def _take(self, sim: SimManager, key: tuple, batch: int) -> SimManager:
        with self._lock:
            if self._closed:
                raise _core.EscapeRoomError("this Rollout is closed; create a new one")
            idle = self._idle.get(key)
            if idle:
                return idle.pop()
        options = sim.build_options()
        options.update(exec_mode=ExecMode.CPU, gpu_id=0, num_worlds=batch, num_threads=self.num_threads)
        return SimManager(**options)

    def _give_back(self, key: tuple, manager: SimManager) -> None:
        with self._lock:
            if self._closed:
                manager.close()
            else:
                self._idle.setdefault(key, []).append(manager)

    def close(self) -> None:
        """Frees the pool's simulators, threads and spare result memory."""
        with self._lock:
            self._closed = True
            managers = [m for idle in self._idle.values() for m in idle]
            self._idle.clear()
        self._blocks.close()
        for manager in managers:
            manager.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Blocks:
    """Result memory: each array of a result is cut from a block of its own, which comes back
    when the array and every view of it are gone; a later call takes a block of the same size,
    its pages already mapped. The spare blocks are bounded by twice the largest call's bytes,
    the least recently returned freed first. A finalizer runs wherever the last view goes
    (inside any other code, locks held), so it only appends to ``returned``; the calls move
    blocks from there under the lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.returned: list[np.ndarray] = []  # appended by finalizers (atomic under the GIL)
        self.spare: list[np.ndarray] = []  # least recently returned first; under the lock
        self.budget = 0  # bytes
        self.closed = False

    def arrays(
        self, obs_shape: tuple | None, step_shape: tuple, states_shape: tuple, state_dtype: np.dtype
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
        """observation (when obs_shape), reward, done and states, each from a block."""
        f32, cells = np.dtype(np.float32), int(np.prod(step_shape))
        sizes = [
            4 * int(np.prod(obs_shape)) if obs_shape else 0,
            4 * cells,
            cells,
            state_dtype.itemsize * int(np.prod(states_shape)),
        ]
        obs, reward, done, states = self._take(sizes)
        return (
            self._cut(obs, obs_shape, f32) if obs_shape else None,
            self._cut(reward, step_shape, f32),
            self._cut(done, step_shape, np.dtype(np.bool_)),
            self._cut(states, states_shape, state_dtype),
        )

    def _cut(self, block: np.ndarray, shape: tuple, dtype: np.dtype) -> np.ndarray:
        # The array's base: every view of it (numpy's, torch.from_numpy's, a memoryview) keeps
        # this object alive, where a numpy view of the block would take the block itself as its
        # base. Its finalizer runs when the last of them goes.
        lease = (ctypes.c_uint8 * block.nbytes).from_buffer(block.data)
        weakref.finalize(lease, self._give_back, block).atexit = False  # no reuse at exit
        return np.frombuffer(memoryview(lease), dtype).reshape(shape)

    def _take(self, sizes: list[int]) -> list[np.ndarray]:
        with self.lock:
            self.budget = max(self.budget, 2 * sum(sizes))
            while self.returned:
                self.spare.append(self.returned.pop(0))
            taken = []
            for size in sizes:
                # The most recently returned block of this size (its pages the likeliest mapped).
                match = [i for i, block in enumerate(self.spare) if block.nbytes == size]
                taken.append(self.spare.pop(match[-1]) if match else np.empty(size, np.uint8))
            while sum(block.nbytes for block in self.spare) > self.budget:
                self.spare.pop(0)
            return taken

    def _give_back(self, block: np.ndarray) -> None:
        if not self.closed and block.nbytes <= self.budget:
            self.returned.append(block)

    def close(self) -> None:
        self.closed = True
        with self.lock:
            self.spare, self.returned = [], []


def rollout(
    sim: SimManager,
    initial_states: np.ndarray,
    actions: Any,
    *,
    num_threads: int | None = None,
    return_states: bool = False,
    return_observations: bool = True,
) -> RolloutResult:
    """B rollouts of T steps of ``sim``'s configuration, after MuJoCo's ``rollout.rollout``.

    ``initial_states``: [B] records from ``sim.get_state()`` (of ``sim`` or of any manager of the
    same configuration); ``actions``: int array [B, T, A, 3] (move_amount, move_angle, rotate,
    in range). Copy b starts from ``initial_states[b]`` and takes ``actions[b, t]`` at step t;
    the result holds every step's observations, rewards and dones, and the final states (every
    state with ``return_states``), bit for bit what a manager stepped from those states with
    those actions shows. ``return_observations=False`` leaves the observations out (None): the
    steps before the last then skip them, lidar included, which is most of a step's work (a
    planner that scores by reward runs ~2.5x faster). ``sim`` is not changed. Runs on the CPU, ``num_threads`` threads
    (default: the cores), without the GIL; a :class:`Rollout` keeps the threads between calls.
    A C-contiguous int32 ``actions`` is read in place, not copied: do not write it from another
    thread until the call returns.
    """
    with Rollout(num_threads) as pool:
        return pool.rollout(
            sim, initial_states, actions, return_states=return_states, return_observations=return_observations
        )


def _check_actions(actions: Any, batch: int, agents: int) -> np.ndarray:
    """The actions as a C-contiguous int32 [B, T, A, 3], which the core checks and then reads in
    place (int32 values are checked there alone; wider ones here first, before narrowing could
    wrap one into range), or TypeError/ValueError naming what is wrong."""
    if hasattr(actions, "detach") and hasattr(actions, "numpy"):  # a torch tensor
        actions = actions.detach().cpu().numpy()
    plan = np.asarray(actions)
    if plan.dtype == np.bool_ or not np.issubdtype(plan.dtype, np.integer):
        raise TypeError(f"actions must be an integer array [B, T, A, 3], got dtype {plan.dtype}")
    if (
        plan.ndim != 4
        or plan.shape[0] != batch
        or plan.shape[2] != agents
        or plan.shape[3] != 3
        or plan.shape[1] < 1
    ):
        raise ValueError(f"actions must have shape ({batch}, T, {agents}, 3) with T >= 1, got {plan.shape}")
    if plan.dtype != np.int32:
        rows = np.ascontiguousarray(plan).reshape(-1, 3)
        unsigned = rows.view(rows.dtype.str.replace("i", "u"))  # a negative value is then huge
        if any((unsigned[:, c] >= limit).any() for c, limit in enumerate(NUM_CHOICES)):
            raise _bad_action(plan)
    return np.ascontiguousarray(plan, dtype=np.int32)


def _bad_action(plan: np.ndarray) -> ValueError:
    """The error naming the first value out of range of actions [B, T, A, 3] (by component, then
    in [B, T, A] order)."""
    for c, (name, limit) in enumerate(zip(_ACTION_NAMES, NUM_CHOICES)):
        column = plan[..., c]
        bad = np.flatnonzero((column < 0) | (column >= limit))
        if bad.size:
            b, t, a = np.unravel_index(int(bad[0]), column.shape)
            return ValueError(
                f"actions[{b}, {t}, {a}, {c}] ({name}) is {int(column[b, t, a])}, expected 0 <= {name} < {limit}"
            )
    return ValueError("actions holds a value out of range")


def _reusable(
    out: RolloutResult, steps: int, batch: int, agents: int, sim: SimManager, every: bool, observed: bool
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
    """The step-major buffers behind an earlier result, checked to fit this call."""
    if not isinstance(out, RolloutResult):
        raise TypeError(f"out must be the RolloutResult of an earlier call, got {type(out).__name__}")
    observation = None if out.observation is None else out.observation.swapaxes(0, 1)
    buffers = (out.reward.swapaxes(0, 1), out.done.swapaxes(0, 1))
    states = out.states.swapaxes(0, 1) if every and out.states is not None else out.final_state
    fits = all(b.shape == (steps, batch, agents) and b.flags.c_contiguous for b in buffers)
    fits = fits and (observation is not None) == observed
    if observation is not None:
        fits = (
            fits
            and observation.shape == (steps, batch, agents, sim.obs_dim)
            and observation.flags.c_contiguous
        )
    fits = fits and states.dtype == sim.state_dtype and states.flags.c_contiguous
    fits = fits and states.shape == ((steps, batch) if every else (batch,))
    if not fits:
        raise ValueError(
            "out does not fit this call: pass the result of a call with the same sim, sizes, "
            "return_states and return_observations"
        )
    return (observation, *buffers, states)


def _config_key(sim: SimManager, batch: int) -> tuple:
    options = sim.build_options()
    options.pop("num_threads", None)
    options.pop("exec_mode", None)
    options.pop("gpu_id", None)
    options["num_worlds"] = batch
    return tuple(sorted((k, repr(v)) for k, v in options.items()))
