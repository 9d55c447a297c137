"""Invariants over many random steps (SPEC §2.3-§2.5, §3): no body inside a wall or closed door,
observations finite and inside their documented bounds, flags and rewards consistent."""

from __future__ import annotations

import numpy as np
import pytest

import escape_room_env as er

AGENT_RADIUS = 1.0
CUBE_HALF = 1.5
AGENT_TOL = 1e-4  # metres an agent centre may come closer than its radius to an active static
CUBE_TOL = 1e-3  # metres a cube may overlap a wall
SLACK = np.float32(-0.005)
ENTITY_TYPES = np.array([0, 1, 2], dtype=np.float64) / 6  # none, button, cube
LIDAR_TYPES = np.array([0, 2, 3, 4, 5], dtype=np.float64) / 6  # none, cube, wall, agent, door


def random_actions(
    rng: np.random.Generator, num_worlds: int, num_agents: int, forward_bias=False
) -> np.ndarray:
    amount = rng.integers(0, 4, (num_worlds, num_agents))
    angle = rng.integers(0, 8, (num_worlds, num_agents))
    rot = rng.integers(0, 5, (num_worlds, num_agents))
    if forward_bias:  # mostly FAST, FORWARD-ish, little turning: more pushing against walls and cubes
        amount = np.where(rng.random(amount.shape) < 0.8, 3, amount)
        angle = np.where(rng.random(angle.shape) < 0.7, rng.choice([0, 1, 7], angle.shape), angle)
        rot = np.where(rng.random(rot.shape) < 0.7, 2, rot)
    return np.stack([amount, angle, rot], axis=-1).astype(np.int32)


