"""Reset modes and resets from the user (SPEC §2.5, §2.6): what each step shows.

Twin managers with the same seed and actions but different reset modes are compared: the
terminal observation of a NEXT_STEP or DISABLED world is what a SAME_STEP world stores in
``final_observation``, and a reset shows exactly what a fresh episode shows.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import STEP_OUTPUTS, one_thread_manager

import escape_room_env as er

F = np.float32
FAST_FORWARD = (er.action.move_amount.FAST, er.action.move_angle.FORWARD, er.action.rotate.NONE)
OUTPUTS = STEP_OUTPUTS
STATE = (
    "seed",
    "episode",
    "steps_left",
    "status",
    "agent_pos",
    "agent_yaw",
    "agent_max_y",
    "agent_escaped",
    "cube_pos",
    "door_open",
    "level_statics",
    "level_button_pos",
)
SENTINEL = F(-7.0)


def make(mode, num_worlds=3, seed=5, num_agents=1, **kwargs):
    return one_thread_manager(mode, num_worlds, seed, num_agents, **kwargs)


def out(sim, name):
    return getattr(sim, f"{name}_tensor")().to_numpy()


def snapshot(sim):
    snap = {name: out(sim, name).copy() for name in (*OUTPUTS, "final_observation")}
    snap.update({f"state:{name}": sim._state(name).copy() for name in STATE})
    snap["hash"] = sim.state_hashes().copy()
    return snap


def assert_world_equal(a, b, w, names=OUTPUTS, wb=None):
    """World w of snapshot/manager a equals world wb (default w) of b, for every name."""
    wb = w if wb is None else wb
    for name in names:
        va = a[name] if isinstance(a, dict) else out(a, name)
        vb = b[name] if isinstance(b, dict) else out(b, name)
        np.testing.assert_array_equal(va[w], vb[wb], err_msg=name)


def assert_worlds_untouched(sim, snap, worlds):
    now = snapshot(sim)
    for key, before in snap.items():
        for w in worlds:
            np.testing.assert_array_equal(now[key][w], before[w], err_msg=f"{key} of world {w}")


def random_actions(rng, sim):
    act = out(sim, "action")
    act[..., 0] = rng.integers(0, 4, act.shape[:2])
    act[..., 1] = rng.integers(0, 8, act.shape[:2])
    act[..., 2] = rng.integers(0, 5, act.shape[:2])
    return act.copy()


def step_all(sims, actions):
    for sim in sims:
        out(sim, "action")[:] = actions
        sim.step()


def prepare_end(sim, w, how, actions=None):
    """Arranges for world w's episode to end on the next step (time limit or escape)."""
    if how == "truncate":
        sim._state("steps_left")[w] = 1
    else:
        sim._state("agent_pos")[w, :] = (0.0, 41.0)  # exit_y = 41.5
        sim._state("agent_yaw")[w, :] = 0.0
        sim._state("agent_max_y")[w, :] = 41.0
        if actions is not None:
            actions[w] = FAST_FORWARD


def assert_reset_shows(sim, w, episode_len=200):
    assert np.all(out(sim, "reward")[w] == 0.0)
    assert np.all(out(sim, "done")[w] == 0)
    assert np.all(out(sim, "termination_reason")[w] == -1)
    assert not out(sim, "terminated")[w].any() and not out(sim, "truncated")[w].any()
    assert np.all(out(sim, "steps_remaining")[w] == episode_len)
    assert np.all(out(sim, "observation")[w, :, 5] == 1.0)
    np.testing.assert_array_equal(out(sim, "progress")[w, :, 0], sim._state("agent_pos")[w, :, 1])


REASON = {"truncate": 0, "escape": 1}


