"""A plain-Python reference implementation of the escape-room rules (SPEC §2 and §3).

One world, written from the SPEC and the README's determinism section alone (not from the
C++ core), as readable single-world code: every float operation is a ``np.float32`` scalar
operation in the SPEC's order, with the core's random draws and its own sin/cos/atan2. It
is the oracle of the differential tests (``tests/test_reference.py`` steps it beside a
one-world :class:`~escape_room_env.SimManager` and asserts equal outputs) and the
"what you would write yourself" peer. It is slow (about a millisecond per step): use it to
check, never to train.

Two layers:

- :class:`ReferenceWorld` holds one world's state and steps it exactly like one world of the
  native ``SimManager`` (manual ``reset_flag``, the three autoreset modes, the exported
  outputs as attributes).
- :class:`ReferenceEscapeRoomEnv` is a ``gymnasium.Env`` around it.

Where the SPEC leaves a detail open (the order of float operations, comparison operators,
tie-breaks), the choice is the core's; each such place is marked ``# SPEC-ambiguous:``.

Why it ships in the wheel although the package never imports it (``import escape_room_env``
does not load it, so it costs nothing at run time, and it needs only numpy and gymnasium):
it is the executable form of the rules that the README and ``docs/rules-precision.md``
point users to, for reading the rules as code and for checking a port or a modified core
against them; and the test suite and ``benchmarks/bench_peers.py`` run against the
installed package (CI installs the wheel, then runs ``pytest``), so the oracle must be
installed with the core it checks.

>>> from escape_room_env.reference import ReferenceEscapeRoomEnv
>>> env = ReferenceEscapeRoomEnv(seed=3)
>>> obs, info = env.reset(seed=3)
>>> obs, reward, terminated, truncated, info = env.step([3, 0, 2])
>>> obs.shape, type(reward), info["elapsed_step"]
((87,), <class 'float'>, 1)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces as gym_spaces

from escape_room_env import spaces as er_spaces
from escape_room_env.config import RewardConfig

__all__ = [
    "ROOM_TYPES",
    "ReferenceEscapeRoomEnv",
    "ReferenceWorld",
    "atan2",
    "draw",
    "generate_level",
    "sincos",
]

f32 = np.float32

# --------------------------------------------------------------------------------------------
# Constants (SPEC §2). Every float is a float32.
# --------------------------------------------------------------------------------------------

ROOM_TYPES = ("button", "double_button", "cube_blocking", "cube_button")

PI = f32(np.pi)
TWO_PI = f32(2) * PI
MIN_X, MAX_X = f32(-10), f32(10)  # play area, metres
MIN_Y = f32(0)
WALL_THICKNESS = f32(1)
DOOR_HALF_WIDTH = f32(20) / f32(3) * f32(0.5)
EXIT_MARGIN = f32(1.5)  # exit_y = L + 1.5
AGENT_RADIUS = f32(1)
CUBE_HALF = f32(1.5)
BUTTON_HALF = f32(0.65)
MOVE_DISTANCE = (f32(0), f32(1) / f32(3), f32(2) / f32(3), f32(1))  # metres per step
TURN_STEP = PI / f32(16)  # radians per rotate unit
# sin and cos of move_angle k·π/4, correctly rounded (0, ±1, ±√½).
# SPEC-ambiguous: exact values, not the polynomial sincos (which gives cos(π/2) ≈ -4e-8).
_SQRT_HALF = f32(np.sqrt(0.5))
_ANGLE_COS = (f32(1), _SQRT_HALF, f32(0), -_SQRT_HALF, f32(-1), -_SQRT_HALF, f32(0), _SQRT_HALF)
_ANGLE_SIN = (f32(0), _SQRT_HALF, f32(1), _SQRT_HALF, f32(0), -_SQRT_HALF, f32(-1), -_SQRT_HALF)
NUM_SUBSTEPS = 4
NUM_ITERATIONS = 2
INV_MASS_AGENT = f32(1)
INV_MASS_CUBE = f32(0.5)
LIDAR_RAYS = 30
LIDAR_RANGE = f32(40)
ENTITY_SLOTS = 6
OBS_BASE = 87

# Entity types of the observation (SPEC §3).
TYPE_NONE, TYPE_BUTTON, TYPE_CUBE, TYPE_WALL, TYPE_AGENT, TYPE_DOOR = range(6)

# Termination reasons (SPEC §2.5).
REASON_RUNNING, REASON_TIME_LIMIT, REASON_ESCAPED = -1, 0, 1

# A world's lifecycle between steps (part of the state hash).
STATUS_RUNNING = 0
STATUS_PENDING_RESET = 1  # NEXT_STEP: the last step ended the episode; the next one resets
STATUS_FROZEN = 2  # DISABLED: the episode ended; frozen until the user resets

MAX_AGENTS = 4
MAX_ROOMS = 4  # generated levels: 1-4 rooms (rooms are 40/3 m long whatever their number)

_ZERO, _ONE, _HALF = f32(0), f32(1), f32(0.5)

# --------------------------------------------------------------------------------------------
# Deterministic math (README "Determinism"): our own sin/cos/atan2, never libm's.
# --------------------------------------------------------------------------------------------

_TWO_OVER_PI = f32(2.0 / np.pi)
_PIO2_1 = f32(1.5703125)
_PIO2_2 = f32(4.837512969970703125e-4)
_PIO2_3 = f32(7.54978995489188216e-8)
_S1, _S2, _S3 = f32(-1.6666654611e-1), f32(8.3321608736e-3), f32(-1.9515295891e-4)
_C1, _C2, _C3 = f32(4.166664568298827e-2), f32(-1.388731625493765e-3), f32(2.443315711809948e-5)
_TAN_PI_8 = f32(0.41421356237309503)
_A1, _A2, _A3, _A4 = (
    f32(8.05374449538e-2),
    f32(1.38776856032e-1),
    f32(1.99777106478e-1),
    f32(3.33329491539e-1),
)
_PI_2 = PI * _HALF
_PI_4 = PI * f32(0.25)


def sincos(x: np.float32) -> tuple[np.float32, np.float32]:
    """(sin x, cos x) in float32 with the core's range reduction and polynomials.

    >>> s, c = sincos(np.float32(0.0))
    >>> float(s), float(c)
    (0.0, 1.0)
    """
    x = f32(x)
    # SPEC-ambiguous: "round" is the core's half-away-from-zero (int)(v + 0.5f), in float32.
    v = x * _TWO_OVER_PI
    k = f32(int(v + _HALF)) if v >= _ZERO else f32(-int(_HALF - v))
    r = ((x - k * _PIO2_1) - k * _PIO2_2) - k * _PIO2_3
    r2 = r * r
    s = r + r * r2 * (_S1 + r2 * (_S2 + r2 * _S3))
    c = (_ONE - r2 * _HALF) + r2 * r2 * (_C1 + r2 * (_C2 + r2 * _C3))
    quadrant = int(k) & 3
    if quadrant == 0:
        return s, c
    if quadrant == 1:
        return c, -s
    if quadrant == 2:
        return -s, -c
    return -c, s


def atan2(y: np.float32, x: np.float32) -> np.float32:
    """atan2(y, x) in float32 with the core's octant reduction and polynomial; atan2(0, 0) = 0.

    >>> round(float(atan2(np.float32(1.0), np.float32(0.0))), 6)
    1.570796
    """
    y, x = f32(y), f32(x)
    ax, ay = abs(x), abs(y)
    hi, lo = (ay, ax) if ay > ax else (ax, ay)
    if hi == _ZERO:
        return _ZERO
    z = lo / hi
    reduced = z > _TAN_PI_8
    if reduced:
        z = (z - _ONE) / (z + _ONE)
    z2 = z * z
    a = z + z * z2 * (((_A1 * z2 - _A2) * z2 + _A3) * z2 - _A4)
    if reduced:
        a = a + _PI_4
    if ay > ax:
        a = _PI_2 - a
    if x < _ZERO:
        a = PI - a
    if y < _ZERO:
        a = -a
    return a


# --------------------------------------------------------------------------------------------
# Randomness (SPEC §2.6): counter-based draws keyed by (seed, episode, index).
# --------------------------------------------------------------------------------------------

_U64 = (1 << 64) - 1


def splitmix64(z: int) -> int:
    """The SplitMix64 finaliser (no increment)."""
    z &= _U64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64
    return z ^ (z >> 31)


def draw(seed: int, episode: int, index: int) -> int:
    """Draw ``index`` of episode ``episode`` of the stream ``seed``: sm(sm(sm(s) ^ e) ^ i).

    >>> draw(0, 0, 0) == splitmix64(splitmix64(splitmix64(0)))
    True
    """
    return splitmix64(splitmix64(splitmix64(seed) ^ (episode & 0xFFFFFFFF)) ^ index)


class _Draws:
    """The draws of one episode, in order: ``uniform(a, b)`` = a + (b - a)·f, float32."""

    def __init__(self, seed: int, episode: int):
        self.seed, self.episode, self.index = seed, episode, 0

    def unit(self) -> np.float32:
        d = draw(self.seed, self.episode, self.index)
        self.index += 1
        return f32(d >> 40) * f32(2.0**-24)

    def uniform(self, a, b) -> np.float32:
        a, b = f32(a), f32(b)
        return a + (b - a) * self.unit()


# --------------------------------------------------------------------------------------------
# The level of one episode (SPEC §2.1).
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Box:
    """An axis-aligned static box (wall piece or door), metres."""

    min_x: np.float32
    min_y: np.float32
    max_x: np.float32
    max_y: np.float32
    door: int = -1  # index of the door this box is, -1 for a wall


@dataclasses.dataclass
class Level:
    """Everything the generator draws for one episode."""

    num_rooms: int
    length: np.float32  # L, the normalisation length
    exit_y: np.float32
    statics: list[Box]  # left, right, back, front wall, then per room: left piece, right piece, door
    door_centres: list[tuple[np.float32, np.float32]]
    door_momentary: list[bool]
    buttons: list[tuple[np.float32, np.float32, int]]  # x, y, group (= the room's door)
    cube_starts: list[tuple[np.float32, np.float32]]
    band_edges: list[np.float32]  # band k spans [band_edges[k], band_edges[k + 1])
    spawns: list[tuple[np.float32, np.float32, np.float32]]  # x, y, yaw per agent


def door_is_momentary(kind: str) -> bool:
    """Only the cube_button room's door is momentary (open while pressed); others latch."""
    return kind == "cube_button"


