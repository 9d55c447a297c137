"""Gymnasium spaces of one agent: the bounded flat observation and the MultiDiscrete action."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from gymnasium import spaces

from escape_room_env.action import NUM_CHOICES
from escape_room_env.levels import CompiledLevel

__all__ = ["OBS_MODES", "action_space", "observation_bounds", "observation_space", "pixel_space"]

_LIDAR_RAYS = 30
_ENTITY_SLOTS = 6


def observation_bounds(
    num_agents: int, num_rooms: int = 3, levels: Sequence[CompiledLevel] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Per-component (low, high) of the flat observation (SPEC §3 "Bounds").

    Distances and positions lie in [0, R], R = the diagonal of the walled area over L (with
    custom ``levels``, the largest of theirs); angles in [-1, 1]; flags, types and lidar in [0, 1].

    >>> low, high = observation_bounds(1, 3)
    >>> low.shape, round(float(high[0]), 4), float(low[4]), float(high[5])
    ((87,), 1.254, -1.0, 1.0)
    """
    if levels:
        r_max = np.float32(max(level.observation_radius for level in levels))
    else:
        length = num_rooms * 40.0 / 3.0
        r_max = np.float32(math.hypot(20.0, length + 6.0) / length)
    dim = 87 + 3 * (num_agents - 1)
    low = np.zeros(dim, dtype=np.float32)
    high = np.ones(dim, dtype=np.float32)

    def polar(i: int) -> None:  # (r, theta) at i, i + 1
        high[i] = r_max
        low[i + 1] = -1.0

    # x, y, z, max_y. z is always 0 (the world is planar); its bound is a position's [0, R]
    # rather than [0, 0], which gymnasium's env checker warns about at every make().
    high[0:4] = r_max
    low[4] = -1.0  # yaw / pi
    polar(6)  # door; [8] is_open in [0, 1]
    for slot in range(_ENTITY_SLOTS):
        polar(9 + 3 * slot)
    for partner in range(num_agents - 1):
        polar(87 + 3 * partner)
    return low, high


def observation_space(
    num_agents: int, num_rooms: int = 3, levels: Sequence[CompiledLevel] = ()
) -> spaces.Box:
    """The single-agent observation ``Box(float32, (87 + 3 (A - 1),))`` with finite bounds."""
    low, high = observation_bounds(num_agents, num_rooms, levels)
    return spaces.Box(low=low, high=high, dtype=np.float32)


OBS_MODES = ("vector", "rgb", "depth", "rgbd")


def pixel_space(obs_mode: str, height: int, width: int) -> spaces.Box:
    """One agent's image observation (SPEC §6): ``"rgb"`` uint8 (H, W, 3); ``"depth"`` float32
    (H, W, 1) metres in [0, 40]; ``"rgbd"`` float32 (H, W, 4), RGB as 0..255 then depth.

    >>> pixel_space("rgbd", 64, 32).shape, pixel_space("rgb", 8, 8).dtype
    ((64, 32, 4), dtype('uint8'))
    """
    if obs_mode == "rgb":
        return spaces.Box(0, 255, (height, width, 3), dtype=np.uint8)
    if obs_mode == "depth":
        return spaces.Box(0.0, 40.0, (height, width, 1), dtype=np.float32)
    if obs_mode == "rgbd":
        high = np.broadcast_to(np.array([255.0, 255.0, 255.0, 40.0], dtype=np.float32), (height, width, 4))
        return spaces.Box(np.zeros_like(high), high.copy(), dtype=np.float32)
    raise ValueError(f"obs_mode must be one of {', '.join(map(repr, OBS_MODES))}, got {obs_mode!r}")


def action_space() -> spaces.MultiDiscrete:
    """``MultiDiscrete([4, 8, 5])``: move_amount, move_angle, rotate."""
    return spaces.MultiDiscrete(np.array(NUM_CHOICES, dtype=np.int64))
