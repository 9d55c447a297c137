"""SimManager (SPEC §5.1, §8): construction, bad input, defaults, reset modes, lifetime, nstep."""

from __future__ import annotations

import functools
import gc
import os
import threading

import gymnasium
import numpy as np
import pytest
from helpers import ALL_TENSOR_NAMES, get, random_actions

import escape_room_env as er

TENSOR_NAMES = ALL_TENSOR_NAMES


def snapshot(sim: er.SimManager) -> dict[str, bytes]:
    out = {name: get(sim, name).to_numpy().tobytes() for name in TENSOR_NAMES}
    out["state_hashes"] = sim.state_hashes().tobytes()
    return out


def assert_same_snapshot(a: dict[str, bytes], b: dict[str, bytes], where="") -> None:
    for name, value in a.items():
        assert value == b[name], f"{name} differs {where}"


# -- bad input (SPEC §8) ------------------------------------------------------------------


@pytest.mark.parametrize("num_worlds", [0, -1])
def test_num_worlds_below_one_raises_value_error(num_worlds):
    with pytest.raises(ValueError, match=r"num_worlds must be >= 1"):
        er.SimManager(num_worlds=num_worlds)


def test_num_worlds_beyond_memory_raises_value_error_instead_of_allocating():
    with pytest.raises(ValueError, match=r"num_worlds"):
        er.SimManager(num_worlds=500_000_000)


@pytest.mark.parametrize("num_agents", [0, 5, -1])
def test_num_agents_outside_1_to_4_raises_value_error(num_agents):
    with pytest.raises(ValueError, match=r"num_agents must be between 1 and 4"):
        er.SimManager(num_worlds=2, num_agents=num_agents)


def test_unknown_room_type_raises_value_error_listing_room_types():
    with pytest.raises(ValueError, match=r"unknown room type 'lava'.*button.*double_button.*cube_blocking"):
        er.SimManager(num_worlds=2, rooms=["button", "lava"])


def test_double_button_room_with_one_agent_raises_value_error():
    with pytest.raises(ValueError, match=r"double_button.*num_agents >= 2"):
        er.SimManager(num_worlds=2, num_agents=1, rooms=["double_button", "button"])


def test_more_than_four_rooms_raises_value_error():
    with pytest.raises(ValueError, match=r"1 to 4"):
        er.SimManager(num_worlds=2, rooms=["button"] * 5)


def test_empty_room_list_raises_value_error():
    # SPEC §2.1: users may pass any sequence of 1-4 room types; an empty one is invalid.
    with pytest.raises(ValueError, match=r"1 to 4"):
        er.SimManager(num_worlds=2, rooms=[])


@pytest.mark.parametrize("episode_len", [0, -5])
def test_episode_len_below_one_raises_value_error(episode_len):
    with pytest.raises(ValueError, match=r"episode_len must be >= 1"):
        er.SimManager(num_worlds=2, episode_len=episode_len)


@pytest.mark.parametrize("num_threads", [0, -2])
def test_num_threads_below_one_raises_value_error(num_threads):
    with pytest.raises(ValueError, match=r"num_threads must be between 1"):
        er.SimManager(num_worlds=2, num_threads=num_threads)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_worlds": 1.5}, r"num_worlds must be an int"),
        ({"num_worlds": "8"}, r"num_worlds must be an int"),
        ({"num_worlds": True}, r"num_worlds must be an int"),
        ({"num_agents": 2.0}, r"num_agents must be an int"),
        ({"episode_len": 10.0}, r"episode_len must be an int"),
        ({"num_threads": 1.5}, r"num_threads must be an int"),
        ({"rand_seed": 0.5}, r"rand_seed must be an int"),
        ({"exec_mode": "CPU"}, r"exec_mode must be ExecMode"),
        ({"reward": 3.0}, r"reward must be a RewardConfig"),
        ({"reward": {"escape_bonus": "big"}}, r"escape_bonus must be a number"),
    ],
)
def test_wrong_argument_type_raises_type_error(kwargs, match):
    kwargs = {"num_worlds": 2, **kwargs}
    with pytest.raises(TypeError, match=match):
        er.SimManager(**kwargs)


