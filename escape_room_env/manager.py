"""``SimManager``: the Madrona escape room's Python API, name for name (SPEC §5.1)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
import warnings
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from typing_extensions import Self

from escape_room_env import _core
from escape_room_env.config import (
    AUTORESET_FROM_CODE,
    INT32,
    INT64,
    ROOM_TYPES,
    AutoresetMode,
    RewardConfig,
    as_int,
    autoreset_code,
    core_reward,
    parse_autoreset,
    parse_reward,
    parse_rooms,
)
from escape_room_env.errors import EscapeRoomError
from escape_room_env.levels import Level, LevelWarning, core_level, parse_levels
from escape_room_env.replay import ReplayFile, ReplayPlayer, read_replay_metadata
from escape_room_env.tensor import Tensor
from escape_room_env.views import World

ExecMode = _core.ExecMode

# The catalogue of exported arrays (name: kind); kind 0 a tensor of SPEC §3, 1 an image of the
# batch renderer, 2 internal state.
_ARRAYS: dict[str, int] = dict(_core.Manager.arrays())

__all__ = ["ExecMode", "SimManager", "Tensor", "cuda_available", "cuda_unavailable_reason"]


def cuda_available() -> bool:
    """True when this build has CUDA support and a GPU with a working driver is present.

    >>> import escape_room_env as er
    >>> isinstance(er.cuda_available(), bool)
    True
    """
    return _core.cuda_device_count() > 0


def cuda_unavailable_reason() -> str | None:
    """Why no GPU is usable (the CUDA runtime's own error, e.g. a driver older than the
    runtime, or a build without the CUDA backend), or None when one is.

    >>> import escape_room_env as er
    >>> (er.cuda_unavailable_reason() is None) == er.cuda_available()
    True
    """
    return _core.cuda_unavailable_reason() or None


def _default_num_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _output_path(what: str, path: str | os.PathLike | bytes) -> bytes:
    """A path the core will write, as the file system's bytes (any name it allows, UTF-8 or
    not); a NUL byte (which C would cut the name at) raises."""
    path = os.fsencode(path)
    if b"\0" in path:
        raise ValueError(f"{what} {os.fsdecode(path)!r} holds a NUL byte")
    return path


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
        enable_batch_renderer: each agent's first-person RGB image and depth map, rendered every
            step into :meth:`rgb_tensor` and :meth:`depth_tensor` (SPEC §6).
        num_agents: agents per world, 1 to 4.
        autoreset_mode: overrides ``auto_reset``: an ``AutoresetMode`` or its name.
        num_threads: CPU threads (default: the cores this process may use).
        rooms: room types of the generated level, 1 to 4 of ``ROOM_TYPES``.
        levels: custom levels instead of the generated one (SPEC §2.7): one level or a list,
            world w plays level w mod n; each an ASCII string, a dict, a shipped level's name,
            a path or a :class:`~escape_room_env.levels.Level`.
        episode_len: steps before truncation.
        reward: a :class:`RewardConfig` or a dict of its fields.
        render_width, render_height: the batch renderer's image size in pixels (1 to 1024).

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
        levels: Any = None,
        episode_len: int = 200,
        reward: RewardConfig | Mapping[str, float] | None = None,
        render_width: int = 64,
        render_height: int = 64,
    ):
        if not isinstance(exec_mode, ExecMode):
            raise TypeError(f"exec_mode must be ExecMode.CPU or ExecMode.CUDA, got {exec_mode!r}")
        cfg = _core.Config()
        cfg.enable_batch_renderer = bool(enable_batch_renderer)
        cfg.render_width = as_int("render_width", render_width, *INT32)
        cfg.render_height = as_int("render_height", render_height, *INT32)
        cfg.exec_mode = exec_mode
        cfg.gpu_id = as_int("gpu_id", gpu_id, *INT32)
        cfg.num_worlds = as_int("num_worlds", num_worlds, *INT64)
        seed = as_int("rand_seed", rand_seed)
        if not 0 <= seed < 2**64:
            raise ValueError(f"rand_seed must be in [0, 2**64), got {seed}")
        cfg.rand_seed = seed
        cfg.num_agents = as_int("num_agents", num_agents, *INT32)
        cfg.autoreset_mode = autoreset_code(parse_autoreset(autoreset_mode, bool(auto_reset)))
        cfg.num_threads = (
            _default_num_threads() if num_threads is None else as_int("num_threads", num_threads, *INT32)
        )
        cfg.rooms = parse_rooms(rooms)
        self._levels = parse_levels(levels)
        if self._levels and rooms is not None:
            raise ValueError(
                "pass rooms or levels, not both: rooms shape the generated level, levels replace it"
            )
        cfg.levels = [core_level(level) for level in self._levels]
        cfg.episode_len = as_int("episode_len", episode_len, *INT32)
        self._reward = parse_reward(reward)
        cfg.reward = core_reward(self._reward)
        self._impl = _core.Manager(cfg)  # compiles the levels (once)
        #: The vector env's step, in one native call: ``step_actions(actions, refuse_done=False,
        #: obs_out=None)`` validates (num_worlds * num_agents, 3) int32/int64 actions where the
        #: simulation is, writes them to the action tensor and steps once (copying the new
        #: observations into ``obs_out`` when given). Returns -1 when it stepped; else the flat
        #: index of the first out-of-range value, or, with ``refuse_done``, -2 - w for a world w
        #: frozen in DISABLED mode: nothing written, nothing stepped.
        self.step_actions = self._impl.step_actions
        for message in self._impl.level_warnings:
            warnings.warn(message, LevelWarning, stacklevel=2)
        self._tensors: dict[str, Tensor] = {}
        self._state_dtype: np.dtype | None = None
        self._replay: ReplayPlayer | None = None
        self._replay_finalizer: weakref.finalize | None = None

    # -- stepping ---------------------------------------------------------------------------

    def step(self, nstep: int = 1, *, stream: Any = None) -> None:
        """Advances every world by ``nstep`` steps with the current actions, without the GIL.

        Exactly ``nstep`` calls of ``step()``; reset flags apply to the first. Ctrl-C stops it
        after a whole step (KeyboardInterrupt), leaving every tensor consistent.

        On CUDA the steps run on the manager's own stream and the call waits for them, so every
        tensor is complete on return. ``stream`` (a ``torch.cuda.Stream`` or a ``cudaStream_t``
        as an int) queues them on the caller's stream instead and returns at once: work queued
        later on that stream sees their results, with no host synchronisation.
        """
        self._impl.step(
            nstep if type(nstep) is int and -(2**63) <= nstep < 2**63 else as_int("nstep", nstep, *INT64),
            0 if stream is None else _stream_handle(stream),
        )

    def synchronize(self) -> None:
        """Waits until every queued step is done (after ``step(stream=...)``; a no-op on CPU)."""
        self._impl.synchronize()

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
                integers = isinstance(seeds, (list, tuple)) and all(
                    isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in seeds
                )
                if integers:  # Python ints up to 2**64 - 1, converted exactly (numpy would go to float64)
                    if any(v < 0 for v in seeds):
                        raise ValueError("seeds must be >= 0")
                    if any(v >= 2**64 for v in seeds):
                        raise ValueError("seeds must be < 2**64")
                    seeds = np.array([int(v) for v in seeds], dtype=np.uint64)
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

    # -- state (MuJoCo's mj_getState / mj_setState) ----------------------------------------------

    @property
    def state_dtype(self) -> np.dtype:
        """The numpy dtype of one world's state record (:meth:`get_state`), version
        ``state_version``: a header naming the configuration (``state_version``,
        ``rules_version``, ``num_agents``, ``episode_len``, ``autoreset_mode``, ``render_size``,
        ``rooms``, ``reward_config``, ``levels_digest``), then everything that decides the world's
        future (``seed``, ``episode``: the random streams are keyed by them; ``steps_left``,
        ``status``, ``last_reason``, ``level_index``, ``door_open``, ``cube_pos``, ``agent_pos``,
        ``agent_yaw``, ``agent_max_y``, ``agent_escaped``), what the outputs showed that the
        state does not determine (``reward``, ``termination_reason``, ``final_observation``,
        ``final_progress``, ``final_elapsed_steps``, ``final_doors_opened``), and the
        ``observation`` the world showed with its ``observation_key``, a 64-bit digest of the
        fields it is computed from (``seed`` ... ``agent_escaped``). :meth:`set_state` shows a
        record's observations as kept while those fields are intact, and traces them afresh
        (lidar included) for a record whose fields were edited; an intact record's
        ``observation``, like its ``reward``, is shown as it holds it.

        >>> import escape_room_env as er
        >>> dtype = er.SimManager(num_worlds=1).state_dtype
        >>> dtype["agent_pos"].shape, dtype.names[:3]
        ((1, 2), ('state_version', 'rules_version', 'num_agents'))
        """
        if self._state_dtype is None:
            fields, itemsize = self._impl.state_fields()
            self._state_dtype = np.dtype(
                {
                    "names": [f[0] for f in fields],
                    "formats": [(np.dtype(f[1]), f[2]) if f[2] else np.dtype(f[1]) for f in fields],
                    "offsets": [f[3] for f in fields],
                    "itemsize": itemsize,
                }
            )
        return self._state_dtype

    def get_state(self, worlds: Any = None) -> np.ndarray:
        """Each world's state: a structured array of :attr:`state_dtype` records, one per world
        (all worlds, or those listed in ``worlds``). :meth:`set_state` of the records into a
        manager of the same configuration makes it show and continue exactly as these worlds do.

        >>> import escape_room_env as er
        >>> sim = er.SimManager(num_worlds=3, rand_seed=1)
        >>> sim.step(nstep=5)
        >>> state = sim.get_state()
        >>> sim.step(nstep=7)
        >>> sim.set_state(state)  # back to step 5: the next 7 steps repeat bit for bit
        >>> state.shape, int(state["steps_left"][0])
        ((3,), 195)
        """
        index = self._world_index(worlds)
        return self._impl.get_state(index).view(self.state_dtype).reshape(len(index))

    def set_state(self, states: np.ndarray, worlds: Any = None) -> None:
        """Writes state records (from :meth:`get_state` of a manager of the same configuration)
        into every world, or into the worlds listed in ``worlds`` (one record each); every
        tensor, observations and images included, shows them at once (as MuJoCo's ``mj_forward``;
        the observations a record keeps are shown as kept unless its state fields were edited,
        see :attr:`state_dtype`), and the continuation is bit-identical. A record of another
        configuration raises ``ValueError`` naming the field that differs. Not while recording
        or replaying."""
        index = self._world_index(worlds)
        records = np.asarray(states)
        if records.dtype != self.state_dtype:
            raise _state_dtype_error(self, "states", records)
        records = np.ascontiguousarray(records.reshape(-1))
        if records.shape[0] != len(index):
            raise ValueError(f"states has {records.shape[0]} records for {len(index)} worlds")
        self._impl.set_state(index, records.view(np.uint8).reshape(len(index), self.state_dtype.itemsize))

    def rollout_into(
        self,
        states: np.ndarray,
        actions: np.ndarray,
        steps: int,
        observation: np.ndarray | None,
        reward: np.ndarray,
        done: np.ndarray,
        states_out: np.ndarray,
    ) -> int:
        """The native loop behind :func:`escape_room_env.rollout` (use that): every world starts
        from its state record (uint8 [W, record]) and takes ``steps`` steps with C-contiguous
        int32 actions [W, steps, A, 3], writing each step's observations, rewards and dones into
        the given C-contiguous step-major arrays ([steps, W, ...]) and the final (or, sized
        [steps, W, record], every) state into ``states_out``; without the GIL. Returns the steps
        taken (fewer after Ctrl-C), or -1 when an action is out of range (nothing stepped)."""
        return self._impl.rollout(states, actions, steps, observation, reward, done, states_out)

    def build_options(self) -> dict[str, Any]:
        """The keyword arguments that build a manager of this configuration, this one's size,
        seed and threads included (copies and pickles use them).

        >>> import escape_room_env as er
        >>> sim = er.SimManager(num_worlds=2, rooms=["button"])
        >>> twin = er.SimManager(**sim.build_options())
        >>> (twin.num_worlds, twin.rooms) == (2, ("button",))
        True
        """
        return {
            "exec_mode": self.exec_mode,
            "gpu_id": self.gpu_id,
            "num_worlds": self.num_worlds,
            "rand_seed": self.rand_seed,
            "enable_batch_renderer": self.batch_renderer_enabled,
            "num_agents": self.num_agents,
            "autoreset_mode": self.autoreset_mode,
            "num_threads": self.num_threads,
            "rooms": list(self.rooms) or None,
            "levels": list(self.levels) or None,
            "episode_len": self.episode_len,
            "reward": self.reward_config,
            "render_width": self._impl.config.render_width,
            "render_height": self._impl.config.render_height,
        }

    def _world_index(self, worlds: Any) -> np.ndarray:
        if worlds is None:
            return np.arange(self.num_worlds, dtype=np.int32)
        index = np.asarray(worlds)
        if index.ndim == 0:
            index = index.reshape(1)
        if index.ndim != 1 or not (np.issubdtype(index.dtype, np.integer) or index.size == 0):
            raise TypeError(f"worlds must be a world index or a list of them, got {worlds!r}")
        if index.size and (index.min() < -(2**31) or index.max() >= 2**31):
            raise ValueError(f"worlds must be between 0 and {self.num_worlds - 1}")
        return np.ascontiguousarray(index, dtype=np.int32)

    def host_array(self, name: str) -> np.ndarray:
        """A numpy array of any exported array by name (a tensor of :meth:`tensor_names`, or the
        internal state: ``agent_pos``, ``door_open``, ``cube_pos``, ``level_statics``, ...): the
        simulation's own memory on CPU, a copy from the GPU on CUDA. For reading and debugging;
        the internal state's names and layout may change between versions.

        >>> import escape_room_env as er
        >>> er.SimManager(num_worlds=2).host_array("agent_pos").shape
        (2, 1, 2)
        """
        if self._impl.on_gpu:
            return self._impl.host_copy(name)
        return self._impl.array(name).numpy()

    def write_array(self, name: str, values: Any) -> None:
        """Overwrites an exported array (an input tensor such as ``action`` or ``reset``, or a
        contiguous internal state array) from host values broadcast to its shape and cast to its
        dtype; on CUDA as on CPU. The next step reads it; after a write into a state array the
        observations are written again from the state at once (as :meth:`set_state` shows a
        state), so they, and the records :meth:`get_state` takes, agree with it.

        >>> import escape_room_env as er
        >>> sim = er.SimManager(num_worlds=2)
        >>> sim.write_array("action", (3, 0, 2))
        >>> sim.action_tensor().to_numpy()[1].tolist()
        [[3, 0, 2]]
        """
        array = self._impl.array(name)
        self._impl.host_write(
            name, np.ascontiguousarray(np.broadcast_to(values, array.shape), dtype=np.dtype(array.dtype))
        )

    def _state(self, name: str):
        """A writable view of internal state, for tests and debugging (not a stable API): a
        numpy array on CPU, a torch tensor on CUDA. The core reads these arrays, so a write
        changes what the next step simulates; observations are recomputed at the next step."""
        view = self._impl.array(name)
        return view.torch() if self._impl.on_gpu else view.numpy()

    def close(self) -> None:
        """Frees the simulation (finishing a recording in progress). Tensors obtained before
        stay readable; any other use raises."""
        try:
            self._impl.close()
        finally:
            if self._impl.closed:  # even when a file failed to finish; not when another thread steps
                self._detach_replay()

    @property
    def closed(self) -> bool:
        return self._impl.closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __reduce__(self) -> tuple:
        """Pickles and copies (``copy.deepcopy``) through the state, MuJoCo's way: an independent
        twin of the same configuration whose continuation equals this manager's (its actions and
        pending reset flags included). Not copied: a recording, a replay or a trajectory log in
        progress, and ``step_count`` (the twin's starts at 0).

        >>> import copy, escape_room_env as er
        >>> sim = er.SimManager(num_worlds=2, rand_seed=8)
        >>> sim.step(nstep=3)
        >>> twin = copy.deepcopy(sim)
        >>> sim.step(nstep=5); twin.step(nstep=5)
        >>> bool((sim.state_hashes() == twin.state_hashes()).all())
        True
        """
        return (_rebuild, (self.build_options(), self.snapshot()))

    def snapshot(self) -> dict[str, np.ndarray]:
        """The states of every world and the input tensors (actions, pending reset flags): what
        :meth:`restore` needs to make a manager of this configuration continue exactly as this
        one (the envs' copies use it)."""
        return {
            "state": self.get_state(),
            "action": self.host_array("action").copy(),
            "reset": self.host_array("reset").copy(),
        }

    def restore(self, snapshot: Mapping[str, np.ndarray]) -> None:
        """Makes this manager continue exactly as the one :meth:`snapshot` was taken of."""
        self.set_state(snapshot["state"])
        self.write_array("action", snapshot["action"])
        self.write_array("reset", snapshot["reset"])

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.num_worlds} worlds x {self.num_agents} agents"
        return f"SimManager({state}, {self.exec_mode.name}, autoreset_mode={self.autoreset_mode.name})"

    # -- recording, replay, trajectory logging (SPEC §5.2) ------------------------------------

    def start_recording(
        self,
        path: str | os.PathLike,
        seed: int | None = None,
        *,
        checksum_interval: int = 50,
        continue_episodes: bool = False,
    ) -> None:
        """Records every following step (and immediate reset) to ``path`` (SPEC §5.3).

        Every world is reseeded first (world w: ``seed + w``; without a seed, 0 + w, the seed
        guide's default), so the file starts from a fresh, fully known state; the file's
        ``seed`` is that seed. With ``continue_episodes=True`` (and no seed) the worlds are not
        reseeded: worlds all at the start of an episode are recorded from there, otherwise every
        world is reset first (with a warning), and the file's ``seed`` is the manager's
        ``rand_seed``. State hashes and output chains are stored at step 0, every
        ``checksum_interval`` steps and at the end, so a replay verifies itself.

        >>> import escape_room_env as er, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "demo.bin")
        >>> sim = er.SimManager(num_worlds=4)
        >>> sim.start_recording(path, seed=42)
        >>> sim.step(nstep=10)
        >>> sim.stop_recording()
        10
        >>> er.SimManager.read_replay_metadata(path)["num_steps"]
        10
        """
        if continue_episodes:
            if seed is not None:
                raise ValueError("pass seed= or continue_episodes=True, not both: a seed reseeds every world")
        else:
            seed = 0 if seed is None else as_int("seed", seed)
            if not 0 <= seed < 2**64:
                raise ValueError(f"seed must be in [0, 2**64), got {seed}")
        interval = as_int("checksum_interval", checksum_interval, *INT64)
        start = self._impl.start_recording(
            _output_path("recording path", path),
            json.dumps(self._replay_config(interval, self.rand_seed if seed is None else seed)),
            interval,
            time.time_ns(),
            seed,
        )
        if start == "reset":
            warnings.warn(
                "start_recording(continue_episodes=True): some worlds were in the middle of an episode; every "
                "world was reset so the recording starts from a known state",
                stacklevel=2,
            )

    def stop_recording(self) -> int:
        """Finishes the recording (final hash, END record, header) and returns its step count.

        After a write error ended the recording (raised by the call that hit it), returns the
        steps the file kept."""
        return self._impl.stop_recording()

    def is_recording(self) -> bool:
        return self._impl.is_recording

    @contextlib.contextmanager
    def recording(
        self,
        path: str | os.PathLike,
        seed: int | None = None,
        *,
        checksum_interval: int = 50,
        continue_episodes: bool = False,
    ):
        """Context manager around :meth:`start_recording` / :meth:`stop_recording` (without a
        seed: seed 0, as the seed guide says)."""
        self.start_recording(
            path, seed, checksum_interval=checksum_interval, continue_episodes=continue_episodes
        )
        try:
            yield self
        finally:
            if self._impl.is_recording:
                self.stop_recording()

    @staticmethod
    def read_replay_metadata(path: str | os.PathLike):
        """The header and config of a replay file, as a frozen ``ReplayMetadata``
        (also readable as ``metadata["num_worlds"]``)."""
        return read_replay_metadata(path)

    @classmethod
    def from_replay(
        cls,
        path: str | os.PathLike,
        exec_mode: ExecMode = ExecMode.CPU,
        gpu_id: int = 0,
        enable_batch_renderer: bool = False,
        *,
        num_threads: int | None = None,
        render_width: int = 64,
        render_height: int = 64,
    ) -> SimManager:
        """A manager configured from a replay file and positioned at its first step.

        Everything but where to run (and the batch renderer's image size) comes from the file;
        call :meth:`replay_step` to advance.
        """
        replay = ReplayFile(path)
        try:
            meta = replay.metadata
            sim = cls(
                exec_mode,
                gpu_id,
                meta.num_worlds,
                meta.seed,
                enable_batch_renderer=enable_batch_renderer,
                render_width=render_width,
                render_height=render_height,
                num_agents=meta.num_agents,
                autoreset_mode=meta.autoreset_mode,
                num_threads=num_threads,
                rooms=list(meta.rooms) or None,
                levels=list(meta.levels) or None,
                episode_len=meta.episode_len,
                reward=dict(meta.reward),
            )
            sim._attach_replay(replay)
        except BaseException:
            replay.close()
            raise
        return sim

    def load_replay(self, path: str | os.PathLike) -> None:
        """Deprecated: loads a replay into this manager; use :meth:`from_replay`."""
        warnings.warn(
            "load_replay() is deprecated; use SimManager.from_replay(path, exec_mode=...), which configures "
            "the manager from the file",
            DeprecationWarning,
            stacklevel=2,
        )
        replay = ReplayFile(path)
        meta = replay.metadata
        mine = {
            "num_worlds": self.num_worlds,
            "num_agents": self.num_agents,
            "episode_len": self.episode_len,
            "autoreset_mode": self.autoreset_mode,
            "rooms": self.rooms,
            "levels": self.levels,
            "reward": dataclasses.asdict(self.reward_config),
        }
        theirs = {
            "num_worlds": meta.num_worlds,
            "num_agents": meta.num_agents,
            "episode_len": meta.episode_len,
            "autoreset_mode": meta.autoreset_mode,
            "rooms": tuple(meta.rooms),
            "levels": tuple(meta.levels),
            "reward": dict(meta.reward),
        }
        for field, value in mine.items():
            if theirs[field] != value:
                replay.close()
                raise ValueError(
                    f"load_replay: {field} is {value!r} here but {theirs[field]!r} in {os.fspath(path)}"
                )
        self._attach_replay(replay)

    def has_replay(self) -> bool:
        return self._replay is not None

    def replay_step(self) -> bool:
        """Applies the next recorded step (its resets and actions) and steps the simulation.

        Returns True when the step it just ran was the last recorded one. Hash checkpoints
        are verified on the way: a mismatch raises ``ReplayDivergenceError``.
        """
        return self._player().advance()

    def seek(self, step: int) -> None:
        """Moves the attached replay to just after recorded step ``step`` (0: its start), forwards or
        backwards; the state and every exported tensor are then those the recording had there.

        Backwards seeks restore a state snapshot taken while replaying (every ``total / 64``
        steps) and replay the rest, verifying the file's checkpoints on the way.

        >>> import os, tempfile, escape_room_env as er
        >>> path = os.path.join(tempfile.mkdtemp(), "seek.bin")
        >>> with er.SimManager(num_worlds=2) as sim, sim.recording(path, seed=3):
        ...     sim.step(nstep=50)
        >>> replay = er.SimManager.from_replay(path)
        >>> replay.seek(40); before = replay.get_state()
        >>> replay.seek(10); replay.seek(40)
        >>> bool((replay.get_state() == before).all()), replay.get_replay_step_count()
        (True, (40, 50))
        """
        self._player().seek(as_int("step", step, *INT32))

    def get_replay_checkpoints_verified(self) -> int:
        """How many of the file's state-hash checkpoints the replay has verified so far."""
        return self._player().verified

    def get_replay_step_count(self) -> tuple[int, int]:
        """(steps replayed so far, steps in the file)."""
        player = self._player()
        return player.current, player.total

    def enable_trajectory_logging(
        self, world_idx: int, agent_idx: int, filename: str | os.PathLike | None = None
    ):
        """Logs one line per step for one agent (SPEC §5.2) to ``filename`` or, if None, stdout."""
        sys.stdout.flush()
        path = b"" if filename is None else _output_path("trajectory log filename", filename)
        self._impl.enable_trajectory_logging(
            as_int("world_idx", world_idx, *INT32), as_int("agent_idx", agent_idx, *INT32), path
        )

    def disable_trajectory_logging(self) -> None:
        self._impl.disable_trajectory_logging()

    @contextlib.contextmanager
    def trajectory_logging(self, world_idx: int, agent_idx: int, filename: str | os.PathLike | None = None):
        """Context manager around :meth:`enable_trajectory_logging`."""
        self.enable_trajectory_logging(world_idx, agent_idx, filename)
        try:
            yield self
        finally:
            self.disable_trajectory_logging()

    @contextlib.contextmanager
    def debug_session(
        self,
        base_path: str | os.PathLike,
        enable_recording: bool = True,
        enable_tracing: bool = True,
        seed: int | None = None,
    ):
        """Recording to ``<base_path>.bin`` and world 0 / agent 0's trajectory to
        ``<base_path>_trajectory.txt``, together."""
        base = os.fspath(base_path)
        with contextlib.ExitStack() as stack:
            if enable_recording:
                stack.enter_context(self.recording(base + ".bin", seed))
            if enable_tracing:
                stack.enter_context(self.trajectory_logging(0, 0, base + "_trajectory.txt"))
            yield self

    @property
    def step_count(self) -> int:
        """Steps since construction (the trajectory log's ``step``)."""
        return self._impl.step_count

    def _replay_config(self, checksum_interval: int, seed: int) -> dict:
        """The config block; the core adds each world's starting seed and episode, and how the
        recording started."""
        from escape_room_env import __version__

        return {
            "format_version": 2,
            "rules_version": int(_core.RULES_VERSION),
            "num_worlds": self.num_worlds,
            "num_agents": self.num_agents,
            "episode_len": self.episode_len,
            "autoreset_mode": self.autoreset_mode.name,
            "rand_seed": seed,
            "rooms": list(self.rooms),
            "reward": dataclasses.asdict(self.reward_config),
            **self._levels_config(),
            "checksum_interval": checksum_interval,
            "recorded_with": f"escape_room_env {__version__}",
        }

    def _levels_config(self) -> dict:
        """The custom levels and which world plays which (world w: level w mod n), if any."""
        if not self._levels:
            return {}
        n = len(self._levels)
        return {
            "levels": [level.to_dict() for level in self._levels],
            "world_levels": [w % n for w in range(self.num_worlds)],
        }

    def _attach_replay(self, replay: ReplayFile) -> None:
        self._detach_replay()
        try:
            self._replay = ReplayPlayer(self._impl, replay)
        except BaseException:
            replay.close()
            raise
        # A manager dropped without close() still closes its file (no ResourceWarning, no leak).
        self._replay_finalizer = weakref.finalize(self, replay.close)

    def _detach_replay(self) -> None:
        """Stops the replay, if any, closing its file and letting its index go."""
        if self._replay is not None:
            self._replay.close()
        if self._replay_finalizer is not None:
            self._replay_finalizer.detach()
        self._replay = self._replay_finalizer = None

    def _player(self) -> ReplayPlayer:
        if self._impl.closed:
            raise EscapeRoomError("this SimManager is closed; create a new one")
        if self._replay is None:
            raise EscapeRoomError("no replay loaded; create the manager with SimManager.from_replay(path)")
        return self._replay

    # -- configuration ----------------------------------------------------------------------

    @property
    def num_worlds(self) -> int:
        return self._impl.config.num_worlds

    @property
    def _num_worlds(self) -> int:
        """The seed's name for :attr:`num_worlds`."""
        return self.num_worlds

    @property
    def num_agents(self) -> int:
        return self._impl.config.num_agents

    @property
    def num_threads(self) -> int:
        return self._impl.config.num_threads

    @property
    def obs_dim(self) -> int:
        """D = 87 + 3 (num_agents - 1), the length of one agent's flat observation."""
        return _core.obs_dim(self.num_agents)

    @property
    def episode_len(self) -> int:
        return self._impl.config.episode_len

    @property
    def autoreset_mode(self) -> AutoresetMode:
        return AUTORESET_FROM_CODE[self._impl.config.autoreset_mode]

    @property
    def rooms(self) -> tuple[str, ...]:
        """Room types of the generated level; () when custom levels replace it."""
        if self._levels:
            return ()
        rooms = self._impl.config.rooms
        assert rooms is not None  # the core fills in the default sequence at construction
        return tuple(ROOM_TYPES[t] for t in rooms)

    @property
    def observation_radius(self) -> float:
        """R of SPEC §3's observation bounds: positions and distances lie in [0, R] (the walled
        area's diagonal over L; with custom levels, the largest of theirs).

        >>> import escape_room_env as er
        >>> round(er.SimManager(num_worlds=1).observation_radius, 4)
        1.254
        """
        return self._impl.observation_radius

    @property
    def levels(self) -> tuple[Level, ...]:
        """The custom levels (world w plays ``levels[w % len(levels)]``); () for the generated level."""
        return self._levels

    def level_of_world(self, world: int) -> int | None:
        """Index into :attr:`levels` of the level world ``world`` plays (None: generated): w mod
        the number of levels, unless a state written by :meth:`set_state` brought another."""
        world = as_int("world", world)
        if not 0 <= world < self.num_worlds:
            raise IndexError(f"world {world} out of range for {self.num_worlds} worlds")
        return int(self.host_array("level_index")[world]) if self._levels else None

    def world(self, w: int) -> World:
        """Named access to world ``w`` (MuJoCo style): ``sim.world(w).agent(i).position``,
        ``.door(k).is_open``, ``.button(k).pressed``, ``.cube(k).position``, ``.level``; read-only
        views on CPU (see :mod:`escape_room_env.views`).

        >>> import escape_room_env as er
        >>> er.SimManager(num_worlds=1).world(0).agent(0).escaped
        False
        """
        w = as_int("w", w)
        if not 0 <= w < self.num_worlds:
            raise IndexError(f"world {w} out of range for {self.num_worlds} worlds")
        return World(self, w)

    def pressed_buttons(self) -> np.ndarray:
        """Each world's buttons held down now (an agent disc or a cube on them, SPEC §2.4), as a
        uint16 bit mask per world (bit k: button k of the world's level)."""
        return self._impl.pressed_buttons()

    @property
    def reward_config(self) -> RewardConfig:
        return self._reward

    @property
    def exec_mode(self) -> ExecMode:
        return self._impl.config.exec_mode

    @property
    def gpu_id(self) -> int:
        return self._impl.config.gpu_id

    @property
    def rand_seed(self) -> int:
        return self._impl.config.rand_seed

    # -- tensors (SPEC §3) ------------------------------------------------------------------

    def tensor(self, name: str) -> Tensor:
        """An exported tensor by name (:meth:`tensor_names`); ``sim.tensor("reward")`` is
        ``sim.reward_tensor()``.

        >>> import escape_room_env as er
        >>> er.SimManager(num_worlds=2).tensor("lidar").shape
        (2, 1, 30, 2)
        """
        tensor = self._tensors.get(name)
        if tensor is None or self._impl.closed:
            if _ARRAYS.get(name, 2) == 2:
                raise ValueError(f"unknown tensor {name!r}; expected one of {', '.join(self.tensor_names())}")
            tensor = self._tensors[name] = Tensor(self._impl.array(name))
        return tensor

    @staticmethod
    def tensor_names() -> tuple[str, ...]:
        """The names of every tensor (SPEC §3), ``rgb`` and ``depth`` included (they need the
        batch renderer)."""
        return tuple(name for name, kind in _ARRAYS.items() if kind != 2)

    def reset_tensor(self) -> Tensor:
        """[W] int32, input: write non-zero to start a new episode in world w at the next step."""
        return self.tensor("reset")

    def action_tensor(self) -> Tensor:
        """[W, A, 3] int32, input: move_amount, move_angle, rotate."""
        return self.tensor("action")

    def reward_tensor(self) -> Tensor:
        """[W, A, 1] float32."""
        return self.tensor("reward")

    def done_tensor(self) -> Tensor:
        """[W, A, 1] int32: 1 on the done step (or while frozen in DISABLED mode)."""
        return self.tensor("done")

    def termination_reason_tensor(self) -> Tensor:
        """[W, A, 1] int32: -1 running, 0 time limit, 1 escaped."""
        return self.tensor("termination_reason")

    def terminated_tensor(self) -> Tensor:
        """[W, A] bool: the episode ended because every agent escaped."""
        return self.tensor("terminated")

    def truncated_tensor(self) -> Tensor:
        """[W, A] bool: the episode ended at the time limit."""
        return self.tensor("truncated")

    def steps_remaining_tensor(self) -> Tensor:
        """[W, A, 1] int32: episode_len ... 0."""
        return self.tensor("steps_remaining")

    def progress_tensor(self) -> Tensor:
        """[W, A, 1] float32: the maximum y reached this episode, metres."""
        return self.tensor("progress")

    def observation_tensor(self) -> Tensor:
        """[W, A, D] float32: the flat policy input (every view below lives inside it)."""
        return self.tensor("observation")

    def self_observation_tensor(self) -> Tensor:
        """[W, A, 5] float32 view of observation[..., 0:5]: x, y, z, max_y (over L), yaw / pi."""
        return self.tensor("self_observation")

    def door_observation_tensor(self) -> Tensor:
        """[W, A, 3] float32 view of observation[..., 6:9]: polar to the band's door, is_open."""
        return self.tensor("door_observation")

    def room_entity_observations_tensor(self) -> Tensor:
        """[W, A, 6, 3] float32 view of observation[..., 9:27]: nearest buttons and cubes of the band."""
        return self.tensor("room_entity_observations")

    def lidar_tensor(self) -> Tensor:
        """[W, A, 30, 2] float32 view of observation[..., 27:87]: distance / 40, type / 6 per ray."""
        return self.tensor("lidar")

    def partner_observations_tensor(self) -> Tensor:
        """[W, A, A - 1, 3] float32 view of observation[..., 87:]: polar to each other agent, escaped."""
        return self.tensor("partner_observations")

    def final_observation_tensor(self) -> Tensor:
        """[W, A, D] float32: the terminal observation of worlds reset at the end of a SAME_STEP done step."""
        return self.tensor("final_observation")

    def elapsed_steps_tensor(self) -> Tensor:
        """[W, A, 1] int32: steps taken in the shown episode (episode_len - steps_remaining)."""
        return self.tensor("elapsed_steps")

    def doors_opened_tensor(self) -> Tensor:
        """[W, A, 1] int32: doors of the world that are open."""
        return self.tensor("doors_opened")

    def final_progress_tensor(self) -> Tensor:
        """[W, A, 1] float32: progress of the episode that ended on a SAME_STEP done step."""
        return self.tensor("final_progress")

    def final_elapsed_steps_tensor(self) -> Tensor:
        """[W, A, 1] int32: length of the episode that ended on a SAME_STEP done step."""
        return self.tensor("final_elapsed_steps")

    def final_doors_opened_tensor(self) -> Tensor:
        """[W, A, 1] int32: doors open when the episode ended on a SAME_STEP done step."""
        return self.tensor("final_doors_opened")

    def rgb_tensor(self) -> Tensor:
        """[W, A, H, Wpx, 3] uint8: each agent's first-person image (needs enable_batch_renderer)."""
        return self.tensor("rgb")

    def depth_tensor(self) -> Tensor:
        """[W, A, H, Wpx, 1] float32: metres along each pixel's view ray, at most 40 (needs
        enable_batch_renderer)."""
        return self.tensor("depth")

    @property
    def batch_renderer_enabled(self) -> bool:
        return self._impl.config.enable_batch_renderer

    @property
    def render_size(self) -> tuple[int, int] | None:
        """(height, width) of the batch renderer's images; None when it is off."""
        cfg = self._impl.config
        return (cfg.render_height, cfg.render_width) if cfg.enable_batch_renderer else None


def _stream_handle(stream: Any) -> int:
    """A ``torch.cuda.Stream`` (or anything with ``cuda_stream``) or an int, as a cudaStream_t.

    0 (torch's default stream) is CUDA's legacy default stream, which the core names 1.
    """
    handle = getattr(stream, "cuda_stream", stream)
    if isinstance(handle, bool) or not isinstance(handle, (int, np.integer)):
        raise TypeError(
            f"stream must be a torch.cuda.Stream or a cudaStream_t int, got {type(stream).__name__}"
        )
    handle = int(handle)
    if not 0 <= handle < 2**64:
        raise ValueError(f"stream must be a cudaStream_t (0 <= stream < 2**64), got {handle}")
    return handle or _LEGACY_DEFAULT_STREAM


_LEGACY_DEFAULT_STREAM = 1  # cudaStreamLegacy


def _state_dtype_error(sim: SimManager, what: str, records: np.ndarray) -> Exception:
    """The error for records whose dtype is not ``sim.state_dtype``: ``ValueError`` naming the
    configuration field that differs when they are state records of another configuration (a
    different ``num_agents`` changes the record's size), else ``TypeError``."""
    got = records.dtype
    header = ("state_version", "rules_version", "num_agents")  # the fields every layout starts with
    if got.names is not None and all(name in got.names for name in header) and records.size:
        mine, theirs = sim.get_state([0]).reshape(()), records.reshape(-1)[0]
        for name in header:
            if int(theirs[name]) != int(mine[name]):
                return ValueError(
                    f"{what}[0] belongs to another configuration: its {name} is {int(theirs[name])}, this "
                    f"manager's {int(mine[name])} (a state moves only between managers of the same configuration)"
                )
    size = sim.state_dtype.itemsize
    shown = (
        got.str
        if got.names is None
        else f"records of another layout ({got.itemsize} bytes; the manager's: {size})"
    )
    return TypeError(f"{what} must be records of the manager's state_dtype (from get_state()), got {shown}")


def _rebuild(options: dict[str, Any], snapshot: Mapping[str, np.ndarray]) -> SimManager:
    """Unpickles a :class:`SimManager` (see ``SimManager.__reduce__``)."""
    sim = SimManager(**options)
    sim.restore(snapshot)
    return sim
