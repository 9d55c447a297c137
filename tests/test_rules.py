"""The game rules of SPEC §2 pinned with exact values.

Each test builds a scene by writing the core's internal state (``SimManager._state``), steps
once with chosen actions and compares the result with values computed here in float32 in
the order the rules are specified (rotation, then 4 substeps of 2 contact iterations, then
doors, then reward). Where a value is exact (e.g. a push that ends at a wall face) the
test also states it as a plain number.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import one_thread_manager

import escape_room_env as er

F = np.float32
AMOUNT = er.action.move_amount
ANGLE = er.action.move_angle
ROTATE = er.action.rotate
ROOMS = ["button", "cube_blocking", "cube_button"]  # the 1-agent default, also used with 2 agents

ZERO = F(0.0)
PI = F(math.pi)
TWO_PI = F(2.0 * math.pi)
RADIUS = F(1.0)
CUBE_HALF = F(1.5)
BUTTON_HALF = F(0.65)

# ---------------------------------------------------------------------------------------------
# float32 reference of the rules (SPEC §2.2-§2.5, math of SPEC §4)
# ---------------------------------------------------------------------------------------------

_TWO_OVER_PI = F(0.63661977236758134308)
_PIO2 = (F(1.5703125), F(4.837512969970703125e-4), F(7.54978995489188216e-8))
_SIN = (F(-1.6666654611e-1), F(8.3321608736e-3), F(-1.9515295891e-4))
_COS = (F(4.166664568298827e-2), F(-1.388731625493765e-3), F(2.443315711809948e-5))
_SQRT_HALF = F(0.70710678118654752440)
MOVE_DISTANCE = (F(0.0), F(1.0) / F(3.0), F(2.0) / F(3.0), F(1.0))
ANGLE_COS = (F(1), _SQRT_HALF, F(0), -_SQRT_HALF, F(-1), -_SQRT_HALF, F(0), _SQRT_HALF)
ANGLE_SIN = (F(0), _SQRT_HALF, F(1), _SQRT_HALF, F(0), -_SQRT_HALF, F(-1), -_SQRT_HALF)


def _round_to_int(v):
    return int(v + F(0.5)) if v >= F(0) else -int(F(0.5) - v)


def ref_sincos(x):
    """The core's deterministic sin/cos (Cody-Waite reduction, Cephes polynomials)."""
    x = F(x)
    k = _round_to_int(x * _TWO_OVER_PI)
    kf = F(k)
    r = x - kf * _PIO2[0]
    r = r - kf * _PIO2[1]
    r = r - kf * _PIO2[2]
    r2 = r * r
    s = r + r * r2 * (_SIN[0] + r2 * (_SIN[1] + r2 * _SIN[2]))
    c = F(1) - F(0.5) * r2 + r2 * r2 * (_COS[0] + r2 * (_COS[1] + r2 * _COS[2]))
    return [(s, c), (c, -s), (-s, -c), (-c, s)][k & 3]


def ref_wrap(a):
    if a > PI:
        a = a - TWO_PI
    if a <= -PI:
        a = a + TWO_PI
    return a


def ref_turn(yaw, rotate):
    return ref_wrap(F(yaw) + F(2 - rotate) * (PI / F(16)))


def ref_displacement(yaw, amount, angle):
    """Whole-step displacement along d = cos(theta) f + sin(theta) r, for the (already turned) yaw."""
    s, c = ref_sincos(yaw)
    fx, fy = -s, c
    rx, ry = c, s
    ca, sa = ANGLE_COS[angle], ANGLE_SIN[angle]
    dist = MOVE_DISTANCE[amount]
    return ((fx * ca + rx * sa) * dist, (fy * ca + ry * sa) * dist)


def _clamp(v, lo, hi):
    if v < lo:
        return lo
    return min(v, hi)


def ref_disc_box_push(c, r, b):
    cx, cy = c
    px, py = _clamp(cx, b[0], b[2]), _clamp(cy, b[1], b[3])
    dx, dy = cx - px, cy - py
    d2 = dx * dx + dy * dy
    if d2 >= r * r:
        return (ZERO, ZERO)
    if d2 > 0:
        d = np.sqrt(d2)
        s = (r - d) / d
        return (dx * s, dy * s)
    left, right, down, up = cx - b[0], b[2] - cx, cy - b[1], b[3] - cy
    best, push = left, (-(left + r), ZERO)
    if right < best:
        best, push = right, (right + r, ZERO)
    if down < best:
        best, push = down, (ZERO, -(down + r))
    if up < best:
        push = (ZERO, up + r)
    return push


def ref_box_box_push(a, b):
    ox = min(a[2], b[2]) - max(a[0], b[0])
    oy = min(a[3], b[3]) - max(a[1], b[1])
    if ox <= 0 or oy <= 0:
        return (ZERO, ZERO)
    # The move that separates the boxes, away from b's centre (it exceeds the overlap width
    # when one box spans the other).
    neg_x = (a[0] + a[2]) < (b[0] + b[2])
    neg_y = (a[1] + a[3]) < (b[1] + b[3])
    mx = a[2] - b[0] if neg_x else b[2] - a[0]
    my = a[3] - b[1] if neg_y else b[3] - a[1]
    if mx <= my:
        return (-mx if neg_x else mx, ZERO)
    return (ZERO, -my if neg_y else my)


def cube_box(c):
    return (c[0] - CUBE_HALF, c[1] - CUBE_HALF, c[0] + CUBE_HALF, c[1] + CUBE_HALF)


def _add(a, b):
    return (a[0] + b[0], a[1] + b[1])


def _sub(a, b):
    return (a[0] - b[0], a[1] - b[1])


def _scale(a, s):
    return (a[0] * s, a[1] * s)


