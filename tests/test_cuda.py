"""The CUDA backend (SPEC §4, §5.1): the same bits as the CPU backend, tensors on the GPU.

Tests in the first part run everywhere: how a machine without a GPU answers ``ExecMode.CUDA``,
the ``stream`` argument's checks, DLPack's ``stream`` on CPU tensors and the host copies the GPU
path is built on. Every other test needs an NVIDIA GPU and skips with the reason otherwise: a CPU
and a CUDA manager with the same configuration, seed, actions and resets must hold bit-identical
tensors, images and state hashes; replays recorded on one backend verify on the other; managers
come and go in one process; steps queued on a caller's stream are ordered for readers on others.
"""

from __future__ import annotations

import contextlib
import gc
import shutil

import numpy as np
import pytest
from helpers import ALL_TENSOR_NAMES, random_actions, scheduled_resets

import escape_room_env as er
from escape_room_env import _core

needs_gpu = pytest.mark.skipif(
    not er.cuda_available(), reason="needs an NVIDIA GPU (escape_room_env.cuda_available() is False)"
)

CPU, CUDA = er.ExecMode.CPU, er.ExecMode.CUDA
MODES = ("next_step", "same_step", "disabled")
STATE_NAMES = tuple(name for name, kind in _core.Manager.arrays() if kind == 2)
IMAGE_NAMES = ("rgb", "depth")

# A level with both door kinds, cubes and two spawns, for the custom-level runs.
TWO_DOORS = {
    "name": "two_doors",
    "ascii": """
###########
#E........#
#....C....#
#.........#
#####2#####
#..b......#
#####1#####
#.........#
#..C......#
#.....a...#
#...S.S...#
###########
""",
    "momentary": [2],
}


def torch_or_skip():
    return pytest.importorskip("torch", reason="needs torch (the GPU's tensors are read through it)")


# -- comparing managers ------------------------------------------------------------------------


def host(sim: er.SimManager, name: str) -> np.ndarray:
    """A C-ordered host copy of a tensor or state array, wherever the manager runs (on CPU
    ``_host`` is the live view itself)."""
    return np.array(sim.host_array(name), order="C")


def snapshot(sim: er.SimManager, states: bool = False) -> dict[str, np.ndarray]:
    """Every exported tensor (images too when the renderer is on), the state hashes and, with
    ``states``, every internal state array: host copies, wherever the manager runs."""
    names = ALL_TENSOR_NAMES + (IMAGE_NAMES if sim.batch_renderer_enabled else ())
    out = {name: host(sim, name) for name in names}
    if states:
        out.update({f"state {name}": host(sim, name) for name in STATE_NAMES})
    out["state_hashes"] = sim.state_hashes().copy()
    return out


def assert_same(want: dict[str, np.ndarray], got: dict[str, np.ndarray], where: str) -> None:
    """Bit-for-bit equality (a float's NaN payload and the sign of zero count), naming the worlds
    that differ."""
    assert want.keys() == got.keys()
    for name, a in want.items():
        b = got[name]
        assert (a.dtype, a.shape) == (b.dtype, b.shape), f"{name}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        if a.tobytes() != b.tobytes():
            rows_a = a.view(np.uint8).reshape(len(a), -1)
            rows_b = b.view(np.uint8).reshape(len(b), -1)
            worlds = np.flatnonzero((rows_a != rows_b).any(axis=1))
            pytest.fail(
                f"{name} differs {where} in world(s) {worlds[:10].tolist()} ({worlds.size} of {len(a)})"
            )


