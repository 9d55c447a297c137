"""Rendering through the gymnasium layer (SPEC §6, §7): the pixel ``obs_mode``s of
``EscapeRoomVectorEnv`` and ``EscapeRoomEnv``, ``render_mode="rgb_array"`` (top-down frames,
a lazy sequence for the vector env) and gymnasium's ``RecordVideo`` wrappers on both."""

from __future__ import annotations

import tracemalloc
import warnings
from collections.abc import Sequence

import gymnasium
import numpy as np
import pytest
from gymnasium.spaces import Box
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from gymnasium.vector import AutoresetMode

import escape_room_env as er
from escape_room_env.action import move_amount, move_angle, rotate
from escape_room_env.render import COLOURS, MAX_PICTURE_SIDE, Scene, picture

FAST_FORWARD = (move_amount.FAST, move_angle.FORWARD, rotate.NONE)
STOP = (move_amount.STOP, move_angle.FORWARD, rotate.NONE)
SIZE = {"render_width": 12, "render_height": 8}

# Rows y: r0 [16, 18] ... r3 [10, 12] (door 1 at x [10, 12]) ... r8 [0, 2]. The button at
# (11, 7); the spawn at (11, 3). Moving FAST (1 m a step) forward, the agent's disc overlaps the
# button's square (half 0.65) once y > 7 - 1.65: after 3 steps (y = 6).
DOOR_LEVEL = """
###########
#E........#
#.........#
#####1#####
#.........#
#....a....#
#.........#
#....S....#
###########
"""


def rgb_env(num_envs=4, **kwargs):
    kwargs = {"num_agents": 2, "seed": 3, "obs_mode": "rgb", "num_threads": 1, **SIZE, **kwargs}
    return er.EscapeRoomVectorEnv(num_envs, **kwargs)


def sim_images(sim, obs_mode):
    """What each env should observe, from the simulator's own tensors, one row per env."""
    n = sim.num_worlds * sim.num_agents
    height, width = sim.render_size
    rgb = sim.rgb_tensor().to_numpy().reshape(n, height, width, 3)
    depth = sim.depth_tensor().to_numpy().reshape(n, height, width, 1)
    if obs_mode == "rgb":
        return rgb
    if obs_mode == "depth":
        return depth
    return np.concatenate([rgb.astype(np.float32), depth], axis=-1)


# -- observation spaces ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obs_mode", "dtype", "channels", "high"),
    [("rgb", np.uint8, 3, 255), ("depth", np.float32, 1, 40.0), ("rgbd", np.float32, 4, None)],
)
def test_pixel_observation_spaces(obs_mode, dtype, channels, high):
    envs = rgb_env(obs_mode=obs_mode)
    env = er.EscapeRoomEnv(obs_mode=obs_mode, seed=0, **SIZE)
    for space in (envs.single_observation_space, env.observation_space):
        assert isinstance(space, Box)
        assert space.shape == (8, 12, channels)
        assert space.dtype == dtype
        assert (space.low == 0).all()
        if high is not None:
            assert (space.high == high).all()
        else:  # RGB as 0..255, then depth in metres
            np.testing.assert_array_equal(space.high[..., :3], 255.0)
            np.testing.assert_array_equal(space.high[..., 3], 40.0)
    assert envs.observation_space.shape == (4, 8, 12, channels)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (4, 8, 12, channels) and obs.dtype == dtype
    assert envs.observation_space.contains(obs)
    single, _ = env.reset(seed=0)
    assert env.observation_space.contains(single)
    envs.close()
    env.close()


def test_default_pixel_observation_is_64_by_64():
    envs = er.EscapeRoomVectorEnv(2, obs_mode="depth", seed=0)
    assert envs.single_observation_space.shape == (64, 64, 1)
    assert envs.sim.render_size == (64, 64)


def test_vector_obs_mode_has_no_renderer():
    envs = er.EscapeRoomVectorEnv(2, seed=0)
    assert not envs.sim.batch_renderer_enabled


# -- observations are the simulator's images ---------------------------------------------------


