"""Custom levels (SPEC §2.7): ASCII grids compiled by the core into the same level data the
procedural generator writes, so the rules, observations, replays and pictures treat both alike.

A level is text, one character per cell of ``cell_size`` metres (row 0 is the largest y)::

    #  wall          .  floor (space too)   S  agent spawn (facing +y)
    C  cube          E  exit cell           1-8  door of group k
    a-h  button of group 1-8 (a opens 1)

or the dict form ``{"ascii": ..., "momentary": [2], "cell_size": 2.0, "name": "..."}`` (doors are
latching unless their group is listed in ``momentary``). Give one, or a list assigned round-robin
(world w plays level w mod n), as ``SimManager(levels=...)`` or the gymnasium kwarg ``levels``.

>>> from escape_room_env.levels import compile_level
>>> level = compile_level('''
... #####
... #.E.#
... #111#
... #.a.#
... #.S.#
... #####
... ''')
>>> level.doors.tolist(), level.door_groups.tolist(), level.band_y.tolist()
([[2.0, 6.0, 8.0, 8.0]], [1], [0.0, 8.0])
>>> level.spawns.tolist(), level.exit_y
([[5.0, 3.0]], 9.0)
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Union

import numpy as np

from escape_room_env import _core
from escape_room_env.config import as_int

__all__ = [
    "CompiledLevel",
    "Level",
    "LevelWarning",
    "compile_level",
    "core_level",
    "level_names",
    "load_level",
    "parse_level",
    "parse_levels",
]

LevelSpec = Union["Level", str, Path, Mapping[str, Any]]
_KEYS = {"ascii", "momentary", "cell_size", "name", "description"}


class LevelWarning(UserWarning):
    """A level that compiles but is almost surely a mistake (an exit no spawn can reach)."""


@dataclasses.dataclass(frozen=True)
class Level:
    r"""A custom level: its rows joined by ``"\n"``, momentary door groups, cell size in metres
    and name.

    ``ascii`` is kept in one canonical form, exactly the rows the core compiles: line ends
    unified (``"\r\n"`` and trailing ``"\r"`` dropped) and empty lines before the first row and
    after the last removed. Nothing else changes: spaces are floor wherever they are (a text
    given as a string, a dict's string or a file is dedented by :func:`parse_level` before it
    gets here; ``Level(...)`` and a list of rows are taken as written). ``to_dict`` stores the
    rows as a list, which ``from_dict`` keeps exactly, so ``Level.from_dict(level.to_dict()) ==
    level`` for every level, and a replay file rebuilds the level that played.

    >>> level = Level("  S.a\r\n  .1.\r\n  E..\r\n", momentary=[1])
    >>> level.rows()
    ['  S.a', '  .1.', '  E..']
    >>> level.to_dict()["ascii"]
    ['  S.a', '  .1.', '  E..']
    >>> Level.from_dict(level.to_dict()) == level
    True
    """

    ascii: str
    momentary: tuple[int, ...] = ()
    cell_size: float = 2.0
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ValueError(f"level name must be a string, got {self.name!r}")
        if not isinstance(self.ascii, str):
            raise ValueError(f"level {self.name!r}: ascii must be a string, got {type(self.ascii).__name__}")
        if isinstance(self.momentary, (str, bytes)) or not isinstance(self.momentary, Iterable):
            raise ValueError(
                f"level {self.name!r}: 'momentary' must be a list of door groups 1-8, got {self.momentary!r}"
            )
        momentary = tuple(self.momentary)
        for g in momentary:
            if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or not 1 <= g <= 8:
                raise ValueError(f"level {self.name!r}: momentary lists door group {g!r}; groups are 1 to 8")
        cell_size = self.cell_size
        if isinstance(cell_size, bool) or not isinstance(cell_size, (int, float, np.integer, np.floating)):
            raise ValueError(f"level {self.name!r}: 'cell_size' must be a number, got {cell_size!r}")
        try:
            cell_size = float(cell_size)
        except OverflowError:  # an integer past float range: the core's range check names it
            cell_size = math.inf
        object.__setattr__(self, "ascii", _canonical(self.ascii))
        object.__setattr__(self, "momentary", tuple(int(g) for g in momentary))
        object.__setattr__(self, "cell_size", cell_size)
        _check_ascii_only(self)  # the core would name the byte; this names the character

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], *, name: str = "") -> Level:
        unknown = sorted(set(spec) - _KEYS)
        if unknown:
            raise ValueError(f"level {name!r}: unknown key(s) {unknown}; expected {sorted(_KEYS)}")
        if "ascii" not in spec:
            raise ValueError(f"level {name!r}: the dict form needs an 'ascii' entry")
        text = spec["ascii"]
        rows_given = isinstance(text, (list, tuple)) and all(isinstance(row, str) for row in text)
        if rows_given:  # explicit rows: kept exactly
            text = "\n".join(row.rstrip("\r") for row in text)
        if not isinstance(text, str):
            raise ValueError(
                f"level {name!r}: 'ascii' must be a string or a list of row strings, got {type(text).__name__}"
            )
        momentary = spec.get("momentary", ())
        if isinstance(momentary, (int, np.integer)) or not all(
            isinstance(g, (int, np.integer)) and not isinstance(g, bool) for g in momentary
        ):
            raise ValueError(
                f"level {name!r}: 'momentary' must be a list of door groups 1-8, got {momentary!r}"
            )
        level_name = spec.get("name", name)
        if not isinstance(level_name, str):
            raise ValueError(f"level {name!r}: 'name' must be a string, got {level_name!r}")
        ascii_text = text if rows_given else _normalise(text)
        return cls(ascii_text, tuple(momentary), spec.get("cell_size", 2.0), level_name)

    def to_dict(self) -> dict[str, Any]:
        """The dict form, ``ascii`` as the list of rows (kept exactly by :meth:`from_dict`, so
        no dedent or blank-row rule can change the level on the way back)."""
        return {
            "name": self.name,
            "ascii": self.rows(),
            "momentary": list(self.momentary),
            "cell_size": self.cell_size,
        }

    def rows(self) -> list[str]:
        return self.ascii.split("\n")

    def compile(self, num_agents: int = 1) -> CompiledLevel:
        """The geometry the core builds from this level (see :func:`compile_level`)."""
        return compile_level(self, num_agents=num_agents)


@dataclasses.dataclass(frozen=True)
class CompiledLevel:
    """A compiled level's geometry in metres (float32 arrays; boxes as rows of
    ``min_x, min_y, max_x, max_y``). ``walls`` starts with the 4 outer walls around the grid;
    ``band_y[k]`` is where room k starts (room k ends at ``band_y[k + 1]``, the top of the k-th door
    row from the bottom; above the last is the exit zone) and ``band_doors[k]`` the door it shows."""

    level: Level
    rows: int
    cols: int
    bounds: tuple[float, float, float, float]
    norm_length: float
    walls: np.ndarray
    doors: np.ndarray
    door_groups: np.ndarray  # 1-based, as written
    momentary_groups: tuple[int, ...]
    buttons: np.ndarray
    button_groups: np.ndarray  # 1-based: the door group each button opens
    cubes: np.ndarray
    spawns: np.ndarray
    num_spawns: int
    exits: np.ndarray
    band_y: np.ndarray
    band_doors: np.ndarray
    exit_y: float
    exit_target: tuple[float, float]
    warnings: tuple[str, ...]

    @property
    def observation_radius(self) -> float:
        """R of SPEC §3: the walled area's diagonal over L (distances in observations are <= R)."""
        min_x, min_y, max_x, max_y = self.bounds
        return float(np.hypot(max_x - min_x, max_y - min_y) / self.norm_length)


