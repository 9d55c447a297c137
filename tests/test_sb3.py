"""Stable-Baselines3 conformance (SPEC §7): ``EscapeRoomEnv`` passes SB3's ``check_env``, and
``escape_room_env.sb3.EscapeRoomVecEnv`` follows the ``VecEnv`` contract of ``DummyVecEnv``.

The adapter runs a SAME_STEP vector env; a NEXT_STEP twin with the same seeds and actions shows
each terminal observation on the done step and the next episode's first observation one step
later, so the twin pins what the adapter must return.
"""

from __future__ import annotations

import doctest
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from helpers import OUTSIDE_SOURCE
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

import escape_room_env as er
from escape_room_env.sb3 import EscapeRoomVecEnv

REPO = Path(__file__).resolve().parent.parent
NVEC = np.array([4, 8, 5])
INFO_KEYS = ("progress", "termination_reason", "elapsed_step", "doors_opened")


def make(num_envs=4, seed=0, **kwargs):
    return EscapeRoomVecEnv(num_envs=num_envs, seed=seed, num_threads=1, **kwargs)


def random_actions(rng, num_envs):
    return rng.integers(0, NVEC, size=(num_envs, 3))


def test_single_env_passes_sb3_check_env():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(er.EscapeRoomEnv(seed=0), warn=True)
    assert [str(w.message) for w in caught] == []


