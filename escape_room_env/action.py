"""Action constants, named as in the Madrona escape room (SPEC §2.2).

An action is three int32 components per agent: ``move_amount``, ``move_angle``, ``rotate``.

>>> import escape_room_env as er
>>> er.action.move_amount.FAST, er.action.move_angle.FORWARD, er.action.rotate.NONE
(3, 0, 2)
"""

from __future__ import annotations

from escape_room_env import _core

__all__ = ["NUM_CHOICES", "move_amount", "move_angle", "rotate"]


class move_amount:
    """Distance per step: 0, 1/3, 2/3 or 1 metre."""

    STOP = 0
    SLOW = 1
    MEDIUM = 2
    FAST = 3


class move_angle:
    """Direction of motion, k * 45 degrees clockwise from the agent's heading."""

    FORWARD = 0
    FORWARD_RIGHT = 1
    RIGHT = 2
    BACKWARD_RIGHT = 3
    BACKWARD = 4
    BACKWARD_LEFT = 5
    LEFT = 6
    FORWARD_LEFT = 7


class rotate:
    """Turn per step: (2 - rotate) * pi/16 radians, positive (left) is counter-clockwise."""

    FAST_LEFT = 0
    SLOW_LEFT = 1
    NONE = 2
    SLOW_RIGHT = 3
    FAST_RIGHT = 4


#: Number of choices of each component, the ``MultiDiscrete`` nvec (from the core).
NUM_CHOICES: tuple[int, int, int] = _core.ACTION_CHOICES