def room_edge(k: int) -> np.float32:
    """y where room k starts, k·40/3 evaluated left to right: (40·k)/3."""
    # SPEC-ambiguous: (40·k)/3, not k·(40/3) (they differ in the last bit for some k).
    return f32(40) * f32(k) / f32(3)


def default_rooms(num_agents: int) -> tuple[str, ...]:
    """The default sequence (SPEC §2.1).

    >>> default_rooms(2)
    ('double_button', 'cube_blocking', 'cube_button')
    """
    first = "button" if num_agents == 1 else "double_button"
    return (first, "cube_blocking", "cube_button")


def generate_level(rooms: Sequence[str], num_agents: int, seed: int, episode: int) -> Level:
    """Draws episode ``episode`` of stream ``seed``: spawns first, then each room."""
    rng = _Draws(seed, episode)
    n = len(rooms)
    length = room_edge(n)
    exit_y = length + EXIT_MARGIN

    spawns = []
    jitter = min(f32(3.75), f32(10) / f32(num_agents) - f32(1.05))
    for i in range(num_agents):
        centre = MIN_X + f32(20) * (f32(i) + _HALF) / f32(num_agents)
        x = centre + rng.uniform(-jitter, jitter)
        y = rng.uniform(1.1, 2.0)
        yaw = rng.uniform(-PI / f32(8), PI / f32(8))
        spawns.append((x, y, yaw))

    top = (length + f32(6)) + WALL_THICKNESS
    statics = [
        Box(f32(-11), f32(-1), f32(-10), top),  # left
        Box(f32(10), f32(-1), f32(11), top),  # right
        Box(f32(-11), f32(-1), f32(11), f32(0)),  # back
        Box(f32(-11), length + f32(6), f32(11), top),  # front, closes the exit zone
    ]
    door_centres, door_momentary = [], []
    buttons, cube_starts = [], []
    band_edges = [room_edge(k) for k in range(n + 1)]
    for k, kind in enumerate(rooms):
        y0 = band_edges[k]
        y1 = room_edge(k + 1) - WALL_THICKNESS  # the near face of the room's end wall
        wall_top = y1 + WALL_THICKNESS
        door_x = rng.uniform(-5, 5)
        gap_lo, gap_hi = door_x - DOOR_HALF_WIDTH, door_x + DOOR_HALF_WIDTH
        left = Box(MIN_X, y1, gap_lo, wall_top)
        right = Box(gap_hi, y1, MAX_X, wall_top)
        door = Box(gap_lo, y1, gap_hi, wall_top, door=k)
        statics += [left, right, door]
        # SPEC-ambiguous: the door's centre is (door_x, y1 + ½), the gap's nominal centre.
        door_centres.append((door_x, y1 + WALL_THICKNESS * _HALF))
        door_momentary.append(door_is_momentary(kind))
        if kind == "button":
            x = rng.uniform(-8.7, 8.7)
            y = rng.uniform(y0 + f32(3.7), y1 - f32(2.65))
            buttons.append((x, y, k))
        elif kind == "double_button":
            for lo, hi in ((-8.7, -1.3), (1.3, 8.7)):
                x = rng.uniform(lo, hi)
                y = rng.uniform(y0 + f32(3.7), y1 - f32(2.65))
                buttons.append((x, y, k))
        elif kind == "cube_blocking":
            negative = rng.unit() < _HALF
            x = rng.uniform(6.3, 8.7)
            # In room 0 every button's lower y bound is at least y0 + 3.7 (clear of the spawns).
            y = rng.uniform(y0 + (f32(3.7) if k == 0 else f32(1.3)), y1 - f32(6))
            buttons.append((-x if negative else x, y, k))
            for dx in (f32(-3.2), _ZERO, f32(3.2)):
                cube_starts.append((door_x + dx, y1 - f32(3)))
        elif kind == "cube_button":
            bx = rng.uniform(-5, 5)
            by = rng.uniform(y0 + f32(3.7), y1 - f32(3))
            buttons.append((bx, by, k))
            cx = bx - f32(5) if bx >= _ZERO else bx + f32(5)
            cy = rng.uniform(y0 + f32(4.6), y1 - f32(3.6))
            cube_starts.append((cx, cy))
        else:  # pragma: no cover - validated by the constructor
            raise ValueError(kind)
    return Level(
        num_rooms=n,
        length=length,
        exit_y=exit_y,
        statics=statics,
        door_centres=door_centres,
        door_momentary=door_momentary,
        buttons=buttons,
        cube_starts=cube_starts,
        band_edges=band_edges,
        spawns=spawns,
    )