@pytest.mark.parametrize("obs_mode", ["rgb", "depth", "rgbd"])
@pytest.mark.parametrize("autoreset_mode", [AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED])
def test_vector_observations_equal_the_simulator_tensors(obs_mode, autoreset_mode):
    envs = rgb_env(obs_mode=obs_mode, autoreset_mode=autoreset_mode, episode_len=4)
    obs, _ = envs.reset(seed=5)
    np.testing.assert_array_equal(obs, sim_images(envs.sim, obs_mode))
    # env i is agent i % 2 of world i // 2
    if obs_mode == "rgb":
        np.testing.assert_array_equal(obs[3], envs.sim.rgb_tensor().to_numpy()[1, 1])
    rng = np.random.default_rng(0)
    for _ in range(6):
        obs, _, terminated, truncated, _ = envs.step(rng.integers(0, [4, 8, 5], (4, 3)))
        np.testing.assert_array_equal(obs, sim_images(envs.sim, obs_mode))
        if autoreset_mode is AutoresetMode.DISABLED and (terminated | truncated).any():
            done = terminated | truncated
            obs, _ = envs.reset(options={"reset_mask": done})
            np.testing.assert_array_equal(obs, sim_images(envs.sim, obs_mode))
    envs.close()


@pytest.mark.parametrize("obs_mode", ["rgb", "depth", "rgbd"])
def test_single_env_observations_equal_the_simulator_tensors(obs_mode):
    env = er.EscapeRoomEnv(obs_mode=obs_mode, seed=1, **SIZE)
    obs, _ = env.reset(seed=1)
    np.testing.assert_array_equal(obs, sim_images(env.sim, obs_mode)[0])
    for _ in range(3):
        obs, *_ = env.step(np.array(FAST_FORWARD))
        np.testing.assert_array_equal(obs, sim_images(env.sim, obs_mode)[0])
    # A fresh array each time: the next step does not change what was returned.
    before = obs.copy()
    env.step(np.array((move_amount.FAST, move_angle.FORWARD, rotate.FAST_LEFT)))
    np.testing.assert_array_equal(obs, before)
    assert not np.array_equal(sim_images(env.sim, obs_mode)[0], before)
    env.close()


def test_rgbd_joins_rgb_as_0_to_255_and_depth_in_metres():
    envs = rgb_env(obs_mode="rgbd")
    obs, _ = envs.reset(seed=2)
    n = envs.num_envs
    np.testing.assert_array_equal(obs[..., :3], envs.sim.rgb_tensor().to_numpy().reshape(n, 8, 12, 3))
    np.testing.assert_array_equal(obs[..., 3], envs.sim.depth_tensor().to_numpy().reshape(n, 8, 12))
    assert obs[..., :3].max() > 1.0  # not scaled to [0, 1]


@pytest.mark.parametrize(("obs_mode", "tensor"), [("rgb", "rgb_tensor"), ("depth", "depth_tensor")])
def test_copy_false_returns_the_simulator_buffers(obs_mode, tensor):
    envs = rgb_env(obs_mode=obs_mode, copy=False)
    buffer = getattr(envs.sim, tensor)().to_numpy()
    obs, _ = envs.reset(seed=0)
    assert np.shares_memory(obs, buffer)
    step_obs, *_ = envs.step(np.zeros((4, 3), np.int64))
    assert np.shares_memory(step_obs, buffer)
    np.testing.assert_array_equal(step_obs, sim_images(envs.sim, obs_mode))


@pytest.mark.parametrize("obs_mode", ["rgb", "depth", "rgbd"])
def test_copy_true_returns_fresh_arrays(obs_mode):
    envs = rgb_env(obs_mode=obs_mode)
    obs, _ = envs.reset(seed=0)
    step_obs, *_ = envs.step(np.zeros((4, 3), np.int64))
    for array in (obs, step_obs):
        assert not np.shares_memory(array, envs.sim.rgb_tensor().to_numpy())
        assert not np.shares_memory(array, envs.sim.depth_tensor().to_numpy())


def test_rgbd_with_copy_false_is_still_a_new_array_each_call():
    envs = rgb_env(obs_mode="rgbd", copy=False)
    obs, _ = envs.reset(seed=0)
    step_obs, *_ = envs.step(np.zeros((4, 3), np.int64))
    assert not np.shares_memory(obs, step_obs)
    np.testing.assert_array_equal(step_obs, sim_images(envs.sim, "rgbd"))


@pytest.mark.parametrize("obs_mode", ["rgb", "depth", "rgbd"])
def test_same_step_autoreset_with_a_pixel_obs_mode_raises(obs_mode):
    with pytest.raises(ValueError, match="NEXT_STEP or DISABLED"):
        rgb_env(obs_mode=obs_mode, autoreset_mode=AutoresetMode.SAME_STEP)
    with pytest.raises(ValueError, match="NEXT_STEP or DISABLED"):
        rgb_env(obs_mode=obs_mode, autoreset_mode="same_step")


