"""``EscapeRoomVectorEnv`` against gymnasium's vector contract (SPEC §2.5, §7).

Ported from gymnasium's own vector tests: the autoreset timelines of the three modes, partial
resets and their error messages (compared with ``SyncVectorEnv``'s), seeding rules, info masks,
copy semantics, and a step-by-step equivalence run against ``SyncVectorEnv`` of
``EscapeRoomEnv`` built by ``gymnasium.make_vec(..., vectorization_mode="sync")``.

Scenes are staged through ``envs.sim._state`` (writable views of the core's state): an agent
put one step before the exit escapes on the next FAST FORWARD step, and a world whose
``steps_left`` is 1 reaches its time limit on the next step.
"""

from __future__ import annotations

import re

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.spaces import Box, MultiDiscrete
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

import escape_room_env as er

NEXT_STEP, SAME_STEP, DISABLED = AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED
ALL_MODES = (NEXT_STEP, SAME_STEP, DISABLED)
INFO_KEYS = ("progress", "termination_reason", "elapsed_step", "doors_opened")
INFO_DTYPES = {
    "progress": np.float32,
    "termination_reason": np.int32,
    "elapsed_step": np.int32,
    "doors_opened": np.int32,
}
STOP = (er.action.move_amount.STOP, er.action.move_angle.FORWARD, er.action.rotate.NONE)
FAST_FORWARD = (er.action.move_amount.FAST, er.action.move_angle.FORWARD, er.action.rotate.NONE)
NVEC = np.array([4, 8, 5])


def make_env(num_envs=4, **kwargs):
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("num_threads", 1)
    return er.EscapeRoomVectorEnv(num_envs, **kwargs)


def rows(*actions):
    return np.array(actions, dtype=np.int64)


def random_actions(rng, num_envs):
    return rng.integers(0, NVEC, size=(num_envs, 3), dtype=np.int64)


def stage_escape(envs, world, agent=0):
    """Puts ``agent`` of ``world`` half a metre before the exit line, facing +y."""
    sim = envs.sim
    exit_y = float(sim._state("level_exit_y")[world])
    sim._state("agent_pos")[world, agent] = (0.0, exit_y - 0.5)
    sim._state("agent_yaw")[world, agent] = 0.0
    return exit_y


def stage_time_limit(envs, world):
    """The next step is ``world``'s last before its time limit."""
    envs.sim._state("steps_left")[world] = 1


# -- spaces and metadata ------------------------------------------------------------------------


@pytest.mark.parametrize("num_agents", [1, 2, 3, 4])
def test_spaces_are_bounded_box_and_multidiscrete_batched_with_batch_space(num_agents):
    num_envs = 2 * num_agents
    envs = make_env(num_envs, num_agents=num_agents)
    dim = 87 + 3 * (num_agents - 1)
    single = envs.single_observation_space
    assert isinstance(single, Box)
    assert single.dtype == np.float32
    assert single.shape == (dim,)
    assert np.all(np.isfinite(single.low)) and np.all(np.isfinite(single.high))
    assert np.all(single.low <= single.high)
    assert isinstance(envs.single_action_space, MultiDiscrete)
    np.testing.assert_array_equal(envs.single_action_space.nvec, [4, 8, 5])
    assert envs.observation_space == batch_space(single, num_envs)
    assert envs.action_space == batch_space(envs.single_action_space, num_envs)
    assert envs.observation_space.shape == (num_envs, dim)
    obs, _ = envs.reset(seed=1)
    assert obs.shape == (num_envs, dim) and obs.dtype == np.float32
    envs.close()


@pytest.mark.parametrize("mode", ALL_MODES)
def test_observations_stay_inside_the_observation_space(mode):
    envs = make_env(8, num_agents=2, autoreset_mode=mode, episode_len=15)
    envs.action_space.seed(0)
    obs, _ = envs.reset(seed=3)
    assert envs.observation_space.contains(obs)
    for _ in range(120):
        obs, _, terminated, truncated, _ = envs.step(envs.action_space.sample())
        space = envs.single_observation_space
        outside = np.argwhere((obs < space.low) | (obs > space.high))
        assert envs.observation_space.contains(obs), f"(env, component) outside the bounds: {outside}"
        done = terminated | truncated
        if mode is DISABLED and done.any():
            envs.reset(options={"reset_mask": done})


def test_metadata_autoreset_mode_defaults_to_next_step():
    envs = make_env(2)
    assert isinstance(envs.metadata["autoreset_mode"], AutoresetMode)
    assert envs.metadata["autoreset_mode"] is NEXT_STEP


@pytest.mark.parametrize("mode", ALL_MODES)
def test_metadata_autoreset_mode_is_the_selected_member(mode):
    envs = make_env(2, autoreset_mode=mode)
    assert isinstance(envs.metadata["autoreset_mode"], AutoresetMode)
    assert envs.metadata["autoreset_mode"] is mode
    assert envs.sim.autoreset_mode is mode
    # the class-level default is not changed by an instance
    assert er.EscapeRoomVectorEnv.metadata["autoreset_mode"] is NEXT_STEP


# -- autoreset timelines (gymnasium's test_autoreset style) ---------------------------------------
#
# Four worlds of one agent, episode_len 4. After reset(seed=7): world 0 is staged to escape
# on step 1 (terminated), world 1 to reach its time limit on step 1 (truncated); worlds 2 and
# 3 run to their time limit on step 4.

EPISODE_LEN = 4
STEP1_ACTIONS = rows(FAST_FORWARD, STOP, STOP, STOP)
ALL_FAST = rows(*[FAST_FORWARD] * 4)
ALL_STOP = rows(*[STOP] * 4)


def timeline_env(mode):
    envs = make_env(4, autoreset_mode=mode, episode_len=EPISODE_LEN)
    envs.reset(seed=7)
    exit_y = stage_escape(envs, 0)
    stage_time_limit(envs, 1)
    max_y = float(envs.sim._state("agent_max_y")[0, 0])
    return envs, exit_y, max_y


def second_episode():
    """What ``reset`` shows for every world's next episode after ``reset(seed=7)``."""
    ref = make_env(4, episode_len=EPISODE_LEN, seed=12345)
    ref.reset(seed=7)
    return ref.reset()