# --------------------------------------------------------------------------------------------
# Contacts (SPEC §2.3). Each returns the correction of the first body, or None.
# --------------------------------------------------------------------------------------------

_SKIP = 1e-3  # broad phase in Python floats: skips only pairs whose result is exactly "none"


def circle_box_push(cx, cy, radius, min_x, min_y, max_x, max_y):
    """The displacement that takes a disc out of a box, or None when they do not overlap.

    Outside the box: along (c - p), p the box's closest point, by the penetration. Centre
    inside (or on the surface): out through the nearest face, ties in the order -x, +x, -y, +y.
    """
    if (
        float(cx) + float(radius) + _SKIP < float(min_x)
        or float(cx) - float(radius) - _SKIP > float(max_x)
        or float(cy) + float(radius) + _SKIP < float(min_y)
        or float(cy) - float(radius) - _SKIP > float(max_y)
    ):
        return None
    px = min(max(cx, min_x), max_x)
    py = min(max(cy, min_y), max_y)
    dx, dy = cx - px, cy - py
    # SPEC-ambiguous: "|c - p| < radius" is tested as |c - p|² < radius², and the push is
    # (c - p)·((radius - |c - p|) / |c - p|), as in the core.
    d2 = dx * dx + dy * dy
    if not d2 < radius * radius:
        return None
    if d2 > _ZERO:
        d = np.sqrt(d2)
        s = (radius - d) / d
        return dx * s, dy * s
    faces = (
        (cx - min_x, -(cx - min_x + radius), _ZERO),
        (max_x - cx, max_x - cx + radius, _ZERO),
        (cy - min_y, _ZERO, -(cy - min_y + radius)),
        (max_y - cy, _ZERO, max_y - cy + radius),
    )
    depth, px, py = faces[0]
    for face in faces[1:]:
        if face[0] < depth:
            depth, px, py = face
    return px, py


def box_box_push(a, b):
    """The displacement that moves box a = (min_x, min_y, max_x, max_y) out of box b, or None.

    Along the axis of least penetration, i.e. the shorter of the two moves that separate
    the boxes (ties: x), away from b's centre (coincident centres: +x).
    """
    a_min_x, a_min_y, a_max_x, a_max_y = a
    b_min_x, b_min_y, b_max_x, b_max_y = b
    if (
        float(a_max_x) + _SKIP < float(b_min_x)
        or float(b_max_x) + _SKIP < float(a_min_x)
        or float(a_max_y) + _SKIP < float(b_min_y)
        or float(b_max_y) + _SKIP < float(a_min_y)
    ):
        return None
    # SPEC-ambiguous: overlap from the intervals, direction from the sums of the bounds, the
    # move to the far face (separates even a box spanning the other), as in the core.
    ox = min(a_max_x, b_max_x) - max(a_min_x, b_min_x)
    oy = min(a_max_y, b_max_y) - max(a_min_y, b_min_y)
    if ox <= _ZERO or oy <= _ZERO:
        return None
    neg_x = (a_min_x + a_max_x) < (b_min_x + b_max_x)
    neg_y = (a_min_y + a_max_y) < (b_min_y + b_max_y)
    mx = a_max_x - b_min_x if neg_x else b_max_x - a_min_x
    my = a_max_y - b_min_y if neg_y else b_max_y - a_min_y
    if mx <= my:
        return (-mx if neg_x else mx), _ZERO
    return _ZERO, (-my if neg_y else my)


