"""Smoke runs of ``benchmarks/`` with tiny budgets: they run and print well-formed JSON lines.

No timing is asserted here (STYLE.md: timing assertions never go in tests).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH_CORE = REPO / "benchmarks" / "bench_core.py"
sys.path.insert(0, str(REPO / "benchmarks"))
import harness

HAS_ENVPOOL = importlib.util.find_spec("envpool") is not None
QUICK = ["--quick", "--worlds", "1", "16", "--threads", "1", "--repeats", "5", "--steps", "20"]


def run_bench_core(*extra: str, tmp_path: Path) -> tuple[list[dict], list[dict]]:
    """Runs bench_core.py quickly; returns (JSON lines from stdout, JSON lines from --out)."""
    out = tmp_path / "core.jsonl"
    proc = subprocess.run(
        [sys.executable, str(BENCH_CORE), *QUICK, "--out", str(out), *extra],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    printed = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    saved = [json.loads(line) for line in out.read_text().splitlines()]
    return printed, saved


def measurements(lines: list[dict], bench: str) -> list[dict]:
    return [line for line in lines if line["bench"] == bench]


def test_bench_core_quick_prints_one_json_line_per_configuration(tmp_path: Path) -> None:
    printed, saved = run_bench_core(tmp_path=tmp_path)

    core = measurements(printed, "core_step")
    assert [(r["num_worlds"], r["threads"]) for r in core] == [(1, 1), (16, 1)]
    for record in core + measurements(printed, "core_overhead"):
        assert set(harness.RESULT_KEYS) <= set(record)
        assert record["repeats"] == 5 and record["steps"] == 20
        assert record["median_s"] > 0 and record["world_steps_per_s"] > 0
    assert "timed" in core[0]

    (fit,) = measurements(printed, "core_overhead_fit")
    assert {"a_us_per_call", "b_us_per_world_step"} <= set(fit)
    (summary,) = measurements(printed, "summary")
    assert "ratio_ours_over_envpool_best" in summary

    assert saved[0]["bench"] == "machine" and {"cpu_model", "cores", "python", "numpy"} <= set(saved[0])
    assert saved[1:] == [line for line in printed if line["bench"] != "machine"]


@pytest.mark.skipif(not HAS_ENVPOOL, reason="envpool is not installed (pip install envpool)")
def test_bench_core_quick_measures_envpool_peer_in_the_same_run(tmp_path: Path) -> None:
    printed, _ = run_bench_core(tmp_path=tmp_path)
    peers = measurements(printed, "envpool_step") + measurements(printed, "envpool_overhead")
    assert peers and all(set(harness.RESULT_KEYS) <= set(r) for r in peers)
    assert measurements(printed, "summary")[0]["envpool_best_config"] is not None


def test_bench_core_without_peers_or_headless_still_runs(tmp_path: Path) -> None:
    printed, _ = run_bench_core("--no-peers", "--no-headless", tmp_path=tmp_path)
    assert not measurements(printed, "envpool_step") and not measurements(printed, "headless")
    assert measurements(printed, "summary")[0]["envpool_best_world_steps_per_s"] is None


def test_harness_median_and_rates_follow_from_the_repeat_times() -> None:
    record = harness.make_result(
        "b", "i", num_worlds=4, num_agents=2, threads=1, steps=10, times=[3.0, 1.0, 2.0, 5.0, 4.0]
    )
    assert record["median_s"] == 3.0
    assert record["world_steps_per_s"] == pytest.approx(40 / 3.0)
    assert record["agent_steps_per_s"] == pytest.approx(80 / 3.0)


def test_harness_refuses_fewer_than_five_repeats() -> None:
    with pytest.raises(ValueError, match="repeats"):
        harness.time_repeats(lambda n: None, steps=1, repeats=4)


@pytest.mark.parametrize(("retries", "want", "attempts"), [(5, 0.1, 3), (1, 0.5, 2), (0, 1.0, 1)])
def test_least_disturbed_measures_again_while_disturbed_and_keeps_the_quietest(
    retries, want, attempts, capsys
):
    others = iter([1.0, 0.5, 0.1, 0.0])
    got = harness.least_disturbed(lambda: next(others), lambda r: r, retries, busy_cores=0.25, what="a test")
    assert got == (want, attempts)
    notes = capsys.readouterr().out.splitlines()
    assert len(notes) == attempts if want > 0.25 else len(notes) == attempts - 1
    assert all(line.startswith("note: other processes used") for line in notes)
    assert notes[-1].endswith("during a test") == (want > 0.25)
