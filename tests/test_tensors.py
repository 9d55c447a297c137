"""The exported tensors (SPEC §3, §5.1): shapes, dtypes, views, zero-copy, lifetime, DLPack."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from helpers import get, random_actions

import escape_room_env as er

W = 6


# name -> shape for W worlds and A agents, dtype (SPEC §3).
def expected_layout(num_worlds: int, num_agents: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    w, a = num_worlds, num_agents
    d = 87 + 3 * (a - 1)
    f32, i32, b = np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.bool_)
    return {
        "reset": ((w,), i32),
        "action": ((w, a, 3), i32),
        "reward": ((w, a, 1), f32),
        "done": ((w, a, 1), i32),
        "termination_reason": ((w, a, 1), i32),
        "terminated": ((w, a), b),
        "truncated": ((w, a), b),
        "steps_remaining": ((w, a, 1), i32),
        "progress": ((w, a, 1), f32),
        "observation": ((w, a, d), f32),
        "self_observation": ((w, a, 5), f32),
        "door_observation": ((w, a, 3), f32),
        "room_entity_observations": ((w, a, 6, 3), f32),
        "lidar": ((w, a, 30, 2), f32),
        "partner_observations": ((w, a, a - 1, 3), f32),
        "final_observation": ((w, a, d), f32),
    }


TENSOR_NAMES = tuple(expected_layout(1, 1))
OUTPUT_NAMES = tuple(n for n in TENSOR_NAMES if n not in ("reset", "action"))

TORCH_DTYPES = {
    np.dtype(np.float32): torch.float32,
    np.dtype(np.int32): torch.int32,
    np.dtype(np.bool_): torch.bool,
}


def agent_y(sim: er.SimManager) -> np.ndarray:
    """Agent y in metres, from the observation ([1] = (y - min_y) / L, min_y = 0, L = 40)."""
    return sim.self_observation_tensor().to_numpy()[..., 1].astype(np.float64) * 40.0


@pytest.mark.parametrize("num_agents", [1, 2, 3, 4])
def test_every_tensor_has_the_spec_shape_and_dtype(num_agents):
    with er.SimManager(num_worlds=W, num_agents=num_agents, rand_seed=3) as sim:
        for name, (shape, dtype) in expected_layout(W, num_agents).items():
            t = get(sim, name)
            assert isinstance(t, er.Tensor), name
            assert t.shape == shape, name
            assert t.ndim == len(shape), name
            assert t.dtype == dtype, name
            arr = t.to_numpy()
            assert arr.shape == shape and arr.dtype == dtype, name
            tt = t.to_torch()
            assert tuple(tt.shape) == shape and tt.dtype == TORCH_DTYPES[dtype], name
            assert tt.device.type == "cpu", name


@pytest.mark.parametrize("num_agents", [1, 2, 3, 4])
def test_observation_dim_is_87_plus_3_per_partner(num_agents):
    with er.SimManager(num_worlds=2, num_agents=num_agents) as sim:
        assert sim.obs_dim == 87 + 3 * (num_agents - 1)
        assert sim.observation_tensor().shape[-1] == sim.obs_dim


def test_single_agent_partner_observations_is_empty_with_shape_w_1_0_3():
    with er.SimManager(num_worlds=W) as sim:
        assert sim.partner_observations_tensor().shape == (W, 1, 0, 3)
        assert sim.partner_observations_tensor().to_numpy().size == 0
        assert tuple(sim.partner_observations_tensor().to_torch().shape) == (W, 1, 0, 3)


@pytest.mark.parametrize("num_agents", [1, 2, 4])
def test_named_observations_are_views_into_observation(num_agents):
    rng = np.random.default_rng(1)
    with er.SimManager(num_worlds=W, num_agents=num_agents, rand_seed=11, episode_len=15) as sim:
        obs = sim.observation_tensor().to_numpy()
        views = {
            "self_observation": (slice(0, 5), (5,)),
            "door_observation": (slice(6, 9), (3,)),
            "room_entity_observations": (slice(9, 27), (6, 3)),
            "lidar": (slice(27, 87), (30, 2)),
            "partner_observations": (slice(87, None), (num_agents - 1, 3)),
        }
        actions = sim.action_tensor().to_numpy()
        for step in range(40):
            actions[:] = random_actions(rng, W, num_agents)
            sim.step()
            for name, (cols, tail) in views.items():
                view = get(sim, name).to_numpy()
                expected = obs[..., cols].reshape(W, num_agents, *tail)
                assert np.array_equal(view, expected), (name, step)
                if view.size:
                    assert np.shares_memory(view, obs), name
        # Same memory, not equal copies: a write into observation shows in every view.
        obs[..., 0:5] = -7.0
        obs[..., 6:9] = -8.0
        obs[..., 9:27] = -9.0
        obs[..., 27:87] = -10.0
        obs[..., 87:] = -11.0
        for name, value in [
            ("self_observation", -7.0),
            ("door_observation", -8.0),
            ("room_entity_observations", -9.0),
            ("lidar", -10.0),
            ("partner_observations", -11.0),
        ]:
            assert np.all(get(sim, name).to_numpy() == value), name
            assert np.all(get(sim, name).to_torch().numpy() == value), name


@pytest.mark.parametrize("name", TENSOR_NAMES)
def test_to_numpy_and_to_torch_share_memory(name):
    with er.SimManager(num_worlds=W, num_agents=2) as sim:
        t = get(sim, name)
        arr = t.to_numpy()
        tt = t.to_torch()
        assert arr.ctypes.data == t.data_ptr()
        assert tt.data_ptr() == t.data_ptr()
        # A write through one is seen through the other.
        if arr.dtype == np.bool_:
            arr[...] = True
            assert bool(tt.all())
            tt.zero_()
            assert not arr.any()
        else:
            arr[...] = 5
            assert bool((tt == 5).all())
            tt.fill_(3)
            assert np.all(arr == 3)


def test_numpy_write_into_action_tensor_is_seen_by_next_step():
    am, ang, rot = er.action.move_amount, er.action.move_angle, er.action.rotate
    with er.SimManager(num_worlds=W, rand_seed=5) as sim:
        actions = sim.action_tensor().to_numpy()
        actions[:] = (am.STOP, ang.FORWARD, rot.NONE)
        y0 = agent_y(sim)
        sim.step()
        y1 = agent_y(sim)
        np.testing.assert_allclose(y1, y0, atol=1e-5)  # STOP does not move
        actions[:] = (am.FAST, ang.FORWARD, rot.NONE)
        sim.step()
        y2 = agent_y(sim)
        # 1 m along forward, yaw within pi/8 of +y: y grows by at least cos(pi/8) ~ 0.92 m.
        assert np.all(y2 - y1 > 0.9), y2 - y1
        assert np.all(y2 - y1 < 1.0 + 1e-4), y2 - y1


def test_torch_write_into_action_tensor_is_seen_by_next_step():
    am, ang, rot = er.action.move_amount, er.action.move_angle, er.action.rotate
    with er.SimManager(num_worlds=W, rand_seed=6) as sim:
        actions = sim.action_tensor().to_torch()
        actions[:] = torch.tensor([am.FAST, ang.FORWARD, rot.NONE], dtype=torch.int32)
        y0 = agent_y(sim)
        sim.step()
        y1 = agent_y(sim)
        assert np.all(y1 - y0 > 0.9), y1 - y0
        actions[:, :, 0] = am.STOP
        sim.step()
        np.testing.assert_allclose(agent_y(sim), y1, atol=1e-5)
        actions[:, :, 1] = ang.BACKWARD
        actions[:, :, 0] = am.SLOW
        sim.step()
        y3 = agent_y(sim)
        assert np.all(y3 < y1 - 0.3), y3 - y1


def test_write_into_reset_tensor_resets_that_world_at_next_step_and_is_cleared():
    with er.SimManager(num_worlds=W, rand_seed=8) as sim:
        sim.step(nstep=10)
        steps = sim.steps_remaining_tensor().to_numpy()
        assert np.all(steps == 190)
        reset = sim.reset_tensor().to_numpy()
        reset[2] = 1
        reset[4] = 7  # any non-zero value
        sim.step()
        assert steps[:, 0, 0].tolist() == [189, 189, 200, 189, 200, 189]
        assert np.all(reset == 0), reset
        sim.step()
        assert steps[:, 0, 0].tolist() == [188, 188, 199, 188, 199, 188]


def all_tensor_pointers(sim: er.SimManager) -> dict[str, tuple[int, int, int]]:
    out = {}
    for name in TENSOR_NAMES:
        t = get(sim, name)
        out[name] = (t.data_ptr(), t.to_numpy().ctypes.data, t.to_torch().data_ptr())
    return out


def test_data_pointers_never_change_across_steps_and_resets():
    with er.SimManager(num_worlds=W, num_agents=3, rand_seed=2, episode_len=7) as sim:
        before = all_tensor_pointers(sim)
        sim.step()
        assert all_tensor_pointers(sim) == before
        sim.step(nstep=50)  # crosses several episode ends
        assert all_tensor_pointers(sim) == before
        sim.reset_worlds()
        assert all_tensor_pointers(sim) == before
        sim.reset_worlds(np.array([1, 0, 1, 0, 0, 1], dtype=bool), seeds=[9] * W)
        assert all_tensor_pointers(sim) == before
        sim.reseed(1234)
        sim.reset_tensor().to_numpy()[:] = 1
        sim.step()
        assert all_tensor_pointers(sim) == before


def _snapshot(sim):
    return {name: get(sim, name).to_numpy().copy() for name in TENSOR_NAMES}


def _keep(sim):
    kept = {}
    for name in TENSOR_NAMES:
        t = get(sim, name)
        kept[name] = (t, t.to_numpy(), t.to_torch())
    return kept


def _churn_memory():
    # Reuse freed memory, so reading a dangling buffer would show other values.
    junk = [np.full(1 << 16, 123456789, dtype=np.int64) for _ in range(64)]
    others = [er.SimManager(num_worlds=W, num_agents=2, rand_seed=99) for _ in range(4)]
    for other in others:
        other.action_tensor().to_numpy()[:] = 3
        other.step(nstep=5)
    return junk, others


def _assert_kept_values(kept, expected):
    for name, (t, arr, tt) in kept.items():
        exp = expected[name]
        assert np.array_equal(arr, exp), name
        assert np.array_equal(tt.numpy(), exp), name
        assert np.array_equal(t.to_numpy(), exp), name
        assert np.array_equal(np.from_dlpack(t), exp), name


def _stepped_sim(action_seed: int) -> er.SimManager:
    """A 2-agent manager after 13 steps of random actions (episodes of 9 steps: some ended)."""
    rng = np.random.default_rng(action_seed)
    sim = er.SimManager(num_worlds=W, num_agents=2, rand_seed=4, episode_len=9)
    for _ in range(13):
        sim.action_tensor().to_numpy()[:] = random_actions(rng, W, 2)
        sim.step()
    return sim


def test_tensors_stay_readable_with_last_values_after_del_sim():
    sim = _stepped_sim(action_seed=0)
    expected = _snapshot(sim)
    kept = _keep(sim)
    del sim
    gc.collect()
    churn = _churn_memory()
    _assert_kept_values(kept, expected)
    del churn


def test_tensors_stay_readable_with_last_values_after_close():
    sim = _stepped_sim(action_seed=1)
    expected = _snapshot(sim)
    kept = _keep(sim)
    sim.close()
    assert sim.closed
    gc.collect()
    churn = _churn_memory()
    _assert_kept_values(kept, expected)
    del sim
    gc.collect()
    _assert_kept_values(kept, expected)
    del churn


def test_numpy_array_alone_keeps_memory_alive():
    sim = er.SimManager(num_worlds=W, rand_seed=4)
    sim.step(nstep=3)
    obs = sim.observation_tensor().to_numpy()
    expected = obs.copy()
    del sim
    gc.collect()
    churn = _churn_memory()
    assert np.array_equal(obs, expected)
    del churn


@pytest.mark.parametrize("name", TENSOR_NAMES)
def test_dlpack_import_into_torch_and_numpy_shares_memory(name):
    with er.SimManager(num_worlds=W, num_agents=3, rand_seed=21) as sim:
        sim.step(nstep=4)
        t = get(sim, name)
        expected = t.to_numpy().copy()
        tt = torch.from_dlpack(t)
        arr = np.from_dlpack(t)
        assert tuple(tt.shape) == t.shape and tt.dtype == TORCH_DTYPES[t.dtype]
        assert arr.shape == t.shape and arr.dtype == t.dtype
        assert tt.data_ptr() == t.data_ptr()
        assert arr.ctypes.data == t.data_ptr()
        assert np.array_equal(tt.numpy(), expected)
        assert np.array_equal(arr, expected)
        assert tt.stride() == tuple(s // t.dtype.itemsize for s in t.to_numpy().strides)
        # A write through the simulation's own numpy view shows in the DLPack imports.
        if t.dtype == np.bool_:
            t.to_numpy()[...] = ~expected
            assert np.array_equal(tt.numpy(), ~expected)
            assert np.array_equal(arr, ~expected)
        else:
            t.to_numpy()[...] = expected + 1
            assert np.array_equal(tt.numpy(), expected + 1)
            assert np.array_equal(arr, expected + 1)


def test_dlpack_import_tracks_simulation_steps():
    with er.SimManager(num_worlds=W, rand_seed=21) as sim:
        obs_t = torch.from_dlpack(sim.observation_tensor())
        sim.action_tensor().to_numpy()[:] = (er.action.move_amount.FAST, 0, 2)
        before = obs_t.clone()
        sim.step()
        assert not torch.equal(obs_t, before)
        assert np.array_equal(obs_t.numpy(), sim.observation_tensor().to_numpy())


@pytest.mark.parametrize("name", TENSOR_NAMES)
def test_cpu_tensor_reports_cpu_device(name):
    with er.SimManager(num_worlds=W, num_agents=2) as sim:
        t = get(sim, name)
        assert t.__dlpack_device__() == (1, 0)
        assert t.isOnGPU() is False
        assert t.is_on_gpu() is False
        assert t.gpuID() == -1
        assert t.gpu_id() == -1


def test_tensor_repr_names_shape_dtype_and_device():
    with er.SimManager(num_worlds=W, num_agents=2) as sim:
        r = repr(sim.lidar_tensor())
        assert "6, 2, 30, 2" in r and "float32" in r and "cpu" in r


def _scribble(sim: er.SimManager, rng: np.random.Generator) -> None:
    for name in OUTPUT_NAMES:
        arr = get(sim, name).to_numpy()
        if arr.dtype == np.bool_:
            arr[...] = rng.integers(0, 2, arr.shape).astype(bool)
        elif arr.dtype == np.int32:
            arr[...] = rng.integers(-1000, 1000, arr.shape)
        else:
            arr[...] = rng.choice(np.array([np.nan, np.inf, -1e30, 3.5, -0.25], dtype=np.float32), arr.shape)


@pytest.mark.parametrize("mode", ["same_step", "next_step", "disabled"])
def test_writes_to_output_tensors_have_no_effect_and_are_overwritten_at_next_step(mode):
    num_agents = 2
    rng = np.random.default_rng(7)
    junk_rng = np.random.default_rng(8)
    kwargs = {
        "num_worlds": 16,
        "num_agents": num_agents,
        "rand_seed": 31,
        "episode_len": 12,
        "autoreset_mode": mode,
    }
    done_steps = 0
    with er.SimManager(**kwargs) as clean, er.SimManager(**kwargs) as dirty:
        for step in range(60):
            acts = random_actions(rng, 16, num_agents)
            clean.action_tensor().to_numpy()[:] = acts
            dirty.action_tensor().to_numpy()[:] = acts
            if mode == "disabled" and step % 15 == 14:
                clean.reset_worlds()
                dirty.reset_worlds()
            _scribble(dirty, junk_rng)
            clean.step()
            dirty.step()
            assert np.array_equal(clean.state_hashes(), dirty.state_hashes()), step
            for name in OUTPUT_NAMES:
                if name == "final_observation":
                    continue  # only rows of worlds reset in SAME_STEP are rewritten (SPEC §2.5)
                a = get(clean, name).to_numpy()
                b = get(dirty, name).to_numpy()
                assert a.tobytes() == b.tobytes(), (name, step)
            if mode == "same_step":
                rows = clean.done_tensor().to_numpy()[:, 0, 0] == 1
                a = clean.final_observation_tensor().to_numpy()[rows]
                b = dirty.final_observation_tensor().to_numpy()[rows]
                assert a.tobytes() == b.tobytes(), ("final_observation", step)
                done_steps += int(rows.any())
        assert mode != "same_step" or done_steps >= 3
