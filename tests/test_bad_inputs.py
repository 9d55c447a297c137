"""Bad input never crashes (SPEC §8): the rows of ``docs/bad-inputs.md`` not pinned elsewhere.

Each test names the input and what the user gets. Rows already covered by the module that owns
the feature (``test_manager.py``, ``test_vector_env.py``, ``test_replay_format.py``, ...) are
referenced from the table instead of repeated here; ``test_the_table_names_only_tests_that_exist``
keeps the table and the tests in step.

Known bugs, when there are any, are pinned with ``xfail(strict=True)`` and the behaviour the
table promises, so a fix turns them into failures that ask for the marker to go; a bug that
crashes the interpreter gets no test until it is fixed (a crash must not run in the suite): its
reproduction goes into the table's "Known bugs" section.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import os
import re
import resource
import signal
import tempfile
import threading
import time
import warnings
import weakref
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import sigint_after

import escape_room_env as er
from escape_room_env.levels import compile_level
from escape_room_env.replay import ReplayFile

REPO = Path(__file__).resolve().parent.parent
TABLE = REPO / "docs" / "bad-inputs.md"
FAST_FORWARD = (er.action.move_amount.FAST, er.action.move_angle.FORWARD, er.action.rotate.NONE)

needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def make_env(num_envs=4, **kwargs):
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("num_threads", 1)
    envs = er.EscapeRoomVectorEnv(num_envs, **kwargs)
    envs.reset(seed=0)
    return envs


def record(path, *, num_worlds=3, steps=12, seed=1) -> np.ndarray:
    """A real recording at ``path``; returns the final state hashes."""
    with er.SimManager(num_worlds=num_worlds, num_threads=1) as sim:
        sim.action_tensor().to_numpy()[:] = FAST_FORWARD
        with sim.recording(path, seed=seed, checksum_interval=4):
            sim.step(nstep=steps)
        return sim.state_hashes().copy()


@contextlib.contextmanager
def unprivileged():
    """Runs the block without root's permission overrides (as ``nobody``), so file modes count.

    Tests run as root in CI containers, where mode 000 files stay readable. The effective ids
    change for the block only (the real ids stay root, so they can be restored).
    """
    if not hasattr(os, "geteuid"):
        pytest.skip("needs POSIX user ids")
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def locked_dir():
    """A directory everyone may enter, holding ``secret.bin`` (mode 000) and ``readonly/`` (555)."""
    top = Path(tempfile.mkdtemp(prefix="escape_room_perm_"))
    top.chmod(0o755)
    secret = top / "secret.bin"
    secret.write_bytes(b"ERREPLAY" + bytes(200))
    secret.chmod(0)
    readonly = top / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    yield top
    readonly.chmod(0o755)
    secret.chmod(0o644)
    for p in (secret, readonly):
        if p.is_dir():
            p.rmdir()
        else:
            p.unlink()
    top.rmdir()


# -- the table ---------------------------------------------------------------------------------


def table_rows() -> list[str]:
    rows = []
    for line in TABLE.read_text().splitlines():
        if line.startswith("|") and not re.match(r"^\|\s*(#|-)", line):
            rows.append(line)
    return rows


def test_the_table_names_only_tests_that_exist():
    """Every row of docs/bad-inputs.md names tests that exist (or is a known crash, untestable)."""
    rows = table_rows()
    assert len(rows) > 40, "the bad-input table lost its rows"
    defined: dict[str, set[str]] = {}
    missing = []
    for row in rows:
        refs = re.findall(r"`(test_\w+\.py)::(\w+)`", row)
        if not refs:
            assert "Known bug" in row and "crash" in row.lower(), f"row without a test: {row}"
            continue
        for module, name in refs:
            if module not in defined:
                source = (REPO / "tests" / module).read_text()
                defined[module] = {
                    node.name
                    for node in ast.walk(ast.parse(source))
                    if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
                }
            if name not in defined[module]:
                missing.append(f"{module}::{name}")
    assert not missing, f"the table names tests that do not exist: {missing}"


def test_every_xfail_here_is_a_known_bug_row_of_the_table():
    """An xfail in this module pins a bug the table lists, and a known-bug row's test is an xfail."""
    tree = ast.parse(Path(__file__).read_text())
    xfails = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and any("xfail" in ast.unparse(d) for d in node.decorator_list)
    }
    rows = table_rows()
    for name in sorted(xfails):
        named = [r for r in rows if f"test_bad_inputs.py::{name}`" in r]
        assert named and all("Known bug" in r for r in named), (
            f"{name} is xfail but no Known bug row names it"
        )
    for row in rows:
        if "Known bug" in row:
            for name in re.findall(r"`test_bad_inputs\.py::(\w+)`", row):
                assert name in xfails, f"{name} pins a known bug but is not marked xfail"


# -- constructor arguments -------------------------------------------------------------------


