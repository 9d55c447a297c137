"""``escape-room`` errors (issue 14, item 11): every error a user can trigger is one line on
stderr, ``escape-room: error: <message>``, with a non-zero exit status and never a traceback.

Exit status: 1 when the command failed (a replay that is corrupt or diverges, a file, the
simulator), 2 for an invalid argument (``ValueError``/``TypeError``/``OverflowError``, as
argparse's own usage errors), 130 on Ctrl-C. Most cases call ``main`` in-process; the entry
point itself runs as a subprocess where only a process can show the behaviour.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from helpers import OUTSIDE_SOURCE

import escape_room_env as er
from escape_room_env.cli import main


def run(capsys, *args) -> tuple[int, str, str]:
    """``main(args)``: (exit status, stdout, stderr)."""
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(err: str, *expected: str) -> str:
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("escape-room: error: "), err
    for text in expected:
        assert text in lines[0], err
    return lines[0]


def cli_process(*args, python_prelude: str = "", **kwargs) -> subprocess.CompletedProcess:
    """The command line in a fresh interpreter (``python_prelude`` runs before ``main``)."""
    code = f"import sys\n{python_prelude}\nfrom escape_room_env.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=OUTSIDE_SOURCE,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """A valid 3-step recording of 2 worlds of the shipped corridor level."""
    path = tmp_path_factory.mktemp("cli") / "corridor.bin"
    with er.SimManager(num_worlds=2, levels=["corridor"], num_threads=1) as sim, sim.recording(path, seed=1):
        sim.step(nstep=3)
    return path


def with_config(src: Path, dst: Path, old: str, new: str, header: dict[int, int] | None = None) -> Path:
    """``src`` with ``old`` replaced by ``new`` in its JSON config block (and u32 header fields at
    the given offsets set), config_bytes and the CRCs made right again, so that the reader gets
    as far as the values themselves."""
    data = src.read_bytes()
    (size,) = struct.unpack_from("<Q", data, 48)
    text = data[96 : 96 + size].decode()
    assert old in text, text
    config = text.replace(old, new).encode()
    head = bytearray(data[:96])
    struct.pack_into("<Q", head, 48, len(config))
    for offset, value in (header or {}).items():
        struct.pack_into("<I", head, offset, value)
    header_crc_at = 76  # format 1: the header CRC covers bytes [0, 76)
    if struct.unpack_from("<I", head, 8)[0] >= 2:  # format 2: the config's CRC at 76, the header's at 80
        struct.pack_into("<I", head, 76, zlib.crc32(config))
        header_crc_at = 80
    struct.pack_into("<I", head, header_crc_at, zlib.crc32(bytes(head[:header_crc_at])))
    dst.write_bytes(bytes(head) + config + data[96 + size :])
    return dst


# -- replay files ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [("info",), ("info", "--json"), ("replay",), ("replay", "--verify")])
def test_a_file_that_is_not_a_replay_is_one_line_and_exit_1(capsys, tmp_path, command):
    bad = tmp_path / "notes.bin"
    bad.write_bytes(b"hello, this is not a replay file" * 8)
    rc, out, err = run(capsys, *command, bad)
    assert rc == 1 and out == ""
    assert_one_line_error(err, "ReplayFormatError", "bad magic")


HUGE = {
    "cell_size 1e400": ('"cell_size": 2.0', '"cell_size": 1e400', None),
    "escape_bonus 1e400": ('"escape_bonus": 1.0', '"escape_bonus": 1e400', None),
    "progress_scale 1e400": ('"progress_scale": 0.05', '"progress_scale": 1e400', None),
    "episode_len 2**31": ('"episode_len": 200', '"episode_len": 2147483648', {28: 2**31}),
    "episode_len 2**31 in the config only": ('"episode_len": 200', '"episode_len": 2147483648', None),
    "world seed 1e400": ('"world_seeds": [1, 2]', '"world_seeds": [1e400, 2]', None),
    "momentary door 1e400": ('"momentary": []', '"momentary": [1e400]', None),
}


@pytest.mark.parametrize("command", ["info", "replay"])
@pytest.mark.parametrize("case", HUGE)
def test_a_replay_whose_config_holds_huge_numbers_is_one_line(capsys, tmp_path, recording, case, command):
    old, new, header = HUGE[case]
    crafted = with_config(recording, tmp_path / "crafted.bin", old, new, header)
    rc = main([command, str(crafted)])
    out, err = capsys.readouterr()
    if rc == 0:  # a reader may accept what it can check; then it must replay, and say so
        assert command == "info" and "Traceback" not in err
        return
    assert_one_line_error(err)
    assert "verified" not in out


def test_a_truncated_replay_warns_in_one_line_and_replays_its_prefix(capsys, tmp_path, recording):
    data = recording.read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data[:-30])  # inside the END record or the last step
    rc, out, err = run(capsys, "replay", cut)
    assert rc == 0 and "replayed" in out
    lines = err.splitlines()
    assert lines and all(
        line.startswith("escape-room: warning: ReplayTruncatedWarning: ") for line in lines
    ), err


# -- the simulator, arguments, files ------------------------------------------------------------


def test_recording_into_a_directory_is_one_line_and_exit_1(capsys, tmp_path):
    rc, _, err = run(capsys, "record", tmp_path, "--steps", 2, "--num-worlds", 1)
    assert rc == 1
    assert_one_line_error(err, "EscapeRoomError", "cannot open for writing")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("record", "{tmp}/x.bin", "--num-agents", 7), "num_agents must be between 1 and 4, got 7"),
        (("record", "{tmp}/x.bin", "--episode-len", 2**31), "episode_len=2147483648 is out of range"),
        (("record", "{tmp}/x.bin", "--seed", -1), "rand_seed must be in [0, 2**64), got -1"),
        (("record", "{tmp}/x.bin", "--steps", -5), "--steps must be >= 0, got -5"),
        (("record", "{tmp}/x.bin", "--level", "no_such_level"), "no level named 'no_such_level'"),
        (("replay", "{recording}", "--world", 1), "--world needs --video"),
        (("replay", "{recording}", "--video", "{tmp}/v.avi"), "video path must end in .gif or .mp4"),
        (("render-level", "{tmp}/level.json"), "'cell_size' must be a number, got '2'"),
        (("train", "--num-steps", 0, "--save-dir", "{tmp}"), "num_steps must be >= 1, got 0"),
        (
            ("train", "--device", "tpu9", "--save-dir", "{tmp}"),
            "device must be 'cpu', 'cuda' or 'cuda:<index>'",
        ),
        (("train", "--video", "{tmp}/v.gif", "--save-dir", ""), "--video needs the run saved"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(map(str, v[:1] + v[2:3])),
)
def test_an_invalid_argument_is_one_line_and_exit_2(capsys, tmp_path, recording, args, message):
    (tmp_path / "level.json").write_text(json.dumps({"ascii": "#####\n#S.E#\n#####", "cell_size": "2"}))
    filled = [str(a).format(tmp=tmp_path, recording=recording) for a in args]
    rc, out, err = run(capsys, *filled)
    assert rc == 2 and out == ""
    assert_one_line_error(err, message)
    assert list(tmp_path.iterdir()) == [tmp_path / "level.json"]  # nothing written


@pytest.mark.parametrize(
    "args",
    [
        ("replay", "{tmp}/missing.bin"),
        ("info", "{tmp}/missing.bin"),
        ("record", "{tmp}/x.bin", "--policy", "{tmp}/missing.pt"),
    ],
    ids=["replay", "info", "record --policy"],
)
def test_a_missing_file_is_one_line_naming_it(capsys, tmp_path, args):
    rc, _, err = run(capsys, *[a.format(tmp=tmp_path) for a in args])
    assert rc == 1
    assert_one_line_error(err, f"{tmp_path}/missing.", "No such file or directory")


@pytest.mark.parametrize(
    "args", [("info", "{tmp}"), ("replay", "{tmp}"), ("record", "{tmp}/x.bin", "--policy", "{tmp}")]
)
def test_a_directory_instead_of_a_file_is_one_line(capsys, tmp_path, args):
    rc, _, err = run(capsys, *[a.format(tmp=tmp_path) for a in args])
    assert rc == 1
    assert_one_line_error(err, f"{tmp_path}: Is a directory")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files without permission")
def test_a_file_without_read_permission_is_one_line(capsys, tmp_path, recording):
    locked = tmp_path / "locked.bin"
    locked.write_bytes(recording.read_bytes())
    locked.chmod(0)
    rc, _, err = run(capsys, "replay", locked)
    assert rc == 1
    assert_one_line_error(err, f"{locked}: Permission denied")


# -- policy files (issue 14, item 12) -----------------------------------------------------------


class RunsCode:
    """Unpickling this calls ``os.system``: it creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def test_record_refuses_a_policy_file_that_would_run_code_without_running_it(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "ran.txt"
    policy = tmp_path / "policy.pt"
    torch.save({"state_dict": {}, "obs_dim": 87, "args": {"hidden": 8}, "x": RunsCode(marker)}, policy)
    rc, _, err = run(capsys, "record", tmp_path / "out.bin", "--steps", 2, "--policy", policy)
    assert not marker.exists()
    assert rc == 2
    assert_one_line_error(err, f"{policy} is not a policy saved by `escape-room train`", "refused unread")
    assert not (tmp_path / "out.bin").exists()


def test_record_rejects_files_that_are_not_policies_in_one_line(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    from escape_room_env.ppo import Agent

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 10)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"state_dict": {}}))
    two_agents = tmp_path / "two_agents.pt"  # observations of 90 values: a policy for 2 agents per world
    torch.save({"state_dict": Agent(90, 8).state_dict(), "obs_dim": 90, "args": {"hidden": 8}}, two_agents)
    for policy, message in [
        (junk, f"{junk} is not a policy saved by `escape-room train`: "),
        (tensor, "expected a dict with state_dict, obs_dim and args.hidden"),
        (raw, "which is refused unread"),
        (two_agents, "takes observations of 90 values, but with 1 agent(s) per world they have 87"),
    ]:
        rc, _, err = run(capsys, "record", tmp_path / "out.bin", "--steps", 2, "--policy", policy)
        assert rc == 2, policy
        assert_one_line_error(err, message)