def assert_step1(result, exit_y, max_y):
    _, rewards, terminated, truncated, _ = result
    assert terminated.tolist() == [True, False, False, False]
    assert truncated.tolist() == [False, True, False, False]
    assert rewards.dtype == np.float32
    # progress to the (capped) exit line plus the escape bonus
    assert rewards[0] == pytest.approx(0.05 * (exit_y - max_y) + 1.0, rel=1e-5)
    np.testing.assert_array_equal(rewards[1:], np.float32(-0.005))


def take_step1(envs, exit_y, max_y):
    """Step 1 of the timeline (env 0 escapes, env 1 times out): its checks common to every
    mode; returns (observations, infos)."""
    step1 = envs.step(STEP1_ACTIONS)
    assert_step1(step1, exit_y, max_y)
    obs1, _, _, _, infos1 = step1
    assert infos1["termination_reason"].tolist() == [1, 0, -1, -1]
    return obs1, infos1


def test_next_step_autoreset_timeline():
    envs, exit_y, max_y = timeline_env(NEXT_STEP)
    ref_obs, ref_infos = second_episode()

    # step 1: the done step shows the terminal observation and the finished episode
    obs1, infos1 = take_step1(envs, exit_y, max_y)
    assert obs1[0, 1] * 40.0 >= exit_y  # the terminal observation: past the exit line
    assert infos1["elapsed_step"].tolist() == [1, EPISODE_LEN, 1, 1]

    # step 2: envs 0 and 1 start their next episode; their actions are ignored
    obs2, rewards2, terminated2, truncated2, infos2 = envs.step(ALL_FAST)
    np.testing.assert_array_equal(rewards2[:2], np.float32(0.0))
    assert not terminated2.any() and not truncated2.any()
    np.testing.assert_array_equal(obs2[:2], ref_obs[:2])
    assert infos2["termination_reason"].tolist() == [-1, -1, -1, -1]
    assert infos2["elapsed_step"].tolist() == [0, 0, 2, 2]
    np.testing.assert_array_equal(infos2["progress"][:2], ref_infos["progress"][:2])
    np.testing.assert_array_equal(infos2["doors_opened"][:2], [0, 0])

    # step 3: every env steps again
    _, rewards3, terminated3, truncated3, infos3 = envs.step(ALL_STOP)
    assert infos3["elapsed_step"].tolist() == [1, 1, 3, 3]
    np.testing.assert_array_equal(rewards3, np.float32(-0.005))
    assert not terminated3.any() and not truncated3.any()

    # step 4: worlds 2 and 3 reach the time limit; step 5 resets them
    _, _, terminated4, truncated4, infos4 = envs.step(ALL_STOP)
    assert terminated4.tolist() == [False] * 4
    assert truncated4.tolist() == [False, False, True, True]
    assert infos4["termination_reason"].tolist() == [-1, -1, 0, 0]
    obs5, rewards5, terminated5, truncated5, infos5 = envs.step(ALL_STOP)
    np.testing.assert_array_equal(rewards5[2:], np.float32(0.0))
    assert not terminated5.any() and not truncated5.any()
    np.testing.assert_array_equal(obs5[2:], ref_obs[2:])
    assert infos5["elapsed_step"].tolist() == [3, 3, 0, 0]


def test_next_step_manual_reset_of_a_done_env_replaces_its_autoreset():
    envs, _, _ = timeline_env(NEXT_STEP)
    ref_obs, _ = second_episode()
    envs.step(STEP1_ACTIONS)  # envs 0 and 1 are done
    obs, _ = envs.reset(options={"reset_mask": np.array([True, False, False, False])})
    np.testing.assert_array_equal(obs[0], ref_obs[0])
    _, rewards, terminated, truncated, infos = envs.step(ALL_STOP)
    # env 0 was reset by the user: it steps (no second reset); env 1 autoresets now
    assert infos["elapsed_step"].tolist() == [1, 0, 2, 2]
    np.testing.assert_array_equal(rewards, np.float32([-0.005, 0.0, -0.005, -0.005]))
    assert not terminated.any() and not truncated.any()


@pytest.mark.parametrize("mode", ALL_MODES)
def test_full_reset_after_a_done_step_starts_every_env_afresh(mode):
    envs, _, _ = timeline_env(mode)
    envs.step(STEP1_ACTIONS)
    obs, infos = envs.reset(seed=3)
    fresh, _ = make_env(4, seed=3, episode_len=EPISODE_LEN).reset(seed=3)
    np.testing.assert_array_equal(obs, fresh)
    _, rewards, terminated, truncated, infos = envs.step(ALL_STOP)
    assert infos["elapsed_step"].tolist() == [1, 1, 1, 1]
    np.testing.assert_array_equal(rewards, np.float32(-0.005))
    assert not terminated.any() and not truncated.any()


def test_next_step_never_adds_final_obs_infos():
    envs, _, _ = timeline_env(NEXT_STEP)
    for actions in (STEP1_ACTIONS, ALL_STOP, ALL_STOP):
        *_, infos = envs.step(actions)
        assert set(infos) == set(INFO_KEYS) | {"_" + k for k in INFO_KEYS}


def test_disabled_mode_refuses_to_step_a_done_env_until_reset_with_reset_mask():
    envs, exit_y, max_y = timeline_env(DISABLED)
    ref_obs, ref_infos = second_episode()
    obs1, _ = take_step1(envs, exit_y, max_y)

    actions_before = envs.sim.action_tensor().to_numpy().copy()
    with pytest.raises(ValueError, match=r"env 0\b"):
        envs.step(ALL_FAST)
    np.testing.assert_array_equal(envs.sim.action_tensor().to_numpy(), actions_before)

    obs, infos = envs.reset(options={"reset_mask": np.array([True, False, False, False])})
    np.testing.assert_array_equal(obs[0], ref_obs[0])
    with pytest.raises(ValueError, match=r"env 1\b"):
        envs.step(ALL_FAST)
    np.testing.assert_array_equal(envs.sim.action_tensor().to_numpy(), actions_before)

    obs, infos = envs.reset(options={"reset_mask": np.array([False, True, False, False])})
    np.testing.assert_array_equal(obs[:2], ref_obs[:2])
    np.testing.assert_array_equal(obs[2:], obs1[2:])  # untouched worlds show their last step
    np.testing.assert_array_equal(infos["progress"][1], ref_infos["progress"][1])

    _, rewards, terminated, truncated, infos = envs.step(ALL_STOP)
    # the refused steps stepped no world
    assert infos["elapsed_step"].tolist() == [1, 1, 2, 2]
    assert not terminated.any() and not truncated.any()
    np.testing.assert_array_equal(rewards, np.float32(-0.005))


