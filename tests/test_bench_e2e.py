"""Smoke run of ``benchmarks/bench_e2e.py`` (the three end-to-end tiers) with tiny sizes.

It runs, prints and saves well-formed JSON records with positive rates. No timing is asserted here
(STYLE.md: timing assertions never go in tests).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_E2E = REPO / "benchmarks" / "bench_e2e.py"
sys.path.insert(0, str(REPO / "benchmarks"))
import harness

TIERS = ("e2e_sim", "e2e_policy", "e2e_train")
TINY = ["--quick", "--worlds", "4", "8", "--repeats", "5", "--steps", "4", "--num-steps", "4"]


def test_bench_e2e_quick_reports_three_tiers_per_size_and_saves_them(tmp_path: Path) -> None:
    out = tmp_path / "e2e.jsonl"
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(BENCH_E2E), *TINY, "--out", str(out), "--save", "--results-dir", str(results)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    printed = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]

    records = [r for r in printed if r["bench"] in TIERS]
    assert sorted((r["num_worlds"], r["bench"]) for r in records) == sorted(
        (n, t) for n in (4, 8) for t in TIERS
    )
    for r in records:
        assert set(harness.RESULT_KEYS) <= set(r)
        assert r["repeats"] == 5 and r["median_s"] > 0 and r["world_steps_per_s"] > 0
        assert {"tier", "timed", "torch_threads", "hidden", "other_cpu_cores"} <= set(r)
        assert r["threads"] == 2 and r["hidden"] == 64 and r["torch_threads"] >= 1
    (train,) = [r for r in records if r["bench"] == "e2e_train" and r["num_worlds"] == 8]
    assert train["updates"] == 1 and train["steps"] == 4  # one update of a 4-step rollout

    (summary,) = [r for r in printed if r["bench"] == "e2e_summary"]
    assert summary["headline_worlds"] == 8 and summary["train_world_steps_per_s_at_headline"] > 0
    assert set(summary["world_steps_per_s"]["8"]) == set(TIERS)
    assert set(summary["fraction_of_sim"]["8"]) == {"e2e_policy", "e2e_train"}

    saved = [json.loads(line) for line in out.read_text().splitlines()]
    assert saved[0]["bench"] == "machine" and saved[0]["torch_threads"] >= 1
    assert saved[1:] == [r for r in printed if r["bench"] != "machine"]
    (jsonl,) = results.glob("*-e2e.jsonl")
    (md,) = results.glob("*-e2e.md")
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == saved
    assert "(c) + PPO update" in md.read_text()
