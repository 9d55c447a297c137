"""Torch outputs of ``EscapeRoomVectorEnv`` (``device="cuda"``) and the PPO's GPU rollout (SPEC §7).

``device="cuda"`` returns torch tensors through the same code as a CPU simulator built with the
private ``torch_outputs=True``, so most of these tests run that path on the CPU and compare it,
bit for bit, with the numpy path of a second env given the same seed, actions and resets. The
tests marked ``needs_cuda`` run the real GPU path against a CPU env where a GPU exists.
"""

from __future__ import annotations

import re

import gymnasium
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch outputs need torch")

import escape_room_env as er
from escape_room_env.ppo import Args, _DeviceEpisodeStats, _EpisodeLog, train

NEXT_STEP, SAME_STEP, DISABLED = (
    gymnasium.vector.AutoresetMode.NEXT_STEP,
    gymnasium.vector.AutoresetMode.SAME_STEP,
    gymnasium.vector.AutoresetMode.DISABLED,
)
ALL_MODES = (NEXT_STEP, SAME_STEP, DISABLED)
NVEC = np.array([4, 8, 5])
FAST_FORWARD = (er.action.move_amount.FAST, er.action.move_angle.FORWARD, er.action.rotate.NONE)
STEPS = 60
EPISODE_LEN = 13

needs_cuda = pytest.mark.skipif(not er.cuda_available(), reason="needs a CUDA GPU and the CUDA build")


def make_pair(num_envs=4, device="cpu", **kwargs):
    """(numpy env, torch env) with the same configuration and seed."""
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("num_threads", 1)
    reference = er.EscapeRoomVectorEnv(num_envs, **kwargs)
    if device == "cpu":
        envs = er.EscapeRoomVectorEnv(num_envs, device="cpu", torch_outputs=True, **kwargs)
    else:
        envs = er.EscapeRoomVectorEnv(num_envs, device=device, **kwargs)
    return reference, envs


def as_tensor(array) -> torch.Tensor:
    """A numpy result as a CPU tensor (copied: copy=False results may be read-only)."""
    return torch.from_numpy(np.array(array))


def assert_tensor_equals(got, expected, device, where):
    assert isinstance(got, torch.Tensor), f"{where}: {type(got).__name__}, not a tensor"
    assert got.device.type == device, f"{where}: on {got.device}"
    want = as_tensor(expected)
    assert got.dtype == want.dtype and got.shape == want.shape, (
        f"{where}: {got.dtype} {tuple(got.shape)} != {want.dtype} {tuple(want.shape)}"
    )
    assert torch.equal(got.cpu(), want), f"{where}: values differ"


def assert_infos_equal(got, expected, device, where):
    assert set(got) == set(expected), f"{where}: keys {sorted(got)} != {sorted(expected)}"
    for key, value in expected.items():
        if key == "final_obs":  # one (N, D) tensor: terminal rows where finished, zero rows elsewhere
            finished = expected["_final_obs"]
            rows = [as_tensor(v) if finished[i] else None for i, v in enumerate(value)]
            dim = next(r for r in rows if r is not None).shape[0]
            want = torch.stack([torch.zeros(dim) if r is None else r for r in rows])
            assert_tensor_equals(got[key], want.numpy(), device, f"{where}: final_obs")
        elif key == "final_info":
            assert_infos_equal(got[key], value, device, f"{where}: final_info")
        else:
            assert_tensor_equals(got[key], value, device, f"{where}: infos[{key!r}]")


def assert_results_equal(got, expected, device, where):
    for name, a, b in zip(("obs", "rewards", "terminated", "truncated"), got[:4], expected[:4]):
        assert_tensor_equals(a, b, device, f"{where}: {name}")
    assert_infos_equal(got[4], expected[4], device, where)


def stage_door(sims, world, num_agents):
    """Puts agent a of ``world`` on button a (the first room's buttons of group 0): its door
    opens on the next step."""
    for sim in sims:
        buttons = sim._state("level_button_pos")
        for a in range(num_agents):
            for k in range(2):
                sim._state("agent_pos")[world, a, k] = float(buttons[world, a, k])


