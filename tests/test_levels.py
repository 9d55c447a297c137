"""Custom levels (SPEC §2.7): the ASCII compiler's geometry and its errors, observations at known
positions (SPEC §3), scripted solves of the shipped levels (live and replayed), round-robin
assignment of levels to worlds, and levels in replay files (SPEC §5.3).

Expected values are worked out by hand from the SPEC geometry: with H rows, W columns and cell
size c, cell (r, col) covers x in [col c, (col + 1) c], y in [(H - 1 - r) c, (H - r) c], and
L = max(W c, H c). Observations are float32: a normalised length is ``value * (1 / L)`` and a
distance ``sqrt(dx^2 + dy^2) * (1 / L)``, in float32 as the core computes them; the bearings chosen
here (0, +-1/4, +-1/2) are exact.
"""

from __future__ import annotations

import json
import math
import re
import struct
import warnings
import zlib

import gymnasium
import numpy as np
import pytest
from helpers import random_actions
from test_replay_format import GOOD, make_config, with_config

import escape_room_env as er
from escape_room_env.action import move_amount, move_angle, rotate
from escape_room_env.errors import ReplayFormatError
from escape_room_env.levels import (
    Level,
    LevelWarning,
    compile_level,
    level_names,
    load_level,
    parse_level,
)
from escape_room_env.replay import read_replay_metadata

F = np.float32
SHIPPED = ("cooperation", "corridor", "maze")
AGENTS_OF = {"cooperation": 2, "corridor": 1, "maze": 1}

# Actions (move_amount, move_angle, rotate) with the heading left as it is (yaw 0: forward is +y).
FORWARD = (move_amount.FAST, move_angle.FORWARD, rotate.NONE)
RIGHT = (move_amount.FAST, move_angle.RIGHT, rotate.NONE)
LEFT = (move_amount.FAST, move_angle.LEFT, rotate.NONE)
STOP = (move_amount.STOP, move_angle.FORWARD, rotate.NONE)


def norm(value: float, length: float) -> np.float32:
    """``value / L`` as the core computes it: value * (1 / L) in float32."""
    return F(value) * (F(1) / F(length))


def polar_r(dx: float, dy: float, length: float) -> np.float32:
    """Distance / L of an offset, in float32 (dot product, correctly rounded sqrt, * 1/L)."""
    return np.sqrt(F(dx) * F(dx) + F(dy) * F(dy)) * (F(1) / F(length))


def type_of(t: int) -> np.float32:
    """An entity type as observed: type / 6."""
    return F(t) / F(6)


# -- a hand-written level with known geometry --------------------------------------------------

# H = 10 rows, W = 9 columns, c = 2.5 m: x in [0, 22.5], y in [0, 25], L = 25.
HAND_ROWS = (
    "EE.#...EE",  # r0  y [22.5, 25]
    "...#....E",  # r1  y [20, 22.5]
    "#11111###",  # r2  y [17.5, 20]   door 1 (cols 1-5) closes room 1
    ".......##",  # r3  y [15, 17.5]
    ".C.S.b.##",  # r4  y [12.5, 15]   cube, spawn of agent 0, button b
    ".......#.",  # r5  y [10, 12.5]
    "2##33#...",  # r6  y [7.5, 10]    door 2 (col 0) and door 3 (cols 3-4) close room 0
    ".ac......",  # r7  y [5, 7.5]     buttons a and c
    "..S......",  # r8  y [2.5, 5]     spawn of agent 1
    "S...#...#",  # r9  y [0, 2.5]     a third spawn, unused by two agents
)
HAND = {"ascii": "\n".join(HAND_ROWS), "cell_size": 2.5, "momentary": [3], "name": "hand"}
HAND_L = 25.0


def test_shipped_level_names():
    assert level_names() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_level_compiles_and_runs_with_random_actions(name):
    agents = AGENTS_OF[name]
    level = compile_level(name, num_agents=agents)
    assert level.level.name == name and level.warnings == ()
    envs = er.EscapeRoomVectorEnv(4 * agents, num_agents=agents, levels=name, seed=0, episode_len=40)
    try:
        assert envs.single_observation_space.high[0] == F(level.observation_radius)
        obs, _ = envs.reset(seed=0)
        assert envs.observation_space.contains(obs)
        rng = np.random.default_rng(0)
        for _ in range(100):  # 2.5 episodes: resets included
            actions = random_actions(rng, 4, agents).reshape(-1, 3)
            obs, rewards, *_ = envs.step(actions)
            assert np.isfinite(obs).all() and np.isfinite(rewards).all()
            assert envs.observation_space.contains(obs), (obs.min(axis=0), obs.max(axis=0))
    finally:
        envs.close()