def test_disabled_mode_error_names_the_first_env_of_the_done_world():
    envs = make_env(6, num_agents=2, autoreset_mode=DISABLED, episode_len=EPISODE_LEN)
    envs.reset(seed=1)
    stage_time_limit(envs, 1)
    *_, truncated, _ = envs.step(np.zeros((6, 3), np.int64))
    assert truncated.tolist() == [False, False, True, True, False, False]
    with pytest.raises(ValueError, match=r"env 2\b") as excinfo:
        envs.step(np.zeros((6, 3), np.int64))
    assert "world 1" in str(excinfo.value)
    envs.reset(options={"reset_mask": truncated})
    envs.step(np.zeros((6, 3), np.int64))


def test_same_step_autoreset_timeline_and_final_infos():
    same, exit_y, max_y = timeline_env(SAME_STEP)
    nxt, _, _ = timeline_env(NEXT_STEP)
    ref_obs, ref_infos = second_episode()

    step1 = same.step(STEP1_ACTIONS)
    assert_step1(step1, exit_y, max_y)
    obs, rewards, terminated, truncated, infos = step1
    n_obs, n_rewards, n_terminated, n_truncated, n_infos = nxt.step(STEP1_ACTIONS)
    np.testing.assert_array_equal(rewards, n_rewards)
    np.testing.assert_array_equal(terminated, n_terminated)
    np.testing.assert_array_equal(truncated, n_truncated)

    # the observation and top-level infos show the new episode
    np.testing.assert_array_equal(obs[:2], ref_obs[:2])
    np.testing.assert_array_equal(obs[2:], n_obs[2:])
    assert infos["termination_reason"].tolist() == [-1, -1, -1, -1]
    assert infos["elapsed_step"].tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(infos["progress"][:2], ref_infos["progress"][:2])

    # gymnasium's final_obs / final_info for the envs that finished
    done = [True, True, False, False]
    assert infos["_final_obs"].dtype == np.bool_ and infos["_final_obs"].tolist() == done
    assert infos["_final_info"].dtype == np.bool_ and infos["_final_info"].tolist() == done
    final_obs = infos["final_obs"]
    assert isinstance(final_obs, np.ndarray) and final_obs.dtype == object and final_obs.shape == (4,)
    for i in (0, 1):
        assert isinstance(final_obs[i], np.ndarray) and final_obs[i].dtype == np.float32
        np.testing.assert_array_equal(final_obs[i], n_obs[i])  # the NEXT_STEP terminal observation
    assert final_obs[2] is None and final_obs[3] is None
    final_info = infos["final_info"]
    assert set(final_info) == set(INFO_KEYS) | {"_" + k for k in INFO_KEYS}
    for key in INFO_KEYS:
        assert final_info["_" + key].tolist() == done
        np.testing.assert_array_equal(final_info[key][:2], n_infos[key][:2], err_msg=key)
    assert final_info["termination_reason"][:2].tolist() == [1, 0]
    assert final_info["elapsed_step"][:2].tolist() == [1, EPISODE_LEN]

    # step 2: nobody finishes, so there is no final_obs / final_info at all
    _, rewards2, terminated2, truncated2, infos2 = same.step(ALL_STOP)
    assert not terminated2.any() and not truncated2.any()
    assert not ({"final_obs", "_final_obs", "final_info", "_final_info"} & set(infos2))
    assert infos2["elapsed_step"].tolist() == [1, 1, 2, 2]
    np.testing.assert_array_equal(rewards2, np.float32(-0.005))

    # step 4: worlds 2 and 3 reach the time limit and are reset in the same step
    same.step(ALL_STOP)
    obs4, _, terminated4, truncated4, infos4 = same.step(ALL_STOP)
    assert truncated4.tolist() == [False, False, True, True] and not terminated4.any()
    assert infos4["_final_obs"].tolist() == [False, False, True, True]
    assert infos4["final_info"]["termination_reason"][2:].tolist() == [0, 0]
    assert infos4["final_info"]["elapsed_step"][2:].tolist() == [EPISODE_LEN, EPISODE_LEN]
    np.testing.assert_array_equal(obs4[2:], ref_obs[2:])
    assert infos4["termination_reason"].tolist() == [-1, -1, -1, -1]


def test_agents_of_a_world_share_done_flags_and_autoreset_together():
    def staged(mode):
        envs = make_env(6, num_agents=2, autoreset_mode=mode, episode_len=EPISODE_LEN)
        envs.reset(seed=9)
        stage_time_limit(envs, 1)
        return envs

    same, nxt = staged(SAME_STEP), staged(NEXT_STEP)
    ref = make_env(6, num_agents=2, episode_len=EPISODE_LEN, seed=1)
    ref.reset(seed=9)
    ref_obs, _ = ref.reset()
    stop = np.tile(np.array(STOP, np.int64), (6, 1))
    done = [False, False, True, True, False, False]

    n_obs, _, n_terminated, n_truncated, _ = nxt.step(stop)
    assert n_truncated.tolist() == done and not n_terminated.any()
    obs, _, terminated, truncated, infos = same.step(stop)
    assert truncated.tolist() == done and not terminated.any()
    assert infos["_final_obs"].tolist() == done
    for i in (2, 3):
        np.testing.assert_array_equal(infos["final_obs"][i], n_obs[i])
    np.testing.assert_array_equal(obs[2:4], ref_obs[2:4])

    n_obs2, n_rewards2, _, _, n_infos2 = nxt.step(stop)
    np.testing.assert_array_equal(n_obs2[2:4], ref_obs[2:4])
    np.testing.assert_array_equal(n_rewards2[2:4], np.float32(0.0))
    assert n_infos2["elapsed_step"].tolist() == [2, 2, 0, 0, 2, 2]