def drive(sims: list[er.SimManager], steps: int, seed: int, check, torch=None) -> dict[str, int]:
    """``steps`` steps of the same seeded random actions and manual resets on every manager.

    Actions are in range, except every fourth step's, which go out of range too (the step clamps
    them); on a CUDA manager they arrive through ``host_write`` and, with ``torch``, every other
    step through the zero-copy ``to_torch()`` view. Resets: the reset tensor's flags,
    ``reset_worlds`` with a mask, with seeds and with an int seed, and ``reseed``; in DISABLED
    mode frozen worlds are reset (by flag or at once), some a step late. Some calls are
    ``step(nstep=3)``. ``check(where, step)`` runs after every step (``step`` is the step's index)
    and every reset (``step`` is None). Returns counts of what happened.
    """
    rng = np.random.default_rng(seed)
    first = sims[0]
    W, A = first.num_worlds, first.num_agents
    disabled = first.autoreset_mode is er.AutoresetMode.DISABLED
    counts = dict.fromkeys(("flag", "mask", "seeds", "int_seed", "reseed", "frozen", "done", "wild"), 0)

    def reset_worlds(mask, seeds=None, key="mask"):
        for sim in sims:
            sim.reset_worlds(mask, seeds=seeds)
        counts[key] += 1
        check(f"after reset_worlds ({key}) before step {i}", None)

    for i in range(steps):
        flags = np.zeros(W, np.int32)
        if disabled:
            frozen = np.flatnonzero(first.host_array("done")[:, 0, 0] == 1)
            counts["frozen"] += frozen.size
            late = (i + frozen) % 3 == 0  # stays frozen one more step
            by_flag = ~late & ((i + frozen) % 2 == 1)
            flags[frozen[by_flag]] = 1
            at_once = frozen[~late & ~by_flag]
            if at_once.size:
                reset_worlds(np.isin(np.arange(W), at_once))
        if i % 23 == 7:
            flags[rng.random(W) < 0.1] = 1
            counts["flag"] += 1
        for mask, seeds, kind in scheduled_resets(rng, i, W, max_int_seed=2**63):
            reset_worlds(mask, seeds, kind)
        if i % 137 == 100:
            seed_all = int(rng.integers(0, 1000))
            for sim in sims:
                sim.reseed(seed_all)
            counts["reseed"] += 1
            check(f"after reseed before step {i}", None)
        if i % 4 == 3:
            actions = rng.integers(-3, 12, size=(W, A, 3)).astype(np.int32)
            counts["wild"] += 1
        else:
            actions = random_actions(rng, W, A)
        nstep = 3 if i % 97 == 50 else 1
        for sim in sims:
            if flags.any():
                sim.write_array("reset", flags)
            if torch is not None and sim.exec_mode == CUDA and i % 2:
                sim.action_tensor().to_torch().copy_(torch.from_numpy(actions))
            else:
                sim.write_array("action", actions)
            sim.step(nstep=nstep)
        counts["done"] += int((first.host_array("done") == 1).sum())
        check(f"after step {i}", i)
    return counts


def lockstep(cpu: er.SimManager, gpu: er.SimManager, steps: int, seed: int, torch=None) -> dict[str, int]:
    """:func:`drive` on a CPU and a CUDA manager, comparing every tensor and the hashes after
    every step and reset, and every state array too at the start, every 50 steps and the end."""
    hashes = set()

    def check(where, step):
        states = step is not None and step % 50 == 0
        want = snapshot(cpu, states)
        assert_same(want, snapshot(gpu, states), where)
        hashes.add(want["state_hashes"].tobytes())

    assert_same(snapshot(cpu, True), snapshot(gpu, True), "at construction")
    counts = drive([cpu, gpu], steps, seed, check, torch)
    assert_same(snapshot(cpu, True), snapshot(gpu, True), "at the end")
    counts["distinct_hashes"] = len(hashes)
    return counts


def pair(**kwargs) -> tuple[er.SimManager, er.SimManager]:
    return er.SimManager(CPU, **kwargs), er.SimManager(CUDA, 0, **kwargs)


# -- everywhere: no GPU, stream arguments, DLPack streams, host copies -------------------------


def test_cuda_available_agrees_with_the_cores_device_count():
    assert er.cuda_available() is (_core.cuda_device_count() > 0)
    if not _core.CUDA_BUILT:
        assert _core.cuda_device_count() == 0


def test_the_cuda_backend_is_built_wherever_nvcc_was_found():
    # CI has nvcc and no GPU: its build must still compile (and link) the CUDA backend.
    assert _core.CUDA_SETTING in ("AUTO", "ON", "OFF")
    if _core.CUDA_SETTING == "ON" or (_core.CUDA_SETTING == "AUTO" and shutil.which("nvcc")):
        assert _core.CUDA_BUILT
    if _core.CUDA_SETTING == "OFF":
        assert not _core.CUDA_BUILT


@pytest.mark.skipif(er.cuda_available(), reason="a CUDA GPU is usable here")
def test_a_cuda_manager_without_a_gpu_raises_cuda_unavailable_naming_exec_mode_cpu():
    assert er.cuda_available() is False
    for make in (
        lambda: er.SimManager(CUDA, 0, 4),
        lambda: er.SimManager(exec_mode=CUDA, num_worlds=4, enable_batch_renderer=True, num_agents=2),
        lambda: er.SimManager(er.madrona.ExecMode.CUDA, 0, 4),
    ):
        with pytest.raises(er.CudaUnavailableError, match=r"ExecMode\.CPU") as caught:
            make()
        assert isinstance(caught.value, er.EscapeRoomError)
        why = "no CUDA backend" if not _core.CUDA_BUILT else r"cuda_available\(\) is False"
        assert caught.match(why)