class RefWorld:
    """One world's bodies and level, copied from the core, advanced by the reference rules."""

    def __init__(self, sim, w=0):
        counts = sim._state("level_counts")[w]
        self.num_statics, self.num_doors, self.num_buttons, self.num_cubes = (int(v) for v in counts[:4])
        self.statics = [tuple(F(v) for v in b) for b in sim._state("level_statics")[w, : self.num_statics]]
        self.static_door = [int(v) for v in sim._state("level_static_door")[w, : self.num_statics]]
        self.door_open = [int(v) for v in sim._state("door_open")[w]]
        self.door_group = [int(v) for v in sim._state("level_door_group")[w, : self.num_doors]]
        self.momentary = int(sim._state("level_momentary_groups")[w])
        self.buttons = [tuple(F(v) for v in p) for p in sim._state("level_button_pos")[w, : self.num_buttons]]
        self.button_group = [int(v) for v in sim._state("level_button_group")[w, : self.num_buttons]]
        self.agents = [tuple(F(v) for v in p) for p in sim._state("agent_pos")[w]]
        self.yaw = [F(v) for v in sim._state("agent_yaw")[w]]
        self.max_y = [F(v) for v in sim._state("agent_max_y")[w]]
        self.escaped = [int(v) for v in sim._state("agent_escaped")[w]]
        self.cubes = [tuple(F(v) for v in p) for p in sim._state("cube_pos")[w, : self.num_cubes]]
        self.exit_y = F(sim._state("level_exit_y")[w])
        self.cfg = sim.reward_config

    def _active(self, i):
        door = self.static_door[i]
        return door < 0 or self.door_open[door] == 0

    def agents_vs_statics(self):
        for a, c in enumerate(self.agents):
            for i, b in enumerate(self.statics):
                if self._active(i):
                    c = _add(c, ref_disc_box_push(c, RADIUS, b))
            self.agents[a] = c

    def cubes_vs_statics(self):
        for k, c in enumerate(self.cubes):
            for i, b in enumerate(self.statics):
                if self._active(i):
                    c = _add(c, ref_box_box_push(cube_box(c), b))
            self.cubes[k] = c

    def agents_vs_cubes(self):
        agent_share, cube_share = F(1.0) / F(1.5), F(0.5) / F(1.5)
        for a in range(len(self.agents)):
            for k in range(len(self.cubes)):
                p = ref_disc_box_push(self.agents[a], RADIUS, cube_box(self.cubes[k]))
                if p[0] == 0 and p[1] == 0:
                    continue
                self.agents[a] = _add(self.agents[a], _scale(p, agent_share))
                self.cubes[k] = _sub(self.cubes[k], _scale(p, cube_share))

    def agents_vs_agents(self):
        n = len(self.agents)
        for i in range(n):
            for j in range(i + 1, n):
                d = _sub(self.agents[j], self.agents[i])
                d2 = d[0] * d[0] + d[1] * d[1]
                if d2 >= F(4.0):
                    continue
                if d2 > 0:
                    dist = np.sqrt(d2)
                    half = _scale(d, F(0.5) * (F(2.0) - dist) / dist)
                else:
                    half = (F(1.0), ZERO)
                self.agents[i] = _sub(self.agents[i], half)
                self.agents[j] = _add(self.agents[j], half)

    def cubes_vs_cubes(self):
        n = len(self.cubes)
        for i in range(n):
            for j in range(i + 1, n):
                p = ref_box_box_push(cube_box(self.cubes[j]), cube_box(self.cubes[i]))
                if p[0] == 0 and p[1] == 0:
                    continue
                half = _scale(p, F(0.5))
                self.cubes[j] = _add(self.cubes[j], half)
                self.cubes[i] = _sub(self.cubes[i], half)

    def _button_pressed(self, b):
        box = (b[0] - BUTTON_HALF, b[1] - BUTTON_HALF, b[0] + BUTTON_HALF, b[1] + BUTTON_HALF)
        for c in self.agents:
            dx = c[0] - _clamp(c[0], box[0], box[2])
            dy = c[1] - _clamp(c[1], box[1], box[3])
            if dx * dx + dy * dy < RADIUS * RADIUS:
                return True
        reach = CUBE_HALF + BUTTON_HALF
        return any(abs(c[0] - b[0]) < reach and abs(c[1] - b[1]) < reach for c in self.cubes)

    def step(self, actions):
        """actions: one (amount, angle, rotate) per agent, already in range. Returns the rewards."""
        disp = []
        for a, (amount, angle, rotate) in enumerate(actions):
            self.yaw[a] = ref_turn(self.yaw[a], rotate)
            disp.append(ref_displacement(self.yaw[a], amount, angle))
        for _ in range(4):
            self.agents = [_add(c, _scale(d, F(0.25))) for c, d in zip(self.agents, disp)]
            for _ in range(2):
                self.agents_vs_cubes()
                self.agents_vs_agents()
                self.cubes_vs_cubes()
                self.cubes_vs_statics()
                self.agents_vs_statics()
            self.agents_vs_statics()
        # doors
        has, released = 0, 0
        for b, g in zip(self.buttons, self.button_group):
            has |= 1 << g
            if not self._button_pressed(b):
                released |= 1 << g
        pressed = has & ~released
        changed = False
        for d, g in enumerate(self.door_group):
            bit = 1 << g
            new = 1 if pressed & bit else (0 if self.momentary & bit else self.door_open[d])
            changed |= new != self.door_open[d]
            self.door_open[d] = new
        if changed:
            self.cubes_vs_statics()
            self.agents_vs_statics()
        return self.rewards()

    def rewards(self):
        cfg = self.cfg
        n = len(self.agents)
        delta = []
        for a in range(n):
            nxt = max(self.max_y[a], min(self.agents[a][1], self.exit_y))
            delta.append(nxt - self.max_y[a])
            self.max_y[a] = nxt
        out = []
        for a in range(n):
            if self.escaped[a]:
                out.append(F(0))
                continue
            r = -F(cfg.slack_penalty)
            if delta[a] > 0:
                r = F(cfg.progress_scale) * delta[a]
                if n > 1 and all(abs(self.max_y[j] - self.max_y[a]) <= F(cfg.group_radius) for j in range(n)):
                    r = r * F(cfg.group_bonus)
            if self.agents[a][1] >= self.exit_y:
                r = r + F(cfg.escape_bonus)
                self.escaped[a] = 1
            out.append(r)
        return out


# ---------------------------------------------------------------------------------------------
# scene construction
# ---------------------------------------------------------------------------------------------


def make_sim(num_agents=1, rooms=ROOMS, mode="next_step", num_worlds=1, seed=3, **kwargs):
    return one_thread_manager(mode, num_worlds, seed, num_agents, rooms=rooms, **kwargs)


def park_buttons(sim, w=0):
    """Moves every button below the back wall, where nothing can press it."""
    nb = int(sim._state("level_counts")[w, 2])
    pos = sim._state("level_button_pos")
    for i in range(nb):
        pos[w, i] = (-40.0 + 4.0 * i, -30.0)


def park_cubes(sim, w=0):
    """Moves every cube far outside the walled area, apart from each other."""
    nc = int(sim._state("level_counts")[w, 3])
    pos = sim._state("cube_pos")
    for k in range(nc):
        pos[w, k] = (100.0 + 10.0 * k, 100.0)


def clear_scene(sim, w=0):
    park_buttons(sim, w)
    park_cubes(sim, w)


def place(sim, a, x, y, yaw=0.0, w=0, max_y=None):
    sim._state("agent_pos")[w, a] = (x, y)
    sim._state("agent_yaw")[w, a] = yaw
    sim._state("agent_max_y")[w, a] = y if max_y is None else max_y


def set_actions(sim, *actions, w=0):
    act = sim.action_tensor().to_numpy()
    for a, action in enumerate(actions):
        act[w, a] = action


def pos(sim, a=0, w=0):
    return sim._state("agent_pos")[w, a].copy()


def box_distance(p, b):
    dx = max(b[0] - p[0], 0.0, p[0] - b[2])
    dy = max(b[1] - p[1], 0.0, p[1] - b[3])
    inside = b[0] < p[0] < b[2] and b[1] < p[1] < b[3]
    return -1.0 if inside else math.hypot(dx, dy)


def boxes_overlap(a, b):
    return min(a[2], b[2]) - max(a[0], b[0]) > 0 and min(a[3], b[3]) - max(a[1], b[1]) > 0


def step_and_expect(sim, actions, w=0):
    """Steps the core and the reference once; returns the reference world after the step."""
    ref = RefWorld(sim, w)
    set_actions(sim, *actions, w=w)
    rewards = ref.step(actions)
    sim.step()
    ref.step_rewards = rewards
    return ref


def step_placed(agents, actions, yaw=0.0, cubes=()):
    """Agent a at ``agents[a]`` (x, y) facing ``yaw``, cube k at ``cubes[k]``, the buttons and the
    other cubes parked, stepped once with ``actions``: the manager and the reference world after
    the step."""
    sim = make_sim(num_agents=len(agents))
    clear_scene(sim)
    for k, xy in enumerate(cubes):
        sim._state("cube_pos")[0, k] = xy
    for a, (x, y) in enumerate(agents):
        place(sim, a, x, y, yaw=yaw)
    return sim, step_and_expect(sim, actions)


def step_alone(x, y, yaw, action):
    """Agent 0 alone at (x, y) facing ``yaw``, stepped once with ``action``."""
    return step_placed([(x, y)], [action], yaw=yaw)


def assert_matches(sim, ref, w=0):
    np.testing.assert_array_equal(sim._state("agent_pos")[w], np.array(ref.agents, dtype=F))
    np.testing.assert_array_equal(sim._state("agent_yaw")[w], np.array(ref.yaw, dtype=F))
    if ref.cubes:
        np.testing.assert_array_equal(
            sim._state("cube_pos")[w, : len(ref.cubes)], np.array(ref.cubes, dtype=F)
        )
    np.testing.assert_array_equal(sim._state("door_open")[w], np.array(ref.door_open, dtype=np.uint8))


# ---------------------------------------------------------------------------------------------
# §2.2 actions: move_amount, move_angle, rotate
# ---------------------------------------------------------------------------------------------

OPEN_SPACE = (0.0, 6.0)  # room 0 centre: 10 m from the side walls, 6 m from the back wall


def _assert_open_space(sim, x, y):
    statics = sim._state("level_statics")[0, : int(sim._state("level_counts")[0, 0])]
    assert min(box_distance((x, y), b) for b in statics) > 3.0


@pytest.mark.parametrize("amount, distance", [(0, 0.0), (1, 1.0 / 3.0), (2, 2.0 / 3.0), (3, 1.0)])
def test_move_amount_moves_its_distance_per_step(amount, distance):
    sim, ref = step_alone(*OPEN_SPACE, 0.0, (amount, ANGLE.FORWARD, ROTATE.NONE))
    _assert_open_space(sim, *OPEN_SPACE)
    p = pos(sim)
    # yaw 0 faces +y: four quarter-step substeps of distance / 4 each
    q = MOVE_DISTANCE[amount] * F(0.25)
    assert p[0] == 0.0
    assert p[1] == F(F(F(F(F(6.0) + q) + q) + q) + q)
    assert abs(float(p[1]) - 6.0 - distance) < 1e-6
    assert_matches(sim, ref)


@pytest.mark.parametrize("angle", range(8))
def test_move_angle_points_k_eighths_clockwise_from_forward(angle):
    sim, ref = step_alone(*OPEN_SPACE, 0.0, (AMOUNT.FAST, angle, ROTATE.NONE))
    _assert_open_space(sim, *OPEN_SPACE)
    p = pos(sim)
    # yaw 0: forward = +y, right = +x; theta = k pi/4 clockwise: d = (sin theta, cos theta)
    theta = angle * math.pi / 4.0
    np.testing.assert_allclose(p - np.array(OPEN_SPACE), [math.sin(theta), math.cos(theta)], atol=1e-6)
    assert_matches(sim, ref)