def test_numpy_integers_are_accepted_as_ints():
    with er.SimManager(num_worlds=np.int64(3), num_agents=np.int32(2), episode_len=np.int16(9)) as sim:
        assert (sim.num_worlds, sim.num_agents, sim.episode_len) == (3, 2, 9)


def test_negative_rand_seed_raises_value_error():
    with pytest.raises(ValueError, match=r"rand_seed must be in \[0, 2\*\*64\)"):
        er.SimManager(num_worlds=2, rand_seed=-1)


def test_cuda_exec_mode_without_gpu_raises_cuda_unavailable_error():
    if er.cuda_available():
        pytest.skip("a CUDA GPU is available on this machine")
    with pytest.raises(er.CudaUnavailableError, match=r"CUDA"):
        er.SimManager(exec_mode=er.ExecMode.CUDA, num_worlds=2)
    # Also catchable as the package's base class and as RuntimeError.
    with pytest.raises(er.EscapeRoomError):
        er.SimManager(exec_mode=er.ExecMode.CUDA, num_worlds=2)
    with pytest.raises(RuntimeError):
        er.SimManager(exec_mode=er.madrona.ExecMode.CUDA, num_worlds=2)


def test_cuda_available_returns_a_bool():
    assert isinstance(er.cuda_available(), bool)


@pytest.mark.parametrize("nstep", [0, -1])
def test_step_with_nstep_below_one_raises_value_error(nstep):
    with er.SimManager(num_worlds=2) as sim:
        before = snapshot(sim)
        with pytest.raises(ValueError, match=r"nstep must be >= 1"):
            sim.step(nstep=nstep)
        assert_same_snapshot(before, snapshot(sim), "after a rejected step")


def test_step_with_non_integer_nstep_raises_type_error():
    with er.SimManager(num_worlds=2) as sim, pytest.raises(TypeError, match=r"nstep.*int"):
        sim.step(nstep=1.5)


def test_unknown_reward_field_raises_value_error_naming_valid_fields():
    with pytest.raises(ValueError, match=r"unknown reward field.*'bogus'.*escape_bonus.*slack_penalty"):
        er.SimManager(num_worlds=2, reward={"bogus": 1.0})


def test_unknown_autoreset_mode_string_raises_value_error():
    with pytest.raises(ValueError, match=r"autoreset_mode must be.*next_step.*same_step.*disabled"):
        er.SimManager(num_worlds=2, autoreset_mode="sometimes")


@pytest.mark.parametrize(
    "mask, exc, match",
    [
        (np.ones(3, dtype=bool), ValueError, r"mask must have shape \(4,\)"),
        (np.ones((4, 1), dtype=bool), ValueError, r"mask must have shape \(4,\)"),
        (np.ones(4, dtype=np.float32), TypeError, r"mask must be a bool or integer array"),
        ([1.0, 0.0, 1.0, 0.0], TypeError, r"mask must be a bool or integer array"),
    ],
)
def test_reset_worlds_with_wrong_mask_raises(mask, exc, match):
    with er.SimManager(num_worlds=4) as sim:
        sim.step(nstep=3)
        before = snapshot(sim)
        with pytest.raises(exc, match=match):
            sim.reset_worlds(mask)
        assert_same_snapshot(before, snapshot(sim), "after a rejected reset")


@pytest.mark.parametrize(
    "seeds, exc, match",
    [
        ([1, 2, 3], ValueError, r"seeds must be an int or have shape \(4,\)"),
        ([1, -2, 3, 4], ValueError, r"seeds must be >= 0"),
        (-1, ValueError, r"seeds must be in \[0, 2\*\*64\)"),
        ([0.5, 1.0, 2.0, 3.0], TypeError, r"seeds must be integers"),
    ],
)
def test_reset_worlds_with_wrong_seeds_raises(seeds, exc, match):
    with er.SimManager(num_worlds=4) as sim, pytest.raises(exc, match=match):
        sim.reset_worlds(None, seeds=seeds)


