"""``EscapeRoom-v0`` in gymnasium's registry: make, make_vec and their kwargs (SPEC §7).

Ported from gymnasium's ``tests/envs/registration/test_make_vec.py``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import gymnasium
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from helpers import OUTSIDE_SOURCE

import escape_room_env as er


def run_python(code):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=OUTSIDE_SOURCE,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_make_with_module_prefix_works_without_a_prior_import():
    out = run_python(
        """
        import sys
        import gymnasium
        assert "escape_room_env" not in sys.modules
        env = gymnasium.make("escape_room_env:EscapeRoom-v0")
        obs, info = env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        print(type(env.unwrapped).__name__, obs.shape[0], type(reward).__name__)
        """
    )
    assert out == ["EscapeRoomEnv", "87", "float"]


def test_make_vec_with_module_prefix_works_without_a_prior_import():
    out = run_python(
        """
        import sys
        import gymnasium
        assert "escape_room_env" not in sys.modules
        envs = gymnasium.make_vec("escape_room_env:EscapeRoom-v0", num_envs=4)
        obs, info = envs.reset(seed=0)
        print(type(envs.unwrapped).__name__, *obs.shape)
        """
    )
    assert out == ["EscapeRoomVectorEnv", "4", "87"]


def test_import_registers_the_id_with_both_entry_points():
    spec = gymnasium.spec("EscapeRoom-v0")
    assert er.ENV_ID == "EscapeRoom-v0"
    assert spec.entry_point == "escape_room_env.env:EscapeRoomEnv"
    assert spec.vector_entry_point == "escape_room_env.registration:make_vector_env"
    assert spec.max_episode_steps == 200 and spec.reward_threshold == 2.5


def test_register_again_is_harmless():
    spec = gymnasium.spec("EscapeRoom-v0")
    er.registration.register()
    assert gymnasium.spec("EscapeRoom-v0") == spec


def test_make_builds_the_single_env_whose_own_episode_len_ends_episodes():
    # gymnasium's TimeLimit at the spec's max_episode_steps (200) wraps it; the simulator's own
    # episode_len (here shorter) ends the episode first
    env = gymnasium.make("EscapeRoom-v0", episode_len=5)
    assert isinstance(env.unwrapped, er.EscapeRoomEnv)
    assert isinstance(env, gymnasium.wrappers.TimeLimit) and env.spec.max_episode_steps == 200
    assert env.spec.id == "EscapeRoom-v0"
    assert env.spec.kwargs["episode_len"] == 5
    env.reset(seed=0)
    flags = [env.step(np.array([0, 0, 2]))[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]
    env.close()


def test_make_vec_uses_the_vector_entry_point_by_default():
    envs = gymnasium.make_vec("EscapeRoom-v0", num_envs=8)
    assert type(envs) is er.EscapeRoomVectorEnv
    assert envs.num_envs == 8
    assert envs.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    envs.close()


def test_make_vec_accepts_an_env_spec():
    envs = gymnasium.make_vec(gymnasium.spec("EscapeRoom-v0"), num_envs=3)
    assert type(envs) is er.EscapeRoomVectorEnv and envs.num_envs == 3
    envs.close()


def test_make_vec_sync_mode_vectorizes_the_single_env():
    envs = gymnasium.make_vec("EscapeRoom-v0", num_envs=3, vectorization_mode="sync", episode_len=7)
    assert isinstance(envs, gymnasium.vector.SyncVectorEnv)
    assert all(isinstance(e.unwrapped, er.EscapeRoomEnv) for e in envs.envs)
    assert all(e.unwrapped.sim.episode_len == 7 for e in envs.envs)
    envs.close()


KWARGS = {
    "num_agents": 2,
    "rooms": ("button", "cube_blocking"),
    "copy": False,
    "autoreset_mode": AutoresetMode.SAME_STEP,
    "seed": 11,
    "num_threads": 2,
    "episode_len": 9,
}


def test_make_vec_passes_every_env_option_to_the_vector_env():
    envs = gymnasium.make_vec("EscapeRoom-v0", num_envs=6, **KWARGS)
    assert type(envs) is er.EscapeRoomVectorEnv
    assert envs.num_envs == 6 and envs.num_agents == 2 and envs.num_worlds == 3
    assert envs.sim.num_worlds == 3 and envs.sim.num_agents == 2
    assert envs.sim.rooms == ("button", "cube_blocking")
    assert envs.copy is False
    assert envs.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert envs.sim.autoreset_mode is AutoresetMode.SAME_STEP
    assert envs.sim.rand_seed == 11
    assert envs.sim.num_threads == 2
    assert envs.sim.episode_len == 9
    assert envs.single_observation_space.shape == (90,)
    assert envs.observation_space.shape == (6, 90)
    # the construction seed is the world streams' seed: same first episode as a direct build
    obs, _ = envs.reset()
    direct, _ = er.EscapeRoomVectorEnv(6, num_agents=2, rooms=("button", "cube_blocking"), seed=11).reset()
    np.testing.assert_array_equal(obs, direct)
    envs.close()


def test_make_vec_max_episode_steps_reaches_the_vector_env():
    envs = gymnasium.make_vec("EscapeRoom-v0", num_envs=2, max_episode_steps=6)
    assert envs.sim.episode_len == 6
    envs.reset(seed=0)
    flags = [envs.step(np.zeros((2, 3), np.int64))[3].all() for _ in range(6)]
    assert flags == [False] * 5 + [True]
    with pytest.raises(ValueError, match="max_episode_steps"):
        gymnasium.make_vec("EscapeRoom-v0", num_envs=2, max_episode_steps=6, episode_len=7)


def test_make_vec_records_id_and_kwargs_on_the_spec():
    envs = gymnasium.make_vec("EscapeRoom-v0", num_envs=6, **KWARGS)
    assert envs.spec.id == "EscapeRoom-v0"
    # make_vec records the spec's max_episode_steps it passed along; episode_len wins over it
    assert envs.spec.kwargs == {
        **KWARGS,
        "max_episode_steps": 200,
        "num_envs": 6,
        "vectorization_mode": "vector_entry_point",
    }
    # gymnasium's round trip: the recorded spec rebuilds the same vector env
    again = gymnasium.make_vec(envs.spec)
    assert type(again) is er.EscapeRoomVectorEnv and again.num_envs == 6
    assert again.sim.rooms == envs.sim.rooms and again.sim.episode_len == 9
    assert again.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    a, _ = envs.reset(seed=3)
    b, _ = again.reset(seed=3)
    np.testing.assert_array_equal(a, b)
    envs.close()
    again.close()


@pytest.mark.parametrize("mode", ["vector_entry_point", None])
def test_make_vec_vector_entry_point_with_wrappers_raises_gymnasiums_error(mode):
    with pytest.raises(
        gymnasium.error.Error, match="Cannot use `vector_entry_point` vectorization mode with the wrappers"
    ):
        gymnasium.make_vec(
            "EscapeRoom-v0",
            num_envs=2,
            vectorization_mode=mode,
            wrappers=[gymnasium.wrappers.RecordEpisodeStatistics],
        )


def test_make_vec_vector_entry_point_with_vector_kwargs_raises_gymnasiums_error():
    with pytest.raises(gymnasium.error.Error, match="Custom vector environment can be passed arguments only"):
        gymnasium.make_vec("EscapeRoom-v0", num_envs=2, vector_kwargs={"copy": False})


def test_make_vec_sync_mode_accepts_wrappers():
    envs = gymnasium.make_vec(
        "EscapeRoom-v0",
        num_envs=2,
        vectorization_mode="sync",
        wrappers=[gymnasium.wrappers.RecordEpisodeStatistics],
    )
    assert all(isinstance(e, gymnasium.wrappers.RecordEpisodeStatistics) for e in envs.envs)
    envs.close()