def test_hand_written_level_compiles_to_the_expected_geometry():
    level = compile_level(HAND, num_agents=2)
    assert (level.rows, level.cols) == (10, 9)
    assert level.bounds == (0.0, 0.0, 22.5, 25.0)
    assert level.norm_length == HAND_L
    # Outer walls one cell thick around the grid (left, right, back, front), then the grid's
    # walls: maximal runs per row, grown over identical runs in the rows below, in row-major order.
    expected_walls = [
        [-2.5, -2.5, 0.0, 27.5],
        [22.5, -2.5, 25.0, 27.5],
        [-2.5, -2.5, 25.0, 0.0],
        [-2.5, 25.0, 25.0, 27.5],
        [7.5, 20.0, 10.0, 25.0],  # r0-r1 col 3 (identical runs merged)
        [0.0, 17.5, 2.5, 20.0],  # r2 col 0
        [15.0, 17.5, 22.5, 20.0],  # r2 cols 6-8 (r3's cols 7-8 differ: not merged)
        [17.5, 12.5, 22.5, 17.5],  # r3-r4 cols 7-8
        [17.5, 10.0, 20.0, 12.5],  # r5 col 7
        [2.5, 7.5, 7.5, 10.0],  # r6 cols 1-2
        [12.5, 7.5, 15.0, 10.0],  # r6 col 5
        [10.0, 0.0, 12.5, 2.5],  # r9 col 4
        [20.0, 0.0, 22.5, 2.5],  # r9 col 8
    ]
    np.testing.assert_array_equal(level.walls, np.array(expected_walls, dtype=F))
    assert level.walls.dtype == F
    np.testing.assert_array_equal(
        level.doors, [[2.5, 17.5, 15.0, 20.0], [0.0, 7.5, 2.5, 10.0], [7.5, 7.5, 12.5, 10.0]]
    )
    assert level.door_groups.tolist() == [1, 2, 3]
    assert level.momentary_groups == (3,)
    np.testing.assert_array_equal(level.buttons, [[13.75, 13.75], [3.75, 6.25], [6.25, 6.25]])
    assert level.button_groups.tolist() == [2, 1, 3]
    np.testing.assert_array_equal(level.cubes, [[3.75, 13.75]])
    # Spawns at cell centres in row-major order.
    np.testing.assert_array_equal(level.spawns, [[8.75, 13.75], [6.25, 3.75], [1.25, 1.25]])
    assert level.num_spawns == 3
    # Rooms between door rows, bottom up: room 0 ends at the top of r6 (y 10) and shows its first
    # door (door index 1, group 2); room 1 ends at the top of r2 (y 20) and shows door index 0.
    np.testing.assert_array_equal(level.band_y, [0.0, 10.0, 20.0])
    assert level.band_doors.tolist() == [1, 0]
    # Exit runs r0 cols 0-1, r0 cols 7-8, r1 col 8 (not identical: three boxes).
    np.testing.assert_array_equal(
        level.exits, [[0.0, 22.5, 5.0, 25.0], [17.5, 22.5, 22.5, 25.0], [20.0, 20.0, 22.5, 22.5]]
    )
    assert level.exit_y == 21.25  # the lowest E-cell centre (r1 col 8)
    # Centroid of the 5 E cells: x (1.25 + 3.75 + 18.75 + 21.25 + 21.25) / 5, y (4 * 23.75 + 21.25) / 5.
    assert level.exit_target == (13.25, 23.25)
    assert level.warnings == ()
    assert level.observation_radius == pytest.approx(math.hypot(22.5, 25.0) / 25.0, rel=1e-12)
    # One agent: the same geometry.
    one = compile_level(HAND)
    np.testing.assert_array_equal(one.walls, level.walls)
    np.testing.assert_array_equal(one.spawns, level.spawns)


def test_hand_written_level_is_what_the_simulator_plays():
    level = compile_level(HAND, num_agents=2)
    sim = er.SimManager(num_worlds=2, num_agents=2, levels=HAND)
    np.testing.assert_array_equal(sim._state("agent_pos")[0], level.spawns[:2])
    np.testing.assert_array_equal(sim._state("agent_yaw")[0], [0.0, 0.0])
    np.testing.assert_array_equal(sim._state("cube_pos")[0, :1], level.cubes)
    statics = sim._state("level_statics")[0]
    np.testing.assert_array_equal(statics[: len(level.walls)], level.walls)
    np.testing.assert_array_equal(statics[len(level.walls) : len(level.walls) + 3], level.doors)
    assert sim._state("level_exit_y")[0] == F(21.25)
    np.testing.assert_array_equal(sim._state("level_norm_length")[0], F(HAND_L))
    np.testing.assert_array_equal(sim._state("level_band_y")[0, :3], [0.0, 10.0, 20.0])


def test_observations_at_spawn_of_the_hand_written_level():
    sim = er.SimManager(num_worlds=1, num_agents=2, levels=HAND)
    obs = sim.observation_tensor().to_numpy()[0]
    L = HAND_L
    # Agent 0 at (8.75, 13.75), yaw 0, in room 1 (y in [10, 20)).
    a0 = obs[0]
    np.testing.assert_array_equal(a0[0:5], [norm(8.75, L), norm(13.75, L), 0.0, norm(13.75, L), 0.0])
    assert a0[5] == 1.0
    # Room 1's door: door 1 (cols 1-5 of r2), centre (8.75, 18.75): straight ahead, closed.
    np.testing.assert_array_equal(a0[6:9], [polar_r(0, 5, L), 0.0, 0.0])
    # Room 1's entities: button b (13.75, 13.75), 5 m to the right, and the cube (3.75, 13.75),
    # 5 m to the left: a tie, buttons first. Buttons a and c lie in room 0.
    np.testing.assert_array_equal(
        a0[9:27].reshape(6, 3),
        [
            [polar_r(5, 0, L), 0.5, type_of(1)],
            [polar_r(-5, 0, L), -0.5, type_of(2)],
            *[[0.0, 0.0, 0.0]] * 4,
        ],
    )
    # Lidar ray 0 (straight ahead, +y) meets closed door 1 at y 17.5: 3.75 m.
    np.testing.assert_array_equal(a0[27:29], [F(3.75) / F(40), type_of(5)])
    # The partner, agent 1 at (6.25, 3.75): offset (-2.5, -10).
    assert a0[87] == polar_r(-2.5, -10, L) and a0[89] == 0.0

    # Agent 1 at (6.25, 3.75) in room 0 (y < 10).
    a1 = obs[1]
    np.testing.assert_array_equal(a1[0:5], [norm(6.25, L), norm(3.75, L), 0.0, norm(3.75, L), 0.0])
    # Room 0's door: the first door of r6, door 2 at col 0, centre (1.25, 8.75): 45 degrees left.
    np.testing.assert_array_equal(a1[6:9], [polar_r(-5, 5, L), -0.25, 0.0])
    # Button c (6.25, 6.25) straight ahead is nearer than button a (3.75, 6.25), 45 degrees left.
    np.testing.assert_array_equal(
        a1[9:27].reshape(6, 3),
        [
            [polar_r(0, 2.5, L), 0.0, type_of(1)],
            [polar_r(-2.5, 2.5, L), -0.25, type_of(1)],
            *[[0.0, 0.0, 0.0]] * 4,
        ],
    )
    # Lidar ray 0 meets the wall r6 cols 1-2 (y from 7.5): 3.75 m, a wall.
    np.testing.assert_array_equal(a1[27:29], [F(3.75) / F(40), type_of(3)])