# -- closed managers (SPEC §8) --------------------------------------------------------------


@pytest.mark.parametrize(
    "use",
    [
        lambda sim: sim.step(),
        lambda sim: sim.step(nstep=5),
        lambda sim: sim.reset_worlds(),
        lambda sim: sim.reset_worlds(np.ones(3, dtype=bool)),
        lambda sim: sim.reseed(7),
        lambda sim: sim.state_hashes(),
        lambda sim: sim._state("agent_pos"),
    ]
    + [functools.partial(get, name=n) for n in TENSOR_NAMES],
)
def test_use_after_close_raises_escape_room_error(use):
    sim = er.SimManager(num_worlds=3)
    for name in TENSOR_NAMES:  # getters used before close must not be served from a cache after it
        get(sim, name)
    sim.close()
    assert sim.closed
    with pytest.raises(er.EscapeRoomError, match=r"closed"):
        use(sim)


def test_context_manager_closes_and_close_is_idempotent():
    with er.SimManager(num_worlds=3) as sim:
        assert not sim.closed
        sim.step()
    assert sim.closed
    sim.close()  # a second close is harmless
    assert sim.closed
    with pytest.raises(er.EscapeRoomError, match=r"closed"):
        sim.step()


def test_exception_classes_form_the_documented_hierarchy():
    assert issubclass(er.EscapeRoomError, RuntimeError)
    for cls in (er.CudaUnavailableError, er.ReplayFormatError, er.ReplayDivergenceError):
        assert issubclass(cls, er.EscapeRoomError)
    assert not issubclass(er.EscapeRoomError, (ValueError, TypeError))


# -- configuration --------------------------------------------------------------------------


def test_defaults_match_the_seed_api():
    with er.SimManager() as sim:
        assert sim.exec_mode == er.ExecMode.CPU
        assert sim.num_worlds == 1024
        assert sim.num_agents == 1
        assert sim.rand_seed == 42
        assert sim.episode_len == 200
        assert sim.autoreset_mode == er.AutoresetMode.SAME_STEP
        assert sim.num_threads == len(os.sched_getaffinity(0))
        assert sim.rooms == ("button", "cube_blocking", "cube_button")
        # The core keeps float32; compare the defaults at that precision.
        got, want = sim.reward_config, er.RewardConfig()
        for field in ("progress_scale", "slack_penalty", "group_bonus", "group_radius", "escape_bonus"):
            assert np.float32(getattr(got, field)) == np.float32(getattr(want, field)), field
        assert np.all(sim.steps_remaining_tensor().to_numpy() == 200)


@pytest.mark.parametrize("num_agents", [2, 3, 4])
def test_default_rooms_for_two_or_more_agents_start_with_double_button(num_agents):
    with er.SimManager(num_worlds=2, num_agents=num_agents) as sim:
        assert sim.rooms == ("double_button", "cube_blocking", "cube_button")
    assert er.default_rooms(num_agents) == ("double_button", "cube_blocking", "cube_button")
    assert er.default_rooms(1) == ("button", "cube_blocking", "cube_button")


def test_default_level_has_three_rooms_with_the_default_room_contents():
    # button: 1 button, 0 cubes; cube_blocking: 1 button, 3 cubes; cube_button: 1 button, 1 cube.
    with er.SimManager(num_worlds=8) as sim:
        counts = sim._state("level_counts")
        assert np.all(counts[:, 1] == 3)  # doors
        assert np.all(counts[:, 2] == 3)  # buttons
        assert np.all(counts[:, 3] == 4)  # cubes
        assert np.all(counts[:, 4] == 3)  # rooms (bands)


@pytest.mark.parametrize(
    "rooms, buttons, cubes",
    [
        (["button"], 1, 0),
        (["cube_button", "cube_button"], 2, 2),
        (["cube_blocking", "button", "cube_blocking", "cube_button"], 4, 7),
    ],
)
def test_rooms_argument_chooses_the_generated_rooms(rooms, buttons, cubes):
    with er.SimManager(num_worlds=4, rooms=rooms) as sim:
        assert sim.rooms == tuple(rooms)
        counts = sim._state("level_counts")
        assert np.all(counts[:, 1] == len(rooms))
        assert np.all(counts[:, 2] == buttons)
        assert np.all(counts[:, 3] == cubes)
        assert np.all(counts[:, 4] == len(rooms))
        L = len(rooms) * 40.0 / 3.0
        np.testing.assert_allclose(sim._state("level_norm_length"), L, rtol=1e-6)