def stage_escape(sims, world, num_agents):
    """Every agent of ``world`` half a metre before the exit, facing +y: FAST FORWARD escapes."""
    for sim in sims:
        exit_y = float(sim._state("level_exit_y")[world])
        for a in range(num_agents):
            sim._state("agent_pos")[world, a, 0] = 0.0
            sim._state("agent_pos")[world, a, 1] = exit_y - 0.5
            sim._state("agent_yaw")[world, a] = 0.0


def run_side_by_side(reference, envs, device, num_agents, steps=STEPS):
    """Steps both envs with the same random actions (given to the torch env as torch int64,
    torch int32 and numpy in turn), staging a door and an escape, resetting done envs in
    DISABLED mode; compares every result. Returns (done steps, final_obs steps)."""
    rng = np.random.default_rng(7)
    n, mode = reference.num_envs, reference.autoreset_mode
    got_obs, got_infos = envs.reset(seed=3)
    want_obs, want_infos = reference.reset(seed=3)
    assert_tensor_equals(got_obs, want_obs, device, "reset obs")
    assert_infos_equal(got_infos, want_infos, device, "reset infos")
    dones = finals = 0
    for t in range(steps):
        actions = rng.integers(0, NVEC, size=(n, 3), dtype=np.int64)
        if t % 20 == 4:
            stage_door((reference.sim, envs.sim), 0, num_agents)
        if t % 20 == 11:
            stage_escape((reference.sim, envs.sim), reference.num_worlds - 1, num_agents)
            actions[n - num_agents :] = FAST_FORWARD
        variant = (
            torch.from_numpy(actions).to(device),
            torch.from_numpy(actions.astype(np.int32)).to(device),
            actions,
        )[t % 3]
        expected = reference.step(actions)
        got = envs.step(variant)
        assert_results_equal(got, expected, device, f"{mode.name} step {t}")
        done = expected[2] | expected[3]
        dones += int(done.any())
        finals += "final_obs" in expected[4]
        if mode is DISABLED and done.any():
            want = reference.reset(options={"reset_mask": done.copy()})
            have = envs.reset(options={"reset_mask": got[2] | got[3]})  # a bool tensor mask
            assert_tensor_equals(have[0], want[0], device, f"reset at step {t}: obs")
            assert_infos_equal(have[1], want[1], device, f"reset at step {t}: infos")
    return dones, finals


# -- the torch path on the CPU against the numpy path ------------------------------------------


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "zero_copy"])
@pytest.mark.parametrize("num_agents", [1, 2])
@pytest.mark.parametrize("mode", ALL_MODES, ids=lambda m: m.name)
def testtorch_outputs_equal_numpy_outputs_bit_for_bit(mode, num_agents, copy):
    reference, envs = make_pair(
        4 * num_agents, num_agents=num_agents, autoreset_mode=mode, copy=copy, episode_len=EPISODE_LEN
    )
    dones, finals = run_side_by_side(reference, envs, "cpu", num_agents)
    assert dones >= STEPS // EPISODE_LEN  # episodes ended (time limits and staged escapes)
    assert finals == (dones if mode is SAME_STEP else 0)