def test_doorless_level_door_slot_points_at_the_exit_target():
    # W = 7, H = 2, c = 2: L = 14 is the width here.
    level = compile_level("......E\nS......")
    assert level.norm_length == 14.0 and level.band_y.tolist() == [0.0] and level.band_doors.tolist() == []
    assert level.exit_target == (13.0, 3.0) and level.exit_y == 3.0
    sim = er.SimManager(num_worlds=1, levels="E.....E\n.......\n...S...")
    # Two E cells: exit_target is their centroid (7, 5), straight ahead of the spawn (7, 1).
    obs = sim.observation_tensor().to_numpy()[0, 0]
    np.testing.assert_array_equal(obs[0:5], [norm(7, 14), norm(1, 14), 0.0, norm(1, 14), 0.0])
    np.testing.assert_array_equal(obs[6:9], [polar_r(0, 4, 14), 0.0, 1.0])
    np.testing.assert_array_equal(obs[9:27], np.zeros(18, dtype=F))
    # Ray 0 meets the outer front wall at y = 6.
    np.testing.assert_array_equal(obs[27:29], [F(5) / F(40), type_of(3)])

    # The same in the shipped maze (c = 3, 11 x 11: L = 33): E at r1 col 1 (4.5, 28.5), spawn at
    # r9 col 1 (4.5, 4.5); the wall r8 cols 0-4 (y from 6) is straight ahead.
    maze = er.SimManager(num_worlds=1, levels="maze")
    obs = maze.observation_tensor().to_numpy()[0, 0]
    np.testing.assert_array_equal(obs[0:2], [norm(4.5, 33), norm(4.5, 33)])
    np.testing.assert_array_equal(obs[6:9], [polar_r(0, 24, 33), 0.0, 1.0])
    np.testing.assert_array_equal(obs[27:29], [F(1.5) / F(40), type_of(3)])


# -- validation errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ascii", "where", "what"),
    [
        ("S.X\nE..", (0, 2), "unknown character 'X'"),
        ("S..\nE.\t", (1, 2), r"unknown character byte 0x09"),
        ("S..\n..\nE..", (1, 2), "ragged rows: this row has 2 characters, row 0 has 3"),
        ("S..\n....\nE..", (1, 3), "ragged rows: this row has 4 characters, row 0 has 3"),
        ("S..\n\nE..", (1, 0), "ragged rows: this row has 0 characters"),
        ("S.b\n.1a\nE..", (0, 2), "button 'b' opens door group 2, but the level has no door '2'"),
        ("S.a\n12.\nE..", (1, 1), r"door group 2 has no button \(add a 'b'\)"),
        ("S.é\nE..", (0, 2), "unknown character 'é'"),
    ],
    ids=[
        "unknown",
        "tab",
        "short row",
        "long row",
        "empty row",
        "button without door",
        "door without button",
        "non-ASCII",
    ],
)
def test_mistake_in_a_cell_raises_naming_row_and_column(ascii, where, what):
    with pytest.raises(ValueError, match=f"row {where[0]}, column {where[1]}: {what}"):
        compile_level(ascii)


def test_missing_spawn_or_exit_raises():
    with pytest.raises(ValueError, match=r"needs one 'S' per agent: 2 agent\(s\), 1 'S' cell\(s\)"):
        compile_level("S.\nE.", num_agents=2)
    with pytest.raises(ValueError, match="needs one 'S' per agent"):
        er.SimManager(num_worlds=1, num_agents=2, levels="corridor")
    with pytest.raises(ValueError, match="no exit cell 'E'"):
        compile_level("S.\n..")
    assert compile_level("S.\nSE", num_agents=2).num_spawns == 2