@pytest.mark.parametrize("angle", range(8))
def test_move_angle_is_relative_to_the_heading(angle):
    """At yaw = pi/2 the agent faces -x and its right is +y (f = (-sin, cos), r = (cos, sin))."""
    sim, ref = step_alone(*OPEN_SPACE, math.pi / 2, (AMOUNT.FAST, angle, ROTATE.NONE))
    theta = angle * math.pi / 4.0
    expected = np.array([-math.cos(theta), math.sin(theta)])
    np.testing.assert_allclose(pos(sim) - np.array(OPEN_SPACE), expected, atol=1e-6)
    assert_matches(sim, ref)


@pytest.mark.parametrize("rotate", range(5))
def test_rotate_turns_by_two_minus_rotate_sixteenths_of_pi(rotate):
    sim, _ = step_alone(*OPEN_SPACE, 0.25, (AMOUNT.STOP, ANGLE.FORWARD, rotate))
    yaw = sim._state("agent_yaw")[0, 0]
    assert yaw == F(F(0.25) + F(2 - rotate) * (PI / F(16)))
    assert abs(float(yaw) - (0.25 + (2 - rotate) * math.pi / 16)) < 1e-6
    np.testing.assert_array_equal(pos(sim), np.array(OPEN_SPACE, dtype=F))  # STOP: no motion


def test_rotate_left_wraps_across_pi_to_negative_yaw():
    start = F(3.0)
    sim, _ = step_alone(*OPEN_SPACE, start, (AMOUNT.STOP, ANGLE.FORWARD, ROTATE.FAST_LEFT))
    yaw = sim._state("agent_yaw")[0, 0]
    assert yaw == F(F(start + F(2) * (PI / F(16))) - TWO_PI)
    assert -math.pi < yaw < 0
    assert abs(float(yaw) - (3.0 + math.pi / 8 - 2 * math.pi)) < 1e-6


def test_rotate_right_wraps_across_minus_pi_to_positive_yaw():
    start = F(-3.1)
    sim, _ = step_alone(*OPEN_SPACE, start, (AMOUNT.STOP, ANGLE.FORWARD, ROTATE.SLOW_RIGHT))
    yaw = sim._state("agent_yaw")[0, 0]
    assert yaw == F(F(start - PI / F(16)) + TWO_PI)
    assert 0 < yaw <= math.pi


def test_yaw_exactly_minus_pi_wraps_to_plus_pi():
    """The wrap interval is (-pi, pi]: a turn landing on -pi is reported as +pi."""
    start = F(-PI + PI / F(16))
    sim, _ = step_alone(*OPEN_SPACE, start, (AMOUNT.STOP, ANGLE.FORWARD, ROTATE.SLOW_RIGHT))
    assert sim._state("agent_yaw")[0, 0] == F(F(start - PI / F(16)) + TWO_PI)
    assert sim._state("agent_yaw")[0, 0] > 0


def test_rotation_is_applied_before_the_move():
    sim, ref = step_alone(*OPEN_SPACE, 0.0, (AMOUNT.FAST, ANGLE.FORWARD, ROTATE.FAST_LEFT))
    yaw = math.pi / 8
    np.testing.assert_allclose(pos(sim) - np.array(OPEN_SPACE), [-math.sin(yaw), math.cos(yaw)], atol=1e-6)
    assert_matches(sim, ref)


@pytest.mark.parametrize(
    "written, effective",
    [
        ((99, 99, 7), (3, 7, 4)),
        ((-5, -5, -5), (0, 0, 0)),
        ((4, 8, 5), (3, 7, 4)),
        ((2, -1, 99), (2, 0, 4)),
        ((-(2**31), 2**31 - 1, 3), (0, 7, 3)),
    ],
)
def test_out_of_range_actions_are_clamped_by_the_core(written, effective):
    a, b = make_sim(seed=11), make_sim(seed=11)
    for sim in (a, b):
        place(sim, 0, *OPEN_SPACE, yaw=0.3)
        clear_scene(sim)
    ref = RefWorld(b)
    set_actions(a, written)
    set_actions(b, effective)
    a.step()
    b.step()
    ref.step([effective])
    np.testing.assert_array_equal(a._state("agent_pos"), b._state("agent_pos"))
    np.testing.assert_array_equal(a._state("agent_yaw"), b._state("agent_yaw"))
    np.testing.assert_array_equal(a.observation_tensor().to_numpy(), b.observation_tensor().to_numpy())
    np.testing.assert_array_equal(a.reward_tensor().to_numpy(), b.reward_tensor().to_numpy())
    assert_matches(a, ref)


# ---------------------------------------------------------------------------------------------
# §2.3 contacts
# ---------------------------------------------------------------------------------------------


def test_agent_pushed_into_a_wall_stops_at_one_radius_from_the_face():
    sim, ref = step_alone(-8.75, 6.0, 0.0, (AMOUNT.FAST, ANGLE.LEFT, ROTATE.NONE))
    p = pos(sim)
    assert p[0] == F(-9.0)  # left wall face at x = -10, radius 1
    assert p[1] == F(6.0)
    assert_matches(sim, ref)


def test_agent_pushed_diagonally_into_a_wall_slides_along_it():
    sim, ref = step_alone(8.5, 6.0, 0.0, (AMOUNT.FAST, ANGLE.FORWARD_RIGHT, ROTATE.NONE))
    p = pos(sim)
    assert abs(float(p[0]) - 9.0) < 1e-6  # right wall face at x = 10
    assert p[0] <= F(9.0)
    assert abs(float(p[1]) - (6.0 + math.sqrt(0.5))) < 1e-6  # the +y component is not blocked
    assert_matches(sim, ref)


def test_agent_pushed_into_the_back_wall_stops_at_y_one():
    sim, ref = step_alone(0.0, 1.5, 0.0, (AMOUNT.FAST, ANGLE.BACKWARD, ROTATE.NONE))
    p = pos(sim)
    assert p[1] == F(1.0)
    assert p[0] == 0.0
    assert_matches(sim, ref)


def test_agent_pushed_into_a_closed_door_stops_at_one_radius_from_it():
    sim = make_sim()
    clear_scene(sim)
    door = sim._state("level_statics")[0, 6].copy()  # room 0's door
    assert sim._state("level_static_door")[0, 6] == 0
    door_x = float(sim._state("level_door_centre")[0, 0, 0])
    place(sim, 0, door_x, float(door[1]) - 1.75, yaw=0.0)
    ref = step_and_expect(sim, [(AMOUNT.FAST, ANGLE.FORWARD, ROTATE.NONE)])
    p = pos(sim)
    assert sim._state("door_open")[0, 0] == 0
    assert abs(float(p[1]) - (float(door[1]) - 1.0)) < 1e-6
    assert box_distance(p, door) >= 1.0 - 1e-6
    assert_matches(sim, ref)


def test_agent_passes_through_an_open_door():
    sim = make_sim()
    clear_scene(sim)
    door = sim._state("level_statics")[0, 6].copy()
    door_x = float(sim._state("level_door_centre")[0, 0, 0])
    sim._state("door_open")[0, 0] = 1  # latching door 0 stays open
    start_y = float(door[1]) - 0.25
    place(sim, 0, door_x, start_y, yaw=0.0)
    ref = step_and_expect(sim, [(AMOUNT.FAST, ANGLE.FORWARD, ROTATE.NONE)])
    assert sim._state("door_open")[0, 0] == 1
    assert abs(float(pos(sim)[1]) - (start_y + 1.0)) < 1e-6
    assert_matches(sim, ref)


def test_two_agents_with_coincident_centres_are_pushed_apart_along_x():
    sim, ref = step_placed([(0.0, 6.0), (0.0, 6.0)], [(0, 0, 2), (0, 0, 2)])
    np.testing.assert_array_equal(sim._state("agent_pos")[0], [[-1.0, 6.0], [1.0, 6.0]])
    assert_matches(sim, ref)


def test_overlapping_agents_are_split_evenly():
    sim, ref = step_placed([(0.0, 6.0), (1.5, 6.0)], [(0, 0, 2), (0, 0, 2)])
    p = sim._state("agent_pos")[0]
    np.testing.assert_allclose(p, [[-0.25, 6.0], [1.75, 6.0]], atol=1e-6)
    assert abs(float(p[1, 0] - p[0, 0]) - 2.0) < 1e-6
    assert_matches(sim, ref)


