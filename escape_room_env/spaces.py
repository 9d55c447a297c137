"""Gymnasium spaces of one agent: the bounded flat observation and the action, MultiDiscrete or
(``action_mode="discrete"``) one Discrete index."""

from __future__ import annotations

from typing import Literal, overload

import numpy as np
from gymnasium import spaces

from escape_room_env import _core
from escape_room_env.action import NUM_CHOICES

__all__ = [
    "ACTION_MODES",
    "NUM_CHOICES",
    "NUM_DISCRETE_ACTIONS",
    "OBS_MODES",
    "action_space",
    "discrete_action",
    "observation_bounds",
    "observation_space",
    "pixel_space",
]

# The observation's layout (SPEC §3), from the core's one definition.
_SELF, _STEPS, _DOOR, _ENTITIES, _LIDAR, _PARTNERS, _PARTNER_DIM = _core.OBS_LAYOUT


def observation_bounds(num_agents: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-component (low, high) of the flat observation (SPEC §3 "Bounds").

    Distances and positions lie in [0, R], R = ``radius`` (``SimManager.observation_radius``:
    the diagonal of the walled area over L); angles in [-1, 1]; flags, types and lidar in [0, 1].

    >>> import escape_room_env as er
    >>> low, high = observation_bounds(1, er.SimManager(num_worlds=1).observation_radius)
    >>> low.shape, round(float(high[0]), 4), float(low[4]), float(high[5])
    ((87,), 1.254, -1.0, 1.0)
    """
    r_max = np.float32(radius)
    low = np.zeros(_core.obs_dim(num_agents), dtype=np.float32)
    high = np.ones_like(low)

    def polar(i: int) -> None:  # (r, theta) at i, i + 1
        high[i] = r_max
        low[i + 1] = -1.0

    # x, y, z, max_y. z is always 0 (the world is planar); its bound is a position's [0, R]
    # rather than [0, 0], which gymnasium's env checker warns about at every make().
    high[_SELF : _SELF + 4] = r_max
    low[_SELF + 4] = -1.0  # yaw / pi
    polar(_DOOR)  # [_DOOR + 2] is_open in [0, 1]
    for slot in range(_core.ENTITY_SLOTS):
        polar(_ENTITIES + 3 * slot)
    for partner in range(num_agents - 1):
        polar(_PARTNERS + _PARTNER_DIM * partner)
    return low, high


def observation_space(num_agents: int, radius: float) -> spaces.Box:
    """The single-agent observation ``Box(float32, (87 + 3 (A - 1),))`` with finite bounds."""
    low, high = observation_bounds(num_agents, radius)
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
        return spaces.Box(0.0, _core.DEPTH_RANGE, (height, width, 1), dtype=np.float32)
    if obs_mode == "rgbd":
        high = np.broadcast_to(
            np.array([255.0, 255.0, 255.0, _core.DEPTH_RANGE], dtype=np.float32), (height, width, 4)
        )
        return spaces.Box(np.zeros_like(high), high.copy(), dtype=np.float32)
    raise ValueError(f"obs_mode must be one of {', '.join(map(repr, OBS_MODES))}, got {obs_mode!r}")


ACTION_MODES = ("multi_discrete", "discrete")
#: The size of the Discrete action: every (move_amount, move_angle, rotate) combination.
NUM_DISCRETE_ACTIONS = int(np.prod(NUM_CHOICES))


@overload
def action_space(action_mode: Literal["multi_discrete"] = "multi_discrete") -> spaces.MultiDiscrete: ...
@overload
def action_space(action_mode: Literal["discrete"]) -> spaces.Discrete: ...
@overload
def action_space(action_mode: str) -> spaces.MultiDiscrete | spaces.Discrete: ...
def action_space(action_mode: str = "multi_discrete") -> spaces.MultiDiscrete | spaces.Discrete:
    """``MultiDiscrete([4, 8, 5])`` (move_amount, move_angle, rotate), or for
    ``action_mode="discrete"`` ``Discrete(160)``: one index per agent, the C-order ravel of the
    three components (:func:`discrete_action`), decoded by the core.

    >>> action_space(), action_space("discrete")
    (MultiDiscrete([4 8 5]), Discrete(160))
    """
    if action_mode == "multi_discrete":
        return spaces.MultiDiscrete(np.array(NUM_CHOICES, dtype=np.int64))
    if action_mode == "discrete":
        return spaces.Discrete(NUM_DISCRETE_ACTIONS)
    raise ValueError(f"action_mode must be one of {', '.join(map(repr, ACTION_MODES))}, got {action_mode!r}")


def discrete_action(move_amount: int, move_angle: int, rotate: int) -> int:
    """The ``Discrete(160)`` index of a (move_amount, move_angle, rotate) action:
    ``(move_amount * 8 + move_angle) * 5 + rotate``, i.e. ``numpy.ravel_multi_index(action,
    (4, 8, 5))``; ``numpy.unravel_index(index, (4, 8, 5))`` is the inverse.

    >>> import escape_room_env as er
    >>> a = er.action
    >>> discrete_action(a.move_amount.FAST, a.move_angle.FORWARD, a.rotate.NONE)
    122
    """
    return int(np.ravel_multi_index((move_amount, move_angle, rotate), NUM_CHOICES))