def test_unknown_obs_mode_raises():
    with pytest.raises(ValueError, match="obs_mode must be one of"):
        rgb_env(obs_mode="grey")
    with pytest.raises(ValueError, match="obs_mode must be one of"):
        er.EscapeRoomEnv(obs_mode="pixels")


def test_next_step_shows_the_terminal_image_then_the_new_episode():
    envs = rgb_env(num_envs=2, num_agents=1, episode_len=3)
    obs, _ = envs.reset(seed=4)
    first = obs.copy()
    for _ in range(3):
        obs, _, _, truncated, _ = envs.step(np.tile(FAST_FORWARD, (2, 1)))
    assert truncated.all()
    terminal = obs.copy()
    assert not np.array_equal(terminal, first)  # the agents walked 3 m
    obs, *_ = envs.step(np.tile(FAST_FORWARD, (2, 1)))  # starts the next episode, not simulated
    fresh = er.EscapeRoomVectorEnv(2, seed=4, obs_mode="rgb", episode_len=3, **SIZE)
    # The new episode continues each world's stream (episode 1): same as a second reset.
    fresh.reset(seed=4)
    second, _ = fresh.reset()
    np.testing.assert_array_equal(obs, second)


def test_gymnasium_make_passes_obs_mode_and_render_size():
    env = gymnasium.make("EscapeRoom-v0", obs_mode="depth", **SIZE)
    assert env.observation_space.shape == (8, 12, 1)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (8, 12, 1)
    env.close()
    envs = gymnasium.make_vec("EscapeRoom-v0", num_envs=2, obs_mode="rgb", render_mode="rgb_array", **SIZE)
    assert envs.single_observation_space.shape == (8, 12, 3)
    envs.reset(seed=0)
    assert len(envs.render()) == 2
    envs.close()
    env = gymnasium.make("EscapeRoom-v0", render_mode="rgb_array")
    env.reset(seed=0)
    np.testing.assert_array_equal(env.render(), picture(Scene.from_world(env.unwrapped.sim, 0)))
    env.close()


# -- gymnasium's checker -----------------------------------------------------------------------


def checker_messages(env):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gymnasium_check_env(env)
    return [str(w.message) for w in caught]


@pytest.mark.parametrize("obs_mode", ["rgb", "depth", "rgbd"])
def test_pixel_env_passes_gymnasium_check_env(obs_mode):
    env = er.EscapeRoomEnv(obs_mode=obs_mode, render_mode="rgb_array", seed=0, **SIZE)
    messages = checker_messages(env)
    # the only thing the checker can't test on an env built without gymnasium.make
    assert [m for m in messages if "spec" not in m] == []


def test_render_mode_rgb_array_env_passes_gymnasium_check_env():
    env = er.EscapeRoomEnv(render_mode="rgb_array", seed=0)
    assert [m for m in checker_messages(env) if "spec" not in m] == []
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    np.testing.assert_array_equal(frame, picture(Scene.from_world(env.sim, 0)))
    assert er.EscapeRoomEnv(seed=0).render() is None


# -- top-down frames ---------------------------------------------------------------------------


def test_vector_render_is_a_lazy_sequence_of_num_envs_frames():
    envs = er.EscapeRoomVectorEnv(6, num_agents=2, seed=1, render_mode="rgb_array")
    envs.reset(seed=1)
    envs.step(np.tile(FAST_FORWARD, (6, 1)))
    frames = envs.render()
    assert isinstance(frames, Sequence)
    assert len(frames) == 6
    for i in range(6):
        world = i // 2
        expected = picture(Scene.from_world(envs.sim, world))
        np.testing.assert_array_equal(frames[i], expected)
        assert frames[i].dtype == np.uint8 and frames[i].shape == expected.shape
    # The two agents of a world share its frame; worlds differ.
    assert frames[0] is frames[1]
    np.testing.assert_array_equal(frames[4], frames[5])
    assert not np.array_equal(frames[0], frames[2])
    np.testing.assert_array_equal(frames[-1], frames[5])
    assert [f is frames[1] for f in frames[0:3]] == [True, True, False]  # slices too
    with pytest.raises(IndexError):
        frames[6]
    assert len(list(frames)) == 6


def test_vector_render_without_render_mode_is_none():
    assert er.EscapeRoomVectorEnv(2, seed=0).render() is None


def at(frame, x, y):
    """The top-down colour at world point (x, y) of DOOR_LEVEL: the picture spans the outer
    walls, x in [-2, 24], y in [-2, 20], at 8 pixels per metre, row 0 at y = 20."""
    assert frame.shape == (22 * 8, 26 * 8, 3)
    return tuple(int(c) for c in frame[int((20 - y) * 8), int((x + 2) * 8)])