def test_double_button_room_has_two_buttons_with_two_agents():
    with er.SimManager(num_worlds=4, num_agents=2, rooms=["double_button"]) as sim:
        assert np.all(sim._state("level_counts")[:, 2] == 2)


@pytest.mark.parametrize("num_threads", [1, 2, 3, 7])
def test_num_threads_is_kept(num_threads):
    with er.SimManager(num_worlds=5, num_threads=num_threads) as sim:
        assert sim.num_threads == num_threads
        sim.step(nstep=3)


@pytest.mark.parametrize(
    "given, expected",
    [
        ("same_step", er.AutoresetMode.SAME_STEP),
        ("next_step", er.AutoresetMode.NEXT_STEP),
        ("disabled", er.AutoresetMode.DISABLED),
        ("NEXT_STEP", er.AutoresetMode.NEXT_STEP),
        (er.AutoresetMode.SAME_STEP, er.AutoresetMode.SAME_STEP),
        (er.AutoresetMode.NEXT_STEP, er.AutoresetMode.NEXT_STEP),
        (er.AutoresetMode.DISABLED, er.AutoresetMode.DISABLED),
    ],
)
def test_autoreset_mode_by_string_or_enum(given, expected):
    for auto_reset in (True, False):  # autoreset_mode overrides auto_reset
        with er.SimManager(num_worlds=2, auto_reset=auto_reset, autoreset_mode=given) as sim:
            assert sim.autoreset_mode is expected


def test_autoreset_mode_is_gymnasiums_enum():
    assert er.AutoresetMode is gymnasium.vector.AutoresetMode


def _run_past_episode_end(**options) -> dict:
    """A manager of 2 worlds, episodes of 3 steps and ``options``, moved forward for 5 steps:
    its reset mode and world 0's done, steps_remaining, reward and agent y after each step."""
    with er.SimManager(num_worlds=2, episode_len=3, **options) as sim:
        sim.action_tensor().to_numpy()[:] = (er.action.move_amount.FAST, er.action.move_angle.FORWARD, 2)
        out: dict = {"mode": sim.autoreset_mode, "done": [], "steps": [], "reward": [], "y": []}
        for _ in range(sim.episode_len + 2):
            sim.step()
            out["done"].append(int(sim.done_tensor().to_numpy()[0, 0, 0]))
            out["steps"].append(int(sim.steps_remaining_tensor().to_numpy()[0, 0, 0]))
            out["reward"].append(float(sim.reward_tensor().to_numpy()[0, 0, 0]))
            out["y"].append(float(sim._state("agent_pos")[0, 0, 1]))
    return out


def test_auto_reset_true_means_same_step():
    run = _run_past_episode_end(auto_reset=True)
    assert run["mode"] is er.AutoresetMode.SAME_STEP
    # Done on step 3, which already shows the new episode's steps_remaining.
    assert run["done"] == [0, 0, 1, 0, 0]
    assert run["steps"] == [2, 1, 3, 2, 1]
    assert run["y"][2] < run["y"][1]  # back at the spawn of the new episode


def test_auto_reset_false_means_disabled():
    run = _run_past_episode_end(auto_reset=False)
    assert run["mode"] is er.AutoresetMode.DISABLED
    # Frozen after the done step: done stays 1, no motion, reward 0.
    assert run["done"] == [0, 0, 1, 1, 1]
    assert run["steps"] == [2, 1, 0, 0, 0]
    assert run["y"][1] < run["y"][2] == run["y"][3] == run["y"][4]
    assert run["reward"][3:] == [0.0, 0.0]