# ---------------------------------------------------------------------------------------------
# SAME_STEP
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["truncate", "escape"])
def test_same_step_done_step_shows_terminal_flags_with_the_new_episodes_observation(how):
    same, nxt, dis = make("same_step"), make("next_step"), make("disabled")
    sims = (same, nxt, dis)
    rng = np.random.default_rng(0)
    out(same, "final_observation")[:] = SENTINEL
    for _ in range(3):
        step_all(sims, random_actions(rng, same))
    actions = random_actions(rng, same)
    for sim in sims:
        prepare_end(sim, 1, how, actions)
    step_all(sims, actions)

    reason = REASON[how]
    # the finished episode's reward and flags
    for name in ("reward", "done", "termination_reason", "terminated", "truncated"):
        np.testing.assert_array_equal(out(same, name), out(nxt, name), err_msg=name)
    assert out(same, "done")[1, 0, 0] == 1
    assert out(same, "termination_reason")[1, 0, 0] == reason
    assert out(same, "terminated")[1, 0] == (reason == 1)
    assert out(same, "truncated")[1, 0] == (reason == 0)
    if how == "escape":
        assert out(same, "reward")[1, 0, 0] == F(0.05) * F(0.5) + F(1.0)
    # the terminal observation is kept in final_observation; other rows are left unchanged
    np.testing.assert_array_equal(out(same, "final_observation")[1], out(nxt, "observation")[1])
    np.testing.assert_array_equal(out(same, "final_observation")[1], out(dis, "observation")[1])
    assert np.all(out(same, "final_observation")[[0, 2]] == SENTINEL)
    # ... while observation, steps_remaining and progress describe the new episode
    assert same._state("episode")[1] == 1 and nxt._state("episode")[1] == 0
    assert out(same, "steps_remaining")[1, 0, 0] == 200
    assert out(same, "observation")[1, 0, 5] == 1.0
    assert not np.array_equal(out(same, "observation")[1], out(nxt, "observation")[1])
    np.testing.assert_array_equal(out(same, "progress")[1, :, 0], same._state("agent_pos")[1, :, 1])
    assert same._state("agent_escaped")[1, 0] == 0 and same._state("status")[1] == 0
    # worlds that did not finish are stepped as in any mode
    for w in (0, 2):
        assert_world_equal(same, nxt, w)
    if how == "escape":
        y = F(41.5 + 0.5)
        assert out(same, "final_observation")[1, 0, 1] == y * (F(1.0) / F(40.0))

    # the NEXT_STEP twin starts the same new episode one step later
    done_snap = snapshot(same)
    out(nxt, "final_observation")[:] = SENTINEL
    step_all([nxt], random_actions(rng, nxt))
    assert_world_equal(nxt, done_snap, 1, names=("steps_remaining", "progress", "observation"))
    assert nxt.state_hashes()[1] == done_snap["hash"][1]
    assert np.all(out(nxt, "final_observation") == SENTINEL)


def test_same_step_episodes_keep_running_after_a_done_step():
    sim = make("same_step", num_worlds=2, episode_len=4)
    out(sim, "action")[:] = FAST_FORWARD
    seen = []
    for _ in range(9):
        sim.step()
        seen.append((int(out(sim, "steps_remaining")[0, 0, 0]), int(out(sim, "done")[0, 0, 0])))
    assert seen == [(3, 0), (2, 0), (1, 0), (4, 1), (3, 0), (2, 0), (1, 0), (4, 1), (3, 0)]
    assert list(sim._state("episode")) == [2, 2]


# ---------------------------------------------------------------------------------------------
# NEXT_STEP
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["truncate", "escape"])
def test_next_step_done_step_shows_the_terminal_observation_then_a_reset_step(how):
    nxt, dis = make("next_step"), make("disabled")
    rng = np.random.default_rng(1)
    out(nxt, "final_observation")[:] = SENTINEL
    for _ in range(2):
        step_all((nxt, dis), random_actions(rng, nxt))
    actions = random_actions(rng, nxt)
    for sim in (nxt, dis):
        prepare_end(sim, 2, how, actions)
    step_all((nxt, dis), actions)

    reason = REASON[how]
    assert out(nxt, "done")[2, 0, 0] == 1
    assert out(nxt, "termination_reason")[2, 0, 0] == reason
    assert out(nxt, "terminated")[2, 0] == (reason == 1) and out(nxt, "truncated")[2, 0] == (reason == 0)
    for w in range(3):
        assert_world_equal(nxt, dis, w)  # the done step looks the same without autoreset
    steps = 0 if how == "truncate" else 200 - 3
    assert out(nxt, "steps_remaining")[2, 0, 0] == steps
    assert out(nxt, "observation")[2, 0, 5] == F(steps) / F(200)
    assert nxt._state("episode")[2] == 0
    if how == "escape":
        assert out(nxt, "observation")[2, 0, 1] == F(42.0) * (F(1.0) / F(40.0))
        assert out(nxt, "progress")[2, 0, 0] == F(41.5)

    # the next step resets world 2 instead of simulating it; its action is ignored
    other = make("next_step")
    other_rng = np.random.default_rng(1)
    for _ in range(2):
        step_all([other], random_actions(other_rng, other))
    other_actions = random_actions(other_rng, other)
    prepare_end(other, 2, how, other_actions)
    step_all([other], other_actions)

    actions = random_actions(rng, nxt)
    actions[2] = FAST_FORWARD
    step_all([nxt], actions)
    different = actions.copy()
    different[2] = (er.action.move_amount.SLOW, er.action.move_angle.LEFT, er.action.rotate.FAST_RIGHT)
    step_all([other], different)
    assert_reset_shows(nxt, 2)
    assert nxt._state("episode")[2] == 1
    assert_world_equal(nxt, other, 2)
    assert nxt.state_hashes()[2] == other.state_hashes()[2]
    assert np.all(out(nxt, "final_observation") == SENTINEL)
    # the reset world shows the new episode's start: the same as an immediate reset
    fresh = make("next_step")
    fresh.reset_worlds(np.array([False, False, True]))
    assert_world_equal(nxt, fresh, 2)

    # then it simulates again
    step_all([nxt], actions)
    assert out(nxt, "steps_remaining")[2, 0, 0] == 199
    assert out(nxt, "done")[2, 0, 0] == 0