def test_same_step_termination_reason_is_running_at_top_level_on_every_step():
    envs = make_env(4, autoreset_mode=SAME_STEP, episode_len=3)
    envs.reset(seed=0)
    rng = np.random.default_rng(1)
    seen_done = 0
    for _ in range(20):
        _, _, terminated, truncated, infos = envs.step(random_actions(rng, 4))
        np.testing.assert_array_equal(infos["termination_reason"], -1)
        seen_done += int((terminated | truncated).sum())
    assert seen_done == 4 * (20 // 3)


# -- partial reset ------------------------------------------------------------------------------


def test_reset_mask_resets_only_the_masked_envs():
    envs = make_env(4, episode_len=50)
    envs.reset(seed=3)
    for _ in range(2):
        before, *_ = envs.step(rows(*[FAST_FORWARD] * 4))
    ref = make_env(4, episode_len=50, seed=99)
    ref.reset(seed=3)
    ref_obs, ref_infos = ref.reset()

    mask = np.array([False, True, False, True])
    obs, infos = envs.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(obs[mask], ref_obs[mask])
    np.testing.assert_array_equal(obs[~mask], before[~mask])
    for key in INFO_KEYS:
        assert infos["_" + key].dtype == np.bool_
        np.testing.assert_array_equal(infos["_" + key], mask, err_msg=key)
        np.testing.assert_array_equal(infos[key][mask], ref_infos[key][mask], err_msg=key)
    *_, infos = envs.step(ALL_STOP)
    assert infos["elapsed_step"].tolist() == [3, 1, 3, 1]


def test_reset_mask_with_int_seed_seeds_masked_worlds_with_seed_plus_world_index():
    envs = make_env(4)
    first, _ = envs.reset(seed=1)
    mask = np.array([False, True, False, True])
    obs, _ = envs.reset(seed=40, options={"reset_mask": mask})
    fresh, _ = make_env(4, seed=5).reset(seed=40)
    np.testing.assert_array_equal(obs[mask], fresh[mask])
    np.testing.assert_array_equal(obs[~mask], first[~mask])


def sync_env(num_envs=4, **vector_kwargs):
    return gymnasium.make_vec(
        "EscapeRoom-v0",
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs=vector_kwargs,
        num_threads=1,
    )


def raised(fn):
    with pytest.raises(Exception) as excinfo:
        fn()
    return excinfo.value


BAD_RESET_MASKS = {
    "list": [True, False, True, False],
    "wrong_shape": np.ones(3, dtype=np.bool_),
    "wrong_shape_2d": np.ones((4, 1), dtype=np.bool_),
    "wrong_dtype": np.ones(4, dtype=np.int64),
    "all_false": np.zeros(4, dtype=np.bool_),
}
BAD_RESET_MASK_TYPES = {
    "list": TypeError,
    "wrong_shape": ValueError,
    "wrong_shape_2d": ValueError,
    "wrong_dtype": TypeError,
    "all_false": ValueError,
}


@pytest.mark.parametrize("case", sorted(BAD_RESET_MASKS))
def test_bad_reset_mask_raises_gymnasiums_error(case):
    bad = BAD_RESET_MASKS[case]
    expected = raised(lambda: sync_env().reset(options={"reset_mask": bad}))
    envs = make_env(4)
    envs.reset(seed=0)
    hashes = envs.sim.state_hashes().copy()
    actual = raised(lambda: envs.reset(options={"reset_mask": bad}))
    assert type(actual) is type(expected) is BAD_RESET_MASK_TYPES[case]
    assert str(actual) == str(expected)
    np.testing.assert_array_equal(envs.sim.state_hashes(), hashes)


@pytest.mark.parametrize(
    ("mask", "world"),
    [
        ([True, False, False, False, False, False], 0),
        ([True, True, False, True, False, False], 1),
        ([False, False, True, True, True, False], 2),
    ],
)
def test_reset_mask_unequal_across_agents_of_a_world_names_the_world(mask, world):
    envs = make_env(6, num_agents=2)
    envs.reset(seed=0)
    hashes = envs.sim.state_hashes().copy()
    with pytest.raises(ValueError, match=rf"world {world}\b") as excinfo:
        envs.reset(options={"reset_mask": np.array(mask)})
    assert all(f"world {w}" not in str(excinfo.value) for w in range(3) if w != world)
    np.testing.assert_array_equal(envs.sim.state_hashes(), hashes)


def test_reset_mask_equal_across_agents_resets_those_worlds():
    envs = make_env(6, num_agents=2)
    first, _ = envs.reset(seed=0)
    mask = np.array([False, False, True, True, False, False])
    obs, infos = envs.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(obs[~mask], first[~mask])
    assert not np.array_equal(obs[mask], first[mask])
    np.testing.assert_array_equal(infos["_progress"], mask)


# -- seeding ------------------------------------------------------------------------------------


def test_int_seed_gives_world_w_the_seed_plus_w():
    envs = make_env(4, seed=123)
    obs, infos = envs.reset(seed=50)
    fresh, fresh_infos = make_env(4, seed=50).reset(seed=50)
    np.testing.assert_array_equal(obs, fresh)
    for key in INFO_KEYS:
        np.testing.assert_array_equal(infos[key], fresh_infos[key])
    for w in range(4):
        single, _ = make_env(1, seed=7).reset(seed=50 + w)
        np.testing.assert_array_equal(obs[w], single[0], err_msg=f"world {w}")
        gym_single, _ = er.EscapeRoomEnv(seed=7).reset(seed=50 + w)
        np.testing.assert_array_equal(obs[w], gym_single, err_msg=f"world {w}")
    # a manager built with rand_seed=50 starts episode 0 of stream 50 + w in world w
    sim = er.SimManager(num_worlds=4, rand_seed=50, num_threads=1, autoreset_mode=NEXT_STEP)
    np.testing.assert_array_equal(obs, sim.observation_tensor().to_numpy()[:, 0])


def test_reset_with_the_same_int_seed_twice_is_identical():
    envs = make_env(4, episode_len=10)
    rng = np.random.default_rng(0)
    actions = [random_actions(rng, 4) for _ in range(25)]

    def rollout():
        obs, _ = envs.reset(seed=5)
        trajectory = [obs]
        for a in actions:
            obs, rewards, terminated, truncated, _ = envs.step(a)
            trajectory += [obs, rewards, terminated, truncated]
        return trajectory

    first = rollout()
    second = rollout()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_seed_none_never_reseeds_new_episodes_continue_each_worlds_stream():
    envs = make_env(4)
    o1, _ = envs.reset(seed=5)
    o2, _ = envs.reset()
    o3, _ = envs.reset(seed=None)
    for w in range(4):
        assert not np.array_equal(o1[w], o2[w])
        assert not np.array_equal(o2[w], o3[w])
    # reset() continues the stream where reset(seed=5) left it: episodes 1 and 2 of 5 + w
    twin = make_env(4, seed=77)
    twin.reset(seed=5)
    t2, _ = twin.reset()
    t3, _ = twin.reset()
    np.testing.assert_array_equal(o2, t2)
    np.testing.assert_array_equal(o3, t3)
    # ...and a constructor seed s is episode 0 of stream s + w, so reset() shows episode 1
    constructed, _ = make_env(4, seed=5).reset()
    np.testing.assert_array_equal(constructed, o2)


def test_constructor_seed_none_draws_a_random_stream():
    a, _ = er.EscapeRoomVectorEnv(2, seed=None, num_threads=1).reset()
    b, _ = er.EscapeRoomVectorEnv(2, seed=None, num_threads=1).reset()
    assert not np.array_equal(a, b)


def test_seed_list_gives_each_world_the_entry_of_its_first_agent():
    envs = make_env(4)
    obs, _ = envs.reset(seed=[7, None, 9, 11])
    for w, s in ((0, 7), (2, 9), (3, 11)):
        single, _ = make_env(1, seed=3).reset(seed=s)
        np.testing.assert_array_equal(obs[w], single[0], err_msg=f"world {w}")
    twin, _ = make_env(4).reset()  # same constructor seed: world 1 continues its stream
    np.testing.assert_array_equal(obs[1], twin[1])


def test_seed_list_with_several_agents_uses_entry_w_times_num_agents():
    envs = make_env(6, num_agents=2)
    obs, _ = envs.reset(seed=[10, None, 20, 20, None, None])
    ref10, _ = make_env(2, num_agents=2, seed=3).reset(seed=10)
    ref20, _ = make_env(2, num_agents=2, seed=3).reset(seed=20)
    np.testing.assert_array_equal(obs[0:2], ref10)
    np.testing.assert_array_equal(obs[2:4], ref20)
    twin, _ = make_env(6, num_agents=2).reset()
    np.testing.assert_array_equal(obs[4:6], twin[4:6])


def test_seed_list_with_reset_mask_seeds_only_masked_worlds():
    envs = make_env(4)
    first, _ = envs.reset(seed=1)
    mask = np.array([True, False, False, True])
    obs, _ = envs.reset(seed=[30, 31, 32, 33], options={"reset_mask": mask})
    np.testing.assert_array_equal(obs[~mask], first[~mask])
    for w, s in ((0, 30), (3, 33)):
        single, _ = make_env(1).reset(seed=s)
        np.testing.assert_array_equal(obs[w], single[0])


@pytest.mark.parametrize(
    ("seeds", "world"),
    [
        ([10, 11, None, None, None, None], 0),
        ([None, 10, None, None, None, None], 0),
        ([1, 1, 2, 3, None, None], 1),
        ([1, None, 2, None, 5, 6], 2),
    ],
)
def test_seed_list_entries_of_one_world_must_be_none_or_equal(seeds, world):
    envs = make_env(6, num_agents=2)
    envs.reset(seed=0)
    hashes = envs.sim.state_hashes().copy()
    with pytest.raises(ValueError, match=rf"world {world}\b"):
        envs.reset(seed=seeds)
    np.testing.assert_array_equal(envs.sim.state_hashes(), hashes)


@pytest.mark.parametrize("length", [3, 5])
def test_seed_list_of_wrong_length_raises_gymnasiums_error(length):
    seeds = list(range(length))
    expected = raised(lambda: sync_env().reset(seed=seeds))
    actual = raised(lambda: make_env(4).reset(seed=seeds))
    assert type(actual) is type(expected) is ValueError
    assert str(actual) == str(expected)
    assert str(actual) == (
        f"If seeds are passed as a list the length must match num_envs=4 but got length={length}."
    )


# -- infos --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ALL_MODES)
def test_info_masks_are_all_true_on_step_and_full_reset(mode):
    envs = make_env(6, num_agents=2, autoreset_mode=mode, episode_len=5)
    _, infos = envs.reset(seed=2)
    rng = np.random.default_rng(2)
    for _ in range(12):
        for key in INFO_KEYS:
            assert infos[key].shape == (6,) and infos[key].dtype == INFO_DTYPES[key], key
            assert infos["_" + key].dtype == np.bool_ and infos["_" + key].all(), key
        assert "episode" not in infos and "_episode" not in infos
        _, _, terminated, truncated, infos = envs.step(random_actions(rng, 6))
        done = terminated | truncated
        if mode is DISABLED and done.any():
            envs.reset(options={"reset_mask": done})


def test_infos_follow_the_running_episode():
    envs = make_env(4, episode_len=6)
    _, infos = envs.reset(seed=4)
    assert infos["elapsed_step"].tolist() == [0] * 4
    assert infos["termination_reason"].tolist() == [-1] * 4
    np.testing.assert_array_equal(infos["progress"], envs.sim._state("agent_max_y")[:, 0])
    for t in range(1, 6):
        *_, infos = envs.step(ALL_STOP)
        assert infos["elapsed_step"].tolist() == [t] * 4
    *_, truncated, infos = envs.step(ALL_STOP)
    assert truncated.all()
    assert infos["termination_reason"].tolist() == [0] * 4
    assert infos["elapsed_step"].tolist() == [6] * 4


# -- copy semantics -----------------------------------------------------------------------------


def sim_buffers(envs):
    sim = envs.sim
    return {
        "obs": sim.observation_tensor().to_numpy(),
        "rewards": sim.reward_tensor().to_numpy(),
        "terminated": sim.terminated_tensor().to_numpy(),
        "truncated": sim.truncated_tensor().to_numpy(),
    }


def test_copy_true_returns_fresh_arrays_that_survive_the_next_step():
    envs = make_env(4, episode_len=3)
    buffers = sim_buffers(envs)
    obs0, _ = envs.reset(seed=1)
    assert not np.shares_memory(obs0, buffers["obs"])
    result = envs.step(ALL_FAST)
    saved = [np.copy(x) for x in result[:4]]
    saved_infos = {k: v.copy() for k, v in result[4].items()}
    for name, out in zip(("obs", "rewards", "terminated", "truncated"), result[:4]):
        for buffer in buffers.values():
            assert not np.shares_memory(out, buffer), name
    for key in INFO_KEYS:
        for buffer in buffers.values():
            assert not np.shares_memory(result[4][key], buffer)
    second = envs.step(ALL_FAST)
    for a, b in zip(result[:4], second[:4]):
        assert a is not b
    for _ in range(3):  # through a time limit and an autoreset
        envs.step(ALL_FAST)
    for out, before in zip(result[:4], saved):
        np.testing.assert_array_equal(out, before)
    for key, value in saved_infos.items():
        np.testing.assert_array_equal(result[4][key], value)


def test_copy_false_returns_the_simulators_own_buffers():
    envs = make_env(4, copy=False, episode_len=3)
    buffers = sim_buffers(envs)
    obs0, _ = envs.reset(seed=1)
    assert np.shares_memory(obs0, buffers["obs"])
    obs1, rewards1, terminated1, truncated1, _ = envs.step(ALL_FAST)
    obs2, rewards2, terminated2, truncated2, _ = envs.step(ALL_FAST)
    assert np.shares_memory(obs1, buffers["obs"]) and np.shares_memory(obs2, obs1)
    assert np.shares_memory(rewards1, buffers["rewards"]) and np.shares_memory(rewards2, rewards1)
    assert np.shares_memory(terminated1, buffers["terminated"]) and terminated1.dtype == np.bool_
    assert np.shares_memory(truncated1, buffers["truncated"]) and truncated1.dtype == np.bool_
    assert np.shares_memory(terminated2, terminated1) and np.shares_memory(truncated2, truncated1)
    # the returned views follow the simulator: after the time limit they show it
    _, _, _, truncated3, _ = envs.step(ALL_FAST)
    assert truncated1.all() and truncated3.all()
    np.testing.assert_array_equal(obs1, buffers["obs"].reshape(4, -1))


def test_copy_false_and_copy_true_agree_in_value():
    rng = np.random.default_rng(5)
    a = make_env(4, copy=False, episode_len=4, autoreset_mode=SAME_STEP)
    b = make_env(4, copy=True, episode_len=4, autoreset_mode=SAME_STEP)
    oa, _ = a.reset(seed=3)
    ob, _ = b.reset(seed=3)
    np.testing.assert_array_equal(oa, ob)
    for _ in range(10):
        actions = random_actions(rng, 4)
        ra, rb = a.step(actions), b.step(actions)
        for x, y in zip(ra[:4], rb[:4]):
            np.testing.assert_array_equal(x, y)
        for key in INFO_KEYS:
            np.testing.assert_array_equal(ra[4][key], rb[4][key])
        assert set(ra[4]) == set(rb[4])


# -- actions ------------------------------------------------------------------------------------


def action_variants():
    base = np.array([[3, 0, 2], [1, 7, 4], [2, 2, 0], [0, 5, 3]], dtype=np.int64)
    return base, {
        "numpy_int64": base,
        "numpy_int32": base.astype(np.int32),
        "numpy_int32_noncontiguous": np.asfortranarray(base.astype(np.int32)),
        "torch_int64": torch.from_numpy(base.copy()),
        "torch_int32": torch.from_numpy(base.astype(np.int32)),
    }


@pytest.mark.parametrize("variant", sorted(action_variants()[1]))
def test_int32_int64_numpy_and_cpu_torch_actions_are_accepted(variant):
    base, variants = action_variants()
    reference = make_env(4)
    reference.reset(seed=2)
    expected = reference.step(base)
    envs = make_env(4)
    envs.reset(seed=2)
    result = envs.step(variants[variant])
    np.testing.assert_array_equal(envs.sim.action_tensor().to_numpy().reshape(4, 3), base)
    for a, b in zip(result[:4], expected[:4]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "actions",
    [
        np.zeros((4, 3), dtype=np.float32),
        np.zeros((4, 3), dtype=np.float64),
        np.zeros((4, 3), dtype=np.uint8),
        np.zeros((4, 3), dtype=np.int16),
        torch.zeros((4, 3), dtype=torch.float32),
    ],
    ids=["float32", "float64", "uint8", "int16", "torch_float32"],
)
def test_actions_of_another_dtype_raise_type_error(actions):
    envs = make_env(4)
    envs.reset(seed=0)
    with pytest.raises(TypeError, match="int32 or int64"):
        envs.step(actions)


@pytest.mark.parametrize("shape", [(4,), (4, 2), (5, 3), (3, 3), (1, 4, 3), (12,)])
def test_actions_of_wrong_shape_raise_value_error(shape):
    envs = make_env(4)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape("(4, 3)")):
        envs.step(np.zeros(shape, dtype=np.int64))