def cube_box(c):
    """A cube's square (min_x, min_y, max_x, max_y) around its centre."""
    return c[0] - CUBE_HALF, c[1] - CUBE_HALF, c[0] + CUBE_HALF, c[1] + CUBE_HALF


# --------------------------------------------------------------------------------------------
# One world.
# --------------------------------------------------------------------------------------------


class ReferenceWorld:
    """One escape-room world, stepped like one world of the native ``SimManager``.

    Inputs: ``reset_flag`` (the ``reset`` tensor's entry) and the ``actions`` of
    :meth:`step`. Outputs, after construction, :meth:`reset_episode` and :meth:`step`:
    ``observation`` (A, D), ``reward`` (A,), ``done``, ``terminated``, ``truncated``,
    ``termination_reason``, ``steps_remaining``, ``progress`` (A,), ``elapsed_steps``,
    ``doors_opened``, and ``final_observation`` / ``final_progress`` /
    ``final_elapsed_steps`` / ``final_doors_opened`` (written on SAME_STEP done steps).

    Args:
        num_agents: 1 to 4.
        rooms: room types (1 to 4 of ``ROOM_TYPES``); None: the default sequence.
        seed: the random stream s; construction starts episode 0 of it.
        episode_len: steps before truncation.
        reward: a ``RewardConfig`` or a dict of its fields.
        autoreset_mode: ``"same_step"``, ``"next_step"`` or ``"disabled"`` (or an
            ``AutoresetMode``).

    >>> w = ReferenceWorld(num_agents=2, seed=1, autoreset_mode="next_step")
    >>> rewards, done = w.step([[3, 0, 2], [3, 0, 2]])
    >>> w.observation.shape, w.steps_remaining
    ((2, 90), 199)
    """

    def __init__(
        self,
        *,
        num_agents: int = 1,
        rooms: Sequence[str] | None = None,
        seed: int = 0,
        episode_len: int = 200,
        reward: RewardConfig | Mapping[str, float] | None = None,
        autoreset_mode: Any = "same_step",
    ):
        if not 1 <= num_agents <= MAX_AGENTS:
            raise ValueError(f"num_agents must be 1 to {MAX_AGENTS}, got {num_agents}")
        rooms = (
            default_rooms(num_agents)
            if rooms is None
            else tuple([rooms] if isinstance(rooms, str) else rooms)
        )
        if not 1 <= len(rooms) <= MAX_ROOMS:
            raise ValueError(f"rooms must list 1 to {MAX_ROOMS} room types, got {len(rooms)}")
        for k, room in enumerate(rooms):
            if room not in ROOM_TYPES:
                raise ValueError(f"rooms[{k}]: unknown room type {room!r}; expected one of {ROOM_TYPES}")
            if room == "double_button" and num_agents < 2:
                raise ValueError("room type 'double_button' needs num_agents >= 2")
        if episode_len < 1:
            raise ValueError(f"episode_len must be >= 1, got {episode_len}")
        self.num_agents = num_agents
        self.rooms = rooms
        self.episode_len = int(episode_len)
        self.reward_config = _parse_reward(reward)
        self.autoreset_mode = _parse_mode(autoreset_mode)
        self.obs_dim = OBS_BASE + 3 * (num_agents - 1)

        self.seed = int(seed) & _U64
        self.episode = 0
        self.reset_flag = 0  # the `reset` tensor's entry: non-zero resets at the next step
        self.status = STATUS_RUNNING

        self.final_observation = np.zeros((num_agents, self.obs_dim), dtype=np.float32)
        self.final_progress = np.zeros(num_agents, dtype=np.float32)
        self.final_elapsed_steps = 0
        self.final_doors_opened = 0
        self._start_episode()

    # -- episodes ---------------------------------------------------------------------------

    def reset_episode(self, seed: int | None = None) -> None:
        """Starts a new episode now (``SimManager.reset_worlds``): a seed restarts the stream
        (s = seed, e = 0), otherwise e += 1."""
        if seed is None:
            self.episode = (self.episode + 1) & 0xFFFFFFFF
        else:
            self.seed, self.episode = int(seed) & _U64, 0
        self._start_episode()

    def _start_episode(self) -> None:
        level = generate_level(self.rooms, self.num_agents, self.seed, self.episode)
        self.level = level
        self.pos = [[x, y] for x, y, _ in level.spawns]
        self.yaw = [yaw for _, _, yaw in level.spawns]
        self.max_y = [y for _, y, _ in level.spawns]
        self.escaped = [False] * self.num_agents
        self.cubes = [[x, y] for x, y in level.cube_starts]
        self.door_open = [False] * level.num_rooms
        self.steps_left = self.episode_len
        self.status = STATUS_RUNNING
        self.reward = np.zeros(self.num_agents, dtype=np.float32)
        self.done = False
        self.terminated = False
        self.truncated = False
        self.termination_reason = REASON_RUNNING
        self.observation = self.observe()

    # -- outputs ----------------------------------------------------------------------------

    @property
    def steps_remaining(self) -> int:
        return self.steps_left

    @property
    def elapsed_steps(self) -> int:
        return self.episode_len - self.steps_left

    @property
    def doors_opened(self) -> int:
        return sum(self.door_open)

    @property
    def progress(self) -> np.ndarray:
        return np.array(self.max_y, dtype=np.float32)

    # -- stepping ---------------------------------------------------------------------------

    def step(self, actions) -> tuple[np.ndarray, bool]:
        """One step of the world with per-agent actions (A, 3); returns (rewards, done).

        A set ``reset_flag`` (or, in NEXT_STEP, a done previous step) starts a new episode
        instead; in DISABLED a done world stays frozen.
        """
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_agents, 3)
        mode = self.autoreset_mode
        manual = self.reset_flag != 0
        self.reset_flag = 0
        if manual or self.status == STATUS_PENDING_RESET:
            self.episode = (self.episode + 1) & 0xFFFFFFFF  # both at once count as one
            self._start_episode()
            return self.reward, self.done
        if self.status == STATUS_FROZEN:
            self.reward = np.zeros(self.num_agents, dtype=np.float32)  # frozen
            return self.reward, self.done

        self._simulate(actions)
        self.observation = self.observe()
        if self.done:
            if mode == "same_step":
                self.final_observation = self.observation.copy()
                self.final_progress = self.progress
                self.final_elapsed_steps = self.elapsed_steps
                self.final_doors_opened = self.doors_opened
                reward, terminated, truncated, reason = (
                    self.reward,
                    self.terminated,
                    self.truncated,
                    self.termination_reason,
                )
                self.episode = (self.episode + 1) & 0xFFFFFFFF
                self._start_episode()
                self.reward, self.done = reward, True
                self.terminated, self.truncated, self.termination_reason = terminated, truncated, reason
            else:
                self.status = STATUS_PENDING_RESET if mode == "next_step" else STATUS_FROZEN
        return self.reward, self.done

    def _simulate(self, actions: np.ndarray) -> None:
        num_agents = self.num_agents
        # Clamp, then turn (SPEC §2.2).
        moves = []
        for a in range(num_agents):
            amount = int(np.clip(actions[a, 0], 0, 3))
            angle = int(np.clip(actions[a, 1], 0, 7))
            turn = int(np.clip(actions[a, 2], 0, 4))
            yaw = self.yaw[a] + f32(2 - turn) * TURN_STEP
            if yaw > PI:  # wrap into (-π, π]
                yaw = yaw - TWO_PI
            if yaw <= -PI:
                yaw = yaw + TWO_PI
            self.yaw[a] = yaw
            sin_yaw, cos_yaw = sincos(yaw)
            fx, fy = -sin_yaw, cos_yaw  # forward
            rx, ry = cos_yaw, sin_yaw  # right
            sin_t, cos_t = _ANGLE_SIN[angle], _ANGLE_COS[angle]
            dx = cos_t * fx + sin_t * rx
            dy = cos_t * fy + sin_t * ry
            dist = MOVE_DISTANCE[amount]
            quarter = f32(0.25)
            moves.append((dist * dx * quarter, dist * dy * quarter))

        # Four substeps of motion and contact resolution (SPEC §2.3).
        for _ in range(NUM_SUBSTEPS):
            for a in range(num_agents):
                self.pos[a][0] = self.pos[a][0] + moves[a][0]
                self.pos[a][1] = self.pos[a][1] + moves[a][1]
            for _ in range(NUM_ITERATIONS):
                self._agent_cube_contacts()
                self._agent_agent_contacts()
                self._cube_cube_contacts()
                self._cube_static_contacts()
                self._agent_static_contacts()
            self._agent_static_contacts()

        # Buttons and doors (SPEC §2.4).
        pressed = [self._button_pressed(b) for b in self.level.buttons]
        changed = False
        for door, momentary in enumerate(self.level.door_momentary):
            group = [p for p, (_, _, g) in zip(pressed, self.level.buttons) if g == door]
            all_pressed = bool(group) and all(group)
            new_state = all_pressed if momentary else (self.door_open[door] or all_pressed)
            if new_state != self.door_open[door]:
                self.door_open[door] = new_state
                changed = True
        if changed:
            self._cube_static_contacts()
            self._agent_static_contacts()

        # Time, reward, termination (SPEC §2.5).
        self.steps_left -= 1
        self.reward = self._rewards()
        self.terminated, self.truncated, self.termination_reason = False, False, REASON_RUNNING
        if all(self.escaped):
            self.terminated, self.truncated, self.termination_reason = True, False, REASON_ESCAPED
        elif self.steps_left <= 0:
            self.terminated, self.truncated, self.termination_reason = False, True, REASON_TIME_LIMIT
        self.done = self.terminated or self.truncated

    # -- contacts ---------------------------------------------------------------------------

    def _statics(self):
        """Walls and closed doors in the SPEC's order."""
        return [s for s in self.level.statics if s.door < 0 or not self.door_open[s.door]]

    def _agent_cube_contacts(self) -> None:
        # Inverse masses: the agent takes 2/3 of the correction, the cube 1/3.
        share_agent = INV_MASS_AGENT / (INV_MASS_AGENT + INV_MASS_CUBE)
        share_cube = INV_MASS_CUBE / (INV_MASS_AGENT + INV_MASS_CUBE)
        for p in self.pos:
            for c in self.cubes:
                push = circle_box_push(p[0], p[1], AGENT_RADIUS, *cube_box(c))
                if push is None:
                    continue
                p[0], p[1] = p[0] + push[0] * share_agent, p[1] + push[1] * share_agent
                c[0], c[1] = c[0] - push[0] * share_cube, c[1] - push[1] * share_cube

    def _agent_agent_contacts(self) -> None:
        reach = AGENT_RADIUS + AGENT_RADIUS
        for i in range(self.num_agents):
            for j in range(i + 1, self.num_agents):
                a, b = self.pos[i], self.pos[j]
                if (
                    abs(float(b[0]) - float(a[0])) > 2.0 + _SKIP
                    or abs(float(b[1]) - float(a[1])) > 2.0 + _SKIP
                ):
                    continue
                dx, dy = b[0] - a[0], b[1] - a[1]
                d2 = dx * dx + dy * dy
                if not d2 < reach * reach:
                    continue
                if d2 > _ZERO:
                    # SPEC-ambiguous: each moves by d·(½(2 - |d|) / |d|), as in the core.
                    dist = np.sqrt(d2)
                    s = _HALF * (reach - dist) / dist
                    hx, hy = dx * s, dy * s
                else:
                    hx, hy = _HALF * reach, _ZERO  # coincident centres push along +x
                a[0], a[1] = a[0] - hx, a[1] - hy
                b[0], b[1] = b[0] + hx, b[1] + hy

    def _cube_cube_contacts(self) -> None:
        for i in range(len(self.cubes)):
            for j in range(i + 1, len(self.cubes)):
                a, b = self.cubes[i], self.cubes[j]
                push = box_box_push(cube_box(b), cube_box(a))  # moves j out of i (+x if coincident)
                if push is None:
                    continue
                hx, hy = push[0] * _HALF, push[1] * _HALF
                a[0], a[1] = a[0] - hx, a[1] - hy
                b[0], b[1] = b[0] + hx, b[1] + hy

    def _cube_static_contacts(self) -> None:
        statics = self._statics()
        for c in self.cubes:
            for s in statics:
                push = box_box_push(cube_box(c), (s.min_x, s.min_y, s.max_x, s.max_y))
                if push is not None:
                    c[0], c[1] = c[0] + push[0], c[1] + push[1]

    def _agent_static_contacts(self) -> None:
        statics = self._statics()
        for p in self.pos:
            for s in statics:
                push = circle_box_push(p[0], p[1], AGENT_RADIUS, s.min_x, s.min_y, s.max_x, s.max_y)
                if push is not None:
                    p[0], p[1] = p[0] + push[0], p[1] + push[1]

    def _button_pressed(self, button) -> bool:
        """Any agent disc or cube overlaps the button's square (strictly)."""
        bx, by, _ = button
        lo_x, lo_y, hi_x, hi_y = bx - BUTTON_HALF, by - BUTTON_HALF, bx + BUTTON_HALF, by + BUTTON_HALF
        for x, y in self.pos:
            dx = x - min(max(x, lo_x), hi_x)
            dy = y - min(max(y, lo_y), hi_y)
            if dx * dx + dy * dy < AGENT_RADIUS * AGENT_RADIUS:
                return True
        reach = CUBE_HALF + BUTTON_HALF
        for c in self.cubes:
            if abs(c[0] - bx) < reach and abs(c[1] - by) < reach:
                return True
        return False

    # -- reward -----------------------------------------------------------------------------

    def _rewards(self) -> np.ndarray:
        cfg = self.reward_config
        scale, slack = f32(cfg.progress_scale), f32(cfg.slack_penalty)
        bonus, radius, escape = f32(cfg.group_bonus), f32(cfg.group_radius), f32(cfg.escape_bonus)
        exit_y = self.level.exit_y
        deltas = []
        for a in range(self.num_agents):
            new_max = max(self.max_y[a], min(self.pos[a][1], exit_y))
            deltas.append(new_max - self.max_y[a])
            self.max_y[a] = new_max
        rewards = np.zeros(self.num_agents, dtype=np.float32)
        for a in range(self.num_agents):
            if self.escaped[a]:
                continue  # an escaped agent earns nothing more
            delta = deltas[a]
            if delta > _ZERO:
                r = scale * delta
                if self.num_agents > 1 and all(abs(m - self.max_y[a]) <= radius for m in self.max_y):
                    r = r * bonus
            else:
                r = -slack
            if self.pos[a][1] >= exit_y:
                self.escaped[a] = True
                r = r + escape
            rewards[a] = r
        return rewards

    # -- observations -----------------------------------------------------------------------

    def observe(self) -> np.ndarray:
        """The flat observation of every agent, (A, D) float32 (SPEC §3)."""
        level = self.level
        length = level.length
        obs = np.zeros((self.num_agents, self.obs_dim), dtype=np.float32)
        statics = self._statics()
        for a in range(self.num_agents):
            x, y = self.pos[a]
            yaw = self.yaw[a]
            sin_yaw, cos_yaw = sincos(yaw)
            row = obs[a]
            # SPEC-ambiguous: "/ L" is a multiplication by the float32 1 / L, as in the core.
            inv_length = _ONE / length
            frame = (x, y, -sin_yaw, cos_yaw, cos_yaw, sin_yaw, inv_length)
            row[0] = (x - MIN_X) * inv_length
            row[1] = (y - MIN_Y) * inv_length
            row[2] = _ZERO
            row[3] = (self.max_y[a] - MIN_Y) * inv_length
            row[4] = yaw / PI
            row[5] = f32(self.steps_left) / f32(self.episode_len)

            band = self._band(y)
            if band < level.num_rooms:
                target, is_open = level.door_centres[band], _ONE if self.door_open[band] else _ZERO
            else:
                target, is_open = (_ZERO, level.exit_y), _ONE
            row[6], row[7] = self._polar(frame, target)
            row[8] = is_open

            if band < level.num_rooms:
                lo, hi = level.band_edges[band], level.band_edges[band + 1]
                entities = []
                for i, (bx, by, _) in enumerate(level.buttons):
                    if lo <= by < hi:
                        entities.append((bx, by, TYPE_BUTTON, i))
                for i, (cx, cy) in enumerate(self.cubes):
                    if lo <= cy < hi:
                        entities.append((cx, cy, TYPE_CUBE, i))
                # Nearest first by distance in metres (before the 1 / L scaling, which could
                # merge two distances into one); ties: buttons first, then lower index.
                entities.sort(key=lambda e: (self._distance(frame, e), e[2], e[3]))
                for slot, (ex, ey, kind, _) in enumerate(entities[:ENTITY_SLOTS]):
                    base = 9 + 3 * slot
                    row[base], row[base + 1] = self._polar(frame, (ex, ey))
                    row[base + 2] = f32(kind) / f32(6)

            for k, (dist, kind) in enumerate(self._lidar(a, statics)):
                if dist is None:  # no hit within 40 m
                    row[27 + 2 * k], row[28 + 2 * k] = _ONE, _ZERO
                else:
                    row[27 + 2 * k] = dist / LIDAR_RANGE
                    row[28 + 2 * k] = f32(kind) / f32(6)

            slot = 0
            for b in range(self.num_agents):
                if b == a:
                    continue
                base = OBS_BASE + 3 * slot
                row[base], row[base + 1] = self._polar(frame, self.pos[b])
                row[base + 2] = _ONE if self.escaped[b] else _ZERO
                slot += 1
        return obs

    def _band(self, y) -> int:
        """The band holding y: room k, or the exit zone n (clamped to [0, n])."""
        band = 0
        for edge in self.level.band_edges[1:]:
            if y >= edge:
                band += 1
        return band

    @staticmethod
    def _distance(frame, target):
        vx, vy = target[0] - frame[0], target[1] - frame[1]
        return np.sqrt(vx * vx + vy * vy)

    @staticmethod
    def _polar(frame, target):
        """(distance / L, bearing / π) of target seen from the agent, bearing + to the right."""
        x, y, fx, fy, rx, ry, inv_length = frame
        vx, vy = target[0] - x, target[1] - y
        dist = np.sqrt(vx * vx + vy * vy)
        ahead = vx * fx + vy * fy
        right = vx * rx + vy * ry
        return dist * inv_length, atan2(right, ahead) / PI

    def _lidar(self, a: int, statics) -> list[tuple[np.float32 | None, int]]:
        """30 rays from agent a's centre: (distance, type) of the nearest hit within 40 m,
        or (None, 0). Ties go to the first target in the order statics, cubes, agents."""
        ox, oy = self.pos[a]
        sin_yaw, cos_yaw = sincos(self.yaw[a])
        fx, fy = -sin_yaw, cos_yaw
        hits = []
        for k in range(LIDAR_RAYS):
            s, c = _RAY_TABLE[k]
            # The heading rotated counter-clockwise by 2πk/30.
            dx = fx * c - fy * s
            dy = fx * s + fy * c
            best, kind = None, TYPE_NONE
            for box in statics:
                t = _ray_box(ox, oy, dx, dy, box.min_x, box.min_y, box.max_x, box.max_y)
                if t is not None and t <= LIDAR_RANGE and (best is None or t < best):
                    best, kind = t, TYPE_WALL if box.door < 0 else TYPE_DOOR
            for cx, cy in self.cubes:
                t = _ray_box(ox, oy, dx, dy, cx - CUBE_HALF, cy - CUBE_HALF, cx + CUBE_HALF, cy + CUBE_HALF)
                if t is not None and t <= LIDAR_RANGE and (best is None or t < best):
                    best, kind = t, TYPE_CUBE
            for b in range(self.num_agents):
                if b == a:
                    continue
                t = _ray_circle(ox, oy, dx, dy, self.pos[b][0], self.pos[b][1], AGENT_RADIUS)
                if t is not None and t <= LIDAR_RANGE and (best is None or t < best):
                    best, kind = t, TYPE_AGENT
            hits.append((best, kind))
        return hits

    # -- state access (tests) -----------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """A copy of the mutable state: agent_pos (A, 2), agent_yaw, agent_max_y,
        agent_escaped (A,), cube_pos (C, 2), door_open (n,), seed, episode, steps_left."""
        return {
            "agent_pos": np.array(self.pos, dtype=np.float32).reshape(self.num_agents, 2),
            "agent_yaw": np.array(self.yaw, dtype=np.float32),
            "agent_max_y": np.array(self.max_y, dtype=np.float32),
            "agent_escaped": np.array(self.escaped, dtype=bool),
            "cube_pos": np.array(self.cubes, dtype=np.float32).reshape(len(self.cubes), 2),
            "door_open": np.array(self.door_open, dtype=bool),
            "seed": self.seed,
            "episode": self.episode,
            "steps_left": self.steps_left,
        }

    def set_state(self, **fields) -> None:
        """Overwrites any of :meth:`get_state`'s fields, then recomputes the observation."""
        for name, value in fields.items():
            if name == "agent_pos":
                value = np.asarray(value, dtype=np.float32).reshape(self.num_agents, 2)
                self.pos = [[f32(x), f32(y)] for x, y in value]
            elif name == "agent_yaw":
                self.yaw = [f32(v) for v in np.asarray(value, dtype=np.float32).reshape(self.num_agents)]
            elif name == "agent_max_y":
                self.max_y = [f32(v) for v in np.asarray(value, dtype=np.float32).reshape(self.num_agents)]
            elif name == "agent_escaped":
                self.escaped = [bool(v) for v in np.asarray(value).reshape(self.num_agents)]
            elif name == "cube_pos":
                value = np.asarray(value, dtype=np.float32).reshape(len(self.cubes), 2)
                self.cubes = [[f32(x), f32(y)] for x, y in value]
            elif name == "door_open":
                self.door_open = [bool(v) for v in np.asarray(value).reshape(self.level.num_rooms)]
            elif name == "steps_left":
                self.steps_left = int(value)
            else:
                raise KeyError(f"unknown state field {name!r}")
        self.observation = self.observe()

    def state_hash(self) -> int:
        """64-bit FNV-1a over seed, episode, steps left, status, agents (x, y, yaw, max_y,
        escaped), door states and cube positions (SPEC §4, README "Determinism").

        SPEC-ambiguous: the byte layout is the core's, little-endian: seed u64, episode u32,
        steps_left u32, status u8 (0 running, 1 NEXT_STEP reset pending, 2 DISABLED frozen),
        per agent x, y, yaw, max_y as float32 bits and escaped u8, one u8 per door of the
        level, then x, y (float32) per cube of the level.
        """
        h = _FNV_OFFSET
        chunks = [
            self.seed.to_bytes(8, "little"),
            self.episode.to_bytes(4, "little"),
            int(self.steps_left).to_bytes(4, "little", signed=True),
            int(self.status).to_bytes(1, "little"),
        ]
        for a in range(self.num_agents):
            chunks.append(
                np.array([self.pos[a][0], self.pos[a][1], self.yaw[a], self.max_y[a]], dtype="<f4").tobytes()
            )
            chunks.append(bytes([1 if self.escaped[a] else 0]))
        chunks.append(bytes(1 if o else 0 for o in self.door_open))
        for c in self.cubes:
            chunks.append(np.array(c, dtype="<f4").tobytes())
        for byte in b"".join(chunks):
            h = ((h ^ byte) * _FNV_PRIME) & _U64
        return h