@pytest.mark.parametrize(
    ("build", "count", "limit", "where", "what"),
    [
        # 9 doors in one row (a door is a run of one digit): the ninth at column 16.
        (
            lambda n: [".".join("1" * n), "a" + "." * (2 * n - 2), "S" + "." * (2 * n - 3) + "E"],
            lambda level: len(level.doors),
            8,
            (0, 16),
            "more than 8 doors",
        ),
        # Doors in 9 rows, one each: the door bound (8) is met first, in the ninth row. (The
        # compiler's own "doors in more than 8 rows" check can never fire: kMaxRooms = kMaxDoors.)
        (
            lambda n: ["1."] * n + ["aS", "E."],
            lambda level: len(level.band_doors),
            8,
            (8, 0),
            "more than 8 doors",
        ),
        # 17 buttons in one row.
        (
            lambda n: ["a" * n, "1" + "." * (n - 1), "S" + "." * (n - 2) + "E"],
            lambda level: len(level.buttons),
            16,
            (0, 16),
            "more than 16 buttons",
        ),
        # Cubes two cells apart, 9 in row 1 and the rest in row 3: the 17th at row 3, column 15.
        (
            lambda n: [
                "E" + "." * 18,
                ".C" * 9 + ".",
                "." * 19,
                (".C" * (n - 9)).ljust(19, "."),
                "." * 19,
                "S" + "." * 18,
            ],
            lambda level: len(level.cubes),
            16,
            (3, 15),
            "more than 16 cubes",
        ),
        # Isolated wall cells, 10 per wall row (rows 1, 3, ...): 60 boxes + the 4 outer walls = 64;
        # the 61st box at row 13, column 0.
        (
            lambda n: (
                ["S" + "." * 18 + "E"]
                + [row for k in range(0, n, 10) for row in (("#." * min(10, n - k)).ljust(20, "."), "." * 20)]
            ),
            lambda level: len(level.walls) - 4,
            60,
            (13, 0),
            r"the walls merge into more than 60 boxes \(at most 64 walls, 4 of them the outer walls\)",
        ),
        # Separate exit runs in one row: the 17th at column 32.
        (
            lambda n: [".".join("E" * n), "S" + "." * (2 * n - 2)],
            lambda level: len(level.exits),
            16,
            (0, 32),
            "the exit cells merge into more than 16 boxes",
        ),
    ],
    ids=["doors", "door rows", "buttons", "cubes", "wall boxes", "exit boxes"],
)
def test_bounds_exceeded_raise_naming_row_and_column(build, count, limit, where, what):
    assert count(compile_level("\n".join(build(limit)))) == limit
    with pytest.raises(ValueError, match=f"row {where[0]}, column {where[1]}: {what}"):
        compile_level("\n".join(build(limit + 1)))


def test_eight_door_rows_make_eight_rooms():
    level = compile_level("\n".join(["1."] * 8 + ["aS", "E."]))
    # Door rows r0..r7 of 10 rows (c = 2): room k ends at the top of the k-th door row from the bottom.
    assert level.band_y.tolist() == [0.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0]
    assert level.band_doors.tolist() == [7, 6, 5, 4, 3, 2, 1, 0]


CUBE_BASE = ["E...1", ".....", "..C..", ".....", "S...a"]


def with_cell(rows: list[str] | str, r: int, col: int, ch: str) -> str:
    """The level with cell (r, col) replaced by ``ch``."""
    rows = rows.split("\n") if isinstance(rows, str) else list(rows)
    rows[r] = rows[r][:col] + ch + rows[r][col + 1 :]
    return "\n".join(rows)


@pytest.mark.parametrize("neighbour", ["#", "S", "1", "C"])
@pytest.mark.parametrize("cell", [(1, 1), (1, 2), (2, 1), (3, 3)])
def test_cube_with_a_blocking_neighbour_raises(neighbour, cell):
    # The cube at r2 col 2 (or, for two cubes, the first in row-major order) names the other cell.
    first, other = sorted([(2, 2), cell]) if neighbour == "C" else ((2, 2), cell)
    with pytest.raises(
        ValueError,
        match=rf"row {first[0]}, column {first[1]}: a cube 'C' needs its 8 neighbours free of walls, "
        rf"spawns, doors and cubes; row {other[0]}, column {other[1]} is '{neighbour}'",
    ):
        compile_level(with_cell(CUBE_BASE, *cell, neighbour))


@pytest.mark.parametrize("cell", [(0, 2), (2, 0), (4, 2), (2, 4), (4, 3)])
def test_cube_at_the_grid_edge_raises(cell):
    ascii = with_cell(with_cell(CUBE_BASE, 2, 2, "."), *cell, "C")
    with pytest.raises(
        ValueError, match=rf"row {cell[0]}, column {cell[1]}: .* touches the edge of the grid"
    ):
        compile_level(ascii)


def test_cube_next_to_floor_buttons_and_exits_compiles():
    level = compile_level(with_cell(with_cell(CUBE_BASE, 1, 1, "E"), 3, 3, "a"))
    np.testing.assert_array_equal(level.cubes, [[5.0, 5.0]])


@pytest.mark.parametrize(
    ("momentary", "what"),
    [
        ([0], "momentary lists door group 0; groups are 1 to 8"),
        ([9], "momentary lists door group 9; groups are 1 to 8"),
        ([2], "momentary lists door group 2, but the level has no door '2'"),
        ([True], "'momentary' must be a list of door groups 1-8"),
        (1, "'momentary' must be a list of door groups 1-8"),
        (["1"], "'momentary' must be a list of door groups 1-8"),
    ],
)
def test_bad_momentary_groups_raise(momentary, what):
    with pytest.raises(ValueError, match=re.escape(what)):
        compile_level({"ascii": "S.a\n.1.\nE..", "momentary": momentary})


@pytest.mark.parametrize("cell_size", [1.5, 0.0, -2.0, math.nan, math.inf, 1000.5])
def test_bad_cell_size_raises(cell_size):
    with pytest.raises(ValueError, match=r"cell_size must be between 2 .* and 1000 metres"):
        compile_level({"ascii": "S\nE", "cell_size": cell_size})


@pytest.mark.parametrize("cell_size", ["2", True, None])
def test_cell_size_that_is_not_a_number_raises(cell_size):
    with pytest.raises(ValueError, match="'cell_size' must be a number"):
        compile_level({"ascii": "S\nE", "cell_size": cell_size})