def test_agent_pushed_into_another_agent_shares_the_correction():
    sim, ref = step_placed([(-2.0, 6.0), (0.5, 6.0)], [(AMOUNT.FAST, ANGLE.RIGHT, ROTATE.NONE), (0, 0, 2)])
    p = sim._state("agent_pos")[0].astype(np.float64)
    assert p[1, 0] > 0.5  # the resting agent was pushed along +x
    assert abs((p[1, 0] - p[0, 0]) - 2.0) < 1e-5  # touching, not overlapping
    assert abs((p[0, 0] + p[1, 0]) - (-2.0 + 0.5 + 1.0)) < 1e-5  # even split keeps the sum of x
    np.testing.assert_array_equal(p[:, 1], [6.0, 6.0])
    assert_matches(sim, ref)


def test_agent_cube_overlap_is_split_two_thirds_agent_one_third_cube():
    # The cube's face at y = 4.5: 0.25 m of overlap, the size of one FAST substep.
    sim, ref = step_placed([(0.0, 3.75)], [(AMOUNT.STOP, ANGLE.FORWARD, ROTATE.NONE)], cubes=[(0.0, 6.0)])
    agent, cube = pos(sim), sim._state("cube_pos")[0, 0].copy()
    agent_move = float(agent[1]) - 3.75
    cube_move = float(cube[1]) - 6.0
    assert cube_move > 0 and agent_move < 0
    assert abs(agent_move - (-0.25 * 2 / 3)) < 1e-6
    assert abs(cube_move - 0.25 / 3) < 1e-6
    assert abs(agent_move / cube_move + 2.0) < 1e-4
    assert agent[0] == 0.0 and cube[0] == 0.0
    assert_matches(sim, ref)


def test_agent_walking_into_a_cube_pushes_it_one_third_of_the_way():
    # The agent touches the cube's face.
    sim, ref = step_placed([(0.0, 3.5)], [(AMOUNT.FAST, ANGLE.FORWARD, ROTATE.NONE)], cubes=[(0.0, 6.0)])
    agent, cube = pos(sim), sim._state("cube_pos")[0, 0].copy()
    # each FAST substep overlaps by 0.25; the agent gives back 2/3 of it and the cube takes 1/3,
    # so over the step both advance 4 x 0.25 / 3 = 1/3 m and stay in contact
    assert abs(float(agent[1]) - (3.5 + 1.0 / 3.0)) < 1e-5
    assert abs(float(cube[1]) - (6.0 + 1.0 / 3.0)) < 1e-5
    assert abs((float(cube[1]) - 1.5) - float(agent[1]) - 1.0) < 1e-5
    assert agent[0] == 0.0 and cube[0] == 0.0
    assert_matches(sim, ref)


def test_cube_pushed_into_a_wall_stops_at_its_face():
    # The cube's face 0.1 m from the left wall, the agent touching the cube.
    sim, ref = step_placed([(-5.9, 6.0)], [(AMOUNT.FAST, ANGLE.LEFT, ROTATE.NONE)], cubes=[(-8.4, 6.0)])
    np.testing.assert_array_equal(sim._state("cube_pos")[0, 0], [-8.5, 6.0])  # face at x = -10
    assert -7.0 < pos(sim)[0] < -5.9
    assert_matches(sim, ref)


def test_overlapping_cubes_are_split_evenly_along_the_least_penetration_axis():
    # x overlap 0.5 < y overlap 2.8
    sim, ref = step_placed([(-6.0, 3.0)], [(0, 0, 2)], cubes=[(0.0, 6.0), (2.5, 6.2)])
    np.testing.assert_array_equal(
        sim._state("cube_pos")[0, :2], np.array([[-0.25, 6.0], [2.75, 6.2]], dtype=F)
    )
    assert_matches(sim, ref)


# ---------------------------------------------------------------------------------------------
# §2.4 buttons and doors
# ---------------------------------------------------------------------------------------------

DOOR_STATIC = (6, 9, 12)  # static index of room k's door: 4 walls, then (left, right, door) per room


def _door_box(sim, k, w=0):
    return tuple(float(v) for v in sim._state("level_statics")[w, DOOR_STATIC[k]])


def _button_scene(sim, k, bx=0.0, by=None):
    """Clears the scene and puts room k's (first) button at (bx, by) (default: room k's middle)."""
    clear_scene(sim)
    if by is None:
        by = 40.0 * k / 3.0 + 6.0
    sim._state("level_button_pos")[0, k] = (bx, by)
    return bx, by


@pytest.mark.parametrize("gap, pressed", [(0.99, True), (1.01, False)])
def test_button_is_pressed_when_an_agent_disc_overlaps_it(gap, pressed):
    sim = make_sim()
    bx, by = _button_scene(sim, 0)
    place(sim, 0, bx + 0.65 + gap, by)  # disc edge `gap - 1` m from the square's side
    step_and_expect(sim, [(0, 0, 2)])
    assert sim._state("door_open")[0, 0] == int(pressed)
    assert sim._state("door_open")[0, 1] == 0 and sim._state("door_open")[0, 2] == 0


@pytest.mark.parametrize("gap, pressed", [(2.14, True), (2.16, False)])
def test_button_is_pressed_when_a_cube_overlaps_it(gap, pressed):
    sim = make_sim()
    bx, by = _button_scene(sim, 0)
    sim._state("cube_pos")[0, 0] = (bx, by - gap)  # squares of half-extent 1.5 and 0.65
    place(sim, 0, -6.0, 3.0)
    ref = step_and_expect(sim, [(0, 0, 2)])
    assert sim._state("door_open")[0, 0] == int(pressed)
    assert_matches(sim, ref)


def test_latching_door_opens_when_its_button_is_pressed():
    sim = make_sim()
    bx, by = _button_scene(sim, 0)
    place(sim, 0, bx, by)
    step_and_expect(sim, [(0, 0, 2)])
    assert sim._state("door_open")[0, 0] == 1
    assert sim.door_observation_tensor().to_numpy()[0, 0, 2] == 1.0


def test_latching_door_stays_open_after_button_released():
    sim = make_sim()
    bx, by = _button_scene(sim, 0)
    place(sim, 0, bx, by)
    step_and_expect(sim, [(0, 0, 2)])
    place(sim, 0, bx - 6.0, by)  # off the button
    for _ in range(3):
        step_and_expect(sim, [(AMOUNT.FAST, ANGLE.BACKWARD, ROTATE.NONE)])
        assert sim._state("door_open")[0, 0] == 1
        assert sim.door_observation_tensor().to_numpy()[0, 0, 2] == 1.0


def test_latching_door_opened_by_a_pushed_cube():
    sim = make_sim()
    bx, by = _button_scene(sim, 0)
    sim._state("cube_pos")[0, 0] = (bx, by - 2.2)  # 0.05 m short of pressing
    place(sim, 0, bx, by - 4.7)  # touching the cube from below
    ref = step_and_expect(sim, [(AMOUNT.FAST, ANGLE.FORWARD, ROTATE.NONE)])
    assert sim._state("door_open")[0, 0] == 1
    assert_matches(sim, ref)


def test_momentary_door_opens_while_pressed_and_closes_when_released():
    sim = make_sim()
    assert sim._state("level_momentary_groups")[0] == 0b100  # cube_button is room 2
    bx, by = _button_scene(sim, 2)
    place(sim, 0, bx, by)
    step_and_expect(sim, [(0, 0, 2)])
    assert list(sim._state("door_open")[0, :3]) == [0, 0, 1]
    step_and_expect(sim, [(0, 0, 2)])
    assert sim._state("door_open")[0, 2] == 1  # still pressed: still open
    place(sim, 0, bx - 6.0, by)
    step_and_expect(sim, [(0, 0, 2)])
    assert sim._state("door_open")[0, 2] == 0
    assert sim.door_observation_tensor().to_numpy()[0, 0, 2] == 0.0


def test_momentary_door_stays_open_while_a_cube_holds_its_button():
    sim = make_sim()
    bx, by = _button_scene(sim, 2)
    sim._state("cube_pos")[0, 3] = (bx, by)
    place(sim, 0, bx - 6.0, by)
    for _ in range(3):
        step_and_expect(sim, [(0, 0, 2)])
        assert sim._state("door_open")[0, 2] == 1
    sim._state("cube_pos")[0, 3] = (bx, by + 2.2)  # just off the button
    step_and_expect(sim, [(0, 0, 2)])
    assert sim._state("door_open")[0, 2] == 0


def _double_button_scene():
    sim = make_sim(num_agents=2, rooms=None)
    assert sim.rooms == ("double_button", "cube_blocking", "cube_button")
    clear_scene(sim)
    assert list(sim._state("level_button_group")[0, :2]) == [0, 0]
    sim._state("level_button_pos")[0, 0] = (-5.0, 6.0)
    sim._state("level_button_pos")[0, 1] = (5.0, 6.0)
    return sim