# ---------------------------------------------------------------------------------------------
# DISABLED
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["truncate", "escape"])
def test_disabled_done_world_is_frozen_until_reset(how):
    sim = make("disabled")
    rng = np.random.default_rng(2)
    out(sim, "final_observation")[:] = SENTINEL
    step_all([sim], random_actions(rng, sim))
    actions = random_actions(rng, sim)
    prepare_end(sim, 0, how, actions)
    step_all([sim], actions)
    reason = REASON[how]
    assert out(sim, "done")[0, 0, 0] == 1
    frozen = snapshot(sim)

    for _ in range(3):
        actions = random_actions(rng, sim)
        actions[0] = (er.action.move_amount.FAST, er.action.move_angle.BACKWARD, er.action.rotate.FAST_LEFT)
        step_all([sim], actions)
        assert out(sim, "reward")[0, 0, 0] == 0.0
        assert out(sim, "done")[0, 0, 0] == 1
        assert out(sim, "termination_reason")[0, 0, 0] == reason
        assert out(sim, "terminated")[0, 0] == (reason == 1) and out(sim, "truncated")[0, 0] == (reason == 0)
        for name in ("steps_remaining", "progress", "observation"):
            np.testing.assert_array_equal(out(sim, name)[0], frozen[name][0], err_msg=name)
        for name in ("agent_pos", "agent_yaw", "episode", "steps_left"):
            np.testing.assert_array_equal(sim._state(name)[0], frozen[f"state:{name}"][0], err_msg=name)
        assert sim.state_hashes()[0] == frozen["hash"][0]
    assert sim._state("status")[0] == 2
    assert np.all(out(sim, "final_observation") == SENTINEL)
    # the other worlds kept running
    assert out(sim, "steps_remaining")[1, 0, 0] == 200 - 5

    sim.reset_worlds(np.array([True, False, False]))
    assert_reset_shows(sim, 0)
    assert sim._state("episode")[0] == 1
    step_all([sim], random_actions(rng, sim))
    assert out(sim, "steps_remaining")[0, 0, 0] == 199
    assert out(sim, "done")[0, 0, 0] == 0


def test_disabled_frozen_world_is_restarted_by_the_reset_flag():
    sim = make("disabled")
    sim._state("steps_left")[1] = 1
    sim.step()
    sim.step()
    assert out(sim, "done")[1, 0, 0] == 1
    out(sim, "reset")[1] = 1
    sim.step()
    assert_reset_shows(sim, 1)
    assert sim._state("episode")[1] == 1
    assert list(out(sim, "reset")) == [0, 0, 0]
    sim.step()
    assert out(sim, "steps_remaining")[1, 0, 0] == 199