def test_staged_door_and_escape_show_in_the_compared_infos():
    reference, envs = make_pair(4, autoreset_mode=SAME_STEP, episode_len=EPISODE_LEN)
    reference.reset(seed=3)
    envs.reset(seed=3)
    stage_door((reference.sim, envs.sim), 0, 1)
    _, _, _, _, infos = envs.step(torch.zeros((4, 3), dtype=torch.int64))
    assert infos["doors_opened"].tolist() == [1, 0, 0, 0]
    stage_escape((reference.sim, envs.sim), 3, 1)
    actions = torch.zeros((4, 3), dtype=torch.int64)
    actions[3] = torch.tensor(FAST_FORWARD)
    _, rewards, terminated, _, infos = envs.step(actions)
    assert terminated.tolist() == [False, False, False, True]
    assert infos["final_info"]["termination_reason"].tolist() == [0, 0, 0, 1]
    assert infos["_final_obs"].tolist() == [False, False, False, True]
    assert torch.equal(infos["final_obs"][:3], torch.zeros(3, 87))
    assert float(rewards[3]) > 1.0  # the escape bonus


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "zero_copy"])
@pytest.mark.parametrize("mode", ALL_MODES, ids=lambda m: m.name)
def test_results_have_the_numpy_paths_shapes_and_dtypes_as_tensors(mode, copy):
    envs = er.EscapeRoomVectorEnv(
        6, num_agents=2, seed=0, num_threads=1, autoreset_mode=mode, copy=copy, torch_outputs=True
    )
    obs, infos = envs.reset(seed=0)
    assert obs.dtype == torch.float32 and obs.shape == (6, 90) and obs.device.type == "cpu"
    obs, rewards, terminated, truncated, infos = envs.step(torch.zeros((6, 3), dtype=torch.int64))
    assert obs.dtype == torch.float32 and obs.shape == (6, 90)
    assert rewards.dtype == torch.float32 and rewards.shape == (6,)
    assert terminated.dtype == truncated.dtype == torch.bool and terminated.shape == truncated.shape == (6,)
    dtypes = {
        "progress": torch.float32,
        "termination_reason": torch.int32,
        "elapsed_step": torch.int32,
        "doors_opened": torch.int32,
    }
    assert sorted(infos) == sorted([*dtypes, *("_" + k for k in dtypes)])
    for key, dtype in dtypes.items():
        assert infos[key].dtype == dtype and infos[key].shape == (6,)
        assert infos["_" + key].dtype == torch.bool and infos["_" + key].tolist() == [True] * 6


def test_copy_true_returns_clones_that_survive_the_next_step():
    envs = er.EscapeRoomVectorEnv(4, seed=0, num_threads=1, torch_outputs=True)
    envs.reset(seed=0)
    sim_obs = envs.sim.observation_tensor().to_torch()
    first = envs.step(torch.full((4, 3), 2, dtype=torch.int64))
    kept = [first[0].clone(), first[1].clone(), first[4]["elapsed_step"].clone()]
    assert first[0].data_ptr() != sim_obs.data_ptr()
    second = envs.step(torch.full((4, 3), 2, dtype=torch.int64))
    assert torch.equal(first[0], kept[0]) and torch.equal(first[1], kept[1])
    assert first[4]["elapsed_step"].tolist() == [1] * 4 and second[4]["elapsed_step"].tolist() == [2] * 4
    assert not torch.equal(first[0], second[0])
    first[4]["_progress"][:] = False  # a returned mask is the caller's own
    assert envs.step(torch.zeros((4, 3), dtype=torch.int64))[4]["_progress"].tolist() == [True] * 4


@pytest.mark.parametrize("mode", ALL_MODES, ids=lambda m: m.name)
def test_copy_false_returns_the_simulators_buffers_as_tensors(mode):
    envs = er.EscapeRoomVectorEnv(
        4, seed=0, num_threads=1, copy=False, autoreset_mode=mode, torch_outputs=True
    )
    envs.reset(seed=0)
    sim = envs.sim
    obs, rewards, terminated, truncated, infos = envs.step(torch.zeros((4, 3), dtype=torch.int64))
    for got, name in (
        (obs, "observation"),
        (rewards, "reward"),
        (terminated, "terminated"),
        (truncated, "truncated"),
        (infos["progress"], "progress"),
    ):
        assert got.data_ptr() == sim.tensor(name).to_torch().data_ptr(), name
    again = envs.step(torch.zeros((4, 3), dtype=torch.int64))
    assert again[0].data_ptr() == obs.data_ptr()
    assert torch.equal(obs, torch.from_numpy(sim.host_array("observation").reshape(4, -1)))