class Checker:
    """Vectorised checks of one manager's state after a step; keeps counts for non-triviality."""

    def __init__(self, sim: er.SimManager):
        self.sim = sim
        self.W, self.A, self.D = sim.num_worlds, sim.num_agents, sim.obs_dim
        self.mode = sim.autoreset_mode
        s = sim._state
        self.statics = s("level_statics")  # [W, 72, 4]: min_x, min_y, max_x, max_y
        self.static_door = s("level_static_door")  # [W, 72]: -1 wall, else door index
        self.counts = s("level_counts")  # [W, 6]
        self.door_open = s("door_open")  # [W, 8]
        self.agent_pos = s("agent_pos")  # [W, A, 2]
        self.cube_pos = s("cube_pos")  # [W, 16, 2]
        self.norm_length = s("level_norm_length")  # [W]
        self.exit_y = s("level_exit_y")  # [W]
        self.obs = sim.observation_tensor().to_numpy()
        self.final_obs = sim.final_observation_tensor().to_numpy()
        self.reward = sim.reward_tensor().to_numpy()
        self.done = sim.done_tensor().to_numpy()
        self.reason = sim.termination_reason_tensor().to_numpy()
        self.terminated = sim.terminated_tensor().to_numpy()
        self.truncated = sim.truncated_tensor().to_numpy()
        self.steps = sim.steps_remaining_tensor().to_numpy()
        self.progress = sim.progress_tensor().to_numpy()
        self.slot = np.arange(self.statics.shape[1])
        self.cube_slot = np.arange(self.cube_pos.shape[1])
        self.min_clearance = np.inf
        self.door_open_steps = 0
        self.done_worlds = 0
        self.terminated_worlds = 0
        self.cube_moves = 0
        self.cube_start = s("level_cube_start")

    # -- geometry ---------------------------------------------------------------------------

    def check_agents_outside_active_statics(self, where: str) -> None:
        valid = self.slot[None, :] < self.counts[:, 0:1]  # [W, S]
        door = self.static_door.astype(np.int64)
        door_state = np.take_along_axis(self.door_open, np.clip(door, 0, self.door_open.shape[1] - 1), axis=1)
        active = valid & ((door < 0) | (door_state == 0))  # walls and closed doors
        boxes = self.statics[:, None, :, :]  # [W, 1, S, 4]
        x = self.agent_pos[:, :, 0, None]  # [W, A, 1]
        y = self.agent_pos[:, :, 1, None]
        px = np.clip(x, boxes[..., 0], boxes[..., 2])
        py = np.clip(y, boxes[..., 1], boxes[..., 3])
        dist = np.sqrt((x - px) ** 2 + (y - py) ** 2)  # 0 when the centre is inside the box
        dist = np.where(active[:, None, :], dist, np.inf)
        closest = dist.min(axis=2)  # [W, A]
        self.min_clearance = min(self.min_clearance, float(closest.min()))
        bad = closest < AGENT_RADIUS - AGENT_TOL
        if bad.any():
            w, a = map(int, np.argwhere(bad)[0])
            j = int(np.argmin(dist[w, a]))
            raise AssertionError(
                f"{where}: world {w} agent {a} at {self.agent_pos[w, a].tolist()} is {closest[w, a]:.6f} m from "
                f"static {j} {self.statics[w, j].tolist()} (door {int(self.static_door[w, j])}, "
                f"door_open {self.door_open[w].tolist()}); {int(bad.sum())} agents too close"
            )

    def check_cubes_outside_walls(self, where: str) -> None:
        valid = self.slot[None, :] < self.counts[:, 0:1]
        walls = valid & (self.static_door < 0)  # [W, S]
        cubes = self.cube_slot[None, :] < self.counts[:, 3:4]  # [W, C]
        boxes = self.statics[:, None, :, :]  # [W, 1, S, 4]
        cx = self.cube_pos[:, :, 0, None]  # [W, C, 1]
        cy = self.cube_pos[:, :, 1, None]
        ox = np.minimum(cx + CUBE_HALF, boxes[..., 2]) - np.maximum(cx - CUBE_HALF, boxes[..., 0])
        oy = np.minimum(cy + CUBE_HALF, boxes[..., 3]) - np.maximum(cy - CUBE_HALF, boxes[..., 1])
        pen = np.where((ox > 0) & (oy > 0), np.minimum(ox, oy), 0.0)
        pen = np.where(walls[:, None, :] & cubes[:, :, None], pen, 0.0)
        bad = pen > CUBE_TOL
        if bad.any():
            w, c, j = map(int, np.argwhere(bad)[0])
            raise AssertionError(
                f"{where}: world {w} cube {c} at {self.cube_pos[w, c].tolist()} overlaps wall {j} "
                f"{self.statics[w, j].tolist()} by {pen[w, c, j]:.6f} m"
            )
        moved = np.any(np.abs(self.cube_pos - self.cube_start) > 1e-3, axis=2) & cubes
        self.cube_moves += int(moved.sum())

    # -- observations -----------------------------------------------------------------------

    def check_observation_bounds(self, obs: np.ndarray, L: np.ndarray, where: str) -> None:
        """obs [N, A, D] of N worlds with level lengths L [N] (SPEC §3 "Bounds")."""
        assert np.isfinite(obs).all(), f"{where}: non-finite observation"
        R = (np.sqrt(20.0**2 + (L + 6.0) ** 2) / L)[:, None, None]  # walled-area diagonal / L

        def within(vals, lo, hi, what):
            ok = (vals >= lo) & (vals <= hi)
            if not ok.all():
                idx = np.argwhere(~ok)[0]
                raise AssertionError(
                    f"{where}: {what} out of [{lo if np.isscalar(lo) else 'R'}, "
                    f"{hi if np.isscalar(hi) else 'R'}] at {idx.tolist()}: {vals[tuple(idx)]}"
                )

        A = obs.shape[1]
        within(obs[..., 0:2], 0.0, R, "self x/y [0:2]")
        assert np.all(obs[..., 2] == 0.0), f"{where}: z [2] is not 0"
        within(obs[..., 3:4], 0.0, R, "max_y [3]")
        within(obs[..., 4], -1.0, 1.0, "yaw/pi [4]")
        within(obs[..., 5], 0.0, 1.0, "steps_remaining/episode_len [5]")
        within(obs[..., 6:7], 0.0, R, "door r [6]")
        within(obs[..., 7], -1.0, 1.0, "door theta [7]")
        assert np.isin(obs[..., 8], (0.0, 1.0)).all(), f"{where}: door is_open [8] not in {{0, 1}}"
        ent = obs[..., 9:27].reshape(*obs.shape[:2], 6, 3)
        within(ent[..., 0], 0.0, R, "entity r")
        within(ent[..., 1], -1.0, 1.0, "entity theta")
        within(ent[..., 2], 0.0, 1.0, "entity type/6")
        near = np.abs(ent[..., 2, None] - ENTITY_TYPES).min(axis=-1) < 1e-6
        assert near.all(), f"{where}: entity type/6 not one of none/button/cube: {ent[..., 2][~near][:5]}"
        empty = ent[..., 2] == 0
        assert np.all(ent[..., 0][empty] == 0) and np.all(ent[..., 1][empty] == 0), (
            f"{where}: empty slot not (0,0,0)"
        )
        lidar = obs[..., 27:87].reshape(*obs.shape[:2], 30, 2)
        within(lidar, 0.0, 1.0, "lidar")
        near = np.abs(lidar[..., 1, None] - LIDAR_TYPES).min(axis=-1) < 1e-6
        assert near.all(), f"{where}: lidar type/6 not one of none/cube/wall/agent/door"
        no_hit = lidar[..., 1] == 0
        assert np.all(lidar[..., 0][no_hit] == 1.0), f"{where}: a ray with no hit is not (1, 0)"
        part = obs[..., 87:].reshape(*obs.shape[:2], A - 1, 3)
        within(part[..., 0], 0.0, R, "partner r")
        within(part[..., 1], -1.0, 1.0, "partner theta")
        assert np.isin(part[..., 2], (0.0, 1.0)).all(), f"{where}: partner has_escaped not in {{0, 1}}"

    def check_observation_matches_state(self, where: str) -> None:
        L = self.norm_length[:, None].astype(np.float64)
        x = self.obs[..., 0] * L - 10.0  # min_x = -10 on the generated level
        y = self.obs[..., 1] * L  # min_y = 0
        np.testing.assert_allclose(x, self.agent_pos[..., 0], atol=1e-3, err_msg=f"{where}: obs x")
        np.testing.assert_allclose(y, self.agent_pos[..., 1], atol=1e-3, err_msg=f"{where}: obs y")
        max_y = self.obs[..., 3] * L
        np.testing.assert_allclose(
            max_y, self.progress[..., 0], atol=1e-3, err_msg=f"{where}: max_y vs progress"
        )
        # max_y' = max(max_y, min(y, exit_y)) never falls below the capped current y.
        capped_y = np.minimum(self.agent_pos[..., 1], self.exit_y[:, None])
        assert np.all(self.progress[..., 0] >= capped_y - 1e-4), f"{where}: progress below current y"
        np.testing.assert_allclose(
            self.obs[..., 5], self.steps[..., 0] / self.sim.episode_len, atol=1e-6, err_msg=f"{where}: obs[5]"
        )

    # -- flags and rewards ------------------------------------------------------------------

    def check_flags_and_rewards(self, where: str) -> None:
        assert np.isfinite(self.reward).all(), f"{where}: non-finite reward"
        r = self.reward[..., 0]
        ok = (r == SLACK) | ((r >= 0) & (r <= 1.0 + 0.05 * 1.25 * 3.0))
        assert ok.all(), f"{where}: reward {r[~ok][:5]} is neither the slack penalty nor a bounded gain"
        done = self.done[..., 0]
        assert np.isin(done, (0, 1)).all()
        assert np.all(done == done[:, :1]), f"{where}: agents of a world disagree on done"
        term, trunc = self.terminated, self.truncated
        assert not np.any(term & trunc), f"{where}: terminated and truncated together"
        reason = self.reason[..., 0]
        assert np.all(reason[term] == 1) and np.all(reason[trunc] == 0)
        assert np.all(reason[done == 0] == -1), f"{where}: reason set on a running world"
        assert np.isin(reason[done == 1], (0, 1)).all(), f"{where}: done world without a reason"
        if self.mode is not er.AutoresetMode.DISABLED:
            assert np.array_equal(done == 1, term | trunc), f"{where}: done != terminated | truncated"
        else:
            assert np.all(done[term | trunc] == 1)
        steps = self.steps[..., 0]
        assert np.all((steps >= 0) & (steps <= self.sim.episode_len))
        if self.mode is er.AutoresetMode.SAME_STEP:
            # A done step already shows the new episode.
            assert np.all(steps[done == 1] == self.sim.episode_len), f"{where}: SAME_STEP done row not reset"
        self.done_worlds += int(done[:, 0].sum())
        self.terminated_worlds += int(term[:, 0].sum())

    def check_all(self, where: str) -> None:
        self.check_agents_outside_active_statics(where)
        self.check_cubes_outside_walls(where)
        L = self.norm_length.astype(np.float64)
        self.check_observation_bounds(self.obs, L, where)
        self.check_observation_matches_state(where)
        self.check_flags_and_rewards(where)
        done_rows = self.done[:, 0, 0] == 1
        if self.mode is er.AutoresetMode.SAME_STEP and done_rows.any():
            # The terminal observation was taken in the old level; its L is the same for generated levels.
            self.check_observation_bounds(
                self.final_obs[done_rows], L[done_rows], where + " (final_observation)"
            )
        valid_doors = np.arange(self.door_open.shape[1])[None, :] < self.counts[:, 1:2]
        self.door_open_steps += int((self.door_open.astype(bool) & valid_doors).any(axis=1).sum())