@pytest.mark.skipif(er.cuda_available(), reason="a CUDA GPU is usable here")
def test_from_replay_on_cuda_without_a_gpu_raises_cuda_unavailable(tmp_path):
    path = tmp_path / "run.bin"
    with er.SimManager(num_worlds=4, rand_seed=3) as sim, sim.recording(path):
        sim.step(nstep=5)
    with pytest.raises(er.CudaUnavailableError, match=r"ExecMode\.CPU"):
        er.SimManager.from_replay(path, exec_mode=CUDA)
    with er.SimManager.from_replay(path) as replay:  # the file was left usable
        while not replay.replay_step():
            pass


class FakeStream:
    """Anything with a ``cuda_stream`` attribute is taken for a stream (torch's, CuPy's)."""

    def __init__(self, handle):
        self.cuda_stream = handle


# 0 is torch's default stream (CUDA's legacy default stream), 1 and 2 DLPack's names for the default streams.
@pytest.mark.parametrize("stream", [12345, np.uint64(7), FakeStream(99), FakeStream(0), 0, 1, 2])
def test_step_on_a_stream_of_a_cpu_manager_raises_value_error(stream):
    with er.SimManager(num_worlds=4, num_threads=1) as sim:
        before = sim.state_hashes().copy()
        with pytest.raises(ValueError, match="only a CUDA manager runs on a CUDA stream"):
            sim.step(stream=stream)
        with pytest.raises(ValueError, match="only a CUDA manager"):
            sim.step(nstep=3, stream=stream)
        np.testing.assert_array_equal(sim.state_hashes(), before)  # nothing was stepped
        assert sim.step_count == 0
        sim.step(stream=None)
        assert sim.step_count == 1


@pytest.mark.parametrize("stream", [-1, -(2**63), 2**64, FakeStream(-5), np.int64(-2)])
def test_an_out_of_range_stream_raises_value_error(stream):
    with er.SimManager(num_worlds=2, num_threads=1) as sim:
        with pytest.raises(ValueError, match=r"0 <= stream < 2\*\*64"):
            sim.step(stream=stream)
        assert sim.step_count == 0


@pytest.mark.parametrize("stream", ["1", 1.0, True, object(), [1], FakeStream("s"), FakeStream(None)])
def test_a_stream_of_the_wrong_type_raises_type_error(stream):
    with er.SimManager(num_worlds=2, num_threads=1) as sim:
        with pytest.raises(TypeError, match=r"torch\.cuda\.Stream or a cudaStream_t int"):
            sim.step(stream=stream)
        assert sim.step_count == 0


def test_synchronize_on_a_cpu_manager_is_a_no_op():
    with er.SimManager(num_worlds=3, num_threads=1) as sim:
        sim.step(nstep=2)
        before = sim.state_hashes().copy()
        sim.synchronize()
        np.testing.assert_array_equal(sim.state_hashes(), before)


class Exporter:
    """Hands numpy the capsule of ``tensor.__dlpack__(**kwargs)``, whatever numpy asks for."""

    def __init__(self, tensor: er.Tensor, **kwargs):
        self.tensor, self.kwargs = tensor, kwargs

    def __dlpack__(self, **_):
        return self.tensor.__dlpack__(**self.kwargs)

    def __dlpack_device__(self):
        return self.tensor.__dlpack_device__()


@pytest.mark.parametrize("kwargs", [{"stream": None}, {"stream": -1}, {}])
@pytest.mark.parametrize("name", ["observation", "self_observation", "action", "terminated"])
def test_dlpack_with_a_stream_argument_on_a_cpu_tensor_shares_memory(kwargs, name):
    with er.SimManager(num_worlds=5, num_agents=2, rand_seed=4, num_threads=1) as sim:
        sim.step(nstep=3)
        t = sim.tensor(name)
        assert t.__dlpack_device__() == (1, 0)
        capsule = t.__dlpack__(**kwargs)
        assert type(capsule).__name__ == "PyCapsule"
        arr = np.from_dlpack(Exporter(t, **kwargs))
        view = t.to_numpy()
        assert arr.ctypes.data == t.data_ptr() and arr.strides == view.strides
        assert arr.dtype == view.dtype and arr.tobytes() == view.tobytes()
        sim.step()
        assert arr.tobytes() == t.to_numpy().tobytes()  # a view, not a copy


# Contiguous arrays host_write accepts, and a pattern of values each must give back bit for bit
# (NaN with a payload, -0, infinities, a denormal, the integer extremes).
ROUND_TRIP = {
    "agent_pos": np.array([0x7FC00001, 0x80000000, 0x7F800000, 0xFF800000, 1, 0xC0600000], np.uint32).view(
        np.float32
    ),
    "seed": np.array([2**64 - 1, 0, 2**63, 12345], np.uint64),
    "episode": np.array([2**32 - 1, 0, 7], np.uint32),
    "status": np.array([0, 1, 2, 3, 255], np.uint8),
    "door_open": np.array([0, 1, 1], np.uint8),
    "action": np.array([-7, 0, 3, 2**31 - 1, -(2**31)], np.int32),
    "reset": np.array([0, 1, -1, 2**31 - 1, -(2**31)], np.int32),
}