def test_num_worlds_beyond_the_cores_int32_limit_raises_value_error():
    with pytest.raises(ValueError, match=r"num_worlds must be <= 536870911, got 4611686018427387904"):
        er.SimManager(num_worlds=2**62)


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("num_worlds", lambda: er.SimManager(num_worlds=2**70)),
        ("num_agents", lambda: er.SimManager(num_worlds=2, num_agents=2**40)),
        ("episode_len", lambda: er.SimManager(num_worlds=2, episode_len=2**31)),
        ("num_threads", lambda: er.SimManager(num_worlds=2, num_threads=2**40)),
        ("gpu_id", lambda: er.SimManager(num_worlds=2, gpu_id=2**40)),
        ("nstep", lambda: er.SimManager(num_worlds=2).step(nstep=2**64)),
        ("world_idx", lambda: er.SimManager(num_worlds=2).enable_trajectory_logging(2**40, 0)),
        (
            "checksum_interval",
            lambda: er.SimManager(num_worlds=2).start_recording(os.devnull, checksum_interval=2**40),
        ),
        ("num_agents", lambda: compile_level("S.\nE.", num_agents=2**40)),
        ("momentary", lambda: compile_level({"ascii": "S.a\n.1.\nE..", "momentary": [2**40]})),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_integer_too_large_for_the_core_raises_value_error_naming_it(name, call):
    with pytest.raises(
        ValueError,
        match=rf"{name}(=\d+ is out of range: it does not fit the core's (32|64)-bit integer field| must be "
        rf"between -?\d+ and \d+| lists door group \d+)",
    ):
        call()


@pytest.mark.parametrize("num_threads", [1025, 10**6])
def test_num_threads_above_1024_raises_value_error(num_threads):
    with pytest.raises(ValueError, match=rf"num_threads must be between 1 and 1024, got {num_threads}"):
        er.SimManager(num_worlds=2, num_threads=num_threads)


def test_rand_seed_of_2_to_the_64_raises_value_error():
    with pytest.raises(ValueError, match=r"rand_seed must be in \[0, 2\*\*64\)"):
        er.SimManager(num_worlds=2, rand_seed=2**64)
    with er.SimManager(num_worlds=2, rand_seed=2**64 - 1) as sim:  # the largest seed is fine
        assert sim._state("seed").tolist() == [2**64 - 1, 0]  # s_w = seed + w wraps like a u64


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e300, 3e38, -2e6, 1.0001e6])
@pytest.mark.parametrize(
    "field", ["escape_bonus", "progress_scale", "group_radius", "group_bonus", "slack_penalty"]
)
def test_reward_that_could_overflow_float32_raises_value_error_naming_the_field(field, value):
    with pytest.raises(
        ValueError,
        match=rf"reward config values must be finite and between -1e6 and 1e6 .*reward\.{field} is",
    ):
        er.SimManager(num_worlds=2, reward={field: value})


def test_the_largest_rewards_allowed_stay_finite():
    biggest = {"progress_scale": 1e6, "group_bonus": 1e6, "escape_bonus": 1e6, "slack_penalty": -1e6}
    with er.SimManager(num_worlds=8, num_agents=2, rooms=["button"], reward=biggest, num_threads=1) as sim:
        sim.action_tensor().to_numpy()[:] = FAST_FORWARD
        for _ in range(60):
            sim.step()
            assert np.isfinite(sim.reward_tensor().to_numpy()).all()


def test_rooms_that_is_not_a_sequence_raises_type_error_naming_rooms():
    with pytest.raises(
        TypeError, match=r"rooms must be a sequence of room type names \(button, .*\), got int"
    ):
        er.SimManager(num_worlds=2, rooms=3)


@pytest.mark.parametrize("rooms", [[0, 1], [None], ["Button"]])
def test_rooms_given_as_codes_or_misspelt_raise_value_error_listing_room_types(rooms):
    with pytest.raises(ValueError, match=r"rooms\[0\]: unknown room type .*button, double_button"):
        er.SimManager(num_worlds=2, rooms=rooms)


@pytest.mark.parametrize("mode", [1, 1.0, b"same_step", "same step please"])
def test_autoreset_mode_that_is_not_a_name_or_member_raises_value_error(mode):
    with pytest.raises(ValueError, match=r"autoreset_mode must be an AutoresetMode"):
        er.SimManager(num_worlds=2, autoreset_mode=mode)


@pytest.mark.parametrize(("width", "height"), [(0, 64), (64, 0), (-1, 64), (1025, 64), (64, 4096)])
def test_render_size_outside_1_to_1024_raises_value_error(width, height):
    with pytest.raises(
        ValueError,
        match=rf"render_width and render_height must be between 1 and 1024, got {width} x {height}",
    ):
        er.SimManager(num_worlds=2, enable_batch_renderer=True, render_width=width, render_height=height)


def test_batch_renderer_images_beyond_memory_raise_value_error_before_allocating():
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    per_world = 1024 * 1024 * (3 + 4)  # one agent's RGB and depth at 1024 x 1024
    num_worlds = physical // per_world + 1
    with pytest.raises(ValueError, match=rf"num_worlds={num_worlds} needs \d+ MiB of state, more than 80%"):
        er.SimManager(
            num_worlds=num_worlds, enable_batch_renderer=True, render_width=1024, render_height=1024
        )


@pytest.mark.parametrize("name", ["rgb", "depth"])
def test_image_tensors_without_the_batch_renderer_raise_escape_room_error(name):
    with (
        er.SimManager(num_worlds=2) as sim,
        pytest.raises(
            er.EscapeRoomError,
            match=rf"{name}_tensor\(\) needs the batch renderer: pass enable_batch_renderer=True",
        ),
    ):
        getattr(sim, f"{name}_tensor")()