@pytest.mark.parametrize("on_left, on_right", [(True, False), (False, True)])
def test_double_button_door_stays_closed_with_one_button_pressed(on_left, on_right):
    sim = _double_button_scene()
    place(sim, 0, -5.0, 6.0 if on_left else 2.0)  # y = 2: 3.35 m below the button, not touching it
    place(sim, 1, 5.0, 6.0 if on_right else 2.0)
    for _ in range(3):
        step_and_expect(sim, [(0, 0, 2), (0, 0, 2)])
        assert sim._state("door_open")[0, 0] == 0


def test_double_button_door_opens_when_both_buttons_are_pressed_at_once():
    sim = _double_button_scene()
    place(sim, 0, -5.0, 6.0)
    place(sim, 1, 5.0, 6.0)
    step_and_expect(sim, [(0, 0, 2), (0, 0, 2)])
    assert sim._state("door_open")[0, 0] == 1
    place(sim, 0, -5.0, 2.0)  # latching: stays open when released
    place(sim, 1, 5.0, 2.0)
    step_and_expect(sim, [(0, 0, 2), (0, 0, 2)])
    assert sim._state("door_open")[0, 0] == 1


def test_double_button_pressed_one_after_the_other_does_not_open():
    sim = _double_button_scene()
    place(sim, 0, -5.0, 6.0)  # left pressed, right free
    place(sim, 1, 5.0, 2.0)
    step_and_expect(sim, [(0, 0, 2), (0, 0, 2)])
    place(sim, 0, -5.0, 2.0)  # left released, right pressed
    place(sim, 1, 5.0, 6.0)
    step_and_expect(sim, [(0, 0, 2), (0, 0, 2)])
    assert sim._state("door_open")[0, 0] == 0


def test_double_button_room_with_one_agent_raises_value_error():
    with pytest.raises(ValueError):
        er.SimManager(num_worlds=1, num_agents=1, rooms=["double_button", "cube_blocking", "cube_button"])
    with pytest.raises(ValueError):
        er.SimManager(num_worlds=1, num_agents=1, rooms=["button", "double_button"])


def _hold_momentary_door_open(sim):
    """Room 2's door opened by a cube on its button; returns the door box and the button."""
    bx, by = _button_scene(sim, 2)
    sim._state("cube_pos")[0, 3] = (bx, by)
    place(sim, 0, -6.0, 3.0)
    step_and_expect(sim, [(0, 0, 2)])
    assert sim._state("door_open")[0, 2] == 1
    return _door_box(sim, 2), (bx, by)


def _assert_agent_clear_of_statics(sim, a=0):
    n = int(sim._state("level_counts")[0, 0])
    statics = sim._state("level_statics")[0, :n]
    doors = sim._state("level_static_door")[0, :n]
    door_open = sim._state("door_open")[0]
    p = tuple(float(v) for v in pos(sim, a))
    for b, d in zip(statics, doors):
        if d < 0 or door_open[d] == 0:
            assert box_distance(p, b) >= 1.0 - 1e-4, (p, b)


@pytest.mark.parametrize(
    "dx, dy",
    [(0.0, 0.0), (0.0, 0.4), (0.0, -0.45), (-2.0, 0.1), (2.3, -0.2), (-2.6, 0.0), (0.0, -1.2), (0.0, 1.3)],
)
def test_momentary_door_closing_on_an_agent_leaves_it_outside_the_door(dx, dy):
    sim = make_sim()
    door, button = _hold_momentary_door_open(sim)
    cx, cy = (door[0] + door[2]) / 2, (door[1] + door[3]) / 2
    place(sim, 0, cx + dx, cy + dy)
    sim._state("cube_pos")[0, 3] = (button[0], button[1] - 2.2)  # release the button
    ref = step_and_expect(sim, [(0, 0, 2)])
    assert sim._state("door_open")[0, 2] == 0
    assert box_distance(tuple(float(v) for v in pos(sim)), door) >= 1.0 - 1e-4
    _assert_agent_clear_of_statics(sim)
    assert_matches(sim, ref)


def test_momentary_door_closing_on_a_centred_agent_pushes_it_back_by_the_nearest_face():
    sim = make_sim()
    door, button = _hold_momentary_door_open(sim)
    cx, cy = (door[0] + door[2]) / 2, (door[1] + door[3]) / 2
    place(sim, 0, cx, cy)
    sim._state("cube_pos")[0, 3] = (button[0], button[1] - 2.2)
    step_and_expect(sim, [(0, 0, 2)])
    # the door is 1 m thick: both y faces are 0.5 away, the -y face wins the tie
    assert pos(sim)[1] == F(door[1] - 1.0)


@pytest.mark.parametrize("dy", [-1.1, 1.2, -0.6, 0.0, 0.3])
def test_momentary_door_closing_on_a_cube_leaves_it_outside_the_door(dy):
    sim = make_sim()
    bx, by = _button_scene(sim, 2)
    place(sim, 0, bx, by)  # the agent holds the door open
    step_and_expect(sim, [(0, 0, 2)])
    assert sim._state("door_open")[0, 2] == 1
    door = _door_box(sim, 2)
    cx, cy = (door[0] + door[2]) / 2, (door[1] + door[3]) / 2
    sim._state("cube_pos")[0, 3] = (cx, cy + dy)
    place(sim, 0, bx - 6.0, by)  # release the button
    ref = step_and_expect(sim, [(0, 0, 2)])
    assert sim._state("door_open")[0, 2] == 0
    cube = tuple(float(v) for v in sim._state("cube_pos")[0, 3])
    assert not boxes_overlap(cube_box(cube), door), (cube, door)
    assert_matches(sim, ref)


# ---------------------------------------------------------------------------------------------
# §2.5 reward
# ---------------------------------------------------------------------------------------------


def _reward(sim, a=0, w=0):
    return sim.reward_tensor().to_numpy()[w, a, 0]


def test_progress_reward_is_scale_times_new_max_y():
    sim = make_sim()
    clear_scene(sim)
    place(sim, 0, 0.0, 6.0)
    ref = step_and_expect(sim, [(AMOUNT.SLOW, ANGLE.FORWARD, ROTATE.NONE)])
    y = pos(sim)[1]
    assert _reward(sim) == F(0.05) * (y - F(6.0))
    assert abs(float(_reward(sim)) - 0.05 / 3) < 1e-7
    assert sim.progress_tensor().to_numpy()[0, 0, 0] == y
    assert sim._state("agent_max_y")[0, 0] == y
    assert _reward(sim) == ref.step_rewards[0]


def test_progress_reward_counts_only_beyond_the_previous_max_y():
    sim = make_sim()
    clear_scene(sim)
    place(sim, 0, 0.0, 6.0, max_y=6.5)
    step_and_expect(sim, [(AMOUNT.FAST, ANGLE.FORWARD, ROTATE.NONE)])
    assert pos(sim)[1] == F(7.0)
    assert _reward(sim) == F(0.05) * F(0.5)
    assert sim.progress_tensor().to_numpy()[0, 0, 0] == F(7.0)


@pytest.mark.parametrize(
    "action, max_y",
    [
        ((AMOUNT.STOP, ANGLE.FORWARD, ROTATE.NONE), 6.0),
        ((AMOUNT.FAST, ANGLE.BACKWARD, ROTATE.NONE), 6.0),
        ((AMOUNT.FAST, ANGLE.LEFT, ROTATE.NONE), 6.0),
        ((AMOUNT.FAST, ANGLE.FORWARD, ROTATE.NONE), 7.5),  # forward, but below the episode's max_y
        ((AMOUNT.FAST, ANGLE.FORWARD, ROTATE.NONE), 7.0),  # reaching max_y exactly is no progress
    ],
)
def test_slack_penalty_on_a_step_without_new_max_y(action, max_y):
    sim = make_sim()
    clear_scene(sim)
    place(sim, 0, 0.0, 6.0, max_y=max_y)
    step_and_expect(sim, [action])
    assert _reward(sim) == F(-0.005)
    assert sim.progress_tensor().to_numpy()[0, 0, 0] == F(max_y)


def _two_agent_scene(y0, max0, y1, max1, **kwargs):
    sim = make_sim(num_agents=2, **kwargs)
    clear_scene(sim)
    place(sim, 0, -5.0, y0, max_y=max0)
    place(sim, 1, 5.0, y1, max_y=max1)
    return sim


FAST_FORWARD = (AMOUNT.FAST, ANGLE.FORWARD, ROTATE.NONE)
STOP = (AMOUNT.STOP, ANGLE.FORWARD, ROTATE.NONE)


