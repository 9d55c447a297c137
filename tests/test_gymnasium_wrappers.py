"""gymnasium's own vector wrappers compose with ``EscapeRoomVectorEnv`` (SPEC §7).

Each wrapped env runs 300 steps through several episode ends next to an unwrapped twin with
the same seed and actions, and what the wrapper returns is checked against the twin.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import (
    ClipReward,
    DictInfoToList,
    NormalizeObservation,
    NormalizeReward,
    RecordEpisodeStatistics,
)

import escape_room_env as er

NUM_ENVS = 4
EPISODE_LEN = 20  # < 39 steps: no agent can reach the exit, every episode hits the time limit
STEPS = 300
INFO_KEYS = {"progress", "termination_reason", "elapsed_step", "doors_opened"}


def make_env(**kwargs):
    kwargs.setdefault("episode_len", EPISODE_LEN)
    return er.EscapeRoomVectorEnv(NUM_ENVS, seed=0, num_threads=1, **kwargs)


def action_stream(seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(STEPS):
        yield rng.integers(0, [4, 8, 5], size=(NUM_ENVS, 3), dtype=np.int64)


def episodes_in_run(episode_len=EPISODE_LEN, steps=STEPS):
    """NEXT_STEP: episodes end at steps L, 2L + 1, 3L + 2, ... (one reset step between)."""
    return len(range(episode_len, steps + 1, episode_len + 1))


def steps_with_returns(envs):
    """Steps ``envs`` through action_stream(); yields (terminated, done, returns, infos) per step,
    ``returns`` the return of each env's episode so far (zeroed once the episode ended)."""
    returns = np.zeros(NUM_ENVS)
    for actions in action_stream():
        _, rewards, terminated, truncated, infos = envs.step(actions)
        returns += rewards
        done = terminated | truncated
        yield terminated, done, returns, infos
        returns[done] = 0  # NEXT_STEP: the next step is the reset step (reward 0)


def test_record_episode_statistics_reports_return_and_length_of_every_episode():
    envs = RecordEpisodeStatistics(make_env())
    envs.reset(seed=2)
    reported = 0
    for terminated, done, returns, infos in steps_with_returns(envs):
        assert not terminated.any()
        if done.any():
            assert done.all()  # one episode length for all worlds
            episode = infos["episode"]
            assert set(episode) >= {"r", "l", "t"}
            np.testing.assert_array_equal(infos["_episode"], done)
            np.testing.assert_allclose(episode["r"], returns, rtol=1e-12)
            np.testing.assert_array_equal(episode["l"], EPISODE_LEN)
            assert np.all(episode["t"] >= 0)
            reported += int(done.sum())
        else:
            assert "episode" not in infos and "_episode" not in infos
    assert reported == NUM_ENVS * episodes_in_run()
    assert len(envs.return_queue) == len(envs.length_queue) == min(100, reported)
    assert set(envs.length_queue) == {EPISODE_LEN}