@pytest.mark.parametrize("kwargs", [{"render_width": 64.0}, {"render_height": "64"}])
def test_render_size_that_is_not_an_int_raises_type_error(kwargs):
    with pytest.raises(TypeError, match=r"render_(width|height) must be an int"):
        er.SimManager(num_worlds=2, enable_batch_renderer=True, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"num_envs": 0}, ValueError, r"num_envs must be >= 1"),
        ({"num_envs": -4}, ValueError, r"num_envs must be >= 1"),
        ({"num_envs": 4.0}, TypeError, r"num_envs must be an int"),
        ({"num_envs": 4, "num_agents": 5}, ValueError, r"num_agents must be between 1 and 4"),
        ({"num_envs": 4, "device": "tpu"}, ValueError, r"device must be 'cpu', 'cuda' or 'cuda:<index>'"),
        ({"num_envs": 4, "device": "cuda:x"}, ValueError, r"device must be 'cpu', 'cuda'"),
        ({"num_envs": 4, "seed": -1}, ValueError, r"rand_seed must be in \[0, 2\*\*64\)"),
        ({"num_envs": 4, "seed": 1.5}, TypeError, r"seed must be an int"),
        ({"num_envs": 4, "autoreset_mode": "never"}, ValueError, r"autoreset_mode must be"),
        ({"num_envs": 4, "rooms": ["lava"]}, ValueError, r"unknown room type 'lava'"),
    ],
)
def test_vector_env_constructor_rejects_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        er.EscapeRoomVectorEnv(**kwargs)


# -- actions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "actions",
    [
        np.full((4, 3), np.nan),
        np.full((4, 3), np.nan, dtype=np.float32),
        np.where(np.eye(4, 3) > 0, np.nan, 1.0),
        torch.full((4, 3), float("nan")),
    ],
    ids=["nan64", "nan32", "some_nan", "torch_nan"],
)
def test_nan_actions_raise_type_error_before_reaching_the_core(actions):
    envs = make_env()
    before = envs.sim.state_hashes().copy()
    with pytest.raises(TypeError, match=r"int32 or int64"):
        envs.step(actions)
    np.testing.assert_array_equal(envs.sim.state_hashes(), before)
    assert envs.sim.step_count == 0


@pytest.mark.parametrize(
    "actions",
    [
        np.zeros((4, 3), dtype=bool),
        np.zeros((4, 3), dtype=np.uint64),
        np.zeros((4, 3), dtype=np.uint32),
        np.zeros((4, 3), dtype=">i8"),
        np.zeros((4, 3), dtype=np.complex64),
        np.array([[object()] * 3] * 4),
        "abc",
        None,
        [[0.5, 0, 0]] * 4,
    ],
    ids=["bool", "uint64", "uint32", "big_endian_int64", "complex", "object", "str", "None", "float_list"],
)
def test_actions_of_a_non_integer_or_unsupported_dtype_raise_type_error(actions):
    envs = make_env()
    with pytest.raises(TypeError, match=r"actions must be an int32 or int64 array of shape \(4, 3\)"):
        envs.step(actions)
    assert envs.sim.step_count == 0


@pytest.mark.parametrize("value", [2**40, -(2**40), 2**63 - 1, -(2**63)])
def test_int64_actions_far_out_of_range_raise_value_error_with_the_value(value):
    envs = make_env()
    actions = np.zeros((4, 3), np.int64)
    actions[1, 2] = value
    with pytest.raises(ValueError, match=re.escape(f"actions[1, 2] (rotate of env 1) is {value}")):
        envs.step(actions)
    assert envs.sim.step_count == 0


def test_nested_lists_of_ints_are_accepted_like_an_int64_array():
    a, b = make_env(), make_env()
    rows = [[3, 0, 2], [1, 7, 4], [0, 0, 0], [2, 3, 1]]
    got = a.step(rows)
    want = b.step(np.array(rows, dtype=np.int64))
    for x, y in zip(got[:4], want[:4]):
        np.testing.assert_array_equal(x, y)


def non_contiguous_variants(base: np.ndarray) -> dict[str, object]:
    wide = np.zeros((4, 6), dtype=np.int64)
    wide[:, ::2] = base
    flipped = np.ascontiguousarray(base[::-1])
    return {
        "column_stride": wide[:, ::2],
        "negative_stride": flipped[::-1],
        "fortran_int32": np.asfortranarray(base.astype(np.int32)),
        "torch_transposed": torch.from_numpy(np.ascontiguousarray(base.T)).T,
    }


@pytest.mark.parametrize("variant", ["column_stride", "negative_stride", "fortran_int32", "torch_transposed"])
def test_non_contiguous_actions_step_like_their_contiguous_copy(variant):
    base = np.array([[3, 0, 2], [1, 7, 4], [0, 0, 0], [2, 3, 1]], dtype=np.int64)
    actions = non_contiguous_variants(base)[variant]
    a, b = make_env(), make_env()
    got = a.step(actions)
    want = b.step(base)
    np.testing.assert_array_equal(a.sim.action_tensor().to_numpy().reshape(4, 3), base)
    for x, y in zip(got[:4], want[:4]):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kind", ["read_only", "broadcast"])