def test_group_bonus_multiplies_progress_when_every_max_y_is_within_two_metres():
    sim = _two_agent_scene(6.0, 6.0, 5.0, 5.0)
    step_and_expect(sim, [FAST_FORWARD, FAST_FORWARD])
    expected = F(0.05) * F(1.0) * F(1.25)
    assert _reward(sim, 0) == expected
    assert _reward(sim, 1) == expected


def test_group_bonus_not_paid_when_agents_are_apart():
    sim = _two_agent_scene(6.0, 6.0, 3.5, 3.5)  # max_y 7 and 4.5 after the step: 2.5 apart
    step_and_expect(sim, [FAST_FORWARD, FAST_FORWARD])
    assert _reward(sim, 0) == F(0.05)
    assert _reward(sim, 1) == F(0.05)


def test_group_bonus_within_two_metres_includes_exactly_two():
    sim = _two_agent_scene(6.0, 6.0, 4.0, 4.0)  # max_y 7 and 5 after the step
    step_and_expect(sim, [FAST_FORWARD, FAST_FORWARD])
    assert _reward(sim, 0) == F(0.05) * F(1.25)
    assert _reward(sim, 1) == F(0.05) * F(1.25)


def test_group_bonus_uses_max_y_after_this_steps_updates():
    # before the step max_y are 6 and 3.5 (2.5 apart); agent 1 catches up to 4.5 (1.5 apart)
    sim = _two_agent_scene(6.0, 6.0, 3.5, 3.5)
    step_and_expect(sim, [STOP, FAST_FORWARD])
    assert _reward(sim, 0) == F(-0.005)  # no progress: slack, never multiplied
    assert _reward(sim, 1) == F(0.05) * F(1.25)


def test_group_bonus_uses_the_other_agents_max_y_not_its_position():
    # agent 1 stands far behind but reached y = 7.5 earlier this episode
    sim = _two_agent_scene(6.0, 6.0, 2.0, 7.5)
    step_and_expect(sim, [FAST_FORWARD, STOP])
    assert _reward(sim, 0) == F(0.05) * F(1.25)
    assert _reward(sim, 1) == F(-0.005)


EXIT_Y = 40.0 + 1.5


def test_escape_bonus_paid_on_the_step_the_exit_is_reached_with_progress_capped():
    sim = make_sim()
    clear_scene(sim)
    assert sim._state("level_exit_y")[0] == F(EXIT_Y)
    place(sim, 0, 0.0, 41.0)
    ref = step_and_expect(sim, [FAST_FORWARD])
    assert pos(sim)[1] == F(42.0)
    assert _reward(sim) == F(0.05) * F(0.5) + F(1.0)  # progress only up to exit_y
    assert sim.progress_tensor().to_numpy()[0, 0, 0] == F(EXIT_Y)
    assert sim._state("agent_escaped")[0, 0] == 1
    assert _reward(sim) == ref.step_rewards[0]


def test_agent_escapes_when_its_centre_reaches_exit_y_exactly():
    sim = make_sim()
    clear_scene(sim)
    place(sim, 0, 0.0, EXIT_Y, max_y=41.0)
    step_and_expect(sim, [STOP])
    assert pos(sim)[1] == F(EXIT_Y)
    assert sim._state("agent_escaped")[0, 0] == 1
    assert _reward(sim) == F(0.05) * F(0.5) + F(1.0)
    assert sim.termination_reason_tensor().to_numpy()[0, 0, 0] == 1


def test_agent_short_of_exit_y_has_not_escaped():
    sim = make_sim()
    clear_scene(sim)
    place(sim, 0, 0.0, 41.0)
    step_and_expect(sim, [(AMOUNT.SLOW, ANGLE.FORWARD, ROTATE.NONE)])
    assert F(41.0) < pos(sim)[1] < F(EXIT_Y)
    assert sim._state("agent_escaped")[0, 0] == 0
    assert sim.done_tensor().to_numpy()[0, 0, 0] == 0
    assert _reward(sim) == F(0.05) * (pos(sim)[1] - F(41.0))


def test_escaped_agent_gets_zero_reward_and_still_moves():
    sim = _two_agent_scene(41.0, 41.0, 6.0, 6.0)
    step_and_expect(sim, [FAST_FORWARD, STOP])
    assert _reward(sim, 0) == F(0.05) * F(0.5) + F(1.0)
    assert _reward(sim, 1) == F(-0.005)
    assert sim.done_tensor().to_numpy()[0, 0, 0] == 0  # agent 1 is still inside
    for action in (FAST_FORWARD, STOP, (AMOUNT.FAST, ANGLE.BACKWARD, ROTATE.NONE)):
        before = pos(sim, 0)
        step_and_expect(sim, [action, STOP])
        assert _reward(sim, 0) == 0.0
        assert _reward(sim, 1) == F(-0.005)
        assert sim._state("agent_escaped")[0, 0] == 1
        if action[0] != AMOUNT.STOP:
            assert not np.array_equal(pos(sim, 0), before)
    assert sim.progress_tensor().to_numpy()[0, 0, 0] == F(EXIT_Y)
    assert sim.done_tensor().to_numpy()[0, 0, 0] == 0


def test_custom_reward_config_values_are_used():
    cfg = {
        "progress_scale": 0.5,
        "slack_penalty": 0.25,
        "group_bonus": 3.0,
        "group_radius": 10.0,
        "escape_bonus": 7.0,
    }
    sim = _two_agent_scene(6.0, 6.0, 1.5, 1.5, reward=cfg)  # 5.5 apart: within 10
    step_and_expect(sim, [FAST_FORWARD, FAST_FORWARD])
    assert _reward(sim, 0) == F(0.5) * F(1.0) * F(3.0)
    assert _reward(sim, 1) == F(0.5) * F(1.0) * F(3.0)
    step_and_expect(sim, [STOP, STOP])
    assert _reward(sim, 0) == F(-0.25)
    place(sim, 0, -5.0, 41.0, max_y=41.0)
    place(sim, 1, 5.0, 41.0, max_y=41.0)
    step_and_expect(sim, [FAST_FORWARD, FAST_FORWARD])
    assert _reward(sim, 0) == F(0.5) * F(0.5) * F(3.0) + F(7.0)
    assert sim.termination_reason_tensor().to_numpy()[0, 0, 0] == 1


def test_custom_group_radius_excludes_agents_farther_apart():
    sim = _two_agent_scene(6.0, 6.0, 5.0, 5.0, reward={"group_radius": 0.5, "group_bonus": 2.0})
    step_and_expect(sim, [FAST_FORWARD, FAST_FORWARD])  # 1 m apart
    assert _reward(sim, 0) == F(0.05)
    assert _reward(sim, 1) == F(0.05)


def test_single_agent_never_gets_the_group_bonus():
    sim = make_sim(reward={"group_bonus": 2.0})
    clear_scene(sim)
    place(sim, 0, 0.0, 6.0)
    step_and_expect(sim, [FAST_FORWARD])
    assert _reward(sim) == F(0.05)


# ---------------------------------------------------------------------------------------------
# §2.5 termination and truncation
# ---------------------------------------------------------------------------------------------


def _flags(sim, w=0):
    return (
        int(sim.done_tensor().to_numpy()[w, 0, 0]),
        int(sim.termination_reason_tensor().to_numpy()[w, 0, 0]),
        bool(sim.terminated_tensor().to_numpy()[w, 0]),
        bool(sim.truncated_tensor().to_numpy()[w, 0]),
    )


@pytest.mark.parametrize("mode", ["next_step", "disabled"])
def test_episode_is_truncated_after_episode_len_steps(mode):
    sim = make_sim(mode=mode)
    steps = sim.steps_remaining_tensor().to_numpy()
    assert steps[0, 0, 0] == 200
    assert sim.observation_tensor().to_numpy()[0, 0, 5] == 1.0
    set_actions(sim, (AMOUNT.SLOW, ANGLE.LEFT, ROTATE.SLOW_LEFT))
    for k in range(1, 200):
        sim.step()
        assert steps[0, 0, 0] == 200 - k
        assert _flags(sim) == (0, -1, False, False)
    assert sim.observation_tensor().to_numpy()[0, 0, 5] == F(1) / F(200)
    sim.step()
    assert steps[0, 0, 0] == 0
    assert sim.observation_tensor().to_numpy()[0, 0, 5] == 0.0
    assert _flags(sim) == (1, 0, False, True)


def test_custom_episode_len_truncates_and_scales_steps_observation():
    sim = make_sim(episode_len=7)
    assert sim.steps_remaining_tensor().to_numpy()[0, 0, 0] == 7
    sim.step(nstep=6)
    assert sim.steps_remaining_tensor().to_numpy()[0, 0, 0] == 1
    assert sim.observation_tensor().to_numpy()[0, 0, 5] == F(1) / F(7)
    assert _flags(sim) == (0, -1, False, False)
    sim.step()
    assert _flags(sim) == (1, 0, False, True)


