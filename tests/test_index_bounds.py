"""Index math stays in range for every num_worlds the core accepts (issue 22 item 8)."""

import shutil
import subprocess
from pathlib import Path

import pytest

import escape_room_env as er

CSRC = Path(__file__).resolve().parent.parent / "csrc"
INT32_MAX = 2**31 - 1
MAX_AGENTS = 4


def test_num_worlds_bound_keeps_world_agent_indices_within_int32():
    bound = INT32_MAX // MAX_AGENTS
    assert bound * MAX_AGENTS <= INT32_MAX  # w * A + a, the per-agent index, fits int32
    with pytest.raises(ValueError, match=rf"num_worlds must be <= {bound}, got {bound + 1}"):
        er.SimManager(num_worlds=bound + 1)


@pytest.mark.skipif(not (CSRC / "sim" / "step.hpp").is_file(), reason="needs the source tree (csrc/)")
@pytest.mark.skipif(shutil.which("c++") is None, reason="needs a C++ compiler")
def test_a_world_past_2_27_steps_as_a_low_numbered_world(tmp_path):
    # Past 2^27 worlds, w * kMaxCubes (16) no longer fits int32: the rules must use 64-bit offsets.
    exe = tmp_path / "index_bounds"
    sources = [Path(__file__).parent / "cpp" / "index_bounds.cpp", CSRC / "state_layout.cpp"]
    subprocess.run(
        ["c++", "-std=c++17", "-O1", "-ffp-contract=off", f"-I{CSRC}", *map(str, sources), "-o", str(exe)],
        check=True,
        timeout=300,
    )
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120, check=False)
    if out.stdout.startswith("SKIP"):
        pytest.skip(out.stdout.strip())
    assert out.returncode == 0 and out.stdout.startswith("OK"), out.stdout + out.stderr
