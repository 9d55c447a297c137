"""Registers ``EscapeRoom-v0`` and ``EscapeRoomDiscrete-v0`` with gymnasium (done on
``import escape_room_env``; ``gymnasium.make("escape_room_env:EscapeRoom-v0")`` imports it)."""

from __future__ import annotations

from typing import Any

import gymnasium

from escape_room_env import _core

ENV_ID = "EscapeRoom-v0"
#: The same env with one ``Discrete(160)`` action (``action_mode="discrete"``).
DISCRETE_ENV_ID = "EscapeRoomDiscrete-v0"

#: A mean episode return only a policy that escapes in most episodes reaches: an episode that
#: does not escape returns at most 0.05 x the 41.5 m to the exit (about 2.1), one that escapes
#: that plus 1.0, less 0.005 per step without progress.
REWARD_THRESHOLD = 2.5


def make_vector_env(num_envs: int = 1024, **options: Any) -> Any:
    """``gymnasium.make_vec``'s entry point: an :class:`~escape_room_env.EscapeRoomVectorEnv`.

    ``make_vec`` passes the registered ``max_episode_steps`` (200) along unless it is given; an
    explicit ``episode_len`` then wins over that default.

    >>> import gymnasium, escape_room_env
    >>> gymnasium.make_vec("EscapeRoom-v0", num_envs=2, episode_len=50).sim.episode_len
    50
    """
    from escape_room_env.vector_env import EscapeRoomVectorEnv

    if (
        options.get("episode_len") is not None
        and options.get("max_episode_steps") == _core.DEFAULT_EPISODE_LEN
    ):
        del options["max_episode_steps"]
    return EscapeRoomVectorEnv(num_envs, **options)


def register() -> None:
    """Registers ``EscapeRoom-v0`` and ``EscapeRoomDiscrete-v0`` (idempotent).

    The specs tell gymnasium's and other clients' code the truth: ``max_episode_steps`` is the
    simulator's default episode length (200; ``gymnasium.make``'s ``TimeLimit`` then ends an
    episode on the step the simulator does), ``reward_threshold`` is :data:`REWARD_THRESHOLD`.

    >>> import gymnasium, escape_room_env
    >>> envs = gymnasium.make_vec("EscapeRoom-v0", num_envs=8)
    >>> envs.num_envs, type(envs.unwrapped).__name__
    (8, 'EscapeRoomVectorEnv')
    >>> spec = gymnasium.spec("EscapeRoomDiscrete-v0")
    >>> spec.max_episode_steps, spec.reward_threshold, spec.kwargs
    (200, 2.5, {'action_mode': 'discrete'})
    """
    for env_id, kwargs in ((ENV_ID, {}), (DISCRETE_ENV_ID, {"action_mode": "discrete"})):
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point="escape_room_env.env:EscapeRoomEnv",
            vector_entry_point="escape_room_env.registration:make_vector_env",
            max_episode_steps=_core.DEFAULT_EPISODE_LEN,
            reward_threshold=REWARD_THRESHOLD,
            kwargs=kwargs,
        )