def test_unreachable_exit_compiles_with_a_warning():
    with pytest.warns(
        LevelWarning, match=r"row 2, column 0: no exit cell 'E' is reachable from agent 0's spawn"
    ):
        level = compile_level("E..\n###\nS..")
    assert len(level.warnings) == 1
    # Doors count as passable.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compile_level("E..\n#1#\nSa.").warnings == ()


def test_unknown_level_name_lists_the_shipped_levels():
    with pytest.raises(
        ValueError, match=r"no level named 'lava': not a shipped level \(cooperation, corridor, maze\)"
    ):
        load_level("lava")
    with pytest.raises(ValueError, match="cooperation, corridor, maze"):
        er.SimManager(num_worlds=1, levels="lava")


# -- the forms a level may take --------------------------------------------------------------


def test_dict_form_and_list_of_rows():
    rows = ["S.a", ".1.", "E.."]
    as_dict = compile_level({"ascii": rows, "momentary": [1], "cell_size": 3.0, "name": "small"})
    assert as_dict.level == Level("S.a\n.1.\nE..", (1,), 3.0, "small")
    assert as_dict.momentary_groups == (1,)
    np.testing.assert_array_equal(as_dict.spawns, [[1.5, 7.5]])
    np.testing.assert_array_equal(as_dict.doors, [[3.0, 3.0, 6.0, 6.0]])
    assert compile_level({"ascii": "\n".join(rows)}).level == Level("S.a\n.1.\nE..")
    assert Level.from_dict(as_dict.level.to_dict()) == as_dict.level
    with pytest.raises(ValueError, match="unknown key"):
        compile_level({"ascii": rows, "doors": 1})
    with pytest.raises(ValueError, match="needs an 'ascii' entry"):
        compile_level({"name": "x"})


def test_dedent_and_blank_lines_around_the_rows():
    text = """

        S.a
        .1.
        E..

    """
    level = compile_level(text)
    assert level.level.ascii == "S.a\n.1.\nE.."
    assert (level.rows, level.cols) == (3, 3)
    assert compile_level("S.a\r\n.1.\r\nE..\r\n").level.ascii == "S.a\n.1.\nE.."
    # Spaces inside the grid are floor.
    np.testing.assert_array_equal(compile_level("S a\n 1 \nE  ").doors, compile_level(text).doors)


def test_row_of_spaces_is_a_row_of_floor():
    level = compile_level("S  \n   \nE  ")
    assert (level.rows, level.cols) == (3, 3)


def test_list_of_rows_keeps_a_leading_column_of_floor():
    level = compile_level({"ascii": [" S", " E"]})
    assert level.cols == 2
    np.testing.assert_array_equal(level.spawns, [[3.0, 3.0]])