def exact_values(name: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.resize(ROUND_TRIP[name], shape)


@pytest.mark.parametrize("mode", [CPU, pytest.param(CUDA, marks=needs_gpu)], ids=["cpu", "cuda"])
@pytest.mark.parametrize("name", sorted(ROUND_TRIP))
def test_host_write_then_host_copy_round_trips_exact_bits(name, mode):
    with er.SimManager(mode, 0, num_worlds=5, num_agents=2, rand_seed=9, num_threads=1) as sim:
        shape = sim.host_array(name).shape
        values = exact_values(name, shape)
        sim._impl.host_write(name, values)
        copy = sim._impl.host_copy(name)
        assert copy.dtype == values.dtype and copy.shape == shape
        assert copy.tobytes() == values.tobytes()
        assert sim.host_array(name).tobytes() == values.tobytes()
        if mode is CPU:  # the views themselves hold the values
            view = sim._state(name) if name in STATE_NAMES else sim.tensor(name).to_numpy()
            assert view.tobytes() == values.tobytes()
        copy[...] = 0  # a copy: the simulation keeps its values
        assert sim.host_array(name).tobytes() == values.tobytes()
        with pytest.raises(ValueError, match="needs"):
            sim._impl.host_write(name, values.astype(np.float64))


def test_host_copy_of_strided_views_matches_the_views_on_cpu():
    with er.SimManager(num_worlds=7, num_agents=3, rand_seed=2, num_threads=1) as sim:
        sim.step(nstep=4)
        for name in ALL_TENSOR_NAMES:
            copy, view = sim._impl.host_copy(name), sim.tensor(name).to_numpy()
            assert (copy.dtype, copy.shape) == (view.dtype, view.shape), name
            assert copy.tobytes() == view.tobytes(), name
        for name in STATE_NAMES:
            copy, view = sim._impl.host_copy(name), sim._state(name)
            assert (copy.dtype, copy.shape) == (view.dtype, view.shape), name
            assert copy.tobytes() == view.tobytes(), name


def test_host_of_level_counts_equals_the_state_view_on_cpu():
    with er.SimManager(num_worlds=6, num_agents=2, rand_seed=5, num_threads=1) as sim:
        view = sim._state("level_counts")
        assert view.shape == (6, 6) and view.dtype == np.int32
        np.testing.assert_array_equal(sim.host_array("level_counts"), view)
        np.testing.assert_array_equal(sim._impl.host_copy("level_counts"), view)
        assert (view[:, 0] > 0).all()  # every world has walls


@pytest.mark.parametrize(
    ("name", "values", "match"),
    [
        ("agent_pos", np.zeros((5, 2, 3), np.float32), r"needs 80 bytes of float32"),
        ("agent_pos", np.zeros((5, 2, 2), np.float64), r"needs 80 bytes of float32"),
        ("agent_pos", np.zeros((5, 2, 2), np.int32), r"needs 80 bytes of float32"),
        ("seed", np.zeros(5, np.int64), r"needs 40 bytes of uint64"),
        ("action", np.zeros((5, 2, 3), np.int64), r"needs 120 bytes of int32"),
        ("reset", np.zeros(4, np.int32), r"needs 20 bytes of int32"),
        ("level_statics", np.zeros((5, 72, 4), np.float32), r"'level_statics' is a strided view"),
        ("level_counts", np.zeros((5, 6), np.int32), r"'level_counts' is a strided view"),
        ("self_observation", np.zeros((5, 2, 5), np.float32), r"'self_observation' is a strided view"),
        ("lidar", np.zeros((5, 2, 30, 2), np.float32), r"'lidar' is a strided view"),
        ("no_such_array", np.zeros(5, np.int32), r"unknown array 'no_such_array'"),
    ],
)
def test_host_write_refuses_a_wrong_size_dtype_or_a_strided_array(name, values, match):
    with er.SimManager(num_worlds=5, num_agents=2, rand_seed=1, num_threads=1) as sim:
        before = snapshot(sim, states=True)
        with pytest.raises(ValueError, match=match):
            sim._impl.host_write(name, values)
        assert_same(before, snapshot(sim, states=True), f"after a refused host_write of {name}")


def test_host_copy_and_host_write_of_a_closed_manager_raise():
    sim = er.SimManager(num_worlds=3, num_threads=1)
    sim.close()
    with pytest.raises(er.EscapeRoomError, match="closed"):
        sim._impl.host_copy("observation")
    with pytest.raises(er.EscapeRoomError, match="closed"):
        sim._impl.host_write("action", np.zeros((3, 1, 3), np.int32))
    with pytest.raises(er.EscapeRoomError, match="needs the batch renderer"):
        er.SimManager(num_worlds=2, num_threads=1)._impl.host_copy("rgb")


# -- GPU: bit-identical to the CPU --------------------------------------------------------------


@needs_gpu
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("num_agents", [1, 2, 3, 4])
def test_cpu_and_cuda_managers_hold_identical_tensors_and_hashes_for_1000_steps(num_agents, mode):
    torch = torch_or_skip()
    # 300 worlds: three blocks of 128 threads, the last one partly idle.
    cpu, gpu = pair(
        num_worlds=300,
        num_agents=num_agents,
        rand_seed=2024 + num_agents,
        episode_len=45,
        autoreset_mode=mode,
    )
    with cpu, gpu:
        counts = lockstep(cpu, gpu, steps=1000, seed=10 * num_agents + MODES.index(mode), torch=torch)
    assert counts["done"] > 0 and counts["flag"] > 0 and counts["seeds"] > 0 and counts["wild"] > 0
    assert counts["reseed"] > 0 and counts["int_seed"] > 0
    assert counts["frozen"] > 0 if mode == "disabled" else counts["frozen"] == 0
    assert counts["distinct_hashes"] > 900


@needs_gpu
@pytest.mark.parametrize(
    ("num_agents", "levels", "height", "width"),
    [
        (3, None, 24, 40),
        (1, [TWO_DOORS, "corridor", "maze", "cooperation"], 32, 32),
        (2, [TWO_DOORS, "cooperation"], 17, 31),
    ],
    ids=["generated", "custom-levels-1-agent", "custom-levels-2-agents"],
)
def test_batch_renderer_images_are_bit_identical_on_cpu_and_cuda(num_agents, levels, height, width):
    cpu, gpu = pair(
        num_worlds=70,
        num_agents=num_agents,
        rand_seed=31,
        episode_len=40,
        levels=levels,
        enable_batch_renderer=True,
        render_width=width,
        render_height=height,
    )
    with cpu, gpu:
        counts = lockstep(cpu, gpu, steps=150, seed=num_agents)
        assert counts["done"] > 0
        rgb = gpu.host_array("rgb")
        assert rgb.shape == (70, num_agents, height, width, 3) and rgb.std() > 0  # a picture, not a blank


@needs_gpu
@pytest.mark.parametrize("mode", MODES)
def test_custom_levels_step_identically_on_cpu_and_cuda(mode):
    cpu, gpu = pair(
        num_worlds=130,
        num_agents=2,
        rand_seed=8,
        episode_len=60,
        levels=[TWO_DOORS, "cooperation"],
        autoreset_mode=mode,
    )
    with cpu, gpu:
        counts = lockstep(cpu, gpu, steps=400, seed=77)
    assert counts["done"] > 0


@needs_gpu
def test_step_nstep_equals_that_many_single_steps_on_cuda():
    """On CUDA, step(nstep=k) loops on the device (64 steps to a launch, the renderer after the
    last): the same as k calls of step(), on the manager's stream or a caller's, and as the CPU."""
    torch = torch_or_skip()
    kwargs = {
        "num_worlds": 200,
        "num_agents": 2,
        "rand_seed": 5,
        "episode_len": 20,  # episodes end inside the device loop
        "enable_batch_renderer": True,
        "render_width": 16,
        "render_height": 8,
    }
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    names = ("cuda nstep", "cuda single steps", "cuda nstep on a stream", "cpu nstep")
    sims = [er.SimManager(CUDA, 0, **kwargs) for _ in range(3)] + [er.SimManager(CPU, **kwargs)]
    try:
        rng = np.random.default_rng(3)
        for k in (1, 7, 64, 65, 130):
            actions = random_actions(rng, 200, 2)
            flags = (rng.random(200) < 0.3).astype(np.int32)
            for sim in sims:
                sim.write_array("action", actions)
                sim.write_array("reset", flags)  # applies to the first of the k steps
            sims[0].step(nstep=k)
            for _ in range(k):
                sims[1].step()
            sims[2].step(nstep=k, stream=side)
            sims[3].step(nstep=k)
            side.synchronize()
            assert len({sim.step_count for sim in sims}) == 1
            want = snapshot(sims[3], True)
            for name, sim in zip(names[:3], sims[:3]):
                assert_same(want, snapshot(sim, True), f"after step(nstep={k}) ({name} against the CPU)")
    finally:
        for sim in sims:
            sim.close()


# -- GPU: replays across backends ---------------------------------------------------------------


REPLAY_OUTPUTS = tuple(n for n in ALL_TENSOR_NAMES if n != "action") + IMAGE_NAMES


@needs_gpu
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("recorded_on", "replayed_on"), [(CUDA, CPU), (CPU, CUDA)], ids=["cuda-to-cpu", "cpu-to-cuda"]
)
def test_a_replay_recorded_on_one_backend_verifies_on_the_other(tmp_path, recorded_on, replayed_on, mode):
    """Every step's outputs and images come back bit-identical, and every checkpoint verifies.
    (The action tensor is left out: a replay writes the clamped actions the file holds.)"""
    path = tmp_path / "run.bin"
    render = {"enable_batch_renderer": True, "render_width": 12, "render_height": 10}
    sim = er.SimManager(
        recorded_on, num_worlds=64, num_agents=2, rand_seed=3, episode_len=35, autoreset_mode=mode, **render
    )
    recorded: dict[int, dict[str, np.ndarray]] = {}

    def check(where, step):
        if step is not None:
            recorded[sim.step_count] = {n: host(sim, n) for n in REPLAY_OUTPUTS}
            recorded[sim.step_count]["state_hashes"] = sim.state_hashes().copy()

    with sim:
        sim.start_recording(path, seed=1000, checksum_interval=10)
        counts = drive([sim], steps=300, seed=5, check=check)
        assert sim.stop_recording() == sim.step_count
    assert counts["done"] > 0 and counts["seeds"] > 0 and counts["flag"] > 0

    with er.SimManager.from_replay(path, exec_mode=replayed_on, **render) as replay:
        assert replay.exec_mode == replayed_on
        _, total = replay.get_replay_step_count()
        assert total == max(recorded)
        last = False
        while not last:
            last = replay.replay_step()  # raises ReplayDivergenceError on a hash mismatch
            step = replay.get_replay_step_count()[0]
            if step in recorded:
                got = {n: host(replay, n) for n in REPLAY_OUTPUTS}
                got["state_hashes"] = replay.state_hashes().copy()
                assert_same(recorded[step], got, f"at replayed step {step}")
        assert replay.get_replay_checkpoints_verified() >= total // 10