_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3

_RAY_TABLE = [sincos(f32(k) * (TWO_PI / f32(LIDAR_RAYS))) for k in range(LIDAR_RAYS)]


def _ray_box(ox, oy, dx, dy, min_x, min_y, max_x, max_y):
    """Distance along the ray to an AABB (0 from inside), or None."""
    t_near, t_far = f32(-np.inf), f32(np.inf)
    for o, d, lo, hi in ((ox, dx, min_x, max_x), (oy, dy, min_y, max_y)):
        if d == _ZERO:  # parallel to the slab: inside it everywhere or nowhere
            if o < lo or o > hi:
                return None
            continue
        # SPEC-ambiguous: slab distances multiply by the float32 1 / d, as in the core.
        inv = _ONE / d
        t1, t2 = (lo - o) * inv, (hi - o) * inv
        if t1 > t2:
            t1, t2 = t2, t1
        t_near, t_far = max(t_near, t1), min(t_far, t2)
    if t_far < max(t_near, _ZERO):
        return None
    return max(t_near, _ZERO)


def _ray_circle(ox, oy, dx, dy, cx, cy, radius):
    """Distance along the (unit) ray to a disc (0 from inside), or None."""
    # SPEC-ambiguous: the quadratic's form is the core's (m = o - c, b = m·d, c = m·m - r²).
    mx, my = ox - cx, oy - cy
    c = (mx * mx + my * my) - radius * radius
    if c <= _ZERO:
        return _ZERO
    b = mx * dx + my * dy
    disc = b * b - c
    if b > _ZERO or disc < _ZERO:
        return None
    return max(-b - np.sqrt(disc), _ZERO)