def test_level_files(tmp_path):
    spec = {"name": "from-json", "ascii": ["S.a", ".1.", "E.."], "momentary": [1], "cell_size": 2.5}
    (tmp_path / "one.json").write_text(json.dumps(spec), encoding="utf-8")
    (tmp_path / "two.txt").write_text("\n  S.a\n  .1.\n  E..\n\n", encoding="utf-8")
    (tmp_path / "nameless.json").write_text(json.dumps({"ascii": "S\nE"}), encoding="utf-8")
    assert load_level(tmp_path / "one.json") == Level("S.a\n.1.\nE..", (1,), 2.5, "from-json")
    assert load_level(str(tmp_path / "two.txt")) == Level("S.a\n.1.\nE..", (), 2.0, "two")
    assert load_level(tmp_path / "nameless.json").name == "nameless"
    assert parse_level(tmp_path / "two.txt") == load_level(tmp_path / "two.txt")
    assert compile_level(str(tmp_path / "one.json")).cols == 3
    sim = er.SimManager(num_worlds=2, levels=[tmp_path / "one.json", str(tmp_path / "two.txt")])
    # Spawn at r0 col 0: (c/2, 2.5 c).
    np.testing.assert_array_equal(sim._state("agent_pos")[:, 0], [[1.25, 6.25], [1.0, 5.0]])
    (tmp_path / "bad.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="must hold the dict form"):
        load_level(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_level(tmp_path / "broken.json")
    # Non-ASCII in a file names its cell too.
    (tmp_path / "accent.txt").write_text("S.\nEé", encoding="utf-8")
    with pytest.raises(ValueError, match="row 1, column 1: unknown character 'é'"):
        compile_level(tmp_path / "accent.txt")


def test_levels_argument_errors():
    with pytest.raises(ValueError, match="pass rooms or levels, not both"):
        er.SimManager(num_worlds=1, rooms=["button"], levels="corridor")
    with pytest.raises(ValueError, match="pass rooms or levels, not both"):
        er.EscapeRoomVectorEnv(2, rooms=["button"], levels="corridor")
    with pytest.raises(ValueError, match="levels is empty"):
        er.SimManager(num_worlds=1, levels=[])
    with pytest.raises(TypeError, match="levels must be a level or a list of levels"):
        er.SimManager(num_worlds=1, levels=42)
    with pytest.raises(ValueError, match="row 0, column 2: unknown character 'X'"):
        er.SimManager(num_worlds=1, levels=["corridor", "S.X\nE.."])
    sim = er.SimManager(num_worlds=1)
    assert sim.levels == () and sim.level_of_world(0) is None and len(sim.rooms) == 3


# -- scripted solves -------------------------------------------------------------------------


def corridor_actions() -> list[tuple[int, int, int]]:
    return [FORWARD] * 17


def test_corridor_is_solved_by_walking_straight_ahead(tmp_path):
    # Corridor (c = 2, 12 x 5): spawn r10 col 2 (5, 3); button a r8 col 2 (5, 7), square
    # [4.35, 5.65] x [6.35, 7.65]; door 1 is r5 cols 1-3 (y [12, 14]); E cells r1 (y [20, 22]).
    # FAST FORWARD: y = 3 + k after step k. The disc presses the button once y > 6.35 - 1: step 3.
    # The centre enters the E cells at y = 20: step 17.
    path = tmp_path / "corridor.bin"
    sim = er.SimManager(num_worlds=1, levels="corridor")  # SAME_STEP
    level = compile_level("corridor")
    assert level.doors.tolist() == [[2.0, 12.0, 8.0, 14.0]] and level.exit_y == 21.0
    actions = sim.action_tensor().to_numpy()
    reason = sim.termination_reason_tensor().to_numpy()
    with sim.recording(path):  # reseeds with seed 0: the hashes start here
        hashes = [sim.state_hashes().copy()]
        for k, action in enumerate(corridor_actions(), 1):
            actions[0, 0] = action
            sim.step()
            hashes.append(sim.state_hashes().copy())
            if k < 17:
                np.testing.assert_array_equal(sim._state("agent_pos")[0, 0], [5.0, 3.0 + k])
            assert sim._state("door_open")[0, 0] == (k >= 3 if k < 17 else 0), k
            if k < 17:
                assert sim.doors_opened_tensor().to_numpy()[0, 0] == (k >= 3), k
            if k == 11:  # y = 14: above the door row, in the exit zone: the door slot shows the exit
                obs = sim.observation_tensor().to_numpy()[0, 0]
                np.testing.assert_array_equal(obs[6:9], [polar_r(0, 7, 24), 0.0, 1.0])
            assert reason[0, 0, 0] == (1 if k == 17 else -1), k
        assert sim.terminated_tensor().to_numpy()[0, 0]
        assert sim.reward_tensor().to_numpy()[0, 0, 0] == F(0.05) * F(1.0) + F(1.0)
        # SAME_STEP: the new episode is already showing.
        np.testing.assert_array_equal(sim._state("agent_pos")[0, 0], [5.0, 3.0])

    with er.SimManager.from_replay(path) as replay:
        assert replay.levels == (load_level("corridor"),)
        np.testing.assert_array_equal(replay.state_hashes(), hashes[0])
        reason = replay.termination_reason_tensor().to_numpy()
        for k in range(1, 18):
            last = replay.replay_step()
            assert last is (k == 17)
            np.testing.assert_array_equal(replay.state_hashes(), hashes[k])
            assert reason[0, 0, 0] == (1 if k == 17 else -1), k


def cooperation_plan() -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """(agent 0, agent 1) actions solving "cooperation" (c = 2, 11 x 9).

    Agent 0 spawns at r8 col 6 (13, 5), agent 1 at r9 col 2 (5, 3). Button a (5, 5) holds the
    momentary door 1 (r6 cols 1-2: x [2, 6], y [8, 10]); button b (9, 13) opens door 2 (r6 cols
    6-7: x [12, 16]) for good; the E cells are r1 (y [18, 20]).
    """
    return (
        [(FORWARD, FORWARD)]  # 1: agent 1 to (5, 4) presses a (0.35 from its square): door 1 opens
        + [(FORWARD, STOP)]  # 2: agent 0 to (13, 7), 1 m below the door row
        + [(LEFT, STOP)] * 9  # 3-11: agent 0 to (4, 7), under door 1
        + [(FORWARD, STOP)] * 6  # 12-17: agent 0 through door 1 to (4, 13)
        + [(RIGHT, STOP)] * 5  # 18-22: agent 0 to (9, 13): presses b at x = 8 (step 21), door 2 opens
        + [(FORWARD, STOP)] * 5  # 23-27: agent 0 to (9, 18): escaped
        + [(STOP, RIGHT)] * 9  # 28-36: agent 1 to (14, 4); off the button at x = 7 (step 29)
        + [(STOP, FORWARD)] * 14  # 37-50: agent 1 through door 2 to (14, 18): both escaped
    )


def test_cooperation_is_solved_by_one_agent_holding_the_momentary_door():
    sim = er.SimManager(num_worlds=1, num_agents=2, levels="cooperation", autoreset_mode="disabled")
    np.testing.assert_array_equal(sim._state("agent_pos")[0], [[13.0, 5.0], [5.0, 3.0]])
    actions = sim.action_tensor().to_numpy()
    reason = sim.termination_reason_tensor().to_numpy()
    checkpoints = {
        1: ([[13, 6], [5, 4]], [1, 0], [0, 0]),
        11: ([[4, 7], [5, 4]], [1, 0], [0, 0]),
        17: ([[4, 13], [5, 4]], [1, 0], [0, 0]),
        20: ([[7, 13], [5, 4]], [1, 0], [0, 0]),
        21: ([[8, 13], [5, 4]], [1, 1], [0, 0]),
        27: ([[9, 18], [5, 4]], [1, 1], [1, 0]),
        28: ([[9, 18], [6, 4]], [1, 1], [1, 0]),
        29: ([[9, 18], [7, 4]], [0, 1], [1, 0]),
        36: ([[9, 18], [14, 4]], [0, 1], [1, 0]),
        49: ([[9, 18], [14, 17]], [0, 1], [1, 0]),
        50: ([[9, 18], [14, 18]], [0, 1], [1, 1]),
    }
    for k, (a0, a1) in enumerate(cooperation_plan(), 1):
        actions[0, 0], actions[0, 1] = a0, a1
        sim.step()
        if k in checkpoints:
            pos, doors, escaped = checkpoints[k]
            np.testing.assert_array_equal(sim._state("agent_pos")[0], pos, err_msg=f"step {k}")
            assert sim._state("door_open")[0, :2].tolist() == doors, k
            assert sim._state("agent_escaped")[0].tolist() == escaped, k
        assert reason[0, :, 0].tolist() == ([1, 1] if k == 50 else [-1, -1]), k
    assert sim.terminated_tensor().to_numpy()[0].tolist() == [True, True]


def test_cooperation_door_stays_shut_without_the_holder():
    sim = er.SimManager(num_worlds=1, num_agents=2, levels="cooperation", autoreset_mode="disabled")
    actions = sim.action_tensor().to_numpy()
    for a0, _ in cooperation_plan()[:17]:
        actions[0, 0], actions[0, 1] = a0, STOP
        sim.step()
    # Agent 0 pushed against closed door 1 from below (its bottom face at y 8).
    np.testing.assert_array_equal(sim._state("agent_pos")[0], [[4.0, 7.0], [5.0, 3.0]])
    assert sim._state("door_open")[0, :2].tolist() == [0, 0]


# -- several levels, one per world, and levels in replay files -------------------------------


def test_worlds_play_levels_round_robin(tmp_path):
    names = ["corridor", "maze", "cooperation"]
    spawns = [compile_level(name).spawns[0] for name in names]  # (5, 3), (4.5, 4.5), (13, 5)
    lengths = [24.0, 33.0, 22.0]
    path = tmp_path / "three.bin"
    sim = er.SimManager(num_worlds=7, levels=names, autoreset_mode="next_step")
    assert [level.name for level in sim.levels] == names and sim.rooms == ()
    assert [sim.level_of_world(w) for w in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    with pytest.raises(IndexError):
        sim.level_of_world(7)
    obs = sim.observation_tensor().to_numpy()
    for w in range(7):
        n = w % 3
        np.testing.assert_array_equal(sim._state("agent_pos")[w, 0], spawns[n])
        np.testing.assert_array_equal(
            obs[w, 0, 0:2], [norm(spawns[n][0], lengths[n]), norm(spawns[n][1], lengths[n])]
        )
    assert sim._state("level_norm_length").tolist() == [lengths[w % 3] for w in range(7)]

    rng = np.random.default_rng(1)
    actions = sim.action_tensor().to_numpy()
    with sim.recording(path):
        for _ in range(30):
            a = random_actions(rng, 1, 1)
            actions[:] = a  # one action for every world: worlds of one level stay identical
            sim.step()
            for w in (3, 6):
                np.testing.assert_array_equal(obs[w], obs[0])
            np.testing.assert_array_equal(obs[4], obs[1])
        final = sim.state_hashes().copy()
    assert not np.array_equal(obs[0], obs[1]) and not np.array_equal(obs[1], obs[2])

    meta = read_replay_metadata(path)
    assert meta.world_levels == (0, 1, 2, 0, 1, 2, 0)
    assert [level.name for level in meta.levels] == names
    assert meta.levels == tuple(load_level(name) for name in names)
    assert meta.rooms == () and meta.config["rooms"] == []
    with er.SimManager.from_replay(path) as replay:
        assert replay.levels == sim.levels
        assert [replay.level_of_world(w) for w in range(7)] == [0, 1, 2, 0, 1, 2, 0]
        while not replay.replay_step():
            pass
        np.testing.assert_array_equal(replay.state_hashes(), final)


def test_custom_level_round_trips_through_a_replay(tmp_path):
    path = tmp_path / "hand.bin"
    sim = er.SimManager(num_worlds=2, num_agents=2, levels=HAND)
    with sim.recording(path, seed=5):
        sim.step(3)
    meta = read_replay_metadata(path)
    assert meta.levels == (parse_level(HAND),)
    assert meta.config["levels"] == [
        {"name": "hand", "ascii": list(HAND_ROWS), "momentary": [3], "cell_size": 2.5},
    ]  # the rows as a list: kept exactly on the way back, with no dedent or blank-row rule
    with er.SimManager.from_replay(path) as replay:
        assert replay.levels == (Level(HAND["ascii"], (3,), 2.5, "hand"),)
        while not replay.replay_step():
            pass
        np.testing.assert_array_equal(replay.state_hashes(), sim.state_hashes())


LEVEL_DICT = {"name": "x", "ascii": "SS\nEE", "momentary": [], "cell_size": 2.0}


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"levels": "corridor", "world_levels": [0, 0, 0]}, "levels must list 1 to 1024 levels, got str"),
        ({"levels": [], "world_levels": []}, "levels must list 1 to 1024 levels"),
        ({"world_levels": [0, 0, 0]}, "levels must list 1 to 1024 levels, got NoneType"),
        (
            {"levels": ["corridor"], "world_levels": [0, 0, 0]},
            r"levels\[0\] must be a level's dict form, got str",
        ),
        ({"levels": [{**LEVEL_DICT, "doors": 1}], "world_levels": [0, 0, 0]}, r"levels\[0\]: .*unknown key"),
        ({"levels": [{"name": "x"}], "world_levels": [0, 0, 0]}, r"levels\[0\]: .*needs an 'ascii' entry"),
        (
            {"levels": [{**LEVEL_DICT, "ascii": 5}], "world_levels": [0, 0, 0]},
            r"levels\[0\]: .*'ascii' must be",
        ),
        (
            {"levels": [{**LEVEL_DICT, "momentary": "1"}], "world_levels": [0, 0, 0]},
            r"levels\[0\]: .*'momentary'",
        ),
        (
            {"levels": [{**LEVEL_DICT, "cell_size": "2"}], "world_levels": [0, 0, 0]},
            r"levels\[0\]: .*'cell_size'",
        ),
        ({"levels": [LEVEL_DICT]}, "world_levels must give world w the level w mod len"),
        ({"levels": [LEVEL_DICT, LEVEL_DICT], "world_levels": [0, 0, 0]}, "world_levels must give world w"),
        ({"levels": [LEVEL_DICT], "world_levels": [0, 0]}, "world_levels must give world w"),
        (
            {"levels": [LEVEL_DICT], "world_levels": [0, 0, 0], "rooms": ["button"]},
            r"rooms must be \[\] when the file holds levels",
        ),
    ],
    ids=[
        "levels a string",
        "levels empty",
        "levels missing",
        "level a string",
        "unknown key",
        "no ascii",
        "ascii a number",
        "momentary a string",
        "cell_size a string",
        "world_levels missing",
        "world_levels wrong",
        "world_levels short",
        "rooms with levels",
    ],
)
def test_corrupted_levels_in_a_replay_config_raise(tmp_path, override, reason):
    # GOOD: the test-written replay of test_replay_format (3 worlds, 2 agents: LEVEL_DICT has 2 S).
    config = {**make_config(3, 2, 5), "rooms": [], **override}
    path = tmp_path / "bad.bin"
    path.write_bytes(with_config(json.dumps(config).encode(), GOOD))
    with pytest.raises(ReplayFormatError, match=f"byte 96: config block: {reason}"):
        read_replay_metadata(path)
    with pytest.raises(ReplayFormatError, match=reason):
        er.SimManager.from_replay(path)