@needs_gpu
def test_a_tampered_replay_diverges_on_cuda(tmp_path):
    path = tmp_path / "run.bin"
    with er.SimManager(CPU, num_worlds=8, rand_seed=4) as sim, sim.recording(path, checksum_interval=5):
        sim.write_array("action", (er.action.move_amount.FAST, er.action.move_angle.FORWARD, 0))
        sim.step(nstep=20)
    with er.SimManager.from_replay(path, exec_mode=CUDA) as replay:
        replay.replay_step()
        replay._state("agent_pos")[3, 0, 0] += 0.5  # a torch view of the GPU state
        with pytest.raises(er.ReplayDivergenceError, match=r"world\(s\) 3 "):
            for _ in range(10):
                replay.replay_step()


# -- GPU: managers come and go -------------------------------------------------------------------


@needs_gpu
def test_five_cuda_managers_created_stepped_and_destroyed_in_a_loop():
    torch = torch_or_skip()
    kwargs = {"num_worlds": 4096, "num_agents": 2, "rand_seed": 77, "episode_len": 30}
    actions = random_actions(np.random.default_rng(5), 4096, 2)
    with er.SimManager(CPU, **kwargs) as cpu:
        cpu.write_array("action", actions)
        cpu.step(nstep=40)
        want = snapshot(cpu)

    def one_manager(close: bool) -> dict[str, np.ndarray]:
        sim = er.SimManager(CUDA, 0, **kwargs)
        sim.write_array("action", actions)
        sim.step(nstep=40)
        got = snapshot(sim)
        if close:
            sim.close()
            assert sim.closed
        del sim  # without close(): the manager's destructor frees it
        gc.collect()
        return got

    one_manager(close=True)  # loads the kernels; the GPU memory afterwards is the baseline
    torch.cuda.synchronize()
    free_before, _ = torch.cuda.mem_get_info(0)
    for k in range(5):
        assert_same(want, one_manager(close=k % 2 == 0), f"in manager {k + 1} of 5")
    torch.cuda.synchronize()
    free_after, _ = torch.cuda.mem_get_info(0)
    assert free_after >= free_before - 16 * 2**20, (
        f"{(free_before - free_after) / 2**20:.1f} MiB of GPU memory kept after five managers were destroyed"
    )