def run_random(num_worlds, steps, seed, forward_bias=False, **kwargs) -> Checker:
    rng = np.random.default_rng(seed)
    with er.SimManager(num_worlds=num_worlds, rand_seed=seed, **kwargs) as sim:
        checker = Checker(sim)
        checker.check_all("at construction")
        actions = sim.action_tensor().to_numpy()
        for step in range(steps):
            actions[:] = random_actions(rng, num_worlds, sim.num_agents, forward_bias)
            sim.step()
            checker.check_all(f"after step {step}")
        return checker


def test_invariants_hold_over_200_worlds_and_2000_uniform_random_steps():
    c = run_random(200, 2000, seed=2024)
    # Not vacuous: agents touched walls, doors opened, episodes ended.
    assert c.min_clearance < AGENT_RADIUS + 0.01
    assert c.door_open_steps > 0
    assert c.done_worlds >= 200 * 9


@pytest.mark.parametrize("num_agents", [2, 4])
def test_invariants_hold_with_several_agents(num_agents):
    c = run_random(100, 600, seed=7 + num_agents, num_agents=num_agents)
    assert c.min_clearance < AGENT_RADIUS + 0.01
    assert c.done_worlds >= 100 * 2


def test_invariants_hold_when_agents_push_forward_through_cube_rooms():
    c = run_random(
        100,
        800,
        seed=99,
        forward_bias=True,
        rooms=["cube_button", "cube_blocking", "cube_button", "button"],
        episode_len=300,
    )
    assert c.min_clearance < AGENT_RADIUS + 0.01
    assert c.cube_moves > 0
    assert c.door_open_steps > 0