def test_levels_in_a_replay_config_are_read_back(tmp_path):
    two = {**LEVEL_DICT, "ascii": "SS.\nEE.", "name": "two"}
    config = {**make_config(3, 2, 5), "rooms": [], "levels": [two, LEVEL_DICT], "world_levels": [0, 1, 0]}
    path = tmp_path / "good.bin"
    path.write_bytes(with_config(json.dumps(config).encode(), GOOD))
    meta = read_replay_metadata(path)
    assert meta.levels == (Level("SS.\nEE.", (), 2.0, "two"), Level("SS\nEE", (), 2.0, "x"))
    assert meta.world_levels == (0, 1, 0)


@pytest.mark.parametrize("ascii", ["S.X\nE..", "S\n."], ids=["unknown character", "no exit"])
def test_replay_config_level_that_does_not_compile_is_a_format_error(tmp_path, ascii):
    source = tmp_path / "ok.bin"
    sim = er.SimManager(num_worlds=1, levels="S.\nE.")
    with sim.recording(source):
        sim.step()
    data = source.read_bytes()
    size = int.from_bytes(data[48:56], "little")
    config = json.loads(data[96 : 96 + size])
    config["levels"][0]["ascii"] = ascii
    path = tmp_path / "bad.bin"
    path.write_bytes(patched_config(data, json.dumps(config).encode()))
    with pytest.raises(ReplayFormatError):
        er.SimManager.from_replay(path)