# ---------------------------------------------------------------------------------------------
# the reset flag
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["same_step", "next_step", "disabled"])
def test_reset_flag_starts_a_new_episode_at_the_next_step_and_is_cleared(mode):
    sim, twin = make(mode), make(mode)
    rng = np.random.default_rng(3)
    for _ in range(3):
        step_all((sim, twin), random_actions(rng, sim))
    out(sim, "final_observation")[:] = SENTINEL
    out(sim, "reset")[1] = 1
    actions = random_actions(rng, sim)
    step_all((sim, twin), actions)
    assert list(out(sim, "reset")) == [0, 0, 0]  # the core consumed the flag
    assert_reset_shows(sim, 1)
    assert sim._state("episode")[1] == 1 and sim._state("seed")[1] == 5 + 1
    assert np.all(out(sim, "final_observation") == SENTINEL)
    for w in (0, 2):  # stepped normally
        assert_world_equal(sim, twin, w)
        assert sim.state_hashes()[w] == twin.state_hashes()[w]
    fresh = make(mode)
    fresh.reset_worlds(np.array([False, True, False]))
    assert_world_equal(sim, fresh, 1)
    assert sim.state_hashes()[1] == fresh.state_hashes()[1]


def test_reset_flag_applies_to_the_first_of_nstep_steps_only():
    sim = make("next_step")
    sim.step(nstep=2)
    out(sim, "reset")[0] = 1
    sim.step(nstep=3)
    assert sim._state("episode")[0] == 1
    assert out(sim, "steps_remaining")[0, 0, 0] == 198
    assert out(sim, "steps_remaining")[1, 0, 0] == 195
    assert list(out(sim, "reset")) == [0, 0, 0]


def test_reset_flag_and_next_step_reset_at_once_count_as_one_reset():
    sim, twin = make("next_step"), make("next_step")
    for s in (sim, twin):
        s._state("steps_left")[0] = 1
        s.step()
        assert out(s, "done")[0, 0, 0] == 1
    out(sim, "reset")[0] = 1
    step_all((sim, twin), np.zeros_like(out(sim, "action")))
    assert sim._state("episode")[0] == 1  # not 2
    assert_reset_shows(sim, 0)
    assert list(out(sim, "reset")) == [0, 0, 0]
    assert_world_equal(sim, twin, 0)
    assert sim.state_hashes()[0] == twin.state_hashes()[0]
    sim.step()
    assert out(sim, "steps_remaining")[0, 0, 0] == 199


# ---------------------------------------------------------------------------------------------
# reset_worlds and reseed
# ---------------------------------------------------------------------------------------------


def test_reset_worlds_with_seeds_is_immediate_and_leaves_other_worlds_untouched():
    sim = make("same_step", num_worlds=4, seed=10)
    rng = np.random.default_rng(4)
    for _ in range(5):
        step_all([sim], random_actions(rng, sim))
    out(sim, "final_observation")[:] = SENTINEL
    before = snapshot(sim)
    sim.reset_worlds(np.array([False, True, False, True]), seeds=[0, 500, 0, 900])
    assert_worlds_untouched(sim, before, [0, 2])
    assert list(sim._state("seed")) == [10, 500, 12, 900]
    assert list(sim._state("episode")) == [0, 0, 0, 0]
    for w, seed in ((1, 500), (3, 900)):
        assert_reset_shows(sim, w)
        fresh = make("same_step", num_worlds=4, seed=seed - w)  # fresh world w has seed rand_seed + w
        assert_world_equal(sim, fresh, w)
        assert sim.state_hashes()[w] == fresh.state_hashes()[w]
        for name in ("agent_pos", "agent_yaw", "cube_pos", "level_statics", "level_button_pos"):
            np.testing.assert_array_equal(sim._state(name)[w], fresh._state(name)[w], err_msg=name)
    assert np.all(out(sim, "final_observation") == SENTINEL)
    # and the reset world then steps exactly like the fresh one
    actions = random_actions(rng, sim)
    step_all([sim], actions)
    fresh = make("same_step", num_worlds=4, seed=499)
    step_all([fresh], actions)
    assert_world_equal(sim, fresh, 1)


def test_reset_worlds_with_an_int_seed_gives_world_w_seed_plus_w():
    sim = make("next_step", num_worlds=4, seed=10)
    sim.step(nstep=3)
    sim.reset_worlds(np.array([True, False, True, True]), seeds=100)
    assert list(sim._state("seed")) == [100, 11, 102, 103]
    fresh = make("next_step", num_worlds=4, seed=100)
    for w in (0, 2, 3):
        assert_world_equal(sim, fresh, w)