DOOR_CENTRE = (11.0, 11.0)


def test_top_down_frame_shows_the_door_open_after_the_button_is_pressed():
    envs = er.EscapeRoomVectorEnv(2, levels=DOOR_LEVEL, seed=0, render_mode="rgb_array")
    envs.reset(seed=0)
    frames = envs.render()
    assert at(frames[0], *DOOR_CENTRE) == COLOURS["door"]
    assert at(frames[0], 11.0, 7.0) == COLOURS["button"]
    # Env 0 walks onto the button; env 1 stands still.
    for _ in range(3):
        envs.step(np.array([FAST_FORWARD, STOP]))
    assert envs.sim._state("door_open")[:, 0].tolist() == [1, 0]
    frames = envs.render()
    assert at(frames[0], *DOOR_CENTRE) == COLOURS["open_door"]
    assert at(frames[1], *DOOR_CENTRE) == COLOURS["door"]
    # The button shows pressed beyond the agent's disc (centre (11, 6), radius 1).
    assert at(frames[0], 11.0, 7.5) == COLOURS["pressed_button"]
    assert at(frames[1], 11.0, 7.5) == COLOURS["button"]


def test_frames_are_drawn_when_read_not_when_render_is_called():
    envs = er.EscapeRoomVectorEnv(2, levels=DOOR_LEVEL, seed=0, render_mode="rgb_array")
    envs.reset(seed=0)
    frames = envs.render()
    for _ in range(3):
        envs.step(np.array([FAST_FORWARD, STOP]))
    # First read after the steps: the door is already open in the picture.
    assert at(frames[0], *DOOR_CENTRE) == COLOURS["open_door"]


def test_single_env_frame_shows_the_door_open():
    env = er.EscapeRoomEnv(levels=DOOR_LEVEL, seed=0, render_mode="rgb_array")
    env.reset(seed=0)
    assert at(env.render(), *DOOR_CENTRE) == COLOURS["door"]
    for _ in range(3):
        env.step(np.array(FAST_FORWARD))
    assert at(env.render(), *DOOR_CENTRE) == COLOURS["open_door"]


# 256 x 256 cells of 1 km, the largest legal level: 8 pixels a metre would be 2 064 000 a side.
HUGE_LEVEL = {"ascii": ["S" + "." * 254 + "E"] + ["." * 256] * 254 + ["S" * 4 + "." * 252], "cell_size": 1000}


def test_render_of_the_largest_legal_level_is_capped_in_bounded_memory():
    env = er.EscapeRoomEnv(levels=HUGE_LEVEL, seed=0, render_mode="rgb_array")
    envs = er.EscapeRoomVectorEnv(2, num_agents=2, levels=HUGE_LEVEL, seed=0, render_mode="rgb_array")
    try:
        env.reset(seed=0)
        envs.reset(seed=0)
        for draw in (env.render, lambda: envs.render()[1]):
            tracemalloc.start()
            try:
                frame = draw()
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert frame.shape == (MAX_PICTURE_SIDE, MAX_PICTURE_SIDE, 3) == (4096, 4096, 3)
            assert peak <= frame.nbytes + 2**20  # the image and small temporaries (render.py)
    finally:
        env.close()
        envs.close()


# -- gymnasium's RecordVideo -------------------------------------------------------------------


def test_record_video_wraps_the_single_env(tmp_path):
    pytest.importorskip("moviepy")
    env = er.EscapeRoomEnv(render_mode="rgb_array", seed=0, episode_len=5)
    env = gymnasium.wrappers.RecordVideo(env, str(tmp_path / "videos"), episode_trigger=lambda episode: True)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(np.array(FAST_FORWARD))
        done = terminated or truncated
    env.close()
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert [p.name for p in videos] == ["rl-video-episode-0.mp4"]
    assert videos[0].stat().st_size > 0


def test_record_video_wraps_the_vector_env(tmp_path):
    pytest.importorskip("moviepy")
    envs = er.EscapeRoomVectorEnv(4, num_agents=2, render_mode="rgb_array", seed=0, episode_len=5)
    envs = gymnasium.wrappers.vector.RecordVideo(
        envs, str(tmp_path / "videos"), episode_trigger=lambda episode: episode == 0
    )
    envs.reset(seed=0)
    for _ in range(7):
        envs.step(np.tile(FAST_FORWARD, (4, 1)))
    envs.close()
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert [p.name for p in videos] == ["rl-video-episode-0.mp4"]
    assert videos[0].stat().st_size > 0
