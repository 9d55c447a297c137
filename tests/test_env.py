"""``EscapeRoomEnv``: one world, one agent, as a plain ``gymnasium.Env`` (SPEC §7)."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.spaces import Box, MultiDiscrete
from gymnasium.utils.env_checker import check_env as gymnasium_check_env

import escape_room_env as er

STOP = (er.action.move_amount.STOP, er.action.move_angle.FORWARD, er.action.rotate.NONE)
FAST_FORWARD = (er.action.move_amount.FAST, er.action.move_angle.FORWARD, er.action.rotate.NONE)


def checker_warnings(env):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gymnasium_check_env(env)
    return [str(w.message) for w in caught]


def test_passes_gymnasium_check_env():
    messages = checker_warnings(er.EscapeRoomEnv(seed=0))
    # the only thing the checker can't test on an env built without gymnasium.make
    assert [m for m in messages if "spec" not in m] == []


def test_passes_gymnasium_check_env_when_made_through_the_registry():
    env = gymnasium.make("EscapeRoom-v0")
    assert isinstance(env.unwrapped, er.EscapeRoomEnv)
    assert checker_warnings(env.unwrapped) == []
    env.close()


def test_passes_stable_baselines3_check_env():
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_checker.check_env(er.EscapeRoomEnv(seed=0), warn=True)
    assert [str(w.message) for w in caught] == []


def test_spaces_match_one_agent_of_the_vector_env():
    env = er.EscapeRoomEnv(seed=0)
    envs = er.EscapeRoomVectorEnv(2, seed=0, num_threads=1)
    assert isinstance(env.observation_space, Box) and env.observation_space.shape == (87,)
    assert env.observation_space.dtype == np.float32
    assert isinstance(env.action_space, MultiDiscrete)
    np.testing.assert_array_equal(env.action_space.nvec, [4, 8, 5])
    assert env.observation_space == envs.single_observation_space
    assert env.action_space == envs.single_action_space


def test_step_returns_python_float_reward_python_bool_flags_and_a_fresh_observation():
    env = er.EscapeRoomEnv(seed=0)
    obs, info = env.reset(seed=1)
    buffer = env.sim.observation_tensor().to_numpy()
    assert obs.dtype == np.float32 and obs.shape == (87,)
    assert not np.shares_memory(obs, buffer)
    assert isinstance(info, dict)
    obs1, reward, terminated, truncated, info = env.step(np.array(FAST_FORWARD))
    assert type(reward) is float
    assert type(terminated) is bool and type(truncated) is bool
    assert not np.shares_memory(obs1, buffer)
    saved = obs1.copy()
    obs2, *_ = env.step(np.array(FAST_FORWARD))
    np.testing.assert_array_equal(obs1, saved)  # the next step did not write into it
    assert not np.array_equal(obs1, obs2)
    assert env.observation_space.contains(obs2)


def test_info_has_the_vector_envs_keys_as_python_scalars():
    env = er.EscapeRoomEnv(seed=0, episode_len=3)
    _, info = env.reset(seed=2)
    assert set(info) == {"progress", "termination_reason", "elapsed_step", "doors_opened"}
    assert info["elapsed_step"] == 0 and info["termination_reason"] == -1
    for t in (1, 2, 3):
        _, _, terminated, truncated, info = env.step(np.array(STOP))
        assert info["elapsed_step"] == t
    assert truncated and not terminated
    assert info["termination_reason"] == 0
    assert type(info["progress"]) is float and type(info["elapsed_step"]) is int


def test_time_limit_truncates_at_episode_len_and_max_episode_steps():
    for kwargs in ({"episode_len": 4}, {"max_episode_steps": 4}):
        env = er.EscapeRoomEnv(seed=0, **kwargs)
        env.reset(seed=0)
        flags = [env.step(np.array(STOP))[3] for _ in range(4)]
        assert flags == [False, False, False, True], kwargs


def test_escaping_terminates_with_the_escape_reward():
    env = er.EscapeRoomEnv(seed=0)
    env.reset(seed=5)
    sim = env.sim
    exit_y = float(sim._state("level_exit_y")[0])
    sim._state("agent_pos")[0, 0] = (0.0, exit_y - 0.5)
    sim._state("agent_yaw")[0, 0] = 0.0
    max_y = float(sim._state("agent_max_y")[0, 0])
    _, reward, terminated, truncated, info = env.step(np.array(FAST_FORWARD))
    assert terminated and not truncated
    assert info["termination_reason"] == 1
    assert reward == pytest.approx(0.05 * (exit_y - max_y) + 1.0, rel=1e-5)


def rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(a)
        out += [obs, reward, terminated, truncated]
    return out


def test_reset_with_a_seed_is_deterministic():
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, [4, 8, 5]) for _ in range(30)]
    env = er.EscapeRoomEnv(seed=1, episode_len=12)
    first = rollout(env, 9, actions)
    second = rollout(env, 9, actions)
    third = rollout(er.EscapeRoomEnv(seed=2, episode_len=12), 9, actions)
    for a, b, c in zip(first, second, third):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    other, _ = env.reset(seed=10)
    assert not np.array_equal(other, first[0])


def test_seed_s_is_world_0_of_the_vector_env_seeded_s():
    obs, _ = er.EscapeRoomEnv().reset(seed=21)
    vobs, _ = er.EscapeRoomVectorEnv(3, num_threads=1).reset(seed=21)
    np.testing.assert_array_equal(obs, vobs[0])


def test_reset_without_seed_starts_the_next_episode_of_the_stream():
    env = er.EscapeRoomEnv()
    a, _ = env.reset(seed=4)
    b, _ = env.reset()
    assert not np.array_equal(a, b)
    env.reset(seed=4)
    c, _ = env.reset()
    np.testing.assert_array_equal(b, c)


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (np.array([4, 0, 2]), ValueError),
        (np.array([0, 8, 2]), ValueError),
        (np.array([0, 0, 5]), ValueError),
        (np.array([-1, 0, 2]), ValueError),
        (np.array([3.0, 0.0, 2.0]), TypeError),
        (np.array([3, 0], dtype=np.int64), ValueError),
        (np.array([[3, 0, 2]], dtype=np.int64), ValueError),
    ],
    ids=["move_amount_4", "move_angle_8", "rotate_5", "negative", "float", "short", "batched"],
)
def test_invalid_action_raises_and_steps_nothing(action, error):
    env = er.EscapeRoomEnv(seed=0)
    env.reset(seed=0)
    before = env.sim.state_hashes().copy()
    with pytest.raises(error):
        env.step(action)
    np.testing.assert_array_equal(env.sim.state_hashes(), before)
    _, _, _, _, info = env.step(np.array(STOP))
    assert info["elapsed_step"] == 1


@pytest.mark.parametrize("num_agents", [2, 3, 4])
def test_more_than_one_agent_raises(num_agents):
    with pytest.raises(ValueError, match="num_agents"):
        er.EscapeRoomEnv(num_agents=num_agents)


def test_render_mode_other_than_none_or_rgb_array_raises():
    with pytest.raises(ValueError, match="render_mode must be None or 'rgb_array'"):
        er.EscapeRoomEnv(render_mode="human")


def test_close_frees_the_simulation():
    env = er.EscapeRoomEnv()
    env.reset(seed=0)
    env.close()
    with pytest.raises(er.EscapeRoomError):
        env.step(np.array(STOP))
