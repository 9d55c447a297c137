"""Configuration values of the simulator: room types, reward, reset modes."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping, Sequence

from gymnasium.vector import AutoresetMode

from escape_room_env import _core

__all__ = ["ROOM_TYPES", "AutoresetMode", "RewardConfig", "core_reward", "default_rooms"]

#: The room types of the generated level, in the core's numbering (SPEC §2.1).
ROOM_TYPES: tuple[str, ...] = _core.ROOM_TYPES

# The core's numbering of reset modes (also the replay file's u32 autoreset_mode).
_AUTORESET_CODES = {AutoresetMode.NEXT_STEP: 0, AutoresetMode.SAME_STEP: 1, AutoresetMode.DISABLED: 2}
AUTORESET_FROM_CODE = {code: mode for mode, code in _AUTORESET_CODES.items()}


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """The per-agent reward of SPEC §2.5; pass one (or a dict of its fields) as ``reward=``.

    >>> import escape_room_env as er
    >>> er.RewardConfig(escape_bonus=5.0).progress_scale
    0.05
    """

    progress_scale: float = 0.05
    """Reward per metre of new maximum y reached this episode."""
    slack_penalty: float = 0.005
    """Subtracted on every step without new progress."""
    group_bonus: float = 1.25
    """Multiplies positive progress while every agent's max y is within group_radius (2+ agents)."""
    group_radius: float = 2.0
    """Metres between agents' max y values for the group bonus."""
    escape_bonus: float = 1.0
    """Paid once, on the step an agent reaches the exit."""


def core_reward(reward: RewardConfig) -> _core.RewardConfig:
    """The core's struct of a :class:`RewardConfig` (numbers as float32; the core checks ranges)."""
    cfg = _core.RewardConfig()
    for field in dataclasses.fields(reward):
        value = getattr(reward, field.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"RewardConfig.{field.name} must be a number, got {value!r}")
        setattr(cfg, field.name, float(value))
    return cfg


def as_int(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as a Python int (numpy integers included), or a TypeError naming ``name``; with
    ``lo``/``hi``, a ValueError naming it when out of [lo, hi] (the core's fields are fixed-width).

    >>> as_int("num_worlds", 2**70, 1, 2**29)
    Traceback (most recent call last):
    ValueError: num_worlds must be between 1 and 536870912, got 1180591620717411303424
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if (lo, hi) in _FIELD_RANGES:  # only the field's width is checked here; the core checks the rest
            raise ValueError(
                f"{name}={value} is out of range: it does not fit the core's {_FIELD_RANGES[lo, hi]}"
            )
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


#: The ranges of the core's integer fields (checked here so that an int too large gets a ValueError
#: naming it, not the binding's TypeError).
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
_FIELD_RANGES: dict[tuple[int | None, int | None], str] = {
    INT32: "32-bit integer field",
    INT64: "64-bit integer field",
}


def default_rooms(num_agents: int) -> tuple[str, ...]:
    """The default room sequence for ``num_agents`` agents.

    >>> default_rooms(1)
    ('button', 'cube_blocking', 'cube_button')
    """
    return tuple(ROOM_TYPES[t] for t in _core.default_rooms(num_agents))


def parse_autoreset(mode: AutoresetMode | str | None, auto_reset: bool) -> AutoresetMode:
    """``autoreset_mode`` wins; otherwise the seed's ``auto_reset`` (True: SAME_STEP, False: DISABLED)."""
    if mode is None:
        return AutoresetMode.SAME_STEP if auto_reset else AutoresetMode.DISABLED
    if isinstance(mode, AutoresetMode):
        return mode
    if isinstance(mode, str):
        key = mode.replace("-", "_").replace(" ", "_").upper()
        aliases = {"NEXTSTEP": "NEXT_STEP", "SAMESTEP": "SAME_STEP"}
        key = aliases.get(key, key)
        if key in AutoresetMode.__members__:
            return AutoresetMode[key]
    raise ValueError(
        f"autoreset_mode must be an AutoresetMode or one of 'next_step', 'same_step', 'disabled', got {mode!r}"
    )


def autoreset_code(mode: AutoresetMode) -> int:
    return _AUTORESET_CODES[mode]


def parse_rooms(rooms: Sequence[str] | None) -> list[int] | None:
    """Room names to the core's codes (the core checks how many); None: the default sequence."""
    if rooms is None:
        return None
    if isinstance(rooms, str):
        rooms = [rooms]
    if not isinstance(rooms, Sequence):
        raise TypeError(
            f"rooms must be a sequence of room type names ({', '.join(ROOM_TYPES)}), got {type(rooms).__name__}"
        )
    codes = []
    for k, room in enumerate(rooms):
        if isinstance(room, str) and room in ROOM_TYPES:
            codes.append(ROOM_TYPES.index(room))
        else:
            raise ValueError(
                f"rooms[{k}]: unknown room type {room!r}; expected one of {', '.join(ROOM_TYPES)}"
            )
    return codes


def parse_reward(reward: RewardConfig | Mapping[str, float] | None) -> RewardConfig:
    """A RewardConfig from None (the defaults), a RewardConfig or a dict of its fields."""
    if reward is None:
        return RewardConfig()
    if isinstance(reward, RewardConfig):
        return reward
    if isinstance(reward, Mapping):
        names = {f.name for f in dataclasses.fields(RewardConfig)}
        unknown = sorted(set(reward) - names)
        if unknown:
            raise ValueError(f"unknown reward field(s) {unknown}; expected some of {sorted(names)}")
        return RewardConfig(**reward)
    raise TypeError(
        f"reward must be a RewardConfig, a dict of its fields or None, got {type(reward).__name__}"
    )
