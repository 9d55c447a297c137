"""Vector-env wrappers that gymnasium does not have: recording, trajectory logging, replay."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from gymnasium.vector import VectorWrapper

from escape_room_env.manager import SimManager
from escape_room_env.vector_env import EscapeRoomVectorEnv

__all__ = ["RecordActions", "ReplayVectorEnv", "TrajectoryLogger"]


def _escape_room_env(env) -> EscapeRoomVectorEnv:
    base = env.unwrapped
    if not isinstance(base, EscapeRoomVectorEnv):
        raise TypeError(f"this wrapper needs an EscapeRoomVectorEnv underneath, got {type(base).__name__}")
    return base


class RecordActions(VectorWrapper):
    """Records everything the wrapped env simulates to a replay file (SPEC §5.3).

    Recording starts at the first full ``reset()`` (right after it, so a replay starts from
    the observation that reset returned) or, if a partial reset or a step comes first, just
    before it. It covers every step and every later gymnasium reset (partial ones included,
    with their seeds); ``close()`` finishes the file. ``SimManager.from_replay(path)`` or :class:`ReplayVectorEnv` plays it back.

    >>> import numpy as np, tempfile, os, escape_room_env as er
    >>> path = os.path.join(tempfile.mkdtemp(), "run.bin")
    >>> envs = er.wrappers.RecordActions(er.EscapeRoomVectorEnv(num_envs=4, seed=0), path)
    >>> _ = envs.reset(seed=3)
    >>> _ = envs.step(np.zeros((4, 3), dtype=np.int64))
    >>> envs.close()
    >>> er.SimManager.read_replay_metadata(path)["num_steps"]
    1
    """

    def __init__(self, env, path: str | os.PathLike, checksum_interval: int = 50):
        super().__init__(env)
        self.path = os.fspath(path)
        self.checksum_interval = checksum_interval
        self._sim = _escape_room_env(env).sim

    def _start(self) -> None:
        if not self._sim.is_recording():
            # The env's own episodes, as reset() started them: no reseeding.
            self._sim.start_recording(
                self.path, checksum_interval=self.checksum_interval, continue_episodes=True
            )

    def reset(self, *, seed=None, options=None):
        partial = options is not None and "reset_mask" in options
        if partial:
            self._start()
        result = self.env.reset(seed=seed, options=options)
        self._start()
        return result

    def step(self, actions):
        self._start()
        return self.env.step(actions)

    def close(self, **kwargs: Any) -> None:
        if not self._sim.closed and self._sim.is_recording():
            self._sim.stop_recording()
        super().close(**kwargs)


class TrajectoryLogger(VectorWrapper):
    """Logs one env's agent every step in SPEC §5.2's line format, to a file or stdout.

    >>> import numpy as np, tempfile, os, escape_room_env as er
    >>> path = os.path.join(tempfile.mkdtemp(), "trajectory.txt")
    >>> envs = er.wrappers.TrajectoryLogger(er.EscapeRoomVectorEnv(num_envs=2, seed=0), env_index=1, filename=path)
    >>> _ = envs.reset(seed=0)
    >>> _ = envs.step(np.zeros((2, 3), dtype=np.int64))
    >>> envs.close()
    >>> open(path).read().startswith("step=1 world=1 agent=0 x=")
    True
    """

    def __init__(self, env, env_index: int = 0, filename: str | os.PathLike | None = None):
        super().__init__(env)
        base = _escape_room_env(env)
        if not 0 <= env_index < base.num_envs:
            raise ValueError(f"env_index must be between 0 and {base.num_envs - 1}, got {env_index}")
        world, agent = divmod(env_index, base.num_agents)
        base.sim.enable_trajectory_logging(world, agent, filename)

    def close(self, **kwargs: Any) -> None:
        sim = _escape_room_env(self.env).sim
        if not sim.closed:
            sim.disable_trajectory_logging()
        super().close(**kwargs)


class ReplayVectorEnv(EscapeRoomVectorEnv):
    """Plays a replay file back through the vector env API.

    ``reset()`` returns the recording's first observation; each ``step()`` replays one
    recorded step (the actions passed in are ignored and may be None) and verifies the
    file's hash checkpoints. ``infos["replay_finished"]`` turns True on the last step.

    >>> import numpy as np, tempfile, os, escape_room_env as er
    >>> path = os.path.join(tempfile.mkdtemp(), "run.bin")
    >>> envs = er.wrappers.RecordActions(er.EscapeRoomVectorEnv(num_envs=2, seed=0), path)
    >>> _ = envs.reset(seed=1)
    >>> recorded = envs.step(np.ones((2, 3), dtype=np.int64))[0]
    >>> envs.close()
    >>> replay = er.wrappers.ReplayVectorEnv(path)
    >>> _ = replay.reset()
    >>> obs, *_, infos = replay.step(None)
    >>> bool(np.array_equal(obs, recorded)), bool(infos["replay_finished"])
    (True, True)
    """

    def __init__(self, path: str | os.PathLike, *, copy: bool = True, num_threads: int | None = None):
        sim = SimManager.from_replay(path, num_threads=num_threads)
        self._bind(sim, copy=copy, device="cpu")
        self.path = os.fspath(path)
        obs = self._obs
        assert isinstance(obs, np.ndarray)  # a replay plays the flat observations on the CPU, as numpy
        self._reset_obs = obs.copy()
        self._reset_infos = self._infos(self._all_envs)

    def reset(self, *, seed=None, options=None) -> tuple[np.ndarray, dict[str, Any]]:
        """The recording's starting observation (a replay cannot be reseeded or reset)."""
        if seed is not None or options:
            raise ValueError("a ReplayVectorEnv replays its file: reset() takes no seed or options")
        return self._reset_obs.copy(), dict(self._reset_infos)

    def step(self, actions=None):
        finished = self.sim.replay_step()
        obs, rewards, terminated, truncated, infos = self._outputs()
        infos["replay_finished"] = finished
        return obs, rewards, terminated, truncated, infos

    @property
    def replay_progress(self) -> tuple[int, int]:
        """(steps replayed, steps in the file)."""
        return self.sim.get_replay_step_count()