def test_read_only_actions_are_accepted(kind):
    base = np.zeros((4, 3), dtype=np.int64)
    if kind == "read_only":
        actions = base.copy()
        actions.flags.writeable = False
    else:
        actions = np.broadcast_to(np.zeros(3, dtype=np.int64), (4, 3))
    envs = make_env()
    envs.step(actions)
    assert envs.sim.step_count == 1


def test_actions_on_another_device_raise_value_error_naming_both_devices():
    # "meta" stands in for any device but the env's (a CUDA tensor on a CPU env takes the same path).
    envs = make_env()
    actions = torch.zeros((4, 3), dtype=torch.int64, device="meta")
    with pytest.raises(ValueError, match=r"actions are on meta, but this env runs on cpu"):
        envs.step(actions)
    assert envs.sim.step_count == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for torch")
def test_cuda_actions_for_a_cpu_env_raise_value_error():
    envs = make_env()
    with pytest.raises(ValueError, match=r"actions are on cuda:0, but this env runs on cpu"):
        envs.step(torch.zeros((4, 3), dtype=torch.int64, device="cuda"))


@pytest.mark.parametrize(
    ("seed", "options"),
    [("abc", None), (1.5, None), (None, 3)],
    ids=["seed_str", "seed_float", "options_int"],
)
def test_vector_env_reset_with_a_seed_or_options_of_the_wrong_type_names_the_argument(seed, options):
    envs = make_env()
    with pytest.raises(
        TypeError, match=r"seed must be None, an int, or a list of num_envs=4 entries|options must be a dict"
    ):
        envs.reset(seed=seed, options=options)


# -- tensors written with wrong values -------------------------------------------------------


@pytest.mark.parametrize("value", [-1, 7, np.iinfo(np.int32).min, np.iinfo(np.int32).max])
def test_any_non_zero_reset_value_resets_the_world_and_is_cleared(value):
    with (
        er.SimManager(num_worlds=3, rand_seed=4, num_threads=1) as sim,
        er.SimManager(num_worlds=3, rand_seed=4, num_threads=1) as twin,
    ):
        sim.step(nstep=5)
        twin.step(nstep=5)
        sim.reset_tensor().to_numpy()[1] = value
        twin.reset_tensor().to_numpy()[1] = 1
        sim.step()
        twin.step()
        assert sim.steps_remaining_tensor().to_numpy()[:, 0, 0].tolist() == [194, 200, 194]
        assert sim.reset_tensor().to_numpy().tolist() == [0, 0, 0]
        np.testing.assert_array_equal(sim.state_hashes(), twin.state_hashes())


def test_action_tensor_written_out_of_range_through_torch_is_clamped_and_recorded_clamped(tmp_path):
    path = tmp_path / "wild.bin"
    with (
        er.SimManager(num_worlds=2, rand_seed=4, num_threads=1) as sim,
        er.SimManager(num_worlds=2, rand_seed=4, num_threads=1) as twin,
    ):
        sim.start_recording(path, seed=9)
        twin.reseed(9)
        wild = torch.tensor([[[99, -7, 2**31 - 1]], [[-(2**31), 8, -1]]], dtype=torch.int32)
        sim.action_tensor().to_torch().copy_(wild)
        twin.action_tensor().to_numpy()[:] = [[[3, 0, 4]], [[0, 7, 0]]]
        sim.step(nstep=3)
        twin.step(nstep=3)
        np.testing.assert_array_equal(sim.state_hashes(), twin.state_hashes())
        # The tensor keeps what was written; the core only clamps what it uses.
        assert sim.action_tensor().to_numpy()[0, 0].tolist() == [99, -7, 2**31 - 1]
        sim.stop_recording()
    with ReplayFile(path) as replay:
        steps = [r for r in replay if type(r).__name__ == "StepRecord"]
    assert steps[0].actions.tolist() == [[[3, 0, 4]], [[0, 7, 0]]]


# -- files -----------------------------------------------------------------------------------


def test_replay_file_without_read_permission_raises_permission_error(locked_dir):
    path = locked_dir / "secret.bin"
    with unprivileged():
        with pytest.raises(PermissionError):
            er.SimManager.read_replay_metadata(path)
        with pytest.raises(PermissionError):
            er.SimManager.from_replay(path)


def test_recording_into_a_directory_without_write_permission_raises_escape_room_error(locked_dir):
    with er.SimManager(num_worlds=2, num_threads=1) as sim:
        with (
            unprivileged(),
            pytest.raises(er.EscapeRoomError, match=r"cannot open for writing: Permission denied"),
        ):
            sim.start_recording(locked_dir / "readonly" / "out.bin", seed=0)
        assert not sim.is_recording()
        with (
            unprivileged(),
            pytest.raises(er.EscapeRoomError, match=r"cannot open for writing: Permission denied"),
        ):
            sim.enable_trajectory_logging(0, 0, locked_dir / "readonly" / "log.txt")