def test_next_step_mode_starts_the_new_episode_on_the_following_step():
    run = _run_past_episode_end(autoreset_mode="next_step")
    assert run["mode"] is er.AutoresetMode.NEXT_STEP
    assert run["done"] == [0, 0, 1, 0, 0]
    assert run["steps"] == [2, 1, 0, 3, 2]
    assert run["reward"][3] == 0.0  # the reset step: action ignored, reward 0
    assert run["y"][3] < run["y"][2]  # back at a spawn


def test_reward_config_is_used_by_the_core():
    # Standing still earns -slack_penalty every step.
    for reward in (er.RewardConfig(slack_penalty=0.25), {"slack_penalty": 0.25}):
        with er.SimManager(num_worlds=3, reward=reward) as sim:
            assert sim.reward_config.slack_penalty == 0.25
            sim.action_tensor().to_numpy()[:] = (er.action.move_amount.STOP, 0, er.action.rotate.NONE)
            sim.step()
            np.testing.assert_array_equal(sim.reward_tensor().to_numpy(), np.float32(-0.25))
    with er.SimManager(num_worlds=3) as sim:
        sim.action_tensor().to_numpy()[:] = (er.action.move_amount.STOP, 0, er.action.rotate.NONE)
        sim.step()
        np.testing.assert_array_equal(sim.reward_tensor().to_numpy(), np.float32(-0.005))


def test_repr_describes_the_manager():
    sim = er.SimManager(num_worlds=8, num_agents=2, autoreset_mode="next_step")
    r = repr(sim)
    assert "SimManager" in r and "8" in r and "2" in r and "NEXT_STEP" in r
    sim.close()
    assert "closed" in repr(sim)


# -- several managers -----------------------------------------------------------------------


def _reference_run(kwargs: dict, actions: list[np.ndarray]) -> list[dict[str, bytes]]:
    with er.SimManager(**kwargs) as sim:
        out = []
        for act in actions:
            sim.action_tensor().to_numpy()[:] = act
            sim.step()
            out.append(snapshot(sim))
        return out


def test_several_managers_in_one_process_are_independent():
    rng = np.random.default_rng(3)
    cfg_a = {"num_worlds": 8, "num_agents": 1, "rand_seed": 1, "episode_len": 20}
    cfg_b = {
        "num_worlds": 5,
        "num_agents": 3,
        "rand_seed": 2,
        "episode_len": 30,
        "autoreset_mode": "next_step",
    }
    acts_a = [random_actions(rng, 8, 1) for _ in range(60)]
    acts_b = [random_actions(rng, 5, 3) for _ in range(60)]
    ref_a = _reference_run(cfg_a, acts_a)
    ref_b = _reference_run(cfg_b, acts_b)

    a = er.SimManager(**cfg_a)
    b = er.SimManager(**cfg_b)
    c = er.SimManager(num_worlds=8, num_agents=1, rand_seed=1, episode_len=20)  # same config as a
    for i in range(60):
        a.action_tensor().to_numpy()[:] = acts_a[i]
        b_before = snapshot(b)
        a.step()
        assert_same_snapshot(b_before, snapshot(b), "after stepping another manager")
        b.action_tensor().to_numpy()[:] = acts_b[i]
        b.step()
        assert_same_snapshot(ref_a[i], snapshot(a), f"(a, step {i})")
        assert_same_snapshot(ref_b[i], snapshot(b), f"(b, step {i})")
        if i == 30:
            c.close()  # closing one leaves the others running
        if i < 30:
            c.action_tensor().to_numpy()[:] = 0  # c steps with other actions
            c.step()
    a.close()
    b.close()


def test_managers_stepped_from_two_threads_at_once_are_independent():
    rng = np.random.default_rng(4)
    cfgs = [
        {"num_worlds": 64, "num_agents": 2, "rand_seed": 10, "episode_len": 40, "num_threads": 1},
        {"num_worlds": 48, "num_agents": 1, "rand_seed": 20, "episode_len": 25, "num_threads": 2},
    ]
    acts = [[random_actions(rng, c["num_worlds"], c["num_agents"]) for _ in range(150)] for c in cfgs]
    refs = [_reference_run(c, a) for c, a in zip(cfgs, acts)]
    results: list = [None, None]
    errors: list = []

    def worker(k):
        try:
            results[k] = _reference_run(cfgs[k], acts[k])
        except Exception as exc:  # noqa: BLE001 - re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k in range(2):
        for i, (x, y) in enumerate(zip(refs[k], results[k])):
            assert_same_snapshot(x, y, f"(manager {k}, step {i})")