@needs_gpu
def test_two_cuda_managers_alive_at_once_stay_independent():
    kwargs = {"num_worlds": 500, "num_agents": 2, "episode_len": 50}
    rng = np.random.default_rng(12)
    cpus = [er.SimManager(CPU, rand_seed=s, **kwargs) for s in (1, 2)]
    gpus = [er.SimManager(CUDA, 0, rand_seed=s, **kwargs) for s in (1, 2)]
    try:
        for step in range(120):
            k = step % 3 % 2  # manager 0 steps twice as often as manager 1
            actions = random_actions(rng, 500, 2)
            for sim in (cpus[k], gpus[k]):
                sim.write_array("action", actions)
                sim.step()
            if step % 10 == 0:
                for j in (0, 1):
                    assert_same(snapshot(cpus[j]), snapshot(gpus[j]), f"manager {j} at step {step}")
        assert gpus[0].step_count == 80 and gpus[1].step_count == 40
        gpus[0].close()
        gpus[1].step(nstep=5)  # the other one keeps working
        cpus[1].step(nstep=5)
        assert_same(snapshot(cpus[1]), snapshot(gpus[1]), "after the first manager was closed")
    finally:
        for sim in cpus + gpus:
            sim.close()


@needs_gpu
def test_cuda_tensors_kept_after_close_stay_readable():
    torch = torch_or_skip()
    sim = er.SimManager(CUDA, 0, num_worlds=64, num_agents=2, rand_seed=6, enable_batch_renderer=True)
    sim.step(nstep=10)
    tensors = {name: sim.tensor(name) for name in (*ALL_TENSOR_NAMES, *IMAGE_NAMES)}
    views = {name: t.to_torch() for name, t in tensors.items()}
    want = {name: host(sim, name) for name in tensors}
    sim.close()
    with pytest.raises(er.EscapeRoomError, match="closed"):
        sim.observation_tensor()
    with pytest.raises(er.EscapeRoomError, match="closed"):
        sim.step()
    with pytest.raises(er.EscapeRoomError, match="closed"):
        sim.host_array("observation")
    gc.collect()
    for name, t in tensors.items():
        assert views[name].cpu().numpy().tobytes() == want[name].tobytes(), name
        assert torch.from_dlpack(t).cpu().numpy().tobytes() == want[name].tobytes(), name
        assert t.to_torch().data_ptr() == views[name].data_ptr(), name