@pytest.mark.parametrize(
    ("env", "component", "value", "name"),
    [
        (5, 1, 8, "move_angle"),
        (2, 0, 4, "move_amount"),
        (7, 2, 5, "rotate"),
        (0, 2, -1, "rotate"),
        (3, 1, -8, "move_angle"),
    ],
)
def test_out_of_range_action_names_env_and_component_and_writes_nothing(env, component, value, name):
    envs = make_env(8)
    envs.reset(seed=0)
    previous = np.tile(np.array(STOP, np.int64), (8, 1))
    envs.step(previous)
    before = envs.sim.action_tensor().to_numpy().copy()
    hashes = envs.sim.state_hashes().copy()
    bad = np.tile(np.array(FAST_FORWARD, np.int64), (8, 1))
    bad[env, component] = value
    with pytest.raises(ValueError, match=re.escape(f"actions[{env}, {component}]")) as excinfo:
        envs.step(bad)
    assert name in str(excinfo.value)
    np.testing.assert_array_equal(envs.sim.action_tensor().to_numpy(), before)
    np.testing.assert_array_equal(envs.sim.state_hashes(), hashes)
    *_, infos = envs.step(previous)
    assert infos["elapsed_step"].tolist() == [2] * 8


def test_out_of_range_action_with_several_agents_names_the_flat_env_index():
    envs = make_env(6, num_agents=2)
    envs.reset(seed=0)
    bad = np.zeros((6, 3), dtype=np.int64)
    bad[3, 0] = 9
    with pytest.raises(ValueError, match=re.escape("actions[3, 0]")) as excinfo:
        envs.step(bad)
    assert "move_amount" in str(excinfo.value)


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_step_actions_equals_set_actions_then_step(dtype, threads):
    """``step_actions`` (what ``env.step`` calls) copies each world's rows inside the step; the
    result must be bit-identical to writing the action tensor first, across thread chunks."""
    worlds, agents = 97, 2
    fused = er.SimManager(num_worlds=worlds, num_agents=agents, rand_seed=5, num_threads=threads)
    plain = er.SimManager(num_worlds=worlds, num_agents=agents, rand_seed=5, num_threads=threads)
    rng = np.random.default_rng(0)
    for step in range(60):
        actions = (rng.integers(0, 1 << 10, (worlds * agents, 3)) % NVEC).astype(dtype)
        assert fused._impl.step_actions(actions) == -1
        assert plain._impl.set_actions(actions) == -1
        plain.step()
        np.testing.assert_array_equal(fused.action_tensor().to_numpy().reshape(-1, 3), actions)
        np.testing.assert_array_equal(fused.state_hashes(), plain.state_hashes(), err_msg=f"step {step}")
        np.testing.assert_array_equal(
            fused.observation_tensor().to_numpy(), plain.observation_tensor().to_numpy()
        )
    assert fused._impl.step_count == plain._impl.step_count == 60


