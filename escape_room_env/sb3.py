"""``EscapeRoomVecEnv``: the simulator as a Stable-Baselines3 ``VecEnv`` (SPEC §7).

This is the only module of the package that imports ``stable_baselines3``; install it yourself
(``pip install stable-baselines3``) to use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn
from typing_extensions import Unpack

from escape_room_env._env_common import INFOS, SimOptions
from escape_room_env.vector_env import EscapeRoomVectorEnv

__all__ = ["EscapeRoomVecEnv"]

_INFO_KEYS = tuple(INFOS)  # progress, termination_reason, elapsed_step, doors_opened
_NUMPY_ONLY = "SB3 steps numpy arrays: adapt a vector env without torch_outputs"


class EscapeRoomVecEnv(VecEnv):
    """``num_envs`` escape-room agents as one Stable-Baselines3 ``VecEnv``.

    Builds an :class:`~escape_room_env.EscapeRoomVectorEnv` (SAME_STEP autoreset, fresh
    arrays) from the same arguments and translates its results to SB3's conventions, like
    ``DummyVecEnv`` over gymnasium envs: ``dones = terminated | truncated``; a finished env's
    info holds ``"terminal_observation"`` (the episode's last observation; the returned obs
    row is already the next episode's first) and ``"TimeLimit.truncated"`` (every env has
    it, True only on a time-limit end). Each env's info also carries the numeric infos
    ``progress``, ``termination_reason``, ``elapsed_step`` and ``doors_opened`` as Python
    scalars; on a done step they describe the episode that just ended (taken from the
    vector env's ``final_info``). Use :meth:`from_vector_env` to adapt an existing vector env.

    Seeding follows SB3 2.x: :meth:`seed` stores the seeds for the next :meth:`reset` only
    (then streams continue). Env i belongs to world ``i // num_agents`` and gets seed
    ``seed + i // num_agents`` (``seed + i`` with one agent per world, as in ``DummyVecEnv``).
    Options from ``set_options`` must be the same for every env and go to the vector env's
    ``reset`` (which reads only ``reset_mask``).

    All envs share one simulator, so ``get_attr``/``env_method`` read the attribute or call
    the method of the underlying :class:`~escape_room_env.EscapeRoomVectorEnv` once and
    return that value for each requested index; ``set_attr`` sets it once on the vector env,
    so ``indices`` must cover every env. ``env_is_wrapped`` is always False (no gymnasium
    wrappers inside). With ``render_mode="rgb_array"``, :meth:`get_images` returns each env's
    top-down frame (its world's) and ``render()`` tiles them, so SB3's ``VecVideoRecorder``
    films the envs.

    Args:
        num_envs: number of agents in total (``num_envs / num_agents`` worlds).
        render_mode: None (default) or ``"rgb_array"``.
        action_mode: ``"multi_discrete"`` (default) or ``"discrete"``: one ``Discrete(160)``
            action per env, for DQN (see :class:`~escape_room_env.EscapeRoomVectorEnv`).
        options: the vector env's simulator options (:class:`~escape_room_env.EscapeRoomVectorEnv`):
            ``num_agents``, ``rooms``, ``levels``, ``seed``, ``num_threads``, ``episode_len`` /
            ``max_episode_steps``, ``reward``.

    >>> import numpy as np
    >>> from escape_room_env.sb3 import EscapeRoomVecEnv
    >>> venv = EscapeRoomVecEnv(num_envs=4, seed=0, episode_len=2, num_threads=1)
    >>> venv.seed(1)
    [1, 2, 3, 4]
    >>> obs = venv.reset()
    >>> obs.shape, obs.dtype
    ((4, 87), dtype('float32'))
    >>> actions = np.zeros((4, 3), dtype=np.int64)
    >>> obs, rewards, dones, infos = venv.step(actions)
    >>> dones.tolist(), infos[0]["elapsed_step"]
    ([False, False, False, False], 1)
    >>> obs, rewards, dones, infos = venv.step(actions)
    >>> dones.tolist(), infos[0]["TimeLimit.truncated"], infos[0]["elapsed_step"]
    ([True, True, True, True], True, 2)
    >>> infos[0]["terminal_observation"].shape
    (87,)
    >>> venv.close()
    """

    def __init__(
        self,
        num_envs: int = 1024,
        *,
        render_mode: str | None = None,
        action_mode: str = "multi_discrete",
        **options: Unpack[SimOptions],
    ):
        vector_env = EscapeRoomVectorEnv(
            num_envs,
            autoreset_mode=AutoresetMode.SAME_STEP,
            copy=True,
            render_mode=render_mode,
            action_mode=action_mode,
            **options,
        )
        self._attach(vector_env)

    @classmethod
    def from_vector_env(cls, vector_env: EscapeRoomVectorEnv) -> EscapeRoomVecEnv:
        """Adapts an existing vector env, which must be on the CPU, SAME_STEP and ``copy=True``.

        The adapter takes it over: closing the adapter closes it.

        >>> import escape_room_env as er
        >>> from escape_room_env.sb3 import EscapeRoomVecEnv
        >>> envs = er.EscapeRoomVectorEnv(num_envs=2, autoreset_mode="same_step", num_threads=1)
        >>> venv = EscapeRoomVecEnv.from_vector_env(envs)
        >>> venv.num_envs, venv.vector_env is envs
        (2, True)
        """
        if not isinstance(vector_env, EscapeRoomVectorEnv):
            raise TypeError(f"vector_env must be an EscapeRoomVectorEnv, got {type(vector_env).__name__}")
        problems = []
        if vector_env.autoreset_mode is not AutoresetMode.SAME_STEP:
            problems.append(f"autoreset_mode={vector_env.autoreset_mode.name} (needs SAME_STEP)")
        if not vector_env.copy:
            problems.append("copy=False (needs copy=True: SB3 keeps the arrays it is given)")
        if vector_env.device != "cpu":
            problems.append(f"device={vector_env.device!r} (needs 'cpu': SB3 steps numpy arrays)")
        elif vector_env.torch_outputs:
            problems.append("torch_outputs=True (needs numpy outputs: SB3 steps numpy arrays)")
        if problems:
            raise ValueError("EscapeRoomVecEnv cannot adapt this vector env: " + "; ".join(problems))
        self = cls.__new__(cls)
        self._attach(vector_env)
        return self

    def _attach(self, vector_env: EscapeRoomVectorEnv) -> None:
        self.vector_env = vector_env
        self.num_agents = vector_env.num_agents
        self._actions: np.ndarray | None = None
        # VecEnv.__init__ reads render_mode through get_attr, so vector_env must exist first.
        super().__init__(
            vector_env.num_envs, vector_env.single_observation_space, vector_env.single_action_space
        )
        self.metadata["render_fps"] = vector_env.metadata["render_fps"]  # VecVideoRecorder's frame rate

    # -- SB3 VecEnv API ---------------------------------------------------------------------

    def reset(self) -> np.ndarray:
        """Starts new episodes in every env; uses the seeds of :meth:`seed` once (then None)."""
        kwargs: dict[str, Any] = {}
        if any(s is not None for s in self._seeds):
            kwargs["seed"] = list(self._seeds)
        if any(self._options):
            first = self._options[0]
            if any(options != first for options in self._options[1:]):
                raise ValueError(
                    "EscapeRoomVecEnv resets all envs with one call: set_options needs the same "
                    f"options for every env, got {self._options}"
                )
            kwargs["options"] = dict(first)
        obs, infos = self.vector_env.reset(**kwargs)
        assert isinstance(obs, np.ndarray), _NUMPY_ONLY
        self._reset_seeds()
        self._reset_options()
        columns = [infos[key].tolist() for key in _INFO_KEYS]
        self.reset_infos = [dict(zip(_INFO_KEYS, row)) for row in zip(*columns)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        actions, self._actions = self._actions, None
        if actions is None:
            raise RuntimeError("step_wait() called without a pending step_async(actions)")
        obs, rewards, terminated, truncated, infos = self.vector_env.step(actions)
        dones = terminated | truncated
        assert isinstance(obs, np.ndarray) and isinstance(rewards, np.ndarray), _NUMPY_ONLY
        assert isinstance(dones, np.ndarray), _NUMPY_ONLY
        final_info = infos.get("final_info")
        columns = []
        for key in _INFO_KEYS:
            values = infos[key]
            if final_info is not None:  # done envs describe the episode that just ended
                values = np.where(dones, final_info[key], values)
            columns.append(values.tolist())
        time_limit = (truncated & ~terminated).tolist()
        env_infos = [
            {
                "progress": progress,
                "termination_reason": reason,
                "elapsed_step": elapsed,
                "doors_opened": doors,
                "TimeLimit.truncated": limit,
            }
            for progress, reason, elapsed, doors, limit in zip(*columns, time_limit)
        ]
        if final_info is not None:
            final_obs = infos["final_obs"]
            for i in np.flatnonzero(dones).tolist():
                env_infos[i]["terminal_observation"] = final_obs[i]
        return obs, rewards, dones, env_infos

    def close(self) -> None:
        self.vector_env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        """Each env's top-down frame with ``render_mode="rgb_array"`` (else None for each env)."""
        frames = self.vector_env.render()
        if frames is None:
            return [None] * self.num_envs
        return list(frames)

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seeds for the next :meth:`reset`: env i gets ``seed + i // num_agents`` (its world's seed).

        ``seed=None`` draws a random base seed, as SB3's ``VecEnv.seed`` does.
        """
        if seed is None:
            seed = int(np.random.randint(0, np.iinfo(np.uint32).max, dtype=np.uint32))
        self._seeds = [seed + i // self.num_agents for i in range(self.num_envs)]
        return self._seeds

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The vector env's attribute, once per requested index (all envs share it)."""
        value = getattr(self.vector_env, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Sets the attribute on the shared vector env; ``indices`` must be None or every env."""
        if indices is not None and sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ValueError(
                f"set_attr({attr_name!r}) with indices={indices!r}: all {self.num_envs} envs share one "
                "EscapeRoomVectorEnv, so an attribute can only be set for every env (indices=None)"
            )
        setattr(self.vector_env, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Calls the vector env's method once; its result is repeated for each requested index."""
        result = getattr(self.vector_env, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(
        self, wrapper_class: type[gymnasium.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Always False: no gymnasium wrapper sits inside the simulator."""
        return [False for _ in self._get_indices(indices)]