def test_escape_terminates_the_episode_with_reason_escaped():
    sim = make_sim()
    clear_scene(sim)
    place(sim, 0, 0.0, 41.0)
    step_and_expect(sim, [FAST_FORWARD])
    assert _flags(sim) == (1, 1, True, False)
    assert sim.steps_remaining_tensor().to_numpy()[0, 0, 0] == 199


def test_escape_and_time_limit_on_the_same_step_count_as_terminated():
    sim = make_sim()
    clear_scene(sim)
    sim._state("steps_left")[0] = 1
    place(sim, 0, 0.0, 41.0)
    step_and_expect(sim, [FAST_FORWARD])
    assert sim.steps_remaining_tensor().to_numpy()[0, 0, 0] == 0
    assert _flags(sim) == (1, 1, True, False)


def test_world_terminates_only_when_every_agent_has_escaped():
    sim = _two_agent_scene(41.0, 41.0, 39.0, 39.0)
    sim._state("door_open")[0, 2] = 1  # room 2's door is momentary: hold it open with the cube
    bx, by = sim._state("level_button_pos")[0, 2] = (0.0, 32.0)
    sim._state("cube_pos")[0, 3] = (bx, by)
    place(sim, 1, float(sim._state("level_door_centre")[0, 2, 0]), 39.0)
    step_and_expect(sim, [FAST_FORWARD, FAST_FORWARD])
    done = sim.done_tensor().to_numpy()[0, :, 0]
    assert list(done) == [0, 0]
    assert sim._state("agent_escaped")[0].tolist() == [1, 0]
    place(sim, 1, float(pos(sim, 1)[0]), 41.0, max_y=41.0)
    step_and_expect(sim, [STOP, FAST_FORWARD])
    assert list(sim.done_tensor().to_numpy()[0, :, 0]) == [1, 1]  # shared by the world's agents
    assert list(sim.termination_reason_tensor().to_numpy()[0, :, 0]) == [1, 1]
    assert list(sim.terminated_tensor().to_numpy()[0]) == [True, True]
    assert list(sim.truncated_tensor().to_numpy()[0]) == [False, False]
    assert _reward(sim, 0) == 0.0
    # agent 0's max_y (41.5, capped) is within 2 m of agent 1's: the progress part is multiplied
    assert _reward(sim, 1) == F(0.05) * F(0.5) * F(1.25) + F(1.0)


# ---------------------------------------------------------------------------------------------
# §2.1, §2.2, §2.6 the generated level
# ---------------------------------------------------------------------------------------------

_M64 = (1 << 64) - 1


def _splitmix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


class RefRng:
    """draw(s, e, i) = sm(sm(sm(s) ^ e) ^ i); U[a, b] = a + (b - a) * f in float32."""

    def __init__(self, seed, episode):
        self.key = _splitmix(_splitmix(seed & _M64) ^ episode)
        self.index = 0

    def unit(self):
        d = _splitmix(self.key ^ self.index)
        self.index += 1
        return F(d >> 40) * F(2.0**-24)

    def uniform(self, a, b):
        a, b = F(a), F(b)
        return a + (b - a) * self.unit()


def room_edge(k):
    return F(40.0) * F(k) / F(3.0)


def ref_level(seed, episode, num_agents, rooms):
    """The level SPEC §2.1 describes, drawn in SPEC §2.6's order."""
    rng = RefRng(seed, episode)
    n = len(rooms)
    L = room_edge(n)
    lv = {"spawn": [], "yaw": [], "door_x": [], "buttons": [], "cubes": [], "y1": []}
    jitter = min(F(3.75), F(10.0) / F(num_agents) - F(1.05))
    for a in range(num_agents):
        base = F(-10.0) + F(20.0) * (F(a) + F(0.5)) / F(num_agents)
        x = base + rng.uniform(-jitter, jitter)
        y = rng.uniform(1.1, 2.0)
        lv["spawn"].append((x, y))
        lv["yaw"].append(rng.uniform(-PI / F(8), PI / F(8)))
    for k, room in enumerate(rooms):
        y0, y1 = room_edge(k), room_edge(k + 1) - F(1.0)
        lv["y1"].append(y1)
        lv["door_x"].append(rng.uniform(-5.0, 5.0))
        lo = y0 + F(3.7)
        if room == "button":
            bx = rng.uniform(-8.7, 8.7)
            lv["buttons"].append((bx, rng.uniform(lo, y1 - F(2.65))))
        elif room == "double_button":
            lx = rng.uniform(-8.7, -1.3)
            ly = rng.uniform(lo, y1 - F(2.65))
            rx = rng.uniform(1.3, 8.7)
            ry = rng.uniform(lo, y1 - F(2.65))
            lv["buttons"] += [(lx, ly), (rx, ry)]
        elif room == "cube_blocking":
            left = rng.unit() < F(0.5)
            mag = rng.uniform(6.3, 8.7)
            by = rng.uniform(y0 + F(3.7) if k == 0 else y0 + F(1.3), y1 - F(6.0))
            lv["buttons"].append((-mag if left else mag, by))
            door_x = lv["door_x"][-1]
            cy = y1 - F(3.0)
            lv["cubes"] += [(door_x - F(3.2), cy), (door_x, cy), (door_x + F(3.2), cy)]
        else:
            bx = rng.uniform(-5.0, 5.0)
            by = rng.uniform(lo, y1 - F(3.0))
            cy = rng.uniform(y0 + F(4.6), y1 - F(3.6))
            lv["buttons"].append((bx, by))
            lv["cubes"].append((bx - F(5.0) if bx >= 0 else bx + F(5.0), cy))
    lv["L"] = L
    return lv


ROOM_SETS = [
    (1, ["button", "cube_blocking", "cube_button"]),
    (2, ["double_button", "cube_blocking", "cube_button"]),
    (3, ["cube_button", "button", "double_button", "cube_blocking"]),
    (4, ["cube_blocking"]),
    (2, ["button", "cube_button"]),
]


