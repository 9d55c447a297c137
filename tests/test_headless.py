"""The C++-only headless tool: runs, and simulates the same bits for any thread count."""

import json
import subprocess
from pathlib import Path

import pytest

import escape_room_env

HEADLESS = Path(escape_room_env._core.__file__).parent / "bin" / "headless"
pytestmark = pytest.mark.skipif(not HEADLESS.exists(), reason=f"headless tool not installed at {HEADLESS}")


def run_headless(*args: str) -> list[str]:
    out = subprocess.run([str(HEADLESS), *args], check=True, capture_output=True, text=True, timeout=120)
    return out.stdout.splitlines()


def digest_runs(worlds: int, agents: int, mode: int, *targets: str) -> list[list[str]]:
    """The output of a digest comparison: ``worlds`` worlds, 260 steps, one repeat, on each of
    ``targets`` (extra arguments, split on spaces: ``"--threads 1"``, ``"--gpu 0"``)."""
    common = [
        "--worlds",
        str(worlds),
        "--steps",
        "260",
        "--repeats",
        "1",
        "--agents",
        str(agents),
        "--mode",
        str(mode),
    ]
    return [run_headless(*common, *target.split()) for target in targets]


def digest(lines: list[str]) -> str:
    return next(line.split(": ")[1] for line in lines if line.startswith("state digest: "))


#: Agent counts and reset modes the digest comparisons cover.
DIGEST_CASES = pytest.mark.parametrize(("agents", "mode"), [(a, m) for m in (0, 1, 2) for a in (1, 3)])


@DIGEST_CASES
def test_headless_digest_is_the_same_for_one_and_two_threads(agents, mode):
    one, two = digest_runs(96, agents, mode, "--threads 1", "--threads 2")
    assert digest(one) == digest(two)
    record = json.loads(one[0])
    assert record["num_worlds"] == 96 and record["num_agents"] == agents and record["world_steps_per_s"] > 0


def test_headless_digest_depends_on_the_seed():
    common = ["--worlds", "32", "--steps", "50", "--repeats", "1"]
    assert digest(run_headless(*common, "--seed", "1")) != digest(run_headless(*common, "--seed", "2"))


def test_headless_rejects_a_bad_configuration():
    out = subprocess.run(
        [str(HEADLESS), "--worlds", "0"], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 2
    assert "num_worlds must be >= 1" in out.stderr


needs_gpu = pytest.mark.skipif(
    not escape_room_env.cuda_available(),
    reason="needs an NVIDIA GPU (escape_room_env.cuda_available() is False)",
)


@pytest.mark.skipif(escape_room_env.cuda_available(), reason="this machine has a GPU")
def test_headless_on_a_gpu_without_one_fails_cleanly():
    out = subprocess.run(
        [str(HEADLESS), "--worlds", "8", "--gpu", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "ExecMode.CPU" in out.stderr and "CUDA" in out.stderr


@needs_gpu
@DIGEST_CASES
def test_headless_digest_is_the_same_on_the_gpu(agents, mode):
    cpu, gpu = digest_runs(300, agents, mode, "--threads 2", "--gpu 0")
    assert digest(cpu) == digest(gpu)
    assert gpu[-2].startswith("median world-steps/s: ") and gpu[-2].endswith("(cuda:0)")