@pytest.mark.parametrize("obs_mode", ["rgb", "depth", "rgbd"])
@pytest.mark.parametrize("copy", [True, False], ids=["copy", "zero_copy"])
def test_pixel_observations_equal_the_numpy_paths(obs_mode, copy):
    reference, envs = make_pair(
        4, num_agents=2, obs_mode=obs_mode, copy=copy, render_width=12, render_height=8
    )
    assert_tensor_equals(envs.reset(seed=1)[0], reference.reset(seed=1)[0], "cpu", "reset")
    rng = np.random.default_rng(0)
    for t in range(8):
        actions = rng.integers(0, NVEC, size=(4, 3), dtype=np.int64)
        assert_results_equal(
            envs.step(torch.from_numpy(actions)), reference.step(actions), "cpu", f"step {t}"
        )
    shape = {"rgb": (4, 8, 12, 3), "depth": (4, 8, 12, 1), "rgbd": (4, 8, 12, 4)}[obs_mode]
    dtype = torch.uint8 if obs_mode == "rgb" else torch.float32
    obs = envs.step(torch.zeros((4, 3), dtype=torch.int64))[0]
    assert obs.shape == shape and obs.dtype == dtype


# -- actions ------------------------------------------------------------------------------------


def torch_env(num_envs=4, **kwargs):
    envs = er.EscapeRoomVectorEnv(num_envs, seed=0, num_threads=1, torch_outputs=True, **kwargs)
    envs.reset(seed=0)
    return envs


#: Actions of every dtype but int32 and int64, by test id.
WRONG_DTYPE_ACTIONS = {
    **{
        f"torch_{str(dtype).removeprefix('torch.')}": torch.zeros((4, 3), dtype=dtype)
        for dtype in (torch.float32, torch.float64, torch.uint8, torch.int16, torch.bool)
    },
    **{f"numpy_{dtype.__name__}": np.zeros((4, 3), dtype=dtype) for dtype in (np.float32, np.uint64)},
    "list_of_floats": [[0.0, 0.0, 0.0]] * 4,
}


@pytest.mark.parametrize("actions", WRONG_DTYPE_ACTIONS.values(), ids=WRONG_DTYPE_ACTIONS.keys())
def test_actions_of_another_dtype_raise_type_error(actions):
    envs = torch_env()
    with pytest.raises(TypeError, match=re.escape("actions must be an int32 or int64 array of shape (4, 3)")):
        envs.step(actions)


@pytest.mark.parametrize("shape", [(4,), (4, 2), (5, 3), (3, 3), (1, 4, 3), (12,)])
@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_actions_of_wrong_shape_raise_value_error(shape, kind):
    envs = torch_env()
    actions = torch.zeros(shape, dtype=torch.int64) if kind == "torch" else np.zeros(shape, dtype=np.int64)
    with pytest.raises(ValueError, match=re.escape(f"actions must have shape (4, 3), got {shape}")):
        envs.step(actions)