@pytest.mark.parametrize("num_agents, rooms", ROOM_SETS)
def test_generated_level_statics_follow_the_spec_layout(num_agents, rooms):
    sim = make_sim(num_agents=num_agents, rooms=rooms, num_worlds=16, seed=1234)
    n = len(rooms)
    L = 40.0 * n / 3.0
    counts = sim._state("level_counts")
    statics = sim._state("level_statics")
    static_door = sim._state("level_static_door")
    centre = sim._state("level_door_centre")
    for w in range(16):
        assert counts[w, 0] == 4 + 3 * n and counts[w, 1] == n
        assert counts[w, 4] == n
        walls = [
            [-11.0, -1.0, -10.0, L + 7.0],  # left
            [10.0, -1.0, 11.0, L + 7.0],  # right
            [-11.0, -1.0, 11.0, 0.0],  # back
            [-11.0, L + 6.0, 11.0, L + 7.0],  # front, closing the exit zone
        ]
        np.testing.assert_allclose(statics[w, :4], walls, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(statics[w, :3, :3], np.array(walls, dtype=F)[:3, :3])
        assert list(static_door[w, :4]) == [-1] * 4
        assert sim._state("level_norm_length")[w] == F(L)
        assert sim._state("level_exit_y")[w] == F(L) + F(1.5)
        for k in range(n):
            left, right, door = statics[w, 4 + 3 * k : 7 + 3 * k].astype(np.float64)
            assert list(static_door[w, 4 + 3 * k : 7 + 3 * k]) == [-1, -1, k]
            door_x = float(centre[w, k, 0])
            assert -5.0 <= door_x <= 5.0
            y_hi = (k + 1) * 40.0 / 3.0
            for box in (left, right, door):
                assert abs(box[1] - (y_hi - 1.0)) < 1e-5 and abs(box[3] - y_hi) < 1e-5
                assert box[3] - box[1] == pytest.approx(1.0, abs=1e-5)
            assert left[0] == -10.0 and right[2] == 10.0
            assert left[2] == door[0] and door[2] == right[0]  # the door fills the gap exactly
            assert door[2] - door[0] == pytest.approx(20.0 / 3.0, abs=2e-6)
            assert (door[0] + door[2]) / 2 == pytest.approx(door_x, abs=1e-6)
            assert centre[w, k, 1] == pytest.approx(y_hi - 0.5, abs=1e-5)
            assert sim._state("level_door_group")[w, k] == k
            assert sim._state("level_band_y")[w, k] == pytest.approx(40.0 * k / 3.0, abs=1e-5)


@pytest.mark.parametrize("num_agents, rooms", ROOM_SETS)
def test_generated_level_draws_follow_the_spec_order_and_ranges(num_agents, rooms):
    W = 24
    sim = make_sim(num_agents=num_agents, rooms=rooms, num_worlds=W, seed=987654321)
    sim.reset_worlds(np.arange(W) % 3 == 0)  # a few worlds at episode 1
    n = len(rooms)
    for w in range(W):
        seed, episode = int(sim._state("seed")[w]), int(sim._state("episode")[w])
        assert seed == 987654321 + w and episode == (1 if w % 3 == 0 else 0)
        lv = ref_level(seed, episode, num_agents, rooms)
        np.testing.assert_array_equal(sim._state("agent_pos")[w], np.array(lv["spawn"], dtype=F))
        np.testing.assert_array_equal(sim._state("agent_yaw")[w], np.array(lv["yaw"], dtype=F))
        np.testing.assert_array_equal(
            sim._state("level_door_centre")[w, :n, 0], np.array(lv["door_x"], dtype=F)
        )
        nb, nc = len(lv["buttons"]), len(lv["cubes"])
        assert sim._state("level_counts")[w, 2] == nb and sim._state("level_counts")[w, 3] == nc
        np.testing.assert_array_equal(
            sim._state("level_button_pos")[w, :nb], np.array(lv["buttons"], dtype=F)
        )
        np.testing.assert_array_equal(
            sim._state("level_cube_start")[w, :nc], np.array(lv["cubes"], dtype=F).reshape(nc, 2)
        )
        np.testing.assert_array_equal(
            sim._state("cube_pos")[w, :nc], np.array(lv["cubes"], dtype=F).reshape(nc, 2)
        )
        np.testing.assert_array_equal(
            sim.progress_tensor().to_numpy()[w, :, 0], np.array(lv["spawn"], dtype=F)[:, 1]
        )


def test_spawn_positions_lie_in_the_spec_ranges():
    for num_agents in (1, 2, 3, 4):
        W = 200
        sim = make_sim(num_agents=num_agents, rooms=["button"], num_worlds=W, seed=77 * num_agents)
        p = sim._state("agent_pos").astype(np.float64)
        yaw = sim._state("agent_yaw").astype(np.float64)
        j = min(3.75, 10.0 / num_agents - 1.05)
        for a in range(num_agents):
            base = -10.0 + 20.0 * (a + 0.5) / num_agents
            assert np.all(np.abs(p[:, a, 0] - base) <= j + 1e-5)
            assert np.all((p[:, a, 1] >= 1.1 - 1e-6) & (p[:, a, 1] <= 2.0 + 1e-6))
            assert np.all(np.abs(yaw[:, a]) <= math.pi / 8 + 1e-6)
            assert np.all(np.abs(p[:, a, 0]) <= 9.0)  # never touching a side wall
            # the jitter uses its range: not all in one half
            assert (p[:, a, 0] < base).any() and (p[:, a, 0] > base).any()
        for a in range(num_agents):
            for b in range(a + 1, num_agents):
                d = np.hypot(p[:, a, 0] - p[:, b, 0], p[:, a, 1] - p[:, b, 1])
                assert np.all(d >= 2.0)
        # no spawn touches a button (room 0's button y >= 3.7, discs reach y <= 3.0)
        buttons = sim._state("level_button_pos")[:, 0].astype(np.float64)
        assert np.all(buttons[:, 1] - 0.65 > p[:, :, 1].max(axis=1) + 1.0)


def _button_and_cube_ranges(rooms, num_agents=1):
    W = 300
    sim = make_sim(num_agents=num_agents, rooms=rooms, num_worlds=W, seed=4242)
    return (
        sim,
        sim._state("level_button_pos").astype(np.float64),
        sim._state("level_cube_start").astype(np.float64),
    )


def test_button_room_button_lies_in_its_range():
    sim, buttons, _ = _button_and_cube_ranges(["button", "button"])
    for k in range(2):
        y0, y1 = 40.0 * k / 3, 40.0 * (k + 1) / 3 - 1
        b = buttons[:, k]
        assert np.all(np.abs(b[:, 0]) <= 8.7 + 1e-5)
        assert np.all((b[:, 1] >= y0 + 3.7 - 1e-5) & (b[:, 1] <= y1 - 2.65 + 1e-5))
    assert list(sim._state("level_button_group")[0, :2]) == [0, 1]
    assert sim._state("level_momentary_groups")[0] == 0


def test_double_button_room_buttons_lie_in_their_halves():
    _, buttons, _ = _button_and_cube_ranges(["double_button", "double_button"], num_agents=2)
    for k in range(2):
        y0, y1 = 40.0 * k / 3, 40.0 * (k + 1) / 3 - 1
        left, right = buttons[:, 2 * k], buttons[:, 2 * k + 1]
        assert np.all((left[:, 0] >= -8.7 - 1e-5) & (left[:, 0] <= -1.3 + 1e-5))
        assert np.all((right[:, 0] >= 1.3 - 1e-5) & (right[:, 0] <= 8.7 + 1e-5))
        for b in (left, right):
            assert np.all((b[:, 1] >= y0 + 3.7 - 1e-5) & (b[:, 1] <= y1 - 2.65 + 1e-5))


def test_cube_blocking_room_has_three_cubes_across_the_door_and_a_side_button():
    sim, buttons, _ = _button_and_cube_ranges(["button", "cube_blocking", "cube_blocking"])
    door_x = sim._state("level_door_centre")[:, :, 0]
    for k, first_cube in ((1, 0), (2, 3)):
        y0, y1 = F(40.0 * k / 3), room_edge(k + 1) - F(1.0)
        c = sim._state("level_cube_start")[:, first_cube : first_cube + 3]
        np.testing.assert_array_equal(c[:, 0, 0], door_x[:, k] - F(3.2))
        np.testing.assert_array_equal(c[:, 1, 0], door_x[:, k])
        np.testing.assert_array_equal(c[:, 2, 0], door_x[:, k] + F(3.2))
        np.testing.assert_array_equal(c[:, :, 1], np.full((c.shape[0], 3), y1 - F(3.0), dtype=F))
        b = buttons[:, k]
        assert np.all((np.abs(b[:, 0]) >= 6.3 - 1e-5) & (np.abs(b[:, 0]) <= 8.7 + 1e-5))
        assert (b[:, 0] < 0).any() and (b[:, 0] > 0).any()
        assert np.all((b[:, 1] >= y0 + 1.3 - 1e-5) & (b[:, 1] <= y1 - 6.0 + 1e-5))
        # the row of cubes covers the door gap; the 1.5 m left to the wall and the 0.2 m between
        # cubes are narrower than an agent (2 m)
        gap_lo = door_x[:, k] - 10.0 / 3.0
        gap_hi = door_x[:, k] + 10.0 / 3.0
        assert np.all(c[:, 0, 0] - 1.5 < gap_lo) and np.all(c[:, 2, 0] + 1.5 > gap_hi)
        assert np.all(np.abs(y1 - (c[:, :, 1] + 1.5) - 1.5) < 1e-5)
        assert np.all(np.diff(c[:, :, 0], axis=1) - 3.0 < 2.0)


def test_cube_blocking_as_first_room_keeps_its_button_clear_of_the_spawn():
    _, buttons, _ = _button_and_cube_ranges(["cube_blocking"])
    assert np.all(buttons[:, 0, 1] >= 3.7 - 1e-5)


def test_cube_button_room_cube_lies_five_metres_from_its_button():
    sim, buttons, cubes = _button_and_cube_ranges(["button", "cube_button", "cube_button"])
    assert sim._state("level_momentary_groups")[0] == 0b110
    for k, cube in ((1, 0), (2, 1)):
        y0, y1 = 40.0 * k / 3, 40.0 * (k + 1) / 3 - 1
        bx = sim._state("level_button_pos")[:, k, 0]
        cx = sim._state("level_cube_start")[:, cube, 0]
        np.testing.assert_array_equal(cx, np.where(bx >= 0, bx - F(5.0), bx + F(5.0)))
        b, c = buttons[:, k], cubes[:, cube]
        assert np.all(np.abs(b[:, 0]) <= 5.0 + 1e-5)
        assert (b[:, 0] < 0).any() and (b[:, 0] > 0).any()
        assert np.all((b[:, 1] >= y0 + 3.7 - 1e-5) & (b[:, 1] <= y1 - 3.0 + 1e-5))
        assert np.all((c[:, 1] >= y0 + 4.6 - 1e-5) & (c[:, 1] <= y1 - 3.6 + 1e-5))
        assert np.all(np.abs(c[:, 0] - b[:, 0]) == pytest.approx(5.0, abs=1e-5))


def test_default_rooms_depend_on_the_agent_count():
    assert make_sim(rooms=None).rooms == ("button", "cube_blocking", "cube_button")
    for a in (2, 3, 4):
        assert make_sim(num_agents=a, rooms=None).rooms == ("double_button", "cube_blocking", "cube_button")