def test_recording_to_a_directory_path_raises_escape_room_error(tmp_path):
    with er.SimManager(num_worlds=2, num_threads=1) as sim:
        with pytest.raises(er.EscapeRoomError, match=r"cannot open for writing: Is a directory"):
            sim.start_recording(tmp_path, seed=0)
        assert not sim.is_recording()
        sim.step()


@pytest.mark.parametrize("path", [3, None, 2.5])
def test_replay_path_of_the_wrong_type_raises_type_error(path):
    with pytest.raises(TypeError, match=r"expected str, bytes or os.PathLike"):
        er.SimManager.read_replay_metadata(path)
    with pytest.raises(TypeError, match=r"expected str, bytes or os.PathLike"):
        er.SimManager.from_replay(path)


def test_replay_path_with_a_nul_byte_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match=r"embedded null byte"):
        er.SimManager.read_replay_metadata(f"{tmp_path}/rec\0.bin")
    with pytest.raises(ValueError, match=r"embedded null byte"):
        er.SimManager.from_replay(f"{tmp_path}/rec\0.bin")


@pytest.mark.parametrize("what", ["recording", "trajectory"])
def test_output_path_with_a_nul_byte_raises_value_error_and_writes_nothing(tmp_path, what):
    with er.SimManager(num_worlds=2, num_threads=1) as sim:
        try:
            with pytest.raises(
                ValueError, match=r"path '.*out\\x00\..*' holds a NUL byte|filename '.*' holds a NUL byte"
            ):
                if what == "recording":
                    sim.start_recording(f"{tmp_path}/out\0.bin", seed=0)
                else:
                    sim.enable_trajectory_logging(0, 0, f"{tmp_path}/out\0.txt")
        finally:
            if sim.is_recording():
                sim.stop_recording()
            sim.disable_trajectory_logging()
    assert not (tmp_path / "out").exists()