@pytest.mark.parametrize(
    ("env", "component", "value", "name"),
    [(5, 1, 8, "move_angle"), (2, 0, 4, "move_amount"), (7, 2, 5, "rotate"), (0, 2, -1, "rotate")],
)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_out_of_range_action_names_env_and_component_and_steps_nothing(env, component, value, name, dtype):
    envs = torch_env(8, num_agents=2)
    hashes = envs.sim.state_hashes().copy()
    bad = torch.zeros((8, 3), dtype=dtype)
    bad[env, component] = value
    message = (
        f"actions[{env}, {component}] ({name} of env {env}) is {value}, "
        f"expected 0 <= {name} < {int(NVEC[component])}"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        envs.step(bad)
    np.testing.assert_array_equal(envs.sim.state_hashes(), hashes)
    assert envs.step(torch.zeros((8, 3), dtype=dtype))[4]["elapsed_step"].tolist() == [1] * 8


def test_actions_on_another_device_raise_value_error_naming_both():
    envs = torch_env()
    with pytest.raises(ValueError, match=re.escape("actions are on meta, but this env runs on cpu")):
        envs.step(torch.zeros((4, 3), dtype=torch.int64, device="meta"))


def test_noncontiguous_and_list_actions_are_accepted():
    reference, envs = make_pair(4)
    reference.reset(seed=2)
    envs.reset(seed=2)
    base = np.array([[3, 0, 2], [1, 7, 4], [2, 2, 0], [0, 5, 3]], dtype=np.int64)
    transposed = torch.from_numpy(base.T.copy()).T
    assert not transposed.is_contiguous()
    assert_results_equal(envs.step(transposed), reference.step(base), "cpu", "non-contiguous")
    assert_results_equal(envs.step(base.tolist()), reference.step(base), "cpu", "list")


def test_a_tensor_subclass_is_accepted_as_actions():
    reference, envs = make_pair(4)
    reference.reset(seed=2)
    envs.reset(seed=2)
    base = np.array([[3, 0, 2], [1, 7, 4], [2, 2, 0], [0, 5, 3]], dtype=np.int64)
    parameter = torch.nn.Parameter(torch.from_numpy(base), requires_grad=False)
    assert type(parameter) is not torch.Tensor
    assert_results_equal(envs.step(parameter), reference.step(base), "cpu", "parameter")


@pytest.mark.parametrize("seed", [None, 11, [4, 4, None, None, 9, None]], ids=["none", "int", "list"])
def test_reset_seeds_and_masks_equal_the_numpy_paths(seed):
    reference, envs = make_pair(6, num_agents=2, render_mode="rgb_array")
    for options in (None, {"reset_mask": np.array([False, False, True, True, True, True])}):
        want = reference.reset(seed=seed, options=options)
        got = envs.reset(seed=seed, options=options)
        assert_tensor_equals(got[0], want[0], "cpu", f"reset({seed}, {options}): obs")
        assert_infos_equal(got[1], want[1], "cpu", f"reset({seed}, {options}): infos")
    frames = envs.render()
    assert len(frames) == 6 and np.array_equal(frames[5], reference.render()[5])


def test_disabled_mode_refuses_a_done_env_until_reset_with_a_tensor_mask():
    envs = torch_env(4, num_agents=2, autoreset_mode=DISABLED, episode_len=2)
    zeros = torch.zeros((4, 3), dtype=torch.int64)
    envs.step(zeros)
    *_, terminated, truncated, _ = envs.step(zeros)
    assert truncated.tolist() == [True] * 4
    with pytest.raises(ValueError, match=re.escape("env 0 (world 0) is done and autoreset_mode is DISABLED")):
        envs.step(zeros)
    mask = torch.tensor([True, True, False, False])
    _, infos = envs.reset(options={"reset_mask": mask})
    assert infos["_progress"].tolist() == mask.tolist() and isinstance(infos["_progress"], torch.Tensor)
    with pytest.raises(ValueError, match=re.escape("env 2 (world 1) is done")):
        envs.step(zeros)
    envs.reset(options={"reset_mask": terminated | truncated})
    assert envs.step(zeros)[4]["elapsed_step"].tolist() == [1] * 4


def test_reset_mask_tensor_unequal_across_agents_raises_naming_the_world():
    envs = torch_env(4, num_agents=2)
    with pytest.raises(ValueError, match="world 1"):
        envs.reset(options={"reset_mask": torch.tensor([True, True, True, False])})


def test_device_cuda_without_a_gpu_raises_cuda_unavailable():
    if er.cuda_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(er.CudaUnavailableError, match="cuda_available"):
        er.EscapeRoomVectorEnv(4, device="cuda")
    with pytest.raises(er.CudaUnavailableError):
        er.EscapeRoomVectorEnv(4, device="cuda:0", autoreset_mode=SAME_STEP, copy=False)


def test_device_cpu_without_the_switch_still_returns_numpy():
    obs, _ = er.EscapeRoomVectorEnv(2, seed=0, num_threads=1).reset(seed=0)
    assert isinstance(obs, np.ndarray)


# -- PPO: episode statistics from tensors ---------------------------------------------------------
# (their equality with gymnasium's RecordEpisodeStatistics, on CPU and CUDA, is in test_ppo.py)


def test_device_episode_stats_flush_of_a_partial_rollout():
    stats, log = _DeviceEpisodeStats(4, 2, "cpu"), _EpisodeLog()
    infos = {
        "progress": torch.tensor([2.5, 1.0]),
        "termination_reason": torch.tensor([0, -1], dtype=torch.int32),
        "doors_opened": torch.tensor([0, 2], dtype=torch.int32),
    }
    yes, no = torch.tensor([True, True]), torch.tensor([False, False])
    stats.add(0, torch.tensor([0.5, -0.25]), no, no, infos)
    stats.add(1, torch.tensor([0.25, 0.5]), no, yes, infos)  # both truncated
    stats.add(2, torch.tensor([0.0, 0.0]), no, no, infos)  # NEXT_STEP's reset step: no episode
    stats.flush(log)
    assert (log.count, list(log.returns), list(log.progress)) == (2, [0.75, 0.25], [2.5, 1.0])
    assert (list(log.escaped), list(log.door)) == ([False, False], [False, True])
    stats.add(0, torch.tensor([1.0, 2.0]), yes, no, infos)  # the new episodes' first step ends them
    stats.flush(log)
    assert log.count == 4 and list(log.returns)[2:] == [1.0, 2.0]


# -- the real GPU path (skipped without one) -----------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("copy", [True, False], ids=["copy", "zero_copy"])
@pytest.mark.parametrize("num_agents", [1, 2])
@pytest.mark.parametrize("mode", ALL_MODES, ids=lambda m: m.name)
def test_cuda_outputs_equal_cpu_numpy_outputs_bit_for_bit(mode, num_agents, copy):
    reference, envs = make_pair(
        4 * num_agents, "cuda", num_agents=num_agents, autoreset_mode=mode, copy=copy, episode_len=EPISODE_LEN
    )
    dones, finals = run_side_by_side(reference, envs, "cuda", num_agents)
    assert dones >= STEPS // EPISODE_LEN
    assert finals == (dones if mode is SAME_STEP else 0)


@needs_cuda
@pytest.mark.parametrize("obs_mode", ["rgb", "depth", "rgbd"])
def test_cuda_pixel_observations_equal_the_cpu_ones(obs_mode):
    reference, envs = make_pair(4, "cuda", obs_mode=obs_mode, render_width=12, render_height=8)
    assert_tensor_equals(envs.reset(seed=1)[0], reference.reset(seed=1)[0], "cuda", "reset")
    rng = np.random.default_rng(0)
    for t in range(8):
        actions = rng.integers(0, NVEC, size=(4, 3), dtype=np.int64)
        assert_results_equal(
            envs.step(torch.from_numpy(actions).cuda()), reference.step(actions), "cuda", f"{t}"
        )


@needs_cuda
def test_cuda_env_refuses_cpu_tensors_and_bad_actions():
    envs = er.EscapeRoomVectorEnv(4, device="cuda", seed=0)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape("actions are on cpu, but this env runs on cuda:0")):
        envs.step(torch.zeros((4, 3), dtype=torch.int64))
    with pytest.raises(TypeError, match="int32 or int64"):
        envs.step(torch.zeros((4, 3), device="cuda"))
    with pytest.raises(ValueError, match=re.escape("(4, 3)")):
        envs.step(torch.zeros((4, 2), dtype=torch.int64, device="cuda"))
    bad = torch.zeros((4, 3), dtype=torch.int64, device="cuda")
    bad[1, 2] = 5
    with pytest.raises(ValueError, match=re.escape("actions[1, 2] (rotate of env 1) is 5")):
        envs.step(bad)


@needs_cuda
def test_cuda_ppo_run_keeps_the_rollout_on_the_gpu():
    quiet = {"progress_bar": False, "log_every": 0, "save_dir": None}
    result = train(Args(num_envs=8, num_steps=64, total_timesteps=8 * 64 * 4, device="cuda", **quiet))
    assert result.global_step == 2048 and result.episodes >= 8
    assert next(result.agent.parameters()).device.type == "cuda"
