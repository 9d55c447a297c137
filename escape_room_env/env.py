"""``EscapeRoomEnv``: one world, one agent, as a plain ``gymnasium.Env`` (SPEC §7)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode
from typing_extensions import Unpack

from escape_room_env import spaces
from escape_room_env._env_common import (
    INFOS,
    SimOptions,
    check_render_mode,
    exclusive,
    join_rgbd,
    make_sim,
    observation_space,
    observation_views,
)

if TYPE_CHECKING:
    from gymnasium.spaces import Box, Discrete, MultiDiscrete

__all__ = ["EscapeRoomEnv"]


class EscapeRoomEnv(gymnasium.Env):
    """A single escape-room world with one agent (use the vector env for speed).

    ``reset(seed=s)`` restarts the world's random stream at s; ``reset()`` starts the next
    episode of the current stream. The time limit is the simulator's own (``episode_len``).
    ``obs_mode`` ``"rgb"``, ``"depth"`` or ``"rgbd"`` observes the first-person images (size
    ``render_height`` x ``render_width``); ``render_mode="rgb_array"`` makes :meth:`render` return
    the top-down view. ``action_mode="discrete"`` takes one ``Discrete(160)`` index per step
    instead of three components (see :class:`EscapeRoomVectorEnv`; ``EscapeRoomDiscrete-v0``).

    >>> import escape_room_env as er
    >>> env = er.EscapeRoomEnv()
    >>> obs, info = env.reset(seed=3)
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> obs.shape, type(reward), type(terminated), info["elapsed_step"]
    ((87,), <class 'float'>, <class 'bool'>, 1)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    observation_space: Box
    action_space: MultiDiscrete | Discrete

    def __init__(
        self,
        *,
        obs_mode: str = "vector",
        render_mode: str | None = None,
        action_mode: str = "multi_discrete",
        **options: Unpack[SimOptions],
    ):
        """``options`` are the vector env's simulator options (:class:`EscapeRoomVectorEnv`):
        ``rooms``, ``levels``, ``seed``, ``num_threads`` (default 1 here), ``episode_len`` /
        ``max_episode_steps``, ``reward``, ``render_width``, ``render_height``; ``num_agents``
        must be 1."""
        self._options = {
            "obs_mode": obs_mode,
            "render_mode": render_mode,
            "action_mode": action_mode,
            **options,
        }
        if options.get("num_agents", 1) != 1:
            raise ValueError(
                f"EscapeRoomEnv needs num_agents=1, got {options['num_agents']}; use EscapeRoomVectorEnv for "
                "multi-agent worlds"
            )
        check_render_mode(render_mode)
        self.action_space = spaces.action_space(action_mode)
        self.action_mode = action_mode
        options.setdefault("num_threads", 1)
        # DISABLED: a finished episode stays frozen until reset(), as a gymnasium.Env expects.
        self.sim = make_sim(1, autoreset_mode=AutoresetMode.DISABLED, obs_mode=obs_mode, **options)
        self._busy = threading.Lock()  # see _env_common.exclusive
        self.render_mode = render_mode
        self.obs_mode = obs_mode
        self.observation_space = observation_space(self.sim, obs_mode)
        obs, self._rgbd = observation_views(self.sim, obs_mode)
        self._obs = None if obs is None else obs[0]
        self._actions = self.sim.action_tensor().to_numpy()[0, 0]
        self._reward = self.sim.reward_tensor().to_numpy()[0, 0]
        self._terminated = self.sim.terminated_tensor().to_numpy()[0]
        self._truncated = self.sim.truncated_tensor().to_numpy()[0]
        self._info_views = {k: self.sim.tensor(now).to_numpy()[0, 0] for k, (now, _) in INFOS.items()}

    def __reduce__(self) -> tuple:
        """Pickles and copies (``copy.deepcopy``) through the simulator's state: an independent
        twin whose continuation equals this env's (``np_random`` included)."""
        from escape_room_env.vector_env import _random_state, _rebuild

        return (_rebuild, (type(self), self._options, self.sim.snapshot(), _random_state(self)))

    @exclusive
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            self.sim.reset_worlds()
        else:
            self.sim.reset_worlds(seeds=[seed])  # first: a bad seed changes nothing
        super().reset(seed=seed)
        return self._observation(), self._info()

    @exclusive
    def step(self, action):
        if self.action_mode == "discrete":
            return self._step_discrete(action)
        action = np.asarray(action)
        if not np.issubdtype(action.dtype, np.integer):
            raise TypeError(
                f"action must be 3 integers (move_amount, move_angle, rotate), got dtype {action.dtype}"
            )
        if action.shape != (3,):
            raise ValueError(f"action must have shape (3,), got {action.shape}")
        if not self.action_space.contains(action.astype(np.int64)):
            raise ValueError(f"action {action.tolist()} is outside MultiDiscrete({list(spaces.NUM_CHOICES)})")
        self._actions[:] = action
        self.sim.step()
        return self._outputs()

    def _step_discrete(self, action: Any):
        """One ``Discrete(160)`` index, checked and decoded by the core's step."""
        index, n = np.asarray(action), spaces.NUM_DISCRETE_ACTIONS
        if not np.issubdtype(index.dtype, np.integer):
            raise TypeError(
                f"action must be one integer in [0, {n}) (Discrete({n})), got dtype {index.dtype}"
            )
        if index.shape not in ((), (1,)):
            raise ValueError(f"action must be one integer (Discrete({n})), got shape {index.shape}")
        if self.sim.step_actions(index.astype(np.int64).reshape(1), False, None, True) != -1:
            raise ValueError(f"action {index.item()} is outside Discrete({n})")
        return self._outputs()

    def _outputs(self):
        return (
            self._observation(),
            float(self._reward[0]),
            bool(self._terminated[0]),
            bool(self._truncated[0]),
            self._info(),
        )

    def _observation(self) -> np.ndarray:
        obs = self._obs
        if obs is None:
            assert self._rgbd is not None  # observation_views sets one of the two
            return join_rgbd(self._rgbd[0][0], self._rgbd[1][0])
        return obs.copy()

    def render(self) -> np.ndarray | None:
        """``render_mode="rgb_array"``: the world seen from above (SPEC §6); None otherwise."""
        if self.render_mode != "rgb_array":
            return None
        from escape_room_env.render import Scene, picture

        return picture(Scene.from_world(self.sim, 0))

    def _info(self) -> dict[str, Any]:
        return {key: view.item() for key, view in self._info_views.items()}

    def close(self) -> None:
        self.sim.close()