def patched_config(data: bytes, config: bytes) -> bytes:
    """A recorded file with its config block replaced (header size and CRC fixed)."""
    size = int.from_bytes(data[48:56], "little")
    head = bytearray(data[:96])
    struct.pack_into("<Q", head, 48, len(config))
    struct.pack_into("<I", head, 76, zlib.crc32(config))  # the config block's CRC (format 2)
    struct.pack_into("<I", head, 80, zlib.crc32(bytes(head[:80])))  # the header's
    return bytes(head) + config + data[96 + size :]


# -- the gymnasium layer ---------------------------------------------------------------------


def test_gymnasium_make_with_a_level():
    env = gymnasium.make("EscapeRoom-v0", levels="maze")
    try:
        radius = compile_level("maze").observation_radius
        assert radius == pytest.approx(math.hypot(33, 33) / 33)
        assert env.observation_space.high[0] == F(radius) and env.observation_space.high[6] == F(radius)
        obs, _ = env.reset(seed=0)
        np.testing.assert_array_equal(obs[0:2], [norm(4.5, 33), norm(4.5, 33)])
        assert env.observation_space.contains(obs)
        obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
    finally:
        env.close()


def test_gymnasium_make_vec_with_levels():
    envs = gymnasium.make_vec("EscapeRoom-v0", num_envs=4, levels=["corridor", HAND])
    try:
        # The larger of the two: the hand-written level's (corridor: hypot(10, 24) / 24).
        radius = compile_level(HAND).observation_radius
        assert compile_level("corridor").observation_radius == pytest.approx(math.hypot(10, 24) / 24)
        assert radius > compile_level("corridor").observation_radius
        assert envs.single_observation_space.high[0] == F(radius)
        obs, _ = envs.reset(seed=0)
        np.testing.assert_array_equal(
            obs[:, 0:2], [[norm(5, 24), norm(3, 24)], [norm(8.75, 25), norm(13.75, 25)]] * 2
        )
        obs, *_ = envs.step(envs.action_space.sample())
        assert envs.observation_space.contains(obs)
    finally:
        envs.close()


def test_sb3_vec_env_with_a_level():
    pytest.importorskip("stable_baselines3")
    from escape_room_env.sb3 import EscapeRoomVecEnv

    venv = EscapeRoomVecEnv(2, levels="corridor", seed=0)
    try:
        assert venv.observation_space.high[0] == F(compile_level("corridor").observation_radius)
        obs = venv.reset()
        np.testing.assert_array_equal(obs[:, 0:2], [[norm(5, 24), norm(3, 24)]] * 2)
    finally:
        venv.close()