def test_creating_and_destroying_50_managers_in_a_loop():
    rng = np.random.default_rng(5)
    acts = {a: random_actions(rng, 32, a) for a in (1, 2, 3, 4)}
    first_hashes: dict[int, np.ndarray] = {}
    kept = []
    for i in range(50):
        num_agents = i % 4 + 1
        sim = er.SimManager(num_worlds=32, num_agents=num_agents, rand_seed=77, num_threads=1 + i % 2)
        sim.action_tensor().to_numpy()[:] = acts[num_agents]
        sim.step(nstep=3)
        hashes = sim.state_hashes()
        if num_agents in first_hashes:
            np.testing.assert_array_equal(hashes, first_hashes[num_agents])
        else:
            first_hashes[num_agents] = hashes.copy()
        if i % 10 == 0:
            kept.append((sim.observation_tensor().to_numpy(), sim.observation_tensor().to_numpy().copy()))
        if i % 3 == 0:
            sim.close()
        elif i % 3 == 1:
            del sim
        else:
            with sim:
                pass
        gc.collect()
    for arr, copy in kept:
        np.testing.assert_array_equal(arr, copy)


# -- nstep (SPEC §4) ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["same_step", "next_step", "disabled"])
@pytest.mark.parametrize("k", [1, 7, 26])
def test_step_nstep_k_equals_k_calls_of_step(mode, k):
    rng = np.random.default_rng(k)
    kwargs = {"num_worlds": 16, "num_agents": 2, "rand_seed": 9, "episode_len": 10, "autoreset_mode": mode}
    with er.SimManager(**kwargs) as many, er.SimManager(**kwargs) as single:
        for round_ in range(3):
            act = random_actions(rng, 16, 2)
            flags = (rng.random(16) < 0.3).astype(np.int32)
            for sim in (many, single):
                sim.action_tensor().to_numpy()[:] = act
                sim.reset_tensor().to_numpy()[:] = flags  # applies to the first internal step only
            many.step(nstep=k)
            for _ in range(k):
                single.step()
            assert_same_snapshot(snapshot(single), snapshot(many), f"(round {round_})")
            assert not many.reset_tensor().to_numpy().any()


def test_step_nstep_advances_steps_remaining_by_nstep():
    with er.SimManager(num_worlds=4, episode_len=200) as sim:
        sim.step(nstep=37)
        assert np.all(sim.steps_remaining_tensor().to_numpy() == 163)


# -- constants (SPEC §2.2) -----------------------------------------------------------------


def test_action_constants_match_the_spec():
    a = er.action
    assert (a.move_amount.STOP, a.move_amount.SLOW, a.move_amount.MEDIUM, a.move_amount.FAST) == (0, 1, 2, 3)
    assert (
        a.move_angle.FORWARD,
        a.move_angle.FORWARD_RIGHT,
        a.move_angle.RIGHT,
        a.move_angle.BACKWARD_RIGHT,
        a.move_angle.BACKWARD,
        a.move_angle.BACKWARD_LEFT,
        a.move_angle.LEFT,
        a.move_angle.FORWARD_LEFT,
    ) == tuple(range(8))
    assert (
        a.rotate.FAST_LEFT,
        a.rotate.SLOW_LEFT,
        a.rotate.NONE,
        a.rotate.SLOW_RIGHT,
        a.rotate.FAST_RIGHT,
    ) == tuple(range(5))


def test_exec_mode_names_and_madrona_alias():
    assert er.madrona.ExecMode is er.ExecMode
    assert er.ExecMode.CPU != er.ExecMode.CUDA
    assert er.madrona.Tensor is er.Tensor