# -- every error class, at the root -------------------------------------------------------------


ERRORS = {
    "ReplayFormatError": (er.ReplayFormatError("x.bin: byte 0: bad magic"), 1),
    "ReplayDivergenceError": (er.ReplayDivergenceError("replay of x.bin diverged at step 3"), 1),
    "EscapeRoomError": (er.EscapeRoomError("this SimManager is closed; create a new one"), 1),
    "CudaUnavailableError": (er.CudaUnavailableError("no GPU"), 1),
    "ValueError": (ValueError("num_worlds must be >= 1, got 0"), 2),
    "TypeError": (TypeError("num_worlds must be an int, got float"), 2),
    "OverflowError": (OverflowError("cannot convert float infinity to integer"), 2),
    "FileNotFoundError": (FileNotFoundError(2, "No such file or directory", "x.bin"), 1),
    "PermissionError": (PermissionError(13, "Permission denied", "x.bin"), 1),
    "IsADirectoryError": (IsADirectoryError(21, "Is a directory", "x.bin"), 1),
    "OSError without a path": (OSError(28, "No space left on device"), 1),
    "RuntimeError of several lines": (RuntimeError("first line\n\n  second line\n"), 1),
    "ZeroDivisionError": (ZeroDivisionError("float division by zero"), 1),
    "KeyError": (KeyError("rooms"), 1),
    "MemoryError without a message": (MemoryError(), 1),
}