def test_fused_step_actions_records_the_actions_it_used(tmp_path):
    """While recording (and trajectory logging) the fused call writes the actions first, so the
    file replays the same trajectory."""
    envs = make_env(6, seed=3)
    envs.reset(seed=3)
    rng = np.random.default_rng(1)
    path = tmp_path / "fused.bin"
    with envs.sim.recording(path):
        for _ in range(40):
            envs.step((rng.integers(0, 1 << 10, (6, 3)) % NVEC).astype(np.int64))
    final = envs.sim.state_hashes().copy()
    replay = er.SimManager.from_replay(path)
    while not replay.replay_step():
        pass
    np.testing.assert_array_equal(replay.state_hashes(), final)
    replay.close()


def test_step_actions_with_a_bad_action_steps_nothing():
    sim = er.SimManager(num_worlds=4, rand_seed=0)
    before = sim.state_hashes().copy()
    actions = np.zeros((4, 3), np.int64)
    actions[2, 1] = 8
    assert sim._impl.step_actions(actions) == 2 * 3 + 1
    assert sim._impl.check_actions(actions) == 2 * 3 + 1
    assert sim._impl.step_count == 0
    np.testing.assert_array_equal(sim.state_hashes(), before)
    np.testing.assert_array_equal(sim.action_tensor().to_numpy(), 0)