def test_record_episode_statistics_in_same_step_mode():
    envs = RecordEpisodeStatistics(make_env(autoreset_mode=AutoresetMode.SAME_STEP))
    envs.reset(seed=2)
    reported = 0
    for _, done, returns, infos in steps_with_returns(envs):
        if done.any():
            np.testing.assert_allclose(infos["episode"]["r"][done], returns[done], rtol=1e-12)
            np.testing.assert_array_equal(infos["episode"]["l"][done], EPISODE_LEN)
            assert "final_obs" in infos  # gymnasium's SAME_STEP infos survive the wrapper
            reported += int(done.sum())
    assert reported == NUM_ENVS * (STEPS // EPISODE_LEN)


def test_normalize_observation_in_next_step_mode():
    envs = NormalizeObservation(make_env())
    twin = make_env()
    obs, _ = envs.reset(seed=1)
    raw, _ = twin.reset(seed=1)
    dones = 0
    for actions in action_stream(1):
        obs, _, terminated, truncated, _ = envs.step(actions)
        raw, *_ = twin.step(actions)
        assert obs.dtype == np.float32 and obs.shape == raw.shape
        assert np.all(np.isfinite(obs))
        rms = envs.obs_rms
        np.testing.assert_allclose(obs * np.sqrt(rms.var + envs.epsilon) + rms.mean, raw, atol=1e-4)
        dones += int((terminated | truncated).sum())
    assert dones == NUM_ENVS * episodes_in_run()
    assert envs.obs_rms.count > STEPS * NUM_ENVS * 0.99


def test_normalize_observation_refuses_same_step_mode():
    with pytest.raises(ValueError, match="NEXT_STEP"):
        NormalizeObservation(make_env(autoreset_mode=AutoresetMode.SAME_STEP))


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_normalize_reward(mode):
    envs = NormalizeReward(make_env(autoreset_mode=mode), gamma=0.99)
    twin = make_env(autoreset_mode=mode)
    envs.reset(seed=3)
    twin.reset(seed=3)
    for actions in action_stream(3):
        _, rewards, *_ = envs.step(actions)
        _, raw, *_ = twin.step(actions)
        assert np.all(np.isfinite(rewards))
        scale = np.sqrt(envs.return_rms.var + envs.epsilon)
        np.testing.assert_allclose(rewards * scale, raw, rtol=1e-5, atol=1e-7)
    assert envs.return_rms.var > 0


def test_clip_reward():
    envs = ClipReward(make_env(), min_reward=-0.002, max_reward=0.01)
    twin = make_env()
    envs.reset(seed=4)
    twin.reset(seed=4)
    clipped_low = clipped_high = 0
    for actions in action_stream(4):
        _, rewards, terminated, truncated, _ = envs.step(actions)
        _, raw, raw_terminated, raw_truncated, _ = twin.step(actions)
        np.testing.assert_array_equal(rewards, np.clip(raw, -0.002, 0.01))
        np.testing.assert_array_equal(terminated, raw_terminated)
        np.testing.assert_array_equal(truncated, raw_truncated)
        clipped_low += int((raw < -0.002).sum())
        clipped_high += int((raw > 0.01).sum())
    assert clipped_low > 0 and clipped_high > 0


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_dict_info_to_list_gives_one_dict_per_env_with_our_keys(mode):
    envs = DictInfoToList(make_env(autoreset_mode=mode))
    twin = make_env(autoreset_mode=mode)
    infos, _ = envs.reset(seed=5)[1], twin.reset(seed=5)
    assert isinstance(infos, list) and len(infos) == NUM_ENVS
    assert all(set(info) == INFO_KEYS for info in infos)
    finals = 0
    for actions in action_stream(5):
        _, _, terminated, truncated, infos = envs.step(actions)
        *_, raw = twin.step(actions)
        assert isinstance(infos, list) and len(infos) == NUM_ENVS
        done = terminated | truncated
        for i, info in enumerate(infos):
            extra = {"final_obs", "final_info"} if (mode is AutoresetMode.SAME_STEP and done[i]) else set()
            assert set(info) == INFO_KEYS | extra
            for key in INFO_KEYS:
                assert info[key] == raw[key][i], (i, key)
            if extra:
                np.testing.assert_array_equal(info["final_obs"], raw["final_obs"][i])
                assert set(info["final_info"]) == INFO_KEYS
                for key in INFO_KEYS:
                    assert info["final_info"][key] == raw["final_info"][key][i]
                assert info["final_info"]["termination_reason"] == 0
                assert info["final_info"]["elapsed_step"] == EPISODE_LEN
                finals += 1
    if mode is AutoresetMode.SAME_STEP:
        assert finals == NUM_ENVS * (STEPS // EPISODE_LEN)


def test_numpy_to_torch_returns_tensors_and_takes_torch_actions():
    # gymnasium's array conversion wrappers need the array-api-compat package
    pytest.importorskip("array_api_compat", reason="gymnasium's NumpyToTorch needs array-api-compat")
    from gymnasium.wrappers.vector import NumpyToTorch

    envs = NumpyToTorch(make_env())
    twin = make_env()
    obs, infos = envs.reset(seed=6)
    raw, _ = twin.reset(seed=6)
    assert isinstance(obs, torch.Tensor) and obs.dtype == torch.float32
    np.testing.assert_array_equal(obs.numpy(), raw)
    dones = 0
    for actions in action_stream(6):
        obs, rewards, terminated, truncated, infos = envs.step(torch.from_numpy(actions))
        raw, raw_rewards, raw_terminated, raw_truncated, raw_infos = twin.step(actions)
        assert isinstance(obs, torch.Tensor) and obs.dtype == torch.float32
        assert isinstance(rewards, torch.Tensor) and rewards.dtype == torch.float32
        assert isinstance(terminated, torch.Tensor) and terminated.dtype == torch.bool
        assert isinstance(truncated, torch.Tensor) and truncated.dtype == torch.bool
        np.testing.assert_array_equal(obs.numpy(), raw)
        np.testing.assert_array_equal(rewards.numpy(), raw_rewards)
        np.testing.assert_array_equal(terminated.numpy(), raw_terminated)
        np.testing.assert_array_equal(truncated.numpy(), raw_truncated)
        for key in INFO_KEYS:
            assert isinstance(infos[key], torch.Tensor)
            np.testing.assert_array_equal(infos[key].numpy(), raw_infos[key])
        dones += int((raw_terminated | raw_truncated).sum())
    assert dones == NUM_ENVS * episodes_in_run()


def test_wrappers_stack_and_run_through_episode_ends():
    envs = DictInfoToList(
        RecordEpisodeStatistics(ClipReward(NormalizeReward(NormalizeObservation(make_env())), -5.0, 5.0))
    )
    obs, infos = envs.reset(seed=7)
    assert obs.shape == (NUM_ENVS, 87) and len(infos) == NUM_ENVS
    episodes = 0
    for actions in action_stream(7):
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        assert np.all(np.isfinite(obs)) and np.all(np.abs(rewards) <= 5.0)
        for i, info in enumerate(infos):
            if terminated[i] or truncated[i]:
                assert info["episode"]["l"] == EPISODE_LEN
                episodes += 1
            else:
                assert "episode" not in info
    assert episodes == NUM_ENVS * episodes_in_run()


def test_env_never_reports_the_episode_key_itself():
    envs = make_env(episode_len=3)
    _, infos = envs.reset(seed=8)
    assert "episode" not in infos
    for actions in action_stream(8):
        *_, infos = envs.step(actions)
        assert "episode" not in infos and "_episode" not in infos