def test_reset_worlds_without_seeds_moves_to_the_next_episode_with_a_different_level():
    sim = make("same_step", num_worlds=3, seed=10)
    sim.step(nstep=4)
    before = snapshot(sim)
    out(sim, "final_observation")[:] = SENTINEL
    mask = np.array([True, False, True])
    sim.reset_worlds(mask)
    assert list(sim._state("episode")) == [1, 0, 1]
    assert list(sim._state("seed")) == [10, 11, 12]
    assert_worlds_untouched(sim, {k: v for k, v in before.items() if k != "final_observation"}, [1])
    for w in (0, 2):
        assert_reset_shows(sim, w)
        assert not np.array_equal(sim._state("level_statics")[w], before["state:level_statics"][w])
        assert not np.array_equal(sim._state("agent_pos")[w], before["state:agent_pos"][w])
    assert np.all(out(sim, "final_observation") == SENTINEL)
    levels = {sim._state("level_statics")[0].tobytes()}
    for e in (2, 3, 4):
        sim.reset_worlds(mask)
        assert sim._state("episode")[0] == e
        levels.add(sim._state("level_statics")[0].tobytes())
    assert len(levels) == 4


def test_reseed_equals_a_fresh_manager_with_that_rand_seed():
    sim = make("next_step", num_worlds=4, seed=10, num_agents=2)
    rng = np.random.default_rng(5)
    for _ in range(6):
        step_all([sim], random_actions(rng, sim))
    sim._state("steps_left")[3] = 1
    sim.step()  # world 3 done: the reseed must also clear its pending reset
    sim.reseed(77)
    fresh = make("next_step", num_worlds=4, seed=77, num_agents=2)
    for w in range(4):
        assert_world_equal(sim, fresh, w)
        assert_reset_shows(sim, w)
    np.testing.assert_array_equal(sim.state_hashes(), fresh.state_hashes())
    for name in STATE:
        np.testing.assert_array_equal(sim._state(name), fresh._state(name), err_msg=name)
    for _ in range(5):
        actions = random_actions(rng, sim)
        step_all([sim, fresh], actions)
        np.testing.assert_array_equal(sim.state_hashes(), fresh.state_hashes())
        for name in OUTPUTS:
            np.testing.assert_array_equal(out(sim, name), out(fresh, name), err_msg=name)


# ---------------------------------------------------------------------------------------------
# every kind of reset shows the same thing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode, kind",
    [
        ("same_step", "flag"),
        ("disabled", "flag"),
        ("next_step", "pending"),
        ("next_step", "pending_and_flag"),
        ("same_step", "reset_worlds"),
        ("same_step", "reset_worlds_seeded"),
        ("same_step", "reseed"),
        ("disabled", "reset_worlds_after_done"),
    ],
)
def test_every_reset_shows_reward_zero_done_zero_full_steps_and_no_final_observation(mode, kind):
    episode_len = 30
    sim = make(mode, num_worlds=2, episode_len=episode_len)
    out(sim, "action")[:] = FAST_FORWARD
    sim.step(nstep=2)
    assert np.all(out(sim, "reward") != 0.0)
    if kind.startswith("pending") or kind.endswith("after_done"):
        sim._state("steps_left")[1] = 1
        sim.step()
        assert out(sim, "done")[1, 0, 0] == 1
    out(sim, "final_observation")[:] = SENTINEL
    episode = int(sim._state("episode")[1])
    if kind in ("flag", "pending_and_flag"):
        out(sim, "reset")[1] = 1
    if kind in ("flag", "pending", "pending_and_flag"):
        sim.step()
    elif kind in ("reset_worlds", "reset_worlds_after_done"):
        sim.reset_worlds(np.array([False, True]))
    elif kind == "reset_worlds_seeded":
        sim.reset_worlds(np.array([False, True]), seeds=[0, 3])
        episode = -1
    else:
        sim.reseed(3)
        episode = -1
    assert_reset_shows(sim, 1, episode_len)
    assert sim._state("episode")[1] == episode + 1
    assert np.all(out(sim, "final_observation") == SENTINEL)


def test_writes_to_output_tensors_have_no_effect_and_are_overwritten():
    sim, twin = make("next_step"), make("next_step")
    rng = np.random.default_rng(6)
    step_all((sim, twin), random_actions(rng, sim))
    for name in (*OUTPUTS, "final_observation"):
        t = out(sim, name)
        t[...] = True if t.dtype == np.bool_ else 3
    actions = random_actions(rng, sim)
    step_all((sim, twin), actions)
    for w in range(3):
        assert_world_equal(sim, twin, w)
    np.testing.assert_array_equal(sim.state_hashes(), twin.state_hashes())
