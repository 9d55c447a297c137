"""Smoke run of ``benchmarks/bench_vector.py --no-peers`` with tiny sizes: it runs and prints well-formed
JSON (the throughput peers have their own test, ``tests/test_bench_peers.py``).

No timing is asserted here (STYLE.md: timing assertions never go in tests).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_VECTOR = REPO / "benchmarks" / "bench_vector.py"
sys.path.insert(0, str(REPO / "benchmarks"))
import harness

TINY = [
    "--no-peers",
    "--quick",
    "--worlds",
    "1",
    "4",
    "--headline-worlds",
    "8",
    "--threads",
    "1",
    "--repeats",
    "5",
    "--steps",
    "10",
]
ENVS = {"EscapeRoomVectorEnv.step copy=True", "EscapeRoomVectorEnv.step copy=False"}
PEERS = {
    "SimManager.step",
    "SimManager.step (A/A control)",
    "SimManager.step (caller copies obs between calls)",
    *ENVS,
}


def of(lines: list[dict], bench: str) -> list[dict]:
    return [line for line in lines if line["bench"] == bench]


def test_bench_vector_quick_prints_peers_extras_fits_and_headline(tmp_path: Path) -> None:
    out = tmp_path / "vector.jsonl"
    proc = subprocess.run(
        [sys.executable, str(BENCH_VECTOR), *TINY, "--out", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    printed = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    saved = [json.loads(line) for line in out.read_text().splitlines()]
    assert not [line for line in printed if line["bench"].startswith("peers_")]  # --no-peers

    for bench, sizes in (("vector_step", [8]), ("vector_step_same_step", [8]), ("vector_overhead", [1, 4])):
        records = of(printed, bench)
        assert {r["impl"] for r in records} == PEERS
        assert sorted({r["num_worlds"] for r in records}) == sizes
        for r in records:
            assert set(harness.RESULT_KEYS) <= set(r)
            assert r["repeats"] == 5 and r["steps"] == 10 and r["median_s"] > 0
            assert {"timed", "autoreset", "other_cpu_cores"} <= set(r)

    extras = of(printed, "vector_extra") + of(printed, "vector_overhead_extra")
    assert len(extras) == 4
    for e in extras:
        assert {"sim_us_per_call", "extra_us_copy_false", "extra_us_incall", "extra_us_control"} <= set(e)
        assert e["same_trajectory"] is True  # the peers were fed the same actions

    fits = of(printed, "vector_overhead_fit")
    assert {f["key"] for f in fits} == {"incall", "copy_false", "incall_copy_true", "copy_true"}
    for f in fits:
        assert {"a_us", "b_ns_per_env", "residual_us", "envelope_a_us_at_target_b"} <= set(f)
        assert f["num_worlds"] == [1, 4]

    (summary,) = of(printed, "summary")
    assert {"extra_pct_copy_true_worst", "fit_a_us_copy_false", "fit_b_ns_per_env_copy_false"} <= set(summary)
    assert isinstance(summary["pass_copy_true"], bool) and isinstance(summary["pass_copy_false_fit"], bool)
    assert "PASS" in proc.stdout or "FAIL" in proc.stdout

    assert saved[0]["bench"] == "machine" and {"cpu_model", "cores", "loadavg_1min"} <= set(saved[0])
    assert saved[1:] == [line for line in printed if line["bench"] != "machine"]
