"""The batch renderer (SPEC §6): first-person RGB and depth images on constructed scenes with
known answers, checked against the camera model pixel by pixel.

The camera model, worked out from the SPEC: an agent at o with yaw y looks along
f = (-sin y, cos y) with right r = (cos y, sin y) from eye height 1.5. Column j of a W-pixel
image casts the ray o + s d with d = f + u r, u = (2 (j + 0.5) - W) / W (90 degree horizontal
field of view); row i of H has elevation tangent v = (H - 2 (i + 0.5)) / W (square pixels, so
the vertical field of view is 2 atan(H / W); v > 0 looks up). A body met at ray parameter s
(horizontal distance s |d|) shows in a pixel when the ray is still below its top there:
looking down (v < 0) if it comes before the floor, s <= 1.5 / -v; looking up if
1.5 + s v <= height (walls and doors 2.5 m, cubes 3 m, agents 2 m). The depth is metres along
the view ray, s sqrt(1 + u^2 + v^2), clamped to 40. A ray that meets nothing looking down
shows the floor at s = 1.5 / -v; looking up, the sky at depth 40. Colours are shaded by
1 - 0.6 (depth / 40), and by 0.85 more on faces of constant x.

With yaw 0 (every spawn of a custom level) d = (u, 1): a face at y = Y is met at s = Y - o.y
in every column, which makes the expected rows and depths of a wall easy to write down.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import random_actions

import escape_room_env as er
from escape_room_env.action import move_amount, move_angle, rotate

F = np.float32
STOP = (move_amount.STOP, move_angle.FORWARD, rotate.NONE)

EYE = 1.5
RANGE = 40.0
HEIGHT = {"wall": 2.5, "door": 2.5, "cube": 3.0, "agent": 2.0}
# The renderer's colours (csrc/sim/render.hpp), before shading.
SKY = (140, 190, 235)
FLOOR = (176, 172, 160)
EXIT = (150, 214, 140)
BUTTON = (214, 184, 40)
PRESSED = (255, 236, 96)
WALL = (150, 150, 158)
DOOR = (196, 52, 52)
CUBE = (140, 92, 52)
AGENT = (52, 100, 220)
COLOUR = {"wall": WALL, "door": DOOR, "cube": CUBE, "agent": AGENT}
SIDE_SHADE = 0.85
BUTTON_HALF = 0.65
CUBE_HALF = 1.5


# -- the camera model --------------------------------------------------------------------------


def column_u(width: int) -> np.ndarray:
    return (2.0 * (np.arange(width) + 0.5) - width) / width


def row_v(height: int, width: int) -> np.ndarray:
    return (height - 2.0 * (np.arange(height) + 0.5)) / width


def shaded(colour, depth, face=1.0) -> np.ndarray:
    """colour * (1 - 0.6 depth / 40) * face, rounded half up, computed in float32 as the core
    does; ``depth`` may be an array (the result then has shape depth.shape + (3,))."""
    depth = np.asarray(depth, dtype=F)
    shade = (F(1) - F(0.6) * (depth / F(RANGE))) * F(face)
    return (np.asarray(colour, dtype=F) * shade[..., None] + F(0.5)).astype(np.uint8)


def ray_box(o, d, box):
    """(s_in, s_out, entered through a face of constant x) of the ray o + s d and an AABB."""
    near, far = [], []
    for axis in (0, 1):
        lo, hi = box[axis], box[axis + 2]
        if d[axis] == 0.0:
            inside = lo <= o[axis] <= hi
            near.append(-math.inf if inside else math.inf)
            far.append(math.inf if inside else -math.inf)
        else:
            t1, t2 = (lo - o[axis]) / d[axis], (hi - o[axis]) / d[axis]
            near.append(min(t1, t2))
            far.append(max(t1, t2))
    return max(near), min(far), near[0] > near[1], abs(near[0] - near[1])


def ray_disc(o, d, centre, radius=1.0):
    """Ray parameter of the first hit of a disc ahead (None: missed), and whether the ray grazes
    it so closely that float32 rounding of b^2 - |d|^2 c moves the hit by more than 1e-4."""
    m = (o[0] - centre[0], o[1] - centre[1])
    dd = d[0] * d[0] + d[1] * d[1]
    b = m[0] * d[0] + m[1] * d[1]
    c = m[0] * m[0] + m[1] * m[1] - radius * radius
    disc = b * b - dd * c
    grazing = abs(disc) < 1e-3 * max(b * b, dd)
    if b >= 0.0 or disc < 0.0:
        return None, grazing
    return (-b - math.sqrt(disc)) / dd, grazing


def reference_view(height, width, origin, yaw, bodies, marks=()):
    """The image the camera model predicts, in float64.

    bodies: (kind, box (min_x, min_y, max_x, max_y) or disc centre); kind in HEIGHT.
    marks: (box, colour) floor marks, later ones drawn over earlier ones.
    Returns depth (H, W), rgb (H, W, 3) uint8 and a mask of the pixels too close to a tie
    (a grazed corner, two bodies at the same distance, a top edge, a floor or mark edge) for the
    renderer's float32 to be held to the float64 answer.
    """
    u, v = column_u(width), row_v(height, width)
    forward = (-math.sin(yaw), math.cos(yaw))
    right = (math.cos(yaw), math.sin(yaw))
    depth = np.full((height, width), RANGE)
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    rgb[:] = SKY
    unsure = np.zeros((height, width), dtype=bool)
    eps = 1e-4
    for j in range(width):
        d = (forward[0] + u[j] * right[0], forward[1] + u[j] * right[1])
        hits, column_unsure = [], False  # (s, kind, face)
        for kind, shape in bodies:
            if kind == "agent":
                s, grazing = ray_disc(origin, d, shape)
                face = 1.0
            else:
                s_in, s_out, x_face, corner = ray_box(origin, d, shape)
                grazing = abs(s_in - s_out) < eps or (s_in <= s_out and corner < eps)
                s = max(s_in, 0.0) if s_in <= s_out and s_out >= 0.0 else None
                face = SIDE_SHADE if x_face else 1.0
            column_unsure |= grazing
            if s is not None:
                hits.append((s, kind, face))
        hits.sort(key=lambda h: h[0])
        for a, b in zip(hits, hits[1:]):
            column_unsure |= b[0] - a[0] < eps and (a[1], a[2]) != (b[1], b[2])
        spans = []
        for box, colour in marks:
            s_in, s_out, _, _ = ray_box(origin, d, box)
            if s_in <= s_out and s_out >= 0.0:
                spans.append((s_in, s_out, colour))
        dd = d[0] * d[0] + d[1] * d[1]
        for i in range(height):
            ray_len = math.sqrt(dd + v[i] * v[i])
            shown = None
            if v[i] < 0.0:
                floor_s = EYE / -v[i]
                if hits and hits[0][0] <= floor_s:
                    shown = hits[0]
                    unsure[i, j] |= floor_s - hits[0][0] < eps
                else:
                    shown = (floor_s, "floor", 1.0)
                    unsure[i, j] |= bool(hits) and hits[0][0] - floor_s < eps
            else:
                for hit in hits:
                    top = EYE + hit[0] * v[i] - HEIGHT[hit[1]]
                    unsure[i, j] |= abs(top) < eps
                    if top <= 0.0:
                        shown = hit
                        break
            unsure[i, j] |= column_unsure
            if shown is None:
                continue
            s, kind, face = shown
            colour = COLOUR.get(kind, FLOOR)
            if kind == "floor":
                for s_in, s_out, mark_colour in spans:
                    unsure[i, j] |= min(abs(s - s_in), abs(s - s_out)) < eps
                    if s_in <= s <= s_out:
                        colour = mark_colour
            depth[i, j] = min(s * ray_len, RANGE)
            rgb[i, j] = shaded(colour, depth[i, j], face)
    return depth, rgb, unsure


def assert_image(sim, world, agent, expected, *, max_unsure=0.02):
    """The renderer's image of (world, agent) is the camera model's, where that is not a tie:
    depth within 1e-4 m, each colour channel within 1 (float32 against float64 rounding)."""
    depth, rgb, unsure = expected
    got_depth = sim.depth_tensor().to_numpy()[world, agent, :, :, 0]
    got_rgb = sim.rgb_tensor().to_numpy()[world, agent]
    assert unsure.mean() <= max_unsure, "the scene has too many near-ties to pin"
    sure = ~unsure
    bad = sure & (np.abs(got_depth - depth) > 1e-4)
    assert not bad.any(), (
        f"depth differs at (row, col) {np.argwhere(bad)[:5].tolist()}: got {got_depth[bad][:5]}, want {depth[bad][:5]}"
    )
    diff = np.abs(got_rgb.astype(int) - expected[1].astype(int)).max(-1)
    bad = sure & (diff > 1)
    assert not bad.any(), (
        f"colour differs at (row, col) {np.argwhere(bad)[:5].tolist()}: got {got_rgb[bad][:5].tolist()}, want {rgb[bad][:5].tolist()}"
    )


# -- scenes ------------------------------------------------------------------------------------


def world_bodies(sim, world, skip_agent):
    """Every upright body of a world from its state (walls, closed doors, cubes, other agents)."""
    state = sim._state
    num_statics, _, _, num_cubes, _, _ = (int(n) for n in state("level_counts")[world])
    bodies = []
    for box, door in zip(
        state("level_statics")[world, :num_statics], state("level_static_door")[world, :num_statics]
    ):
        if door < 0:
            bodies.append(("wall", tuple(map(float, box))))
        elif not state("door_open")[world, door]:
            bodies.append(("door", tuple(map(float, box))))
    for c in state("cube_pos")[world, :num_cubes]:
        bodies.append(("cube", (c[0] - CUBE_HALF, c[1] - CUBE_HALF, c[0] + CUBE_HALF, c[1] + CUBE_HALF)))
    for a, p in enumerate(state("agent_pos")[world]):
        if a != skip_agent:
            bodies.append(("agent", (float(p[0]), float(p[1]))))
    return bodies


def world_marks(sim, world):
    """Exit cells, then buttons (bright while an agent disc or a cube overlaps them)."""
    state = sim._state
    _, _, num_buttons, num_cubes, _, num_exits = (int(n) for n in state("level_counts")[world])
    marks = [(tuple(map(float, box)), EXIT) for box in state("level_exits")[world, :num_exits]]
    agents = state("agent_pos")[world].astype(float)
    cubes = state("cube_pos")[world, :num_cubes].astype(float)
    for b in state("level_button_pos")[world, :num_buttons].astype(float):
        nearest = np.clip(agents, b - BUTTON_HALF, b + BUTTON_HALF)
        pressed = (((agents - nearest) ** 2).sum(-1) < 1.0).any() or (
            (np.abs(cubes - b) < CUBE_HALF + BUTTON_HALF).all(-1).any()
        )
        box = (b[0] - BUTTON_HALF, b[1] - BUTTON_HALF, b[0] + BUTTON_HALF, b[1] + BUTTON_HALF)
        marks.append((box, PRESSED if pressed else BUTTON))
    return marks


def expected_view(sim, world, agent):
    """The camera model's image of (world, agent), from the world's state."""
    origin = tuple(map(float, sim._state("agent_pos")[world, agent]))
    yaw = float(sim._state("agent_yaw")[world, agent])
    height, width = sim.render_size
    return reference_view(
        height, width, origin, yaw, world_bodies(sim, world, agent), world_marks(sim, world)
    )


def rerender(sim):
    """One step with every agent standing still, so the images show the state as written."""
    positions = sim._state("agent_pos").copy()
    yaws = sim._state("agent_yaw").copy()
    cubes = sim._state("cube_pos").copy()
    sim.action_tensor().to_numpy()[:] = STOP
    sim.step()
    np.testing.assert_array_equal(sim._state("agent_pos"), positions)
    np.testing.assert_array_equal(sim._state("agent_yaw"), yaws)
    np.testing.assert_array_equal(sim._state("cube_pos"), cubes)


def place(sim, world=0, agents=None, yaws=None, cubes=None):
    if agents is not None:
        for a, p in agents.items():
            sim._state("agent_pos")[world, a] = p
    if yaws is not None:
        for a, y in yaws.items():
            sim._state("agent_yaw")[world, a] = y
    if cubes is not None:
        assert max(cubes) < sim._state("level_counts")[world, 3], "the level has no such cube"
        for k, p in cubes.items():
            sim._state("cube_pos")[world, k] = p
    rerender(sim)


def images(sim):
    return sim.rgb_tensor().to_numpy().copy(), sim.depth_tensor().to_numpy().copy()


# 11 x 7 cells of 2 m: floor x in [2, 20], y in [2, 12]; the far wall's face is y = 12.
ROOM = """
###########
#.........#
#.........#
#.........#
#...S.S...#
#E........#
###########
"""


def camera(width, height, **kwargs) -> er.SimManager:
    """A manager with the batch renderer on, ``width`` x ``height`` pixels a view."""
    return er.SimManager(enable_batch_renderer=True, render_width=width, render_height=height, **kwargs)


def room(num_agents=1, width=32, height=32, **kwargs):
    return camera(width, height, num_worlds=1, num_agents=num_agents, levels=ROOM, num_threads=1, **kwargs)


# -- a wall at a known distance ----------------------------------------------------------------


def test_a_wall_at_3_3_m_fills_rows_11_to_22_with_the_expected_depth():
    # Eye 1.5, wall 2.5 m at s = 3.3: the wall shows for -1.5 / 3.3 <= v <= 1 / 3.3, i.e. with
    # v = (31 - 2 i) / 32, rows 11 (v = 9/32 = 0.281 <= 0.303) to 22 (v = -13/32 >= -0.455).
    sim = room()
    place(sim, agents={0: (11.0, 12.0 - 3.3)})
    depth = sim.depth_tensor().to_numpy()[0, 0, :, :, 0]
    rgb = sim.rgb_tensor().to_numpy()[0, 0]
    u, v = column_u(32), row_v(32, 32)

    wall = slice(11, 23)
    want = 3.3 * np.sqrt(1.0 + u[None, :] ** 2 + v[wall, None] ** 2)
    np.testing.assert_allclose(depth[wall], want, rtol=0, atol=1e-4)
    # Facing the wall's face of constant y: shade 1 - 0.6 depth / 40, nothing more.
    np.testing.assert_array_equal(rgb[wall], shaded(WALL, depth[wall]))
    # Above it the sky: depth exactly 40 and the unshaded sky colour.
    assert (depth[:11] == 40.0).all()
    assert (rgb[:11] == SKY).all()
    # Below it the floor, at s = 1.5 / -v.
    floor = slice(23, 32)
    want = 1.5 / -v[floor, None] * np.sqrt(1.0 + u[None, :] ** 2 + v[floor, None] ** 2)
    np.testing.assert_allclose(depth[floor], want, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(rgb[floor], shaded(FLOOR, depth[floor]))
    # The centre columns of row 16 (v = -1/32): the nearest wall pixels, 3.3 sqrt(1 + 2/32^2).
    assert depth[16, 15] == pytest.approx(3.3 * math.sqrt(1 + 2 / 32**2), abs=1e-4)


@pytest.mark.parametrize("distance", [2.2, 3.3, 4.75, 7.0])
def test_wall_rows_follow_the_distance(distance):
    # The wall's rows: tan of the bottom edge -1.5 / D, of the top edge (2.5 - 1.5) / D.
    sim = room(width=24, height=40)
    place(sim, agents={0: (11.0, 12.0 - distance)})
    v = row_v(40, 24)
    depth = sim.depth_tensor().to_numpy()[0, 0, :, :, 0]
    rows = np.flatnonzero((v >= -1.5 / distance) & (v <= 1.0 / distance))
    on_wall = np.isclose(depth, distance * np.sqrt(1 + column_u(24)[None] ** 2 + v[:, None] ** 2), atol=1e-4)
    assert on_wall.all(1).tolist() == [i in rows for i in range(40)]
    assert_image(sim, 0, 0, expected_view(sim, 0, 0))


def test_a_face_of_constant_x_is_shaded_by_0_85():
    # Yaw pi/2 faces -x: the left wall's face x = 2 at s = 3.3 (d = (-1, u), |d|^2 = 1 + u^2).
    sim = room()
    place(sim, agents={0: (2.0 + 3.3, 7.0)}, yaws={0: np.pi / 2})
    depth = sim.depth_tensor().to_numpy()[0, 0, :, :, 0]
    rgb = sim.rgb_tensor().to_numpy()[0, 0]
    u, v = column_u(32), row_v(32, 32)
    wall = slice(11, 23)
    np.testing.assert_allclose(depth[wall], 3.3 * np.sqrt(1 + u[None] ** 2 + v[wall, None] ** 2), atol=1e-4)
    np.testing.assert_array_equal(rgb[wall], shaded(WALL, depth[wall], SIDE_SHADE))
    assert_image(sim, 0, 0, expected_view(sim, 0, 0))


# -- occlusion between heights -----------------------------------------------------------------

# The cube (3 m) at (11, 9), its near face y = 7.5; the spawn (11, 5); the far wall's face y = 14.
CUBE_ROOM = """
###########
#.........#
#.........#
#....C....#
#.........#
#....S....#
#E........#
###########
"""


def test_a_cube_in_front_of_a_lower_wall_hides_it_in_its_columns():
    sim = camera(32, 32, num_worlds=1, levels=CUBE_ROOM)
    depth = sim.depth_tensor().to_numpy()[0, 0, :, :, 0]
    rgb = sim.rgb_tensor().to_numpy()[0, 0]
    u, v = column_u(32), row_v(32, 32)
    # The cube's face at s = 2.5 spans |u| <= 1.5 / 2.5 = 0.6: columns 6 to 25. Its rows:
    # -1.5 / 2.5 <= v <= (3 - 1.5) / 2.5, i.e. |31 - 2 i| <= 19.2: rows 6 to 25.
    cube_cols = np.flatnonzero(np.abs(u) <= 0.6)
    assert cube_cols.tolist() == list(range(6, 26))
    cube = np.ix_(range(6, 26), cube_cols)
    np.testing.assert_allclose(
        depth[cube], 2.5 * np.sqrt(1 + u[cube_cols][None] ** 2 + v[6:26, None] ** 2), atol=1e-4
    )
    np.testing.assert_array_equal(rgb[cube], shaded(CUBE, depth[cube]))
    # The wall (face at s = 9) shows for -1.5/9 <= v <= 1/9 (rows 14 to 18) in the other
    # columns; over the cube, whose top is higher on screen (v = 0.6), there is no wall at all.
    wall_rows = np.flatnonzero((v >= -1.5 / 9) & (v <= 1 / 9))
    assert wall_rows.tolist() == [14, 15, 16, 17, 18]
    others = np.flatnonzero(np.abs(u) > 0.6)
    np.testing.assert_allclose(
        depth[np.ix_(wall_rows, others)],
        9 * np.sqrt(1 + u[others][None] ** 2 + v[wall_rows, None] ** 2),
        atol=1e-4,
    )
    is_wall_colour = (rgb == shaded(WALL, depth)).all(-1)
    assert not is_wall_colour[:, cube_cols].any()
    assert is_wall_colour[np.ix_(wall_rows, others)].all()
    # Above the cube: sky.
    assert (depth[:6, cube_cols] == 40.0).all() and (rgb[:6, cube_cols] == SKY).all()
    assert_image(sim, 0, 0, expected_view(sim, 0, 0))


# A wall row at y [14, 16] closes off a back room (y [16, 22]) across the whole width (x [2, 28]).
WALL_ROW = """
###############
#.............#
#......C......#
#.............#
###############
#.............#
#.............#
#.............#
#.............#
#.............#
#E.....S......#
###############
"""


def test_a_taller_cube_behind_a_lower_wall_shows_above_it():
    # Camera (15, 4), wall face y = 14 (s = 10), a cube (3 m) in the back room at (15, 18), near
    # face y = 16.5 (s = 12.5). The wall's top is at v = 1 / 10, the cube's at 1.5 / 12.5 = 0.12:
    # with v = (63 - 2 i) / 256, rows 17 (v = 29/256) and 18 (v = 27/256) show the cube, in the
    # columns that meet it (|u| <= 1.5 / 12.5: columns 113 to 142).
    sim = camera(256, 64, num_worlds=1, levels=WALL_ROW)
    place(sim, agents={0: (15.0, 4.0)}, cubes={0: (15.0, 18.0)})
    depth = sim.depth_tensor().to_numpy()[0, 0, :, :, 0]
    rgb = sim.rgb_tensor().to_numpy()[0, 0]
    u, v = column_u(256), row_v(64, 256)
    cube_cols = np.flatnonzero(np.abs(u) <= 1.5 / 12.5)
    assert cube_cols.tolist() == list(range(113, 143))
    ray = np.sqrt(1 + u[None, cube_cols] ** 2 + v[:, None] ** 2)
    np.testing.assert_allclose(depth[17:19, cube_cols], 12.5 * ray[17:19], atol=1e-4)
    np.testing.assert_array_equal(rgb[17:19, cube_cols], shaded(CUBE, depth[17:19, cube_cols]))
    assert (depth[:17, cube_cols] == 40.0).all()
    # Below: the wall, down to v = -1.5 / 10 (row 50), then the floor.
    np.testing.assert_allclose(depth[19:51, cube_cols], 10.0 * ray[19:51], atol=1e-4)
    np.testing.assert_array_equal(rgb[19:51, cube_cols], shaded(WALL, depth[19:51, cube_cols]))
    assert (depth[51:, cube_cols] < 10.0 * ray[51:]).all()
    # Columns beside the cube: sky right above the wall.
    others = np.flatnonzero(np.abs(u) > 0.13)
    assert (depth[:19, others] == 40.0).all()
    assert_image(sim, 0, 0, expected_view(sim, 0, 0))


def test_a_wall_behind_a_lower_agent_shows_above_it():
    # Agent 1 (2 m tall) at (11, 10.3), 1.7 in front of the far wall (face y = 12); the camera
    # at (11, 4). At the centre columns the disc is met at s ~ 5.3: the agent's top is at
    # v = 0.5 / 5.3 = 0.094, the wall's (s = 8) at v = 1 / 8 = 0.125, so with v = (63 - 2 i) / 128
    # rows 24 (v = 0.117) and 25 (v = 0.102) show the wall above the agent.
    sim = room(num_agents=2, width=128, height=64)
    place(sim, agents={0: (11.0, 4.0), 1: (11.0, 10.3)})
    depth = sim.depth_tensor().to_numpy()[0, 0, :, :, 0]
    rgb = sim.rgb_tensor().to_numpy()[0, 0]
    u, v = column_u(128), row_v(64, 128)
    centre = [63, 64]
    for j in centre:
        s_agent, _ = ray_disc((11.0, 4.0), (u[j], 1.0), (11.0, 10.3))
        assert s_agent == pytest.approx(5.3, abs=1e-3)
        ray = np.sqrt(1 + u[j] ** 2 + v**2)
        for i in (24, 25):
            assert depth[i, j] == pytest.approx(8 * ray[i], abs=1e-4)
            assert tuple(rgb[i, j]) == tuple(shaded(WALL, depth[i, j]))
        assert (depth[:24, j] == 40.0).all()
        agent_rows = np.flatnonzero((v >= -1.5 / s_agent) & (v <= 0.5 / s_agent))
        assert agent_rows.tolist() == list(range(26, 50))
        np.testing.assert_allclose(depth[agent_rows, j], s_agent * ray[agent_rows], atol=1e-4)
        assert (rgb[agent_rows, j] == shaded(AGENT, depth[agent_rows, j])).all()
    assert_image(sim, 0, 0, expected_view(sim, 0, 0))
    assert_image(sim, 0, 1, expected_view(sim, 0, 1))


def test_agents_do_not_see_themselves():
    sim = room(num_agents=2)
    place(sim, agents={0: (6.0, 4.0), 1: (16.0, 4.0)})
    # Each agent's own disc would fill the whole image (the eye is inside it).
    for a in range(2):
        assert (sim.depth_tensor().to_numpy()[0, a] > 1.0).all()
        assert_image(sim, 0, a, expected_view(sim, 0, a))


# -- buttons and doors -------------------------------------------------------------------------

# Rows y: r0 [16, 18] ... r3 [10, 12] (door 1 at x [10, 12]) ... r8 [0, 2]. The button at
# (11, 7); the spawns at (9, 3) and (13, 3) (the tests move agent 0 to (11, 3)).
DOOR_ROOM = """
###########
#E........#
#.........#
#####1#####
#.........#
#....a....#
#.........#
#...S.S...#
###########
"""


def door_room(num_agents=1, **kwargs):
    return camera(32, 32, num_worlds=1, num_agents=num_agents, levels=DOOR_ROOM, num_threads=1, **kwargs)


def floor_points(origin, width, height):
    """(x, y) of the floor point each pixel looks at (rows looking up: nan)."""
    u, v = column_u(width), row_v(height, width)
    with np.errstate(divide="ignore"):
        s = np.where(v < 0, 1.5 / -v, np.nan)[:, None]
    return origin[0] + u[None, :] * s, origin[1] + s + 0 * u[None, :]


def test_a_button_is_drawn_on_the_floor_and_brighter_while_pressed():
    sim = door_room(num_agents=2)
    # Agent 1 beside the button, off the camera's left half: released.
    place(sim, agents={0: (11.0, 3.0), 1: (15.0, 7.0)})
    released = sim.rgb_tensor().to_numpy()[0, 0].copy()
    depth = sim.depth_tensor().to_numpy()[0, 0, :, :, 0].copy()
    x, y = floor_points((11.0, 3.0), 32, 32)
    # Floor points well inside the button's square (half 0.65 around (11, 7)) in the columns
    # left of centre, which agent 1 (x >= 12.45 below) cannot hide.
    inside = (np.abs(x - 11.0) < 0.6) & (np.abs(y - 7.0) < 0.6) & (column_u(32) < 0)[None]
    outside = (np.abs(x - 11.0) > 0.7) | (np.abs(y - 7.0) > 0.7)
    assert inside.sum() >= 4
    np.testing.assert_array_equal(released[inside], shaded(BUTTON, depth[inside]))
    floor = outside & (y < 10.0) & (column_u(32) < 0)[None]
    np.testing.assert_array_equal(released[floor], shaded(FLOOR, depth[floor]))
    assert_image(sim, 0, 0, expected_view(sim, 0, 0))

    # Agent 1's disc now overlaps the square (0.8 from its edge): pressed, drawn bright.
    place(sim, agents={1: (11.0 + 0.65 + 0.8, 7.0)})
    pressed = sim.rgb_tensor().to_numpy()[0, 0]
    np.testing.assert_array_equal(sim.depth_tensor().to_numpy()[0, 0, :, :, 0][inside], depth[inside])
    np.testing.assert_array_equal(pressed[inside], shaded(PRESSED, depth[inside]))
    assert (pressed[inside].astype(int).sum(-1) > released[inside].astype(int).sum(-1)).all()
    assert_image(sim, 0, 0, expected_view(sim, 0, 0))


# Door 1 at y [16, 18]; the button at (11, 13), the cube starting at (17, 7), the spawn (11, 3).
CUBE_BUTTON_ROOM = """
###########
#E........#
#####1#####
#.........#
#....a....#
#.........#
#.........#
#.......C.#
#.........#
#....S....#
###########
"""


def test_a_button_under_a_cube_counts_as_pressed_where_it_shows():
    sim = camera(32, 32, num_worlds=1, levels=CUBE_BUTTON_ROOM)
    button = tuple(sim._state("level_button_pos")[0, 0])
    assert button == (11.0, 13.0)
    # The cube overlaps the button's square by 0.15 (|dx| = 2.0 < 1.5 + 0.65): pressed.
    place(sim, agents={0: (11.0, 9.0)}, cubes={0: (13.0, 13.5)})
    assert sim._state("door_open")[0, 0] == 1  # latching: opened by the cube
    marks = world_marks(sim, 0)
    assert marks[-1][1] == PRESSED
    depth = sim.depth_tensor().to_numpy()[0, 0, :, :, 0]
    rgb = sim.rgb_tensor().to_numpy()[0, 0]
    x, y = floor_points(tuple(sim._state("agent_pos")[0, 0]), 32, 32)
    inside = (np.abs(x - button[0]) < 0.6) & (np.abs(y - button[1]) < 0.6) & (column_u(32) < 0)[None]
    assert inside.sum() >= 4
    np.testing.assert_array_equal(rgb[inside], shaded(PRESSED, depth[inside]))
    assert_image(sim, 0, 0, expected_view(sim, 0, 0))


def test_opening_the_door_shows_the_room_behind_it():
    # The door's face at s = 7 spans x in [10, 12]: |u| <= 1/7, columns 14 to 17 (u = +-1/32,
    # +-3/32), which all pass the 2 m gap (|u| < 1/9 at its far end, s = 9) and meet the far
    # wall's face y = 16 at s = 13.
    sim = door_room()
    place(sim, agents={0: (11.0, 3.0)})
    u, v = column_u(32), row_v(32, 32)
    door_cols = np.flatnonzero(np.abs(u) <= 1 / 7)
    assert door_cols.tolist() == [14, 15, 16, 17]
    depth = sim.depth_tensor().to_numpy()[0, 0, :, :, 0]
    rgb = sim.rgb_tensor().to_numpy()[0, 0]
    closed_rows = np.flatnonzero((v >= -1.5 / 7) & (v <= 1 / 7))  # |31 - 2 i| within [-6.9, 4.6]
    assert closed_rows.tolist() == [14, 15, 16, 17, 18]
    cells = np.ix_(closed_rows, door_cols)
    np.testing.assert_allclose(
        depth[cells], 7 * np.sqrt(1 + u[door_cols][None] ** 2 + v[closed_rows, None] ** 2), atol=1e-4
    )
    np.testing.assert_array_equal(rgb[cells], shaded(DOOR, depth[cells]))
    closed_image = images(sim)
    assert_image(sim, 0, 0, expected_view(sim, 0, 0))

    sim._state("door_open")[0, 0] = 1
    rerender(sim)
    depth = sim.depth_tensor().to_numpy()[0, 0, :, :, 0]
    rgb = sim.rgb_tensor().to_numpy()[0, 0]
    far_rows = np.flatnonzero((v >= -1.5 / 13) & (v <= 1 / 13))  # 31 - 2 i within [-3.7, 2.5]
    assert far_rows.tolist() == [15, 16, 17]
    cells = np.ix_(far_rows, door_cols)
    np.testing.assert_allclose(
        depth[cells], 13 * np.sqrt(1 + u[door_cols][None] ** 2 + v[far_rows, None] ** 2), atol=1e-4
    )
    np.testing.assert_array_equal(rgb[cells], shaded(WALL, depth[cells]))
    # Where the door was, above the far wall: sky; below it: the floor of the gap and beyond.
    assert (depth[12:14, 14:18] == 40.0).all() and (rgb[12:14, 14:18] == SKY).all()
    assert (depth[18:23, 14:18] < 13 * np.sqrt(1 + u[door_cols][None] ** 2 + v[18:23, None] ** 2)).all()
    assert not (rgb == shaded(DOOR, depth)).all(-1).any()
    # Outside the door's columns nothing changed.
    others = np.flatnonzero(np.abs(u) > 1 / 7)
    np.testing.assert_array_equal(rgb[:, others], closed_image[0][0, 0][:, others])
    assert_image(sim, 0, 0, expected_view(sim, 0, 0))


def test_a_momentary_door_shows_closed_again_when_released():
    level = {"ascii": DOOR_ROOM, "momentary": [1]}
    sim = camera(32, 32, num_worlds=1, num_agents=2, levels=level)

    def door_pixels():
        rgb, depth = images(sim)
        return (rgb[0, 0] == shaded(DOOR, depth[0, 0, :, :, 0])).all(-1)

    place(sim, agents={0: (11.0, 3.0), 1: (15.0, 7.0)})
    closed = images(sim)
    assert door_pixels()[14:19, 14:18].all()
    place(sim, agents={1: (12.45, 7.0)})
    assert sim._state("door_open")[0, 0] == 1
    assert not door_pixels().any()
    assert_image(sim, 0, 0, expected_view(sim, 0, 0))
    place(sim, agents={1: (15.0, 7.0)})
    assert sim._state("door_open")[0, 0] == 0
    np.testing.assert_array_equal(images(sim)[0], closed[0])
    np.testing.assert_array_equal(images(sim)[1], closed[1])


# -- the floor, the horizon and the sky ---------------------------------------------------------

# 3 x 3 cells of 200 m: the camera at (300, 300), 300 m from the nearest wall, so every row
# looking down sees the floor (at most 1.5 W m away: 120 m for W = 80) and every row looking up
# the sky.
EMPTY = {"ascii": "...\n.S.\n..E", "cell_size": 200.0}


def empty_view(width, height):
    return camera(width, height, num_worlds=1, levels=EMPTY)


def test_depth_increases_toward_the_horizon_on_an_empty_floor():
    sim = empty_view(32, 32)
    depth = sim.depth_tensor().to_numpy()[0, 0, :, :, 0]
    rgb = sim.rgb_tensor().to_numpy()[0, 0]
    u, v = column_u(32), row_v(32, 32)
    floor = depth[16:]
    # Bottom to horizon: never decreasing, strictly increasing until the clamp at 40.
    upward = floor[::-1]
    assert (np.diff(upward, axis=0) >= 0).all()
    below_range = upward[1:] < 40.0
    assert (np.diff(upward, axis=0)[below_range] > 0).all()
    want = np.minimum(1.5 / -v[16:, None] * np.sqrt(1 + u[None] ** 2 + v[16:, None] ** 2), 40.0)
    np.testing.assert_allclose(floor, want, atol=1e-4)
    np.testing.assert_array_equal(rgb[16:], shaded(FLOOR, floor))
    # The bottom row's centre: v = -31/32, s = 48/31, depth s sqrt(1 + 1/32^2 + (31/32)^2).
    assert depth[31, 16] == pytest.approx(48 / 31 * math.sqrt(1 + 1 / 1024 + 961 / 1024), abs=1e-5)
    # The row just below the horizon is beyond the range: clamped floor, shaded by 0.4.
    assert (depth[16] == 40.0).all()
    assert (rgb[16] == shaded(FLOOR, 40.0)).all()
    assert tuple(shaded(FLOOR, 40.0)[()]) == (70, 69, 64)
    # The top half is sky: depth exactly 40 and the sky colour, unshaded.
    assert (depth[:16] == 40.0).all()
    assert (rgb[:16] == SKY).all()


@pytest.mark.parametrize(("height", "width"), [(48, 80), (80, 48), (15, 33), (1, 1), (1, 7), (9, 1)])
def test_non_square_images_keep_square_pixels_and_the_horizon_in_the_middle(height, width):
    # v = (H - 2 (i + 0.5)) / W: the vertical field of view is 2 atan(H / W) and the horizon
    # (v = 0) lies between rows H/2 - 1 and H/2, or on row (H - 1) / 2 when H is odd.
    sim = empty_view(width, height)
    depth = sim.depth_tensor().to_numpy()[0, 0, :, :, 0]
    rgb = sim.rgb_tensor().to_numpy()[0, 0]
    assert depth.shape == (height, width)
    sky = (rgb == SKY).all(-1) & (depth == 40.0)
    assert np.flatnonzero(sky.all(1)).tolist() == list(range(height // 2))  # v > 0
    assert not sky[height // 2 :].any()
    lower = np.arange((height + 1) // 2, height)
    if height % 2:
        # Exactly level (v = 0): the outer wall 90 m ahead, at the range limit (shade 0.4).
        assert (depth[height // 2] == 40.0).all()
        assert (rgb[height // 2] == shaded(WALL, 40.0)).all()
    # Rows below: the floor at s = 1.5 / -v, v scaled by the width, not the height.
    v = row_v(height, width)
    want = np.minimum(
        1.5 / -v[lower, None] * np.sqrt(1 + column_u(width)[None] ** 2 + v[lower, None] ** 2), 40.0
    )
    np.testing.assert_allclose(depth[lower], want, atol=1e-4)
    np.testing.assert_array_equal(rgb[lower], shaded(FLOOR, depth[lower]))


def test_wall_rows_scale_with_the_width_in_a_non_square_image():
    # H = 48, W = 80, wall at s = 4: rows with -1.5/4 <= (47 - 2 i)/80 <= 1/4, i.e. 13.5 <= i <= 38.5.
    sim = room(width=80, height=48)
    place(sim, agents={0: (11.0, 8.0)})
    v = row_v(48, 80)
    rows = np.flatnonzero((v >= -1.5 / 4) & (v <= 1 / 4))
    assert rows.tolist() == list(range(14, 39))
    depth = sim.depth_tensor().to_numpy()[0, 0, :, :, 0]
    np.testing.assert_allclose(
        depth[rows], 4 * np.sqrt(1 + column_u(80)[None] ** 2 + v[rows, None] ** 2), atol=1e-4
    )
    assert (depth[:14] == 40.0).all()
    assert_image(sim, 0, 0, expected_view(sim, 0, 0))


def test_exit_cells_are_tinted_on_the_floor():
    sim = room(width=32, height=32)
    # Look back at the exit cell x [2, 4], y [2, 4] from (3, 9) facing -y (yaw pi).
    place(sim, agents={0: (3.0, 9.0)}, yaws={0: np.pi})
    depth = sim.depth_tensor().to_numpy()[0, 0, :, :, 0]
    rgb = sim.rgb_tensor().to_numpy()[0, 0]
    # d = (-u, -1): the floor point of (i, j) is (3 - u s, 9 - s).
    u, v = column_u(32), row_v(32, 32)
    with np.errstate(divide="ignore"):
        s = np.where(v < 0, 1.5 / -v, np.nan)[:, None]
    x, y = 3.0 - u[None] * s, 9.0 - s + 0 * u[None]
    inside = (np.abs(x - 3.0) < 0.9) & (np.abs(y - 3.0) < 0.9)
    assert inside.sum() >= 4
    np.testing.assert_array_equal(rgb[inside], shaded(EXIT, depth[inside]))
    assert_image(sim, 0, 0, expected_view(sim, 0, 0))


# -- every pixel of generated levels -----------------------------------------------------------


@pytest.mark.parametrize(("num_agents", "height", "width"), [(1, 24, 32), (3, 15, 33)])
def test_generated_levels_match_the_camera_model_after_random_steps(num_agents, height, width):
    sim = camera(width, height, num_worlds=3, num_agents=num_agents, rand_seed=5, num_threads=1)
    rng = np.random.default_rng(0)
    for step in range(40):
        sim.action_tensor().to_numpy()[:] = random_actions(rng, 3, num_agents)
        sim.step()
        if step % 13 == 0:
            for w in range(3):
                for a in range(num_agents):
                    assert_image(sim, w, a, expected_view(sim, w, a), max_unsure=0.1)


# -- tensors, sizes and errors -----------------------------------------------------------------


def test_tensor_shapes_and_dtypes():
    sim = camera(20, 12, num_worlds=3, num_agents=2)
    assert sim.render_size == (12, 20)
    assert sim.batch_renderer_enabled
    rgb, depth = sim.rgb_tensor(), sim.depth_tensor()
    assert tuple(rgb.shape) == (3, 2, 12, 20, 3)
    assert tuple(depth.shape) == (3, 2, 12, 20, 1)
    assert rgb.to_numpy().dtype == np.uint8
    assert depth.to_numpy().dtype == np.float32
    assert ((depth.to_numpy() > 0) & (depth.to_numpy() <= 40)).all()
    # Zero-copy: the same memory every call and after a step.
    before = rgb.to_numpy()
    sim.step()
    assert np.shares_memory(before, sim.rgb_tensor().to_numpy())


def test_default_size_is_64_by_64():
    sim = er.SimManager(num_worlds=1, enable_batch_renderer=True)
    assert sim.render_size == (64, 64)
    assert tuple(sim.rgb_tensor().shape) == (1, 1, 64, 64, 3)


@pytest.mark.parametrize(
    "size",
    [
        {"render_width": 0},
        {"render_width": 1025},
        {"render_height": 0},
        {"render_height": 1025},
        {"render_width": -3},
    ],
)
def test_render_size_out_of_range_raises(size):
    with pytest.raises(ValueError, match="between 1 and 1024"):
        er.SimManager(num_worlds=1, enable_batch_renderer=True, **size)


def test_largest_size_is_accepted():
    sim = er.SimManager(num_worlds=1, enable_batch_renderer=True, render_width=1024, render_height=2)
    assert sim.render_size == (2, 1024)


@pytest.mark.parametrize("name", ["rgb_tensor", "depth_tensor"])
def test_image_tensors_without_the_renderer_raise(name):
    sim = er.SimManager(num_worlds=1)
    assert sim.render_size is None and not sim.batch_renderer_enabled
    with pytest.raises(er.EscapeRoomError, match="enable_batch_renderer"):
        getattr(sim, name)()


# -- determinism, replays and resets -----------------------------------------------------------


def run_images(steps=25, **kwargs):
    sim = camera(24, 16, num_worlds=4, num_agents=2, rand_seed=3, **kwargs)
    rng = np.random.default_rng(1)
    frames = [images(sim)]
    for _ in range(steps):
        sim.action_tensor().to_numpy()[:] = random_actions(rng, 4, 2)
        sim.step()
        frames.append(images(sim))
    return frames


def test_images_are_bit_identical_across_thread_counts_and_managers():
    one, two, again = run_images(num_threads=1), run_images(num_threads=2), run_images(num_threads=2)
    for a, b, c in zip(one, two, again):
        assert a[0].tobytes() == b[0].tobytes() == c[0].tobytes()
        assert a[1].tobytes() == b[1].tobytes() == c[1].tobytes()
    assert not np.array_equal(one[0][0], one[-1][0])  # the agents did move


def test_nstep_renders_the_same_images_as_single_steps():
    sims = [camera(16, 8, num_worlds=3, num_agents=2, rand_seed=1) for _ in range(2)]
    actions = random_actions(np.random.default_rng(0), 3, 2)
    for sim in sims:
        sim.action_tensor().to_numpy()[:] = actions
    sims[0].step(7)
    for _ in range(7):
        sims[1].step()
    assert images(sims[0])[0].tobytes() == images(sims[1])[0].tobytes()
    assert images(sims[0])[1].tobytes() == images(sims[1])[1].tobytes()


def test_image_tensors_stay_readable_after_close():
    sim = camera(8, 8, num_worlds=2)
    rgb, depth = sim.rgb_tensor().to_numpy(), sim.depth_tensor().to_numpy()
    want = rgb.copy(), depth.copy()
    sim.close()
    np.testing.assert_array_equal(rgb, want[0])
    np.testing.assert_array_equal(depth, want[1])
    with pytest.raises(er.EscapeRoomError, match="closed"):
        sim.rgb_tensor()


def test_a_replay_reproduces_the_images_step_by_step(tmp_path):
    # A replay file does not store the image size: from_replay renders at the default 64 x 64.
    path = tmp_path / "run.bin"
    sim = er.SimManager(num_worlds=2, num_agents=2, rand_seed=9, enable_batch_renderer=True, episode_len=15)
    rng = np.random.default_rng(2)
    frames = []
    with sim.recording(path):
        for _ in range(20):  # crosses an episode end
            sim.action_tensor().to_numpy()[:] = random_actions(rng, 2, 2)
            sim.step()
            frames.append(images(sim))
    replay = er.SimManager.from_replay(path, enable_batch_renderer=True, num_threads=1)
    assert replay.render_size == (64, 64)
    for step, (rgb, depth) in enumerate(frames):
        last = replay.replay_step()
        assert last == (step == len(frames) - 1)
        assert replay.rgb_tensor().to_numpy().tobytes() == rgb.tobytes(), f"step {step + 1}"
        assert replay.depth_tensor().to_numpy().tobytes() == depth.tobytes(), f"step {step + 1}"
    assert not np.array_equal(frames[0][0], frames[-1][0])


def test_images_update_after_reset_worlds():
    sim = camera(16, 16, num_worlds=3, rand_seed=4)
    start = images(sim)
    sim.action_tensor().to_numpy()[:] = (move_amount.FAST, move_angle.FORWARD, rotate.FAST_LEFT)
    sim.step(5)
    moved = images(sim)
    assert not np.array_equal(moved[0][1], start[0][1])
    sim.reset_worlds(np.array([False, True, False]), seeds=[0, 5, 0])
    now = images(sim)
    # World 1 shows its new episode at once, the same as a fresh manager's world with seed 5 ...
    fresh = camera(16, 16, num_worlds=1, rand_seed=5)
    np.testing.assert_array_equal(now[0][1], fresh.rgb_tensor().to_numpy()[0])
    np.testing.assert_array_equal(now[1][1], fresh.depth_tensor().to_numpy()[0])
    # ... and the other worlds are untouched.
    for w in (0, 2):
        np.testing.assert_array_equal(now[0][w], moved[0][w])
        np.testing.assert_array_equal(now[1][w], moved[1][w])
    # A custom level restarts from its spawn: the first image again.
    sim = room()
    first = images(sim)
    sim.action_tensor().to_numpy()[:] = (move_amount.FAST, move_angle.FORWARD, rotate.SLOW_RIGHT)
    sim.step(3)
    assert not np.array_equal(images(sim)[0], first[0])
    sim.reset_worlds()
    np.testing.assert_array_equal(images(sim)[0], first[0])
    np.testing.assert_array_equal(images(sim)[1], first[1])
