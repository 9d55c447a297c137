"""``SimManager``: the Madrona escape room's Python API, name for name (SPEC §5.1)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from typing_extensions import Self

from escape_room_env import _core
from escape_room_env.config import (
    AUTORESET_FROM_CODE,
    ROOM_TYPES,
    AutoresetMode,
    RewardConfig,
    as_int,
    autoreset_code,
    parse_autoreset,
    parse_reward,
    parse_rooms,
)

ExecMode = _core.ExecMode
Tensor = _core.Tensor

__all__ = ["ExecMode", "SimManager", "Tensor", "cuda_available"]


def cuda_available() -> bool:
    """True when this build has CUDA support and a GPU with a working driver is present.

    >>> import escape_room_env as er
    >>> isinstance(er.cuda_available(), bool)
    True
    """
    return _core.cuda_device_count() > 0


def _default_num_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class SimManager:
    """Thousands of escape-room worlds stepped together by the native core.

    Every tensor getter returns a :class:`Tensor` that shares memory with the simulation:
    write actions into ``action_tensor()``, call :meth:`step`, read the outputs.

    Args:
        exec_mode: ``ExecMode.CPU`` or ``ExecMode.CUDA``.
        gpu_id: the CUDA device (ignored on CPU).
        num_worlds: number of independent worlds.
        rand_seed: world w uses the random stream ``rand_seed + w``.
        auto_reset: the seed's switch: True is ``SAME_STEP``, False is ``DISABLED``.
        enable_batch_renderer: first-person RGB / depth rendering (not in this version: raises).
        num_agents: agents per world, 1 to 4.
        autoreset_mode: overrides ``auto_reset``: an ``AutoresetMode`` or its name.
        num_threads: CPU threads (default: the cores this process may use).
        rooms: room types of the generated level, 1 to 4 of ``ROOM_TYPES``.
        episode_len: steps before truncation.
        reward: a :class:`RewardConfig` or a dict of its fields.

    >>> import escape_room_env as er
    >>> sim = er.SimManager(num_worlds=4, rand_seed=7)
    >>> actions = sim.action_tensor().to_numpy()
    >>> actions[:] = (er.action.move_amount.FAST, er.action.move_angle.FORWARD, er.action.rotate.NONE)
    >>> sim.step()
    >>> sim.observation_tensor().shape, int(sim.steps_remaining_tensor().to_numpy()[0, 0, 0])
    ((4, 1, 87), 199)
    """

    def __init__(
        self,
        exec_mode: ExecMode = ExecMode.CPU,
        gpu_id: int = 0,
        num_worlds: int = 1024,
        rand_seed: int = 42,
        auto_reset: bool = True,
        enable_batch_renderer: bool = False,
        *,
        num_agents: int = 1,
        autoreset_mode: AutoresetMode | str | None = None,
        num_threads: int | None = None,
        rooms: Sequence[str] | None = None,
        episode_len: int = 200,
        reward: RewardConfig | Mapping[str, float] | None = None,
    ):
        if not isinstance(exec_mode, ExecMode):
            raise TypeError(f"exec_mode must be ExecMode.CPU or ExecMode.CUDA, got {exec_mode!r}")
        if enable_batch_renderer:
            raise ValueError(
                "enable_batch_renderer=True: the batch renderer is not part of this version of escape_room_env"
            )
        cfg = _core.Config()
        cfg.exec_mode = exec_mode
        cfg.gpu_id = as_int("gpu_id", gpu_id)
        cfg.num_worlds = as_int("num_worlds", num_worlds)
        seed = as_int("rand_seed", rand_seed)
        if not 0 <= seed < 2**64:
            raise ValueError(f"rand_seed must be in [0, 2**64), got {seed}")
        cfg.rand_seed = seed
        cfg.num_agents = as_int("num_agents", num_agents)
        self._autoreset_mode = parse_autoreset(autoreset_mode, bool(auto_reset))
        cfg.autoreset_mode = autoreset_code(self._autoreset_mode)
        cfg.num_threads = (
            _default_num_threads() if num_threads is None else as_int("num_threads", num_threads)
        )
        cfg.rooms = parse_rooms(rooms)
        cfg.episode_len = as_int("episode_len", episode_len)
        self._reward = parse_reward(reward)
        cfg.reward = self._reward._to_core()
        self._impl = _core.Manager(cfg)
        self._exec_mode = exec_mode
        self._gpu_id = cfg.gpu_id
        self._rand_seed = seed
        self._tensors: dict[str, Tensor] = {}

    # -- stepping ---------------------------------------------------------------------------

    def step(self, nstep: int = 1) -> None:
        """Advances every world by ``nstep`` steps with the current actions, without the GIL.

        Exactly ``nstep`` calls of ``step()``; reset flags apply to the first. Ctrl-C stops it
        after a whole step (KeyboardInterrupt), leaving every tensor consistent.
        """
        self._impl.step(nstep if type(nstep) is int else as_int("nstep", nstep))

    def reset_worlds(self, mask=None, seeds=None) -> None:
        """Starts a new episode at once in the worlds where ``mask`` is true (all if None).

        ``seeds`` (optional): one integer per world (only masked entries are used), or a
        single int giving world w the seed ``seeds + w``; a seeded world restarts its random
        stream (s_w = seed, episode 0), others continue theirs. Every tensor is updated on return.

        >>> import numpy as np, escape_room_env as er
        >>> sim = er.SimManager(num_worlds=3)
        >>> sim.reset_worlds(np.array([True, False, True]), seeds=[5, 0, 6])
        """
        num_worlds = self.num_worlds
        if mask is None:
            mask_arr = np.ones(num_worlds, dtype=np.uint8)
        else:
            mask_arr = np.asarray(mask)
            if mask_arr.shape != (num_worlds,):
                raise ValueError(f"mask must have shape ({num_worlds},), got {mask_arr.shape}")
            if mask_arr.dtype != np.bool_ and not np.issubdtype(mask_arr.dtype, np.integer):
                raise TypeError(f"mask must be a bool or integer array, got dtype {mask_arr.dtype}")
            mask_arr = np.ascontiguousarray(mask_arr != 0, dtype=np.uint8)
        seed_arr = None
        if seeds is not None:
            if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
                base = int(seeds)
                if not 0 <= base < 2**64:
                    raise ValueError(f"seeds must be in [0, 2**64), got {base}")
                seed_arr = (np.uint64(base) + np.arange(num_worlds, dtype=np.uint64)).astype(np.uint64)
            else:
                values = np.asarray(seeds)
                if values.shape != (num_worlds,):
                    raise ValueError(
                        f"seeds must be an int or have shape ({num_worlds},), got {values.shape}"
                    )
                if not np.issubdtype(values.dtype, np.integer):
                    raise TypeError(f"seeds must be integers, got dtype {values.dtype}")
                if values.dtype.kind == "i" and (values < 0).any():
                    raise ValueError("seeds must be >= 0")
                seed_arr = np.ascontiguousarray(values, dtype=np.uint64)
        self._impl.reset_worlds(mask_arr, seed_arr)

    def reseed(self, seed: int) -> None:
        """Restarts every world's random stream: world w gets seed ``seed + w`` (episode 0)."""
        self.reset_worlds(None, seeds=as_int("seed", seed))

    def state_hashes(self) -> np.ndarray:
        """Each world's 64-bit FNV-1a state hash (SPEC §4), as a uint64 array of num_worlds."""
        return self._impl.state_hashes()

    def _state(self, name: str) -> np.ndarray:
        """A writable numpy view of internal state, for tests and debugging (not a stable API).

        Names: ``_core.Manager.state_names()`` (agent_pos [W, A, 2], agent_yaw, cube_pos
        [W, 16, 2], door_open [W, 8], steps_left, level_statics [W, 72, 4], ...). The core
        reads these arrays, so a write changes what the next step simulates; observations
        are recomputed at the next step.
        """
        return self._impl.state_view(name).to_numpy()

    def close(self) -> None:
        """Frees the simulation. Tensors obtained before stay readable; any other use raises."""
        self._impl.close()

    @property
    def closed(self) -> bool:
        return self._impl.closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.num_worlds} worlds x {self.num_agents} agents"
        return f"SimManager({state}, {self._exec_mode.name}, autoreset_mode={self._autoreset_mode.name})"

    # -- configuration ----------------------------------------------------------------------

    @property
    def num_worlds(self) -> int:
        return self._impl.num_worlds

    @property
    def num_agents(self) -> int:
        return self._impl.num_agents

    @property
    def num_threads(self) -> int:
        return self._impl.num_threads

    @property
    def obs_dim(self) -> int:
        """D = 87 + 3 (num_agents - 1), the length of one agent's flat observation."""
        return self._impl.obs_dim

    @property
    def episode_len(self) -> int:
        return self._impl.episode_len

    @property
    def autoreset_mode(self) -> AutoresetMode:
        return AUTORESET_FROM_CODE[self._impl.autoreset_mode]

    @property
    def rooms(self) -> tuple[str, ...]:
        return tuple(ROOM_TYPES[t] for t in self._impl.rooms)

    @property
    def reward_config(self) -> RewardConfig:
        return self._reward

    @property
    def exec_mode(self) -> ExecMode:
        return self._exec_mode

    @property
    def gpu_id(self) -> int:
        return self._gpu_id

    @property
    def rand_seed(self) -> int:
        return self._rand_seed

    # -- tensors (SPEC §3) ------------------------------------------------------------------

    def _tensor(self, name: str) -> Tensor:
        tensor = self._tensors.get(name)
        if tensor is None or self._impl.closed:
            tensor = self._tensors[name] = self._impl.tensor(name)
        return tensor

    def reset_tensor(self) -> Tensor:
        """[W] int32, input: write non-zero to start a new episode in world w at the next step."""
        return self._tensor("reset")

    def action_tensor(self) -> Tensor:
        """[W, A, 3] int32, input: move_amount, move_angle, rotate."""
        return self._tensor("action")

    def reward_tensor(self) -> Tensor:
        """[W, A, 1] float32."""
        return self._tensor("reward")

    def done_tensor(self) -> Tensor:
        """[W, A, 1] int32: 1 on the done step (or while frozen in DISABLED mode)."""
        return self._tensor("done")

    def termination_reason_tensor(self) -> Tensor:
        """[W, A, 1] int32: -1 running, 0 time limit, 1 escaped."""
        return self._tensor("termination_reason")

    def terminated_tensor(self) -> Tensor:
        """[W, A] bool: the episode ended because every agent escaped."""
        return self._tensor("terminated")

    def truncated_tensor(self) -> Tensor:
        """[W, A] bool: the episode ended at the time limit."""
        return self._tensor("truncated")

    def steps_remaining_tensor(self) -> Tensor:
        """[W, A, 1] int32: episode_len ... 0."""
        return self._tensor("steps_remaining")

    def progress_tensor(self) -> Tensor:
        """[W, A, 1] float32: the maximum y reached this episode, metres."""
        return self._tensor("progress")

    def observation_tensor(self) -> Tensor:
        """[W, A, D] float32: the flat policy input (every view below lives inside it)."""
        return self._tensor("observation")

    def self_observation_tensor(self) -> Tensor:
        """[W, A, 5] float32 view of observation[..., 0:5]: x, y, z, max_y (over L), yaw / pi."""
        return self._tensor("self_observation")

    def door_observation_tensor(self) -> Tensor:
        """[W, A, 3] float32 view of observation[..., 6:9]: polar to the band's door, is_open."""
        return self._tensor("door_observation")

    def room_entity_observations_tensor(self) -> Tensor:
        """[W, A, 6, 3] float32 view of observation[..., 9:27]: nearest buttons and cubes of the band."""
        return self._tensor("room_entity_observations")

    def lidar_tensor(self) -> Tensor:
        """[W, A, 30, 2] float32 view of observation[..., 27:87]: distance / 40, type / 6 per ray."""
        return self._tensor("lidar")

    def partner_observations_tensor(self) -> Tensor:
        """[W, A, A - 1, 3] float32 view of observation[..., 87:]: polar to each other agent, escaped."""
        return self._tensor("partner_observations")

    def final_observation_tensor(self) -> Tensor:
        """[W, A, D] float32: the terminal observation of worlds reset at the end of a SAME_STEP done step."""
        return self._tensor("final_observation")

    def elapsed_steps_tensor(self) -> Tensor:
        """[W, A, 1] int32: steps taken in the shown episode (episode_len - steps_remaining)."""
        return self._tensor("elapsed_steps")

    def doors_opened_tensor(self) -> Tensor:
        """[W, A, 1] int32: doors of the world that are open."""
        return self._tensor("doors_opened")

    def final_progress_tensor(self) -> Tensor:
        """[W, A, 1] float32: progress of the episode that ended on a SAME_STEP done step."""
        return self._tensor("final_progress")

    def final_elapsed_steps_tensor(self) -> Tensor:
        """[W, A, 1] int32: length of the episode that ended on a SAME_STEP done step."""
        return self._tensor("final_elapsed_steps")

    def final_doors_opened_tensor(self) -> Tensor:
        """[W, A, 1] int32: doors open when the episode ended on a SAME_STEP done step."""
        return self._tensor("final_doors_opened")