# -- GPU: tensors on the device -------------------------------------------------------------------


@needs_gpu
def test_cuda_tensors_live_on_the_gpu_and_to_numpy_refuses_them():
    torch = torch_or_skip()
    with er.SimManager(CUDA, 0, num_worlds=9, num_agents=3, enable_batch_renderer=True) as sim:
        assert sim._impl.on_gpu and sim.gpu_id == 0
        cpu_twin = er.SimManager(CPU, num_worlds=9, num_agents=3, enable_batch_renderer=True)
        for name in (*ALL_TENSOR_NAMES, *IMAGE_NAMES):
            t, twin = sim.tensor(name), cpu_twin.tensor(name).to_numpy()
            assert t.isOnGPU() is True and t.is_on_gpu() is True, name
            assert t.gpu_id() == 0 and t.gpuID() == 0, name
            assert t.__dlpack_device__() == (2, 0), name
            assert "device=cuda:0" in repr(t), name
            assert (t.shape, t.dtype) == (twin.shape, twin.dtype), name
            with pytest.raises(er.EscapeRoomError, match=r"to_torch\(\)"):
                t.to_numpy()
            view = t.to_torch()
            assert view.device == torch.device("cuda", 0), name
            assert view.data_ptr() == t.data_ptr(), name
            assert view.stride() == tuple(s // twin.itemsize for s in twin.strides), name
            imported = torch.from_dlpack(t)
            assert imported.data_ptr() == t.data_ptr() and imported.device == view.device, name
        for name in STATE_NAMES:
            state = sim._state(name)
            assert isinstance(state, torch.Tensor) and state.device == torch.device("cuda", 0), name
        cpu_twin.close()


@needs_gpu
def test_writes_through_torch_reach_the_simulation():
    torch = torch_or_skip()
    kwargs = {"num_worlds": 33, "num_agents": 2, "rand_seed": 13}
    cpu, gpu = pair(**kwargs)
    with cpu, gpu:
        actions = random_actions(np.random.default_rng(1), 33, 2)
        cpu.write_array("action", actions)
        gpu.action_tensor().to_torch().copy_(torch.from_numpy(actions).cuda())
        pos = torch.from_numpy(cpu._state("agent_pos") + np.float32(0.25))
        cpu._state("agent_pos")[:] += np.float32(0.25)
        gpu._state("agent_pos").copy_(pos.cuda())
        gpu.reset_tensor().to_torch()[4] = 1
        cpu.reset_tensor().to_numpy()[4] = 1
        assert_same(snapshot(cpu, True), snapshot(gpu, True), "after writes through torch")
        cpu.step()
        gpu.step()
        assert_same(snapshot(cpu, True), snapshot(gpu, True), "after the step that used them")


@needs_gpu
def test_host_write_refuses_a_strided_view_on_cuda():
    with er.SimManager(CUDA, 0, num_worlds=5) as sim, pytest.raises(ValueError, match="strided view"):
        sim._impl.host_write("level_statics", np.zeros((5, 72, 4), np.float32))


@needs_gpu
def test_a_bad_gpu_id_raises_value_error():
    for gpu_id in (-1, _core.cuda_device_count(), 1000):
        with pytest.raises(ValueError, match="gpu_id must be between 0 and"):
            er.SimManager(CUDA, gpu_id, 4)


# -- GPU: streams --------------------------------------------------------------------------------


@needs_gpu
@pytest.mark.parametrize("as_int", [False, True], ids=["torch-stream", "int-handle"])
def test_steps_queued_on_a_side_stream_are_seen_by_a_reader_on_another_stream(as_int):
    """Enough worlds and steps that the GPU is still busy when the reader is queued: without
    the wait that ``__dlpack__`` adds on the reader's stream, it would copy a half-done step."""
    torch = torch_or_skip()
    W, K = 65536, 30
    kwargs = {
        "num_worlds": W,
        "num_agents": 1,
        "rand_seed": 11,
        "enable_batch_renderer": True,
        "render_width": 32,
        "render_height": 32,
    }
    actions = torch.from_numpy(random_actions(np.random.default_rng(2), W, 1)).cuda()
    with er.SimManager(CUDA, 0, **kwargs) as ref, er.SimManager(CUDA, 0, **kwargs) as sim:
        ref.action_tensor().to_torch().copy_(actions)
        ref.step(nstep=K)  # waits: the reference, stepped synchronously
        want_obs, want_rgb = ref.host_array("observation"), ref.host_array("rgb")
        want_hashes = ref.state_hashes()

        side, reader = torch.cuda.Stream(), torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            sim.action_tensor().to_torch().copy_(actions)  # ordered before the steps on `side`
            sim.step(nstep=K, stream=side.cuda_stream if as_int else side)  # returns at once
        with torch.cuda.stream(reader):
            obs = torch.from_dlpack(sim.observation_tensor()).clone()
            rgb = torch.from_dlpack(sim.rgb_tensor()).clone()
        reader.synchronize()
        assert obs.cpu().numpy().tobytes() == want_obs.tobytes()
        assert rgb.cpu().numpy().tobytes() == want_rgb.tobytes()
        np.testing.assert_array_equal(sim.state_hashes(), want_hashes)

        # Work on the manager's own stream (a host copy, a plain step) waits for the side stream too.
        with torch.cuda.stream(side):
            sim.step(nstep=K, stream=side)
        ref.step(nstep=K)
        assert sim.host_array("observation").tobytes() == ref.host_array("observation").tobytes()
        with torch.cuda.stream(side):
            sim.step(nstep=3, stream=side)
        sim.step()
        sim.synchronize()
        assert side.query()
        ref.step(nstep=4)
        np.testing.assert_array_equal(sim.state_hashes(), ref.state_hashes())


@needs_gpu
def test_a_torch_policy_in_the_loop_on_a_side_stream_matches_a_synchronous_run():
    """The rollout pattern: observations -> torch -> actions written into the action tensor ->
    step, all queued on one stream with no host synchronisation, against the same loop with
    ``step()`` waiting every time. (The policy is elementwise, so its own results cannot depend
    on the stream.)"""
    torch = torch_or_skip()
    W, A, steps = 4096, 2, 60
    kwargs = {"num_worlds": W, "num_agents": A, "rand_seed": 21, "episode_len": 30}

    limits = torch.tensor(er.action.NUM_CHOICES, device="cuda")

    def policy(obs):
        return (obs[..., 0:3].abs() * 997.0).long().remainder(limits).int()

    def run(stream):
        sim = er.SimManager(CUDA, 0, **kwargs)
        obs, act = sim.observation_tensor().to_torch(), sim.action_tensor().to_torch()
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            for _ in range(steps):
                act.copy_(policy(obs))
                sim.step(stream=stream)
        if stream is not None:
            stream.synchronize()
        out = snapshot(sim, states=True)
        sim.close()
        return out

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    synchronous = run(None)
    assert len(np.unique(synchronous["action"].reshape(-1, 3), axis=0)) > 10  # the policy does vary
    assert_same(synchronous, run(side), "between a synchronous and a side-stream policy loop")
    # torch's default stream (its cuda_stream is 0) names CUDA's legacy default stream.
    default = torch.cuda.current_stream()
    assert default.cuda_stream == 0
    assert_same(synchronous, run(default), "between a synchronous and a default-stream policy loop")