@pytest.mark.parametrize("mode", ALL_MODES)
def test_copy_true_observations_copied_by_the_core_equal_the_simulators(mode):
    """copy=True has the core's threads copy each world's observations right after its step:
    the fresh array must hold exactly what the simulator shows, every step, in every mode."""
    envs = make_env(97 * 2, num_agents=2, num_threads=2, autoreset_mode=mode, episode_len=7)
    obs, _ = envs.reset(seed=4)
    rng = np.random.default_rng(3)
    sim_obs = envs.sim.observation_tensor().to_numpy().reshape(envs.num_envs, -1)
    for _ in range(20):
        actions = random_actions(rng, envs.num_envs)
        if mode is DISABLED:
            done = envs.sim.done_tensor().to_numpy().reshape(-1).astype(bool)
            if done.any():
                envs.reset(options={"reset_mask": np.repeat(done[:: envs.num_agents], envs.num_agents)})
        previous = obs
        obs, *_ = envs.step(actions)
        assert obs is not previous and not np.shares_memory(obs, sim_obs)
        np.testing.assert_array_equal(obs, sim_obs)


def test_step_actions_checks_the_shape_of_obs_out():
    sim = er.SimManager(num_worlds=3, rand_seed=0)
    with pytest.raises(ValueError, match=re.escape("obs_out must have shape (3, 87)")):
        sim._impl.step_actions(np.zeros((3, 3), np.int64), False, np.empty((3, 86), np.float32))
    assert sim._impl.step_count == 0


# -- construction and closing -------------------------------------------------------------------


def test_close_is_idempotent_and_step_after_close_raises():
    envs = make_env(4)
    envs.reset(seed=0)
    envs.close()
    envs.close()
    assert envs.closed
    with pytest.raises(er.EscapeRoomError):
        envs.step(np.zeros((4, 3), dtype=np.int64))
    with pytest.raises(er.EscapeRoomError):
        envs.reset()


@pytest.mark.parametrize(("num_envs", "num_agents"), [(5, 2), (6, 4), (1, 2), (7, 3)])
def test_num_envs_not_divisible_by_num_agents_raises(num_envs, num_agents):
    with pytest.raises(ValueError, match="multiple of num_agents"):
        er.EscapeRoomVectorEnv(num_envs, num_agents=num_agents)


@pytest.mark.parametrize(
    "kwargs",
    [{"episode_len": 5}, {"max_episode_steps": 5}, {"episode_len": 5, "max_episode_steps": 5}],
    ids=["episode_len", "max_episode_steps", "both_equal"],
)
def test_max_episode_steps_is_an_alias_of_episode_len(kwargs):
    envs = make_env(2, **kwargs)
    assert envs.sim.episode_len == 5
    envs.reset(seed=0)
    for _ in range(4):
        _, _, _, truncated, _ = envs.step(np.zeros((2, 3), np.int64))
        assert not truncated.any()
    _, _, _, truncated, _ = envs.step(np.zeros((2, 3), np.int64))
    assert truncated.all()