@pytest.mark.parametrize("name", ERRORS)
def test_every_error_class_is_one_line_on_stderr_with_its_exit_status(capsys, monkeypatch, name):
    error, status = ERRORS[name]

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(er.SimManager, "read_replay_metadata", staticmethod(fail))
    rc, out, err = run(capsys, "info", "x.bin")
    assert (rc, out) == (status, "")
    line = assert_one_line_error(err)
    expected = {
        "FileNotFoundError": "x.bin: No such file or directory",
        "PermissionError": "x.bin: Permission denied",
        "IsADirectoryError": "x.bin: Is a directory",
        "OSError without a path": "[Errno 28] No space left on device",
        "RuntimeError of several lines": "RuntimeError: first line second line",
        "KeyError": "KeyError: 'rooms'",
        "MemoryError without a message": "MemoryError",
    }.get(name, str(error) if status == 2 else f"{type(error).__name__}: {error}")
    assert line == f"escape-room: error: {expected}"


def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(er.SimManager, "read_replay_metadata", staticmethod(interrupted))
    rc, out, err = run(capsys, "info", "x.bin")
    assert (rc, out, err) == (130, "", "escape-room: interrupted\n")


def test_traceback_flag_shows_the_traceback(tmp_path):
    proc = cli_process("--traceback", "info", tmp_path / "missing.bin")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "FileNotFoundError" in proc.stderr


def test_the_entry_point_prints_one_line_and_no_traceback(tmp_path):
    proc = cli_process("replay", tmp_path / "missing.bin")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == f"escape-room: error: {tmp_path}/missing.bin: No such file or directory\n"


def test_a_reader_that_closes_stdout_early_gets_no_traceback(recording):
    code = "import sys\nfrom escape_room_env.cli import main\nsys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "info", "--json", str(recording)],
        cwd=OUTSIDE_SOURCE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # like `escape-room info --json x.bin | head -0`, before anything is written
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1
    assert err == ""


def test_without_torch_train_says_so_in_one_line_and_the_other_commands_work(recording):
    no_torch = "sys.modules['torch'] = None  # as if PyTorch were not installed"
    info = cli_process("info", recording, python_prelude=no_torch)
    assert info.returncode == 0 and "num_worlds" in info.stdout, info.stderr
    train = cli_process("train", "--num-envs", 4, python_prelude=no_torch)
    assert train.returncode == 1 and train.stdout == ""
    assert_one_line_error(train.stderr, "needs PyTorch")


def test_an_unknown_flag_is_still_argparses_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["info", "--no-such-flag"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "escape-room: error: unrecognized arguments: --no-such-flag"