def _canonical(text: str) -> str:
    r"""The rows the core compiles from ``text`` (``csrc/level_compiler.cpp``, ``parse_rows``),
    joined by newlines: split at ``"\n"``, trailing ``"\r"`` dropped, empty lines before the
    first row and after the last removed. Idempotent, and the core reads the result back as the
    same rows."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    first = 0
    while first < len(lines) and not lines[first]:
        first += 1
    return "\n".join(lines[first:])


def _normalise(text: str) -> str:
    """Rows as written: line ends unified, blank first and last lines (the layout of a
    triple-quoted string) dropped, and the indentation common to the rows removed. A row of
    spaces inside the level is floor and stays as it is."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    indents = [len(line) - len(line.lstrip(" ")) for line in lines if line.strip()]
    cut = min(indents, default=0)
    return "\n".join(line[cut:] if line.strip() else line[: max(0, len(line) - cut)] for line in lines)


def _check_ascii_only(level: Level) -> None:
    for r, row in enumerate(level.rows()):
        for col, ch in enumerate(row):
            if not ch.isascii():
                raise ValueError(
                    f"level {level.name!r}: row {r}, column {col}: unknown character {ch!r} "
                    "(expected # . space S C E, a door 1-8 or a button a-h)"
                )


def _shipped() -> dict[str, Any]:
    return {
        p.name[: -len(".json")]: p for p in resources.files(__name__).iterdir() if p.name.endswith(".json")
    }


def level_names() -> tuple[str, ...]:
    """Names of the levels shipped with the package, loadable by :func:`load_level`.

    >>> level_names()
    ('cooperation', 'corridor', 'maze')
    """
    return tuple(sorted(_shipped()))