def test_special_files_are_not_replay_files():
    for path in (os.devnull, "/dev/zero"):
        if not os.path.exists(path):
            continue
        with pytest.raises(er.ReplayFormatError, match=r"byte 0: not a regular file"):
            er.SimManager.read_replay_metadata(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("what", ["recording", "trajectory log"])
def test_writing_to_a_named_pipe_raises_at_once_without_blocking_other_threads(tmp_path, what):
    """Opening a FIFO with no reader for writing would block in open() (once with the GIL held,
    freezing every Python thread); it is refused at once instead."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    sim = er.SimManager(num_worlds=2, num_threads=1)
    ticks = []
    ticker = threading.Thread(target=lambda: [ticks.append(time.sleep(0.001)) for _ in range(50)])
    ticker.start()
    with pytest.raises(er.EscapeRoomError, match=r"pipe: not a regular file"):
        if what == "recording":
            sim.start_recording(fifo, seed=1)
        else:
            sim.enable_trajectory_logging(0, 0, fifo)
    ticker.join(10)
    assert not ticker.is_alive()
    assert not sim.is_recording() and not sim._impl.is_trajectory_logging
    sim.step()  # usable
    sim.close()


@needs_proc
def test_output_paths_that_are_not_utf8_bytes_work_for_recordings_and_logs(tmp_path):
    name = os.fsencode(tmp_path) + b"/caf\xe9-\xff"
    with er.SimManager(num_worlds=2, num_threads=1) as sim:
        sim.start_recording(name + b".bin", seed=3)
        sim.enable_trajectory_logging(1, 0, name + b".txt")
        sim.step(nstep=5)
        want = sim.state_hashes().copy()
        sim.disable_trajectory_logging()
        assert sim.stop_recording() == 5
    assert sorted(os.listdir(os.fsencode(tmp_path))) == [b"caf\xe9-\xff.bin", b"caf\xe9-\xff.txt"]
    with open(name + b".txt", "rb") as log:
        assert len(log.read().splitlines()) == 5
    with er.SimManager.from_replay(name + b".bin", num_threads=1) as replay:
        while not replay.replay_step():
            pass
        np.testing.assert_array_equal(replay.state_hashes(), want)
    with er.SimManager.from_replay(os.fsdecode(name + b".bin"), num_threads=1) as replay:  # surrogate str
        assert replay.get_replay_step_count() == (0, 5)


def test_a_rejected_reset_seed_leaves_np_random_unchanged():
    for env in (make_env(), er.EscapeRoomEnv()):
        env.reset(seed=3)
        before = env.np_random.bit_generator.state
        hashes = env.unwrapped.sim.state_hashes().copy()
        for seed in (2**64, -1):
            with pytest.raises(ValueError, match=r"seeds? must be"):
                env.reset(seed=seed)
            assert env.np_random.bit_generator.state == before
            np.testing.assert_array_equal(env.unwrapped.sim.state_hashes(), hashes)
        env.close()


@pytest.mark.parametrize("torch_outputs", [False, True])
@pytest.mark.parametrize("layout", ["sparse_coo", "sparse_csr", "nested"])
def test_sparse_or_nested_torch_actions_raise_our_type_error(torch_outputs, layout):
    envs = er.EscapeRoomVectorEnv(4, num_threads=1, torch_outputs=torch_outputs)
    envs.reset(seed=0)
    dense = torch.zeros((4, 3), dtype=torch.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that nested tensors are a prototype
        actions = {
            "sparse_coo": lambda: dense.to_sparse(),
            "sparse_csr": lambda: dense.to_sparse_csr(),
            "nested": lambda: torch.nested.nested_tensor([torch.zeros(3, dtype=torch.int64)] * 4),
        }[layout]()
    hashes = envs.sim.state_hashes().copy()
    kind = "nested" if layout == "nested" else layout
    with pytest.raises(
        TypeError,
        match=rf"actions must be a dense int32 or int64 tensor of shape \(4, 3\), got a {kind} tensor",
    ):
        envs.step(actions)
    np.testing.assert_array_equal(envs.sim.state_hashes(), hashes)  # nothing stepped
    envs.close()


def test_a_closed_replay_manager_lets_its_file_index_go(tmp_path):
    path = tmp_path / "index.bin"
    record(path, steps=30)
    sim = er.SimManager.from_replay(path, num_threads=1)
    index = weakref.ref(sim._replay.replay)
    sim.close()
    gc.collect()
    assert index() is None
    other = er.SimManager(num_worlds=3, num_threads=1)
    indexes = []
    for _ in range(3):  # the deprecated load_replay, repeated: each earlier file is let go
        with pytest.warns(DeprecationWarning):
            other.load_replay(path)
        indexes.append(weakref.ref(other._replay.replay))
    gc.collect()
    assert [ref() is None for ref in indexes] == [True, True, False]
    other.close()
    gc.collect()
    assert indexes[-1]() is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_as_replay_path_raises_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.bin"
    os.mkfifo(fifo)
    done = threading.Event()
    blocked = []

    def rescue():  # opening the write end frees a reader stuck in open(); fails when none waits
        deadline = time.monotonic() + 60
        while not done.wait(0.5) and time.monotonic() < deadline:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue
            blocked.append(True)
            os.close(fd)

    helper = threading.Thread(target=rescue)
    helper.start()
    try:
        with pytest.raises(er.ReplayFormatError, match=r"not a regular file"):
            er.SimManager.read_replay_metadata(fifo)
    finally:
        done.set()
        helper.join()
    assert not blocked, "read_replay_metadata blocked in open() until a writer came"


def test_replay_recorded_with_other_rules_raises_replay_format_error_naming_both_versions(tmp_path):
    path = tmp_path / "future.bin"
    record(path)
    data = bytearray(path.read_bytes())
    # rules_version 7 in the header (CRC fixed) and in the config block: a valid file from the future.
    config_bytes = int.from_bytes(data[48:56], "little")
    config = bytes(data[96 : 96 + config_bytes])
    assert config.count(b'"rules_version": 1,') == 1
    data[96 : 96 + config_bytes] = config.replace(b'"rules_version": 1,', b'"rules_version": 7,')
    data[16:20] = (7).to_bytes(4, "little")
    data[76:80] = zlib.crc32(bytes(data[96 : 96 + config_bytes])).to_bytes(4, "little")  # the config's CRC
    data[80:84] = zlib.crc32(bytes(data[:80])).to_bytes(4, "little")  # the header's
    path.write_bytes(bytes(data))
    assert er.SimManager.read_replay_metadata(path).rules_version == 7  # the file itself reads fine
    with pytest.raises(
        er.ReplayFormatError, match=r"recorded with rules version 7, but this build simulates rules version 1"
    ):
        er.SimManager.from_replay(path)


def test_replay_file_changed_after_opening_raises_replay_format_error(tmp_path):
    path = tmp_path / "changed.bin"
    record(path)
    sim = er.SimManager.from_replay(path, num_threads=1)
    with sim:
        sim.replay_step()
        data = bytearray(path.read_bytes())
        data[-30] ^= 0xFF  # inside the last HASH record, in place: the size stays the same
        path.write_bytes(bytes(data))
        with pytest.raises(er.ReplayFormatError, match=r"record changed since the file was opened"):
            while not sim.replay_step():
                pass


def test_replay_step_after_the_last_recorded_step_raises_escape_room_error(tmp_path):
    path = tmp_path / "short.bin"
    want = record(path, steps=5)
    with er.SimManager.from_replay(path, num_threads=1) as sim:
        results = [sim.replay_step() for _ in range(5)]
        assert results == [False] * 4 + [True]
        with pytest.raises(er.EscapeRoomError, match=r"the replay is finished: all 5 recorded steps"):
            sim.replay_step()
        np.testing.assert_array_equal(sim.state_hashes(), want)
        sim.step()  # the manager itself stays usable


@contextlib.contextmanager
def file_size_limit(limit: int):
    """Writes past ``limit`` bytes fail with EFBIG (like a full disk) for the block."""
    if signal.getsignal(signal.SIGXFSZ) != signal.SIG_IGN:
        pytest.skip("SIGXFSZ is not ignored, a write past the limit would kill the process")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def run_into_a_full_disk(path, *, nstep: int = 1, checksum_interval: int = 50):
    """Records until a write fails; returns the manager, the steps done and the error."""
    sim = er.SimManager(num_worlds=64, num_threads=1)
    sim.action_tensor().to_numpy()[:] = FAST_FORWARD
    sim.start_recording(path, seed=5, checksum_interval=checksum_interval)
    for _ in range(10_000):
        try:
            sim.step(nstep=nstep)
        except er.EscapeRoomError as e:
            return sim, sim.step_count, e
    raise AssertionError("the file size limit was never reached")


def twin_after(steps: int) -> np.ndarray:
    with er.SimManager(num_worlds=64, num_threads=1) as twin:
        twin.reseed(5)
        twin.action_tensor().to_numpy()[:] = FAST_FORWARD
        if steps:
            twin.step(nstep=steps)
        return twin.state_hashes().copy()


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
@pytest.mark.parametrize(("nstep", "interval"), [(1, 50), (7, 1), (100, 3)])
def test_disk_full_while_recording_raises_once_steps_nothing_and_keeps_a_valid_prefix(
    tmp_path, nstep, interval
):
    """The first write error ends the recording at its last complete record: raised once, by a
    call that took no step it could not record; the file is a readable, verifiable prefix."""
    path = tmp_path / "full.bin"
    with file_size_limit(64 << 10):
        sim, done, error = run_into_a_full_disk(path, nstep=nstep, checksum_interval=interval)
        with sim:
            assert "write failed: File too large" in str(error) and "full.bin" in str(error)
            kept = int(re.search(r"the file keeps its first (\d+) steps", str(error)).group(1))
            # The state is that of `done` whole steps, as step_count says: nothing half taken.
            np.testing.assert_array_equal(sim.state_hashes(), twin_after(done))
            assert not sim.is_recording()
            sim.step(nstep=3)  # goes on, without recording: no second error
            assert sim.stop_recording() == kept  # the error was raised once; this reports the prefix
            with pytest.raises(er.EscapeRoomError, match="not recording"):
                sim.stop_recording()
    with pytest.warns(er.ReplayTruncatedWarning, match="no END record"):
        meta = er.SimManager.read_replay_metadata(path)
    assert 0 < meta.num_steps == kept <= done and not meta.complete
    with pytest.warns(er.ReplayTruncatedWarning):
        replay = er.SimManager.from_replay(path, num_threads=1)
    with replay:
        for _ in range(kept):  # every checkpoint of the prefix verifies
            replay.replay_step()
        np.testing.assert_array_equal(replay.state_hashes(), twin_after(kept))


@needs_proc
@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_recording_to_a_full_disk_raises_changes_nothing_and_leaks_no_descriptor(tmp_path):
    with er.SimManager(num_worlds=2, num_threads=1) as sim:
        sim.step(nstep=3)
        hashes, before = sim.state_hashes().copy(), open_fds()
        with file_size_limit(16):  # not even the header fits
            for seed in (0, None, 0):
                with pytest.raises(
                    er.EscapeRoomError, match=r"full\.bin: write failed: File too large; not recording"
                ):
                    sim.start_recording(tmp_path / "full.bin", seed=seed)
                assert not sim.is_recording()
        np.testing.assert_array_equal(sim.state_hashes(), hashes)  # not reseeded, not reset
        assert open_fds() == before


@pytest.mark.parametrize("device", ["/dev/null", "/dev/full", "/dev/zero"])
def test_recording_to_a_device_raises_naming_regular_files_and_changes_nothing(device):
    if not os.path.exists(device):
        pytest.skip(f"needs {device}")
    with er.SimManager(num_worlds=2, num_threads=1) as sim:
        sim.step(nstep=2)
        hashes = sim.state_hashes().copy()
        with pytest.raises(er.EscapeRoomError, match=f"replay file {device}: not a regular file"):
            sim.start_recording(device, seed=1)
        assert not sim.is_recording()
        np.testing.assert_array_equal(sim.state_hashes(), hashes)


@needs_proc
@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_disk_full_while_recording_leaks_no_descriptor(tmp_path):
    before = open_fds()
    with file_size_limit(64 << 10):
        sim, _, _ = run_into_a_full_disk(tmp_path / "full.bin")
        sim.stop_recording()
        sim.close()
    del sim
    assert open_fds() == before


def test_trajectory_log_to_a_full_disk_raises_and_stops_logging():
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    with er.SimManager(num_worlds=2, num_threads=1) as sim:
        sim.enable_trajectory_logging(0, 0, "/dev/full")
        with pytest.raises(
            er.EscapeRoomError, match=r"trajectory log /dev/full: write failed: No space left"
        ):
            sim.step(nstep=3000)  # far more than a stdio buffer
        steps = sim.step_count
        assert 0 < steps < 3000  # the step whose line failed is whole; the long step stopped there
        assert not sim._impl.is_trajectory_logging  # logging stopped; the manager goes on
        sim.disable_trajectory_logging()
        sim.step()
        assert sim.step_count == steps + 1


# -- use after close -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "use",
    [
        lambda sim, tmp: sim.start_recording(tmp / "a.bin"),
        lambda sim, tmp: sim.start_recording(tmp / "b.bin", seed=1),
        lambda sim, tmp: sim.enable_trajectory_logging(0, 0, tmp / "log.txt"),
        lambda sim, tmp: sim._impl.set_actions(np.zeros((2, 3), np.int32)),
        lambda sim, tmp: sim._impl.step_actions(np.zeros((2, 3), np.int64)),
        lambda sim, tmp: sim._impl.check_actions(np.zeros((2, 3), np.int64)),
        lambda sim, tmp: sim.reset_worlds(None, seeds=3),
    ],
    ids=["start_recording", "start_recording_seeded", "trajectory_logging", "set_actions", "step_actions",
         "check_actions", "reset_worlds_seeded"],
)  # fmt: skip
def test_more_uses_after_close_raise_escape_room_error(tmp_path, use):
    sim = er.SimManager(num_worlds=2, num_threads=1)
    sim.close()
    with pytest.raises(er.EscapeRoomError, match=r"this SimManager is closed"):
        use(sim, tmp_path)
    assert not list(tmp_path.iterdir())  # nothing was written
    # What needs no simulation still answers.
    assert (sim.num_worlds, sim.closed, sim.is_recording()) == (2, True, False)
    assert "closed" in repr(sim)


def test_load_replay_after_close_raises_escape_room_error(tmp_path):
    path = tmp_path / "r.bin"
    record(path, num_worlds=2)
    sim = er.SimManager(num_worlds=2, num_threads=1)
    sim.close()
    with pytest.warns(DeprecationWarning), pytest.raises(er.EscapeRoomError, match=r"closed"):
        sim.load_replay(path)


def test_replay_step_after_close_raises_escape_room_error(tmp_path):
    path = tmp_path / "r.bin"
    record(path)
    sim = er.SimManager.from_replay(path, num_threads=1)
    sim.replay_step()
    sim.close()
    with pytest.raises(er.EscapeRoomError, match=r"closed"):
        sim.replay_step()


# -- KeyboardInterrupt -----------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs POSIX signals")
def test_keyboard_interrupt_during_a_recorded_long_step_leaves_a_complete_replayable_file(tmp_path):
    path = tmp_path / "interrupted.bin"
    sim = er.SimManager(num_worlds=8, rand_seed=3, num_threads=2, episode_len=50)
    sim.action_tensor().to_numpy()[:] = (2, 1, 3)
    sim.start_recording(path, seed=11, checksum_interval=64)
    with sigint_after(0.1), pytest.raises(KeyboardInterrupt):
        sim.step(nstep=10**9)
    steps = sim.step_count
    assert steps > 0 and sim.is_recording()
    sim.step()  # still recording, still usable
    want = sim.state_hashes().copy()
    assert sim.stop_recording() == steps + 1
    sim.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meta = er.SimManager.read_replay_metadata(path)
    assert meta.complete and meta.num_steps == steps + 1
    with er.SimManager.from_replay(path, num_threads=1) as replay:
        while not replay.replay_step():
            pass
        np.testing.assert_array_equal(replay.state_hashes(), want)
        assert replay.get_replay_checkpoints_verified() >= 2


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs POSIX signals")
def test_keyboard_interrupt_during_a_logged_long_step_leaves_one_line_per_whole_step(tmp_path):
    log = tmp_path / "traj.txt"
    with er.SimManager(num_worlds=4, rand_seed=3, num_threads=1) as sim:
        sim.enable_trajectory_logging(1, 0, log)
        with sigint_after(0.1), pytest.raises(KeyboardInterrupt):
            sim.step(nstep=10**9)
        steps = sim.step_count
        sim.disable_trajectory_logging()
    lines = log.read_text().splitlines()
    assert len(lines) == steps > 0
    assert lines[-1].startswith(f"step={steps} world=1 agent=0 ")


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs POSIX signals")
def test_keyboard_interrupt_while_a_vector_env_steps_in_a_loop_leaves_it_consistent():
    envs = make_env(8)
    actions = np.tile(np.array(FAST_FORWARD, np.int64), (8, 1))
    count = 0
    with sigint_after(0.1), pytest.raises(KeyboardInterrupt):
        while True:
            envs.step(actions)
            count += 1
    # The interrupt lands between steps or in one (which then completes): whole steps only.
    steps = envs.sim.step_count
    assert steps in (count, count + 1)
    twin = make_env(8)
    for _ in range(steps):
        twin.step(actions)
    np.testing.assert_array_equal(envs.sim.state_hashes(), twin.sim.state_hashes())
    np.testing.assert_array_equal(envs.step(actions)[0], twin.step(actions)[0])
    envs.close()
    twin.close()


def test_a_picture_path_without_png_raises_value_error_naming_it(tmp_path):
    from escape_room_env.render import save_png

    with pytest.raises(ValueError, match=r"image path must end in \.png, got '.*out'"):
        save_png(np.zeros((2, 2, 3), np.uint8), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("path", "fps", "message"),
    [
        ("v.avi", 10.0, r"video path must end in \.gif or \.mp4, got '.*v\.avi'"),
        ("v.gif", 0, r"fps must be a positive finite number, got 0"),
        ("v.gif", float("nan"), r"fps must be a positive finite number, got nan"),
        ("v.mp4", -5, r"fps must be a positive finite number, got -5"),
    ],
)
def test_a_bad_video_path_or_fps_raises_before_reading_any_frame(tmp_path, path, fps, message):
    from escape_room_env.render import write_video

    def frames():
        raise AssertionError("a frame was drawn before the arguments were checked")
        yield  # pragma: no cover

    with pytest.raises(ValueError, match=message):
        write_video(frames(), str(tmp_path / path), fps=fps)
