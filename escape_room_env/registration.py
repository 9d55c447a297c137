"""Registers ``EscapeRoom-v0`` with gymnasium (done on ``import escape_room_env``)."""

from __future__ import annotations

import gymnasium

ENV_ID = "EscapeRoom-v0"


def register() -> None:
    """Registers ``EscapeRoom-v0`` (idempotent).

    >>> import gymnasium, escape_room_env
    >>> envs = gymnasium.make_vec("EscapeRoom-v0", num_envs=8)
    >>> envs.num_envs, type(envs.unwrapped).__name__
    (8, 'EscapeRoomVectorEnv')
    """
    if ENV_ID in gymnasium.registry:
        return
    gymnasium.register(
        id=ENV_ID,
        entry_point="escape_room_env.env:EscapeRoomEnv",
        vector_entry_point="escape_room_env.vector_env:EscapeRoomVectorEnv",
        max_episode_steps=None,  # the simulator truncates at episode_len itself
    )
