"""``EscapeRoomEnv``: one world, one agent, as a plain ``gymnasium.Env`` (SPEC §7)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np

from escape_room_env import spaces
from escape_room_env.config import RewardConfig
from escape_room_env.manager import SimManager
from escape_room_env.vector_env import _INFOS, fresh_seed, resolve_episode_len

__all__ = ["EscapeRoomEnv"]


class EscapeRoomEnv(gymnasium.Env):
    """A single escape-room world with one agent (use the vector env for speed).

    ``reset(seed=s)`` restarts the world's random stream at s; ``reset()`` starts the next
    episode of the current stream. The time limit is the simulator's own (``episode_len``).

    >>> import escape_room_env as er
    >>> env = er.EscapeRoomEnv()
    >>> obs, info = env.reset(seed=3)
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> obs.shape, type(reward), type(terminated), info["elapsed_step"]
    ((87,), <class 'float'>, <class 'bool'>, 1)
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        *,
        num_agents: int = 1,
        rooms: Sequence[str] | None = None,
        levels: Any = None,
        seed: int | None = None,
        episode_len: int | None = None,
        max_episode_steps: int | None = None,
        reward: RewardConfig | Mapping[str, float] | None = None,
        num_threads: int = 1,
        render_mode: str | None = None,
    ):
        if num_agents != 1:
            raise ValueError(
                f"EscapeRoomEnv needs num_agents=1, got {num_agents}; use EscapeRoomVectorEnv for multi-agent worlds"
            )
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r}: this version of EscapeRoomEnv renders nothing")
        # DISABLED: a finished episode stays frozen until reset(), as a gymnasium.Env expects.
        self.sim = SimManager(
            num_worlds=1,
            rand_seed=fresh_seed() if seed is None else seed,
            autoreset_mode="disabled",
            num_threads=num_threads,
            rooms=rooms,
            levels=levels,
            episode_len=resolve_episode_len(episode_len, max_episode_steps),
            reward=reward,
        )
        self.render_mode = None
        self.observation_space = spaces.observation_space(1, len(self.sim.rooms), self.sim._compiled_levels)
        self.action_space = spaces.action_space()
        self._obs = self.sim.observation_tensor().to_numpy()[0, 0]
        self._actions = self.sim.action_tensor().to_numpy()[0, 0]
        self._reward = self.sim.reward_tensor().to_numpy()[0, 0]
        self._terminated = self.sim.terminated_tensor().to_numpy()[0]
        self._truncated = self.sim.truncated_tensor().to_numpy()[0]
        self._info_views = {k: self.sim._tensor(now).to_numpy()[0, 0] for k, (now, _) in _INFOS.items()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None:
            self.sim.reset_worlds()
        else:
            self.sim.reset_worlds(seeds=[seed])
        return self._obs.copy(), self._info()

    def step(self, action):
        action = np.asarray(action)
        if not np.issubdtype(action.dtype, np.integer):
            raise TypeError(
                f"action must be 3 integers (move_amount, move_angle, rotate), got dtype {action.dtype}"
            )
        if action.shape != (3,):
            raise ValueError(f"action must have shape (3,), got {action.shape}")
        if not self.action_space.contains(action.astype(np.int64)):
            raise ValueError(
                f"action {action.tolist()} is outside MultiDiscrete({self.action_space.nvec.tolist()})"
            )
        self._actions[:] = action
        self.sim.step()
        return (
            self._obs.copy(),
            float(self._reward[0]),
            bool(self._terminated[0]),
            bool(self._truncated[0]),
            self._info(),
        )

    def _info(self) -> dict[str, Any]:
        return {key: view.item() for key, view in self._info_views.items()}

    def close(self) -> None:
        self.sim.close()