def load_level(name_or_path: str | Path) -> Level:
    """A shipped level by name, or a level file: ``.json`` (the dict form, ``ascii`` a string or a
    list of rows) or any other extension (the ASCII text itself, named after the file).

    >>> load_level("corridor").rows()[:2]
    ['#####', '#EEE#']
    """
    shipped = _shipped()
    if isinstance(name_or_path, str) and name_or_path in shipped:
        return _from_json(shipped[name_or_path].read_text(encoding="utf-8"), name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(
            f"no level named {str(name_or_path)!r}: not a shipped level ({', '.join(sorted(shipped))}) "
            "and not a file"
        )
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return _from_json(text, path.stem)
    return Level(_normalise(text), name=path.stem)


def _from_json(text: str, name: str) -> Level:
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"level {name!r}: not valid JSON ({e})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"level {name!r}: a .json level must hold the dict form, got {type(spec).__name__}")
    spec.setdefault("name", name)
    return Level.from_dict(spec, name=name)


def parse_level(spec: LevelSpec, *, name: str = "") -> Level:
    """A :class:`Level` from any accepted form: a ``Level``; a dict; a string holding a newline
    (the ASCII text); a shipped level's name; or a path to a level file."""
    if isinstance(spec, Level):
        return spec
    if isinstance(spec, Mapping):
        return Level.from_dict(spec, name=name)
    if isinstance(spec, str) and "\n" in spec:
        return Level(_normalise(spec), name=name)
    if isinstance(spec, (str, Path)):
        return load_level(spec)
    raise TypeError(
        f"a level is a Level, a dict, ASCII text, a shipped level's name or a path, got {type(spec).__name__}"
    )


def parse_levels(levels: LevelSpec | Sequence[LevelSpec] | None) -> tuple[Level, ...]:
    """One level or a list of them (round-robin over worlds); None: the generated level."""
    if levels is None:
        return ()
    if isinstance(levels, (Level, str, Path, Mapping)):
        levels = [levels]
    if not isinstance(levels, Sequence):
        raise TypeError(f"levels must be a level or a list of levels, got {type(levels).__name__}")
    if len(levels) == 0:
        raise ValueError("levels is empty; pass None for the generated level")
    return tuple(parse_level(spec, name=f"levels[{i}]") for i, spec in enumerate(levels))


def core_level(level: Level) -> _core.LevelSource:
    """The core's struct of a :class:`Level` (what the simulator compiles)."""
    src = _core.LevelSource()
    src.name, src.ascii, src.momentary, src.cell_size = (
        level.name,
        level.ascii,
        list(level.momentary),
        level.cell_size,
    )
    return src


def compile_level(spec: LevelSpec, num_agents: int = 1) -> CompiledLevel:
    """Compiles a level as the simulator will (for worlds of ``num_agents`` agents).

    Raises ``ValueError`` naming the row and column of the first mistake; an exit that no spawn
    can reach compiles with a :class:`LevelWarning`.
    """
    level = parse_level(spec)
    num_agents = as_int("num_agents", num_agents, 1, 4)
    compiled = _core.compile_level(core_level(level), num_agents)  # ValueError naming row and column
    for message in compiled.warnings:
        warnings.warn(message, LevelWarning, stacklevel=2)
    a = {key: value[0] for key, value in compiled.arrays().items()}  # the core's level arrays, one world
    num_statics, num_doors, num_buttons, num_cubes, num_bands, num_exits = (int(n) for n in a["counts"])
    walls = compiled.num_walls
    min_x, min_y = (float(v) for v in a["origin"])
    return CompiledLevel(
        level=level,
        rows=compiled.rows,
        cols=compiled.cols,
        bounds=(min_x, min_y, compiled.max_x, compiled.max_y),
        norm_length=float(a["norm_length"]),
        walls=a["statics"][:walls].copy(),
        doors=a["statics"][walls:num_statics].copy(),
        door_groups=a["door_group"][:num_doors].astype(np.int32) + 1,
        momentary_groups=tuple(g + 1 for g in range(8) if int(a["momentary_groups"]) >> g & 1),
        buttons=a["button_pos"][:num_buttons].copy(),
        button_groups=a["button_group"][:num_buttons].astype(np.int32) + 1,
        cubes=a["cube_start"][:num_cubes].copy(),
        spawns=a["spawn"][: min(compiled.num_spawns, _core.MAX_AGENTS)].copy(),
        num_spawns=compiled.num_spawns,
        exits=a["exits"][:num_exits].copy(),
        band_y=a["band_y"][: num_bands + 1].copy(),
        band_doors=a["band_door"][:num_bands].astype(np.int32),
        exit_y=float(a["exit_y"]),
        exit_target=(float(a["exit_target"][0]), float(a["exit_target"][1])),
        warnings=tuple(compiled.warnings),
    )