def _parse_reward(reward) -> RewardConfig:
    if reward is None:
        return RewardConfig()
    if isinstance(reward, RewardConfig):
        return reward
    if isinstance(reward, Mapping):
        return RewardConfig(**reward)
    raise TypeError(
        f"reward must be a RewardConfig, a dict of its fields or None, got {type(reward).__name__}"
    )


def _parse_mode(mode) -> str:
    name = getattr(mode, "name", mode)
    key = str(name).lower().replace("-", "_")
    if key not in ("same_step", "next_step", "disabled"):
        raise ValueError(f"autoreset_mode must be 'same_step', 'next_step' or 'disabled', got {mode!r}")
    return key


# --------------------------------------------------------------------------------------------
# gymnasium.Env
# --------------------------------------------------------------------------------------------


class ReferenceEscapeRoomEnv(gymnasium.Env):
    """The reference world as a ``gymnasium.Env`` (slow: for checking, not training).

    With one agent the spaces are the native env's (``Box((87,))``, ``MultiDiscrete([4, 8,
    5])``), ``step`` returns a (87,) observation and a Python float reward. With A > 1 agents
    the observation space is ``Box((A, D))``, the action space ``MultiDiscrete`` of shape
    (A, 3), and ``step`` returns obs (A, D), rewards as a float32 array (A,), and the
    world's terminated / truncated flags.

    Episodes: construction starts episode 0 of stream ``seed``; ``reset(seed=s)`` restarts
    the stream (s, episode 0); ``reset()`` without a seed always starts the next episode of
    the current stream (e += 1), the first one included, exactly as the native
    ``EscapeRoomEnv`` does. Default ``autoreset_mode="disabled"``: a finished episode stays
    frozen (reward 0, same flags) until ``reset()``. The other keyword arguments are
    :class:`ReferenceWorld`'s.

    >>> env = ReferenceEscapeRoomEnv(num_agents=2, seed=0)
    >>> obs, info = env.reset()
    >>> obs.shape, env.action_space.shape
    ((2, 90), (2, 3))
    """

    metadata = {"render_modes": []}

    def __init__(self, *, autoreset_mode: Any = "disabled", **world_options: Any):
        self.world = ReferenceWorld(autoreset_mode=autoreset_mode, **world_options)
        num_agents = self.world.num_agents
        length = len(self.world.rooms) * 40.0 / 3.0  # SPEC §3 "Bounds": R = the walled area's diagonal / L
        single = er_spaces.observation_space(num_agents, math.hypot(20.0, length + 6.0) / length)
        if num_agents == 1:
            self.observation_space = single
            self.action_space = er_spaces.action_space()
        else:
            self.observation_space = gym_spaces.Box(
                low=np.tile(single.low, (num_agents, 1)),
                high=np.tile(single.high, (num_agents, 1)),
                dtype=np.float32,
            )
            self.action_space = gym_spaces.MultiDiscrete(
                np.tile(np.array([4, 8, 5], dtype=np.int64), (num_agents, 1))
            )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.world.reset_episode(seed)
        return self._obs(), self._info()

    def step(self, action):
        action = np.asarray(action)
        if not np.issubdtype(action.dtype, np.integer):
            raise TypeError(f"action must be integers, got dtype {action.dtype}")
        num_agents = self.world.num_agents
        if action.shape not in ((num_agents, 3),) + (((3,),) if num_agents == 1 else ()):
            raise ValueError(f"action must have shape ({num_agents}, 3), got {action.shape}")
        action = action.reshape(num_agents, 3)
        for a in range(num_agents):
            for k, n in enumerate((4, 8, 5)):
                if not 0 <= action[a, k] < n:
                    raise ValueError(f"action[{a}][{k}] = {action[a, k]} is outside [0, {n})")
        self.world.step(action)
        w = self.world
        reward = float(w.reward[0]) if num_agents == 1 else w.reward.copy()
        return self._obs(), reward, bool(w.terminated), bool(w.truncated), self._info()

    def _obs(self) -> np.ndarray:
        obs = self.world.observation
        return obs[0].copy() if self.world.num_agents == 1 else obs.copy()

    def _info(self) -> dict[str, Any]:
        w = self.world
        return {
            "progress": float(w.max_y[0]) if w.num_agents == 1 else w.progress,
            "termination_reason": w.termination_reason,
            "elapsed_step": w.elapsed_steps,
            "doors_opened": w.doors_opened,
        }

    # -- state access ----------------------------------------------------------------------

    def state_hash(self) -> int:
        """The world's 64-bit FNV-1a state hash."""
        return self.world.state_hash()

    def get_state(self) -> dict[str, Any]:
        """See :meth:`ReferenceWorld.get_state`."""
        return self.world.get_state()

    def set_state(self, **fields) -> None:
        """See :meth:`ReferenceWorld.set_state`."""
        self.world.set_state(**fields)