def test_core_package_does_not_import_stable_baselines3():
    code = (
        "import sys, gymnasium, escape_room_env\n"
        "gymnasium.make_vec('EscapeRoom-v0', num_envs=2)\n"
        "assert 'stable_baselines3' not in sys.modules, 'escape_room_env imported stable_baselines3'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=OUTSIDE_SOURCE)


def test_sb3_docstring_examples_run():
    import escape_room_env.sb3

    result = doctest.testmod(escape_room_env.sb3, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_spaces_and_dtypes_are_sb3s():
    venv = make(num_envs=4)
    assert venv.observation_space == venv.vector_env.single_observation_space
    assert venv.action_space == venv.vector_env.single_action_space
    obs = venv.reset()
    assert obs.shape == (4, 87) and obs.dtype == np.float32
    obs, rewards, dones, infos = venv.step(random_actions(np.random.default_rng(0), 4))
    assert obs.dtype == np.float32 and rewards.dtype == np.float32 and dones.dtype == np.bool_
    assert isinstance(infos, list) and len(infos) == 4
    assert set(infos[0]) == {*INFO_KEYS, "TimeLimit.truncated"}
    assert infos[0]["elapsed_step"] == 1 and infos[0]["termination_reason"] == -1
    assert venv.render_mode is None
    assert set(venv.reset_infos[0]) == set(INFO_KEYS) and venv.reset_infos[0]["elapsed_step"] == 0


@pytest.mark.parametrize("num_agents", [1, 2])
def test_terminal_observation_and_next_obs_match_a_next_step_twin(num_agents):
    num_envs, episode_len = 8, 4
    venv = make(num_envs=num_envs, seed=3, num_agents=num_agents, episode_len=episode_len)
    twin = er.EscapeRoomVectorEnv(
        num_envs=num_envs, seed=3, num_agents=num_agents, episode_len=episode_len, num_threads=1
    )
    assert twin.autoreset_mode is er.AutoresetMode.NEXT_STEP
    venv.seed(11)
    obs = venv.reset()
    twin_obs, _ = twin.reset(seed=11)
    np.testing.assert_array_equal(obs, twin_obs)

    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(3 * episode_len):
        actions = random_actions(rng, num_envs)
        obs, rewards, dones, infos = venv.step(actions)
        t_obs, t_rewards, t_term, t_trunc, t_infos = twin.step(actions)
        np.testing.assert_array_equal(rewards, t_rewards)
        np.testing.assert_array_equal(dones, t_term | t_trunc)
        assert [info["TimeLimit.truncated"] for info in infos] == (t_trunc & ~t_term).tolist()
        for key in INFO_KEYS:  # on the done step NEXT_STEP shows the finished episode's values
            assert [info[key] for info in infos] == t_infos[key].tolist(), key
        if not dones.any():
            np.testing.assert_array_equal(obs, t_obs)
            assert not any("terminal_observation" in info for info in infos)
            continue
        # Episodes this short end together, at the time limit.
        assert dones.all() and t_trunc.all()
        ends += 1
        for i in range(num_envs):
            assert infos[i]["TimeLimit.truncated"] is True
            assert infos[i]["termination_reason"] == 0 and infos[i]["elapsed_step"] == episode_len
            terminal = infos[i]["terminal_observation"]
            assert isinstance(terminal, np.ndarray) and terminal.dtype == np.float32
            np.testing.assert_array_equal(terminal, t_obs[i])
        # The twin starts the next episode one step later (its actions are ignored there).
        r_obs, r_rewards, r_term, r_trunc, _ = twin.step(np.zeros((num_envs, 3), dtype=np.int64))
        np.testing.assert_array_equal(obs, r_obs)
        assert not r_term.any() and not r_trunc.any() and not r_rewards.any()
    assert ends == 3


@pytest.mark.parametrize("steps_left", [50, 1], ids=["mid-episode", "on-the-time-limit-step"])
def test_escape_is_a_done_without_time_limit_truncation(steps_left):
    fast_forward = (er.action.move_amount.FAST, er.action.move_angle.FORWARD, er.action.rotate.NONE)
    venv = make(num_envs=3, seed=4)
    twin = er.EscapeRoomVectorEnv(num_envs=3, seed=4, num_threads=1)  # NEXT_STEP
    venv.reset()
    twin.reset()
    for env in (venv.vector_env, twin):  # world 1 one step short of the exit, facing it
        exit_y = float(env.sim._state("level_exit_y")[1])
        env.sim._state("agent_pos")[1, 0] = (0.0, exit_y - 0.5)
        env.sim._state("agent_yaw")[1, 0] = 0.0
        env.sim._state("steps_left")[1] = steps_left
    actions = np.array([fast_forward] * 3)
    obs, rewards, dones, infos = venv.step(actions)
    t_obs, t_rewards, t_term, t_trunc, _ = twin.step(actions)
    assert t_term.tolist() == [False, True, False] and not t_trunc.any()
    assert dones.tolist() == [False, True, False]
    np.testing.assert_array_equal(rewards, t_rewards)
    assert rewards[1] > 1.0  # the escape bonus
    assert [info["TimeLimit.truncated"] for info in infos] == [False, False, False]
    assert infos[1]["termination_reason"] == 1 and infos[0]["termination_reason"] == -1
    np.testing.assert_array_equal(infos[1]["terminal_observation"], t_obs[1])
    assert "terminal_observation" not in infos[0] and "terminal_observation" not in infos[2]
    np.testing.assert_array_equal(obs[[0, 2]], t_obs[[0, 2]])
    assert not np.array_equal(obs[1], t_obs[1])  # already the next episode's first observation


def test_seed_gives_each_world_its_seed_and_is_used_once():
    venv = make(num_envs=6, num_agents=2)
    assert venv.seed(5) == [5, 5, 6, 6, 7, 7]
    first = venv.reset()
    assert venv._seeds == [None] * 6  # used once
    second = venv.reset()  # the streams continue: the next episode
    assert not np.array_equal(first, second)
    venv.seed(5)
    np.testing.assert_array_equal(venv.reset(), first)
    assert make(num_envs=4).seed(9) == [9, 10, 11, 12]


def test_same_seed_gives_same_obs_and_different_seed_different_obs():
    a, b = make(seed=0), make(seed=100)  # the construction seed is overridden by seed()
    a.seed(5)
    b.seed(5)
    obs_a, obs_b = a.reset(), b.reset()
    np.testing.assert_array_equal(obs_a, obs_b)
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    for _ in range(5):
        step_a, step_b = a.step(random_actions(rng_a, 4)), b.step(random_actions(rng_b, 4))
        np.testing.assert_array_equal(step_a[0], step_b[0])
        np.testing.assert_array_equal(step_a[1], step_b[1])
    b.seed(6)
    a.seed(5)
    assert not np.array_equal(a.reset(), b.reset())


def test_get_attr_set_attr_and_env_method_use_the_shared_vector_env():
    venv = make(num_envs=4)
    assert venv.get_attr("num_agents") == [1, 1, 1, 1]
    assert venv.get_attr("render_mode", indices=[0, 2]) == [None, None]
    assert venv.get_attr("num_worlds", indices=3) == [4]
    assert venv.has_attr("autoreset_mode") and not venv.has_attr("no_such_attribute")
    with pytest.raises(AttributeError):
        venv.get_attr("no_such_attribute")

    venv.set_attr("label", "a")
    assert venv.vector_env.label == "a" and venv.get_attr("label") == ["a"] * 4
    venv.set_attr("label", "b", indices=[3, 2, 1, 0])
    assert venv.get_attr("label") == ["b"] * 4
    with pytest.raises(ValueError, match="every env"):
        venv.set_attr("label", "c", indices=[0])

    results = venv.env_method("reset", seed=7, indices=[1, 2])
    assert len(results) == 2
    expected, _ = er.EscapeRoomVectorEnv(num_envs=4, seed=0, num_threads=1).reset(seed=7)
    np.testing.assert_array_equal(results[0][0], expected)
    assert venv.env_method("reset", seed=7)[3][0].shape == (4, 87)

    assert venv.env_is_wrapped(Monitor) == [False] * 4
    assert venv.env_is_wrapped(Monitor, indices=[1]) == [False]


def test_step_after_close_raises():
    venv = make(num_envs=2)
    venv.reset()
    venv.close()
    assert venv.vector_env.closed
    with pytest.raises(er.EscapeRoomError, match="closed"):
        venv.step(np.zeros((2, 3), dtype=np.int64))


def test_from_vector_env_wraps_same_step_copying_envs_and_refuses_others():
    envs = er.EscapeRoomVectorEnv(num_envs=2, autoreset_mode="same_step", num_threads=1)
    venv = EscapeRoomVecEnv.from_vector_env(envs)
    assert venv.vector_env is envs and venv.num_envs == 2
    assert venv.reset().shape == (2, 87)
    with pytest.raises(ValueError, match="NEXT_STEP"):
        EscapeRoomVecEnv.from_vector_env(er.EscapeRoomVectorEnv(num_envs=2, num_threads=1))
    with pytest.raises(ValueError, match="copy=False"):
        EscapeRoomVecEnv.from_vector_env(
            er.EscapeRoomVectorEnv(num_envs=2, autoreset_mode="same_step", copy=False, num_threads=1)
        )
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match=re.escape("torch_outputs=True (needs numpy outputs")):
        EscapeRoomVecEnv.from_vector_env(
            er.EscapeRoomVectorEnv(num_envs=2, autoreset_mode="same_step", torch_outputs=True, num_threads=1)
        )
    with pytest.raises(TypeError):
        EscapeRoomVecEnv.from_vector_env(er.EscapeRoomEnv())


def test_set_options_must_agree_across_envs():
    venv = make(num_envs=2)
    venv.set_options([{"a": 1}, {"a": 2}])
    with pytest.raises(ValueError, match="same options"):
        venv.reset()
    venv.set_options({"reset_mask": np.array([True, True])})
    assert venv.reset().shape == (2, 87)


def test_vec_monitor_reports_time_limit_episodes():
    episode_len = 5
    venv = VecMonitor(make(num_envs=4, episode_len=episode_len), info_keywords=("progress",))
    venv.reset()
    rng = np.random.default_rng(0)
    returns = np.zeros(4)
    episodes = []
    for _ in range(2 * episode_len):
        _, rewards, dones, infos = venv.step(random_actions(rng, 4))
        returns += rewards
        for i in np.flatnonzero(dones):
            episode = infos[i]["episode"]
            assert episode["l"] == episode_len
            assert episode["r"] == pytest.approx(returns[i], rel=1e-5, abs=1e-6)
            assert episode["progress"] == infos[i]["progress"]
            episodes.append(episode)
            returns[i] = 0
        assert not any("episode" in infos[i] for i in np.flatnonzero(~dones))
    assert len(episodes) == 2 * 4


def test_vec_normalize_over_vec_monitor_normalizes_terminal_observations():
    venv = VecNormalize(VecMonitor(make(num_envs=4, episode_len=3)), clip_obs=5.0)
    obs = venv.reset()
    assert obs.shape == (4, 87) and np.abs(obs).max() <= 5.0
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs, _, dones, infos = venv.step(random_actions(rng, 4))
    assert dones.all()
    for info in infos:
        terminal = info["terminal_observation"]
        assert np.isfinite(terminal).all() and np.abs(terminal).max() <= 5.0
        assert "episode" in info and info["episode"]["l"] == 3
    np.testing.assert_allclose(venv.normalize_obs(venv.get_original_obs()), obs, rtol=1e-6)
    venv.close()


def test_ppo_learns_a_few_thousand_steps_without_error():
    venv = VecNormalize(VecMonitor(EscapeRoomVecEnv(num_envs=16, seed=0, episode_len=100, num_threads=1)))
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=256, seed=0, device="cpu", verbose=0)
    model.learn(3000)
    assert model.num_timesteps == 3072  # three rollouts of 16 envs x 64 steps
    # Each env finished at least one 100-step episode, which VecMonitor reported to PPO.
    assert len(model.ep_info_buffer) >= 16
    assert all(episode["l"] == 100 for episode in model.ep_info_buffer)
    venv.close()


def test_sb3_ppo_example_runs():
    script = REPO / "examples" / "sb3_ppo.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--total-timesteps", "2048", "--num-envs", "8"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "mean return" in proc.stdout and "mean progress" in proc.stdout, proc.stdout