@pytest.mark.parametrize("mode", ["next_step", "disabled"])
def test_invariants_hold_in_the_other_reset_modes(mode):
    rng = np.random.default_rng(5)
    with er.SimManager(num_worlds=64, num_agents=2, rand_seed=5, autoreset_mode=mode, episode_len=60) as sim:
        checker = Checker(sim)
        actions = sim.action_tensor().to_numpy()
        for step in range(400):
            actions[:] = random_actions(rng, 64, 2)
            sim.step()
            checker.check_all(f"after step {step}")
            if mode == "disabled" and step % 70 == 69:
                sim.reset_worlds(sim.done_tensor().to_numpy()[:, 0, 0] == 1)
                checker.check_all(f"after reset_worlds at step {step}")
        assert checker.done_worlds > 0


def test_checker_detects_planted_violations():
    """The checks above can fail: plant each kind of violation and expect an AssertionError."""
    with er.SimManager(num_worlds=4, rooms=["cube_button", "button"], rand_seed=3) as sim:
        sim.step()
        checker = Checker(sim)
        checker.check_all("clean")

        pos = sim._state("agent_pos")
        saved = pos.copy()
        pos[1, 0] = (-10.5, 5.0)  # inside the left wall
        with pytest.raises(AssertionError, match="world 1 agent 0"):
            checker.check_agents_outside_active_statics("planted")
        pos[1, 0] = (-9.2, 5.0)  # 0.8 m from the left wall's face
        with pytest.raises(AssertionError, match="world 1 agent 0"):
            checker.check_agents_outside_active_statics("planted")
        door = int(np.flatnonzero(sim._state("level_static_door")[2] == 0)[0])
        box = sim._state("level_statics")[2, door]
        pos[:] = saved
        pos[2, 0] = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)  # inside door 0, closed
        sim._state("door_open")[2, 0] = 0
        with pytest.raises(AssertionError, match="world 2 agent 0"):
            checker.check_agents_outside_active_statics("planted")
        sim._state("door_open")[2, 0] = 1  # an open door is not a static
        checker.check_agents_outside_active_statics("open door")
        pos[:] = saved
        sim._state("door_open")[2, 0] = 0

        cubes = sim._state("cube_pos")
        cubes[3, 0] = (10.0, 5.0)  # half inside the right wall
        with pytest.raises(AssertionError, match="world 3 cube 0"):
            checker.check_cubes_outside_walls("planted")
        cubes[3, 1] = (10.0, 5.0)  # cube slot 1 is unused with one cube room before the button room
        cubes[3, 0] = sim._state("level_cube_start")[3, 0]
        checker.check_cubes_outside_walls("unused slot")

        obs = sim.observation_tensor().to_numpy()
        L = np.full(4, 80.0 / 3.0)
        for col, value in [(4, 1.5), (5, -0.1), (8, 0.5), (30, 1.2), (2, 0.01), (9, -0.01), (0, np.nan)]:
            bad = obs.copy()
            bad[0, 0, col] = value
            with pytest.raises(AssertionError):
                checker.check_observation_bounds(bad, L, "planted")
        checker.check_observation_bounds(obs.copy(), L, "clean copy")

        sim.reward_tensor().to_numpy()[2, 0, 0] = -0.01
        with pytest.raises(AssertionError, match="reward"):
            checker.check_flags_and_rewards("planted")