def test_episode_len_defaults_to_200():
    assert make_env(2).sim.episode_len == 200


def test_episode_len_and_max_episode_steps_disagreeing_raise():
    with pytest.raises(ValueError, match="episode_len=5 and max_episode_steps=6"):
        make_env(2, episode_len=5, max_episode_steps=6)


@pytest.mark.parametrize("render_mode", ["human", "rgb"])
def test_render_mode_other_than_none_or_rgb_array_raises(render_mode):
    with pytest.raises(ValueError, match="render_mode must be None or 'rgb_array'"):
        make_env(2, render_mode=render_mode)


def test_device_cuda_without_a_gpu_raises_cuda_unavailable():
    if er.cuda_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(er.CudaUnavailableError):
        er.EscapeRoomVectorEnv(4, device="cuda")


# -- equivalence with gymnasium's SyncVectorEnv of EscapeRoomEnv --------------------------------

EQUIV_EPISODE_LEN = 23
EQUIV_STEPS = 450


def assert_infos_equal(ours, theirs, where, mask=None):
    assert set(ours) == set(theirs), f"{where}: keys {sorted(ours)} != {sorted(theirs)}"
    for key, expected in theirs.items():
        actual = ours[key]
        if key == "final_obs":
            assert actual.dtype == object and actual.shape == expected.shape, where
            for i, (a, e) in enumerate(zip(actual, expected)):
                if e is None:
                    assert a is None, f"{where}: final_obs[{i}]"
                else:
                    np.testing.assert_array_equal(a, e, err_msg=f"{where}: final_obs[{i}]")
        elif isinstance(expected, dict):
            assert_infos_equal(actual, expected, f"{where}: {key}")
        elif key.startswith("_") or mask is None:
            np.testing.assert_array_equal(actual, expected, err_msg=f"{where}: {key}")
        else:  # after a partial reset, only masked entries carry information
            np.testing.assert_array_equal(actual[mask], expected[mask], err_msg=f"{where}: {key}")


def stage_escape_in_both(ours, sync, env):
    """Puts env's agent before the exit in our env and in the sync env's single env."""
    for sim, world in ((ours.unwrapped.sim, env), (sync.envs[env].unwrapped.sim, 0)):
        exit_y = float(sim._state("level_exit_y")[world])
        sim._state("agent_pos")[world, 0] = (0.0, exit_y - 0.5)
        sim._state("agent_yaw")[world, 0] = 0.0


@pytest.mark.parametrize("mode", ALL_MODES)
def test_matches_sync_vector_env_step_by_step(mode):
    common = {"episode_len": EQUIV_EPISODE_LEN, "num_threads": 1}
    sync = gymnasium.make_vec(
        "EscapeRoom-v0",
        num_envs=4,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": mode},
        **common,
    )
    ours = gymnasium.make_vec("EscapeRoom-v0", num_envs=4, autoreset_mode=mode, **common)
    assert isinstance(sync, gymnasium.vector.SyncVectorEnv)
    assert isinstance(ours.unwrapped, er.EscapeRoomVectorEnv)
    assert ours.single_observation_space == sync.single_observation_space
    assert ours.single_action_space == sync.single_action_space
    assert ours.metadata["autoreset_mode"] is sync.metadata["autoreset_mode"] is mode

    obs_s, info_s = sync.reset(seed=11)
    obs_o, info_o = ours.reset(seed=11)
    np.testing.assert_array_equal(obs_o, obs_s)
    assert_infos_equal(info_o, info_s, "reset")

    rng = np.random.default_rng(123)
    counts = {"terminated": 0, "truncated": 0, "partial_resets": 0, "reset_while_done": 0}
    for t in range(EQUIV_STEPS):
        actions = random_actions(rng, 4)
        if t % 29 == 5:  # send one env to the exit now and then, so that episodes also terminate
            env = (t // 29) % 4
            stage_escape_in_both(ours, sync, env)
            actions[env] = FAST_FORWARD
        obs_s, rew_s, term_s, trunc_s, info_s = sync.step(actions)
        obs_o, rew_o, term_o, trunc_o, info_o = ours.step(actions)
        where = f"step {t + 1}"
        assert obs_o.dtype == np.float32 and rew_o.dtype == np.float32
        assert term_o.dtype == np.bool_ and trunc_o.dtype == np.bool_
        np.testing.assert_array_equal(obs_o, obs_s, err_msg=where)
        np.testing.assert_array_equal(rew_o.astype(np.float64), rew_s, err_msg=where)
        np.testing.assert_array_equal(term_o, term_s, err_msg=where)
        np.testing.assert_array_equal(trunc_o, trunc_s, err_msg=where)
        assert_infos_equal(info_o, info_s, where)
        counts["terminated"] += int(term_o.sum())
        counts["truncated"] += int(trunc_o.sum())

        # DISABLED needs done envs reset; every mode gets a user's partial reset now and then
        # (in NEXT_STEP a manual reset of a done env replaces its pending autoreset)
        mask = (term_o | trunc_o) if mode is DISABLED else np.zeros(4, dtype=np.bool_)
        if t % 31 == 22:
            mask = mask | (rng.random(4) < 0.5)
            mask[t % 4] = True
        if mask.any():
            obs_s, info_s = sync.reset(options={"reset_mask": mask.copy()})
            obs_o, info_o = ours.reset(options={"reset_mask": mask.copy()})
            np.testing.assert_array_equal(obs_o, obs_s, err_msg=f"{where} reset")
            assert_infos_equal(info_o, info_s, f"{where} reset", mask=mask)
            counts["partial_resets"] += 1
            counts["reset_while_done"] += int((mask & (term_o | trunc_o)).any())
    assert counts["terminated"] >= 5, counts
    assert counts["truncated"] >= 40, counts
    assert counts["partial_resets"] >= 14, counts
    assert counts["reset_while_done"] >= 1, counts
    sync.close()
    ours.close()
