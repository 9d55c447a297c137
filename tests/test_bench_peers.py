"""Smoke run of ``benchmarks/bench_vector.py --peers-only`` (the throughput peers) with tiny sizes.

It runs, prints and saves well-formed JSON records with positive rates and the ratio fields. No
timing is asserted here (STYLE.md: timing assertions never go in tests).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_VECTOR = REPO / "benchmarks" / "bench_vector.py"
sys.path.insert(0, str(REPO / "benchmarks"))
import harness

HAS_ENVPOOL = importlib.util.find_spec("envpool") is not None
TINY = [
    "--peers-only",
    "--quick",
    "--headline-worlds",
    "8",
    "--peer-worlds",
    "4",
    "--sync-worlds",
    "1",
    "2",
    "--threads",
    "1",
    "--repeats",
    "5",
    "--steps",
    "6",
    "--helper-seconds",
    "0.02",
]
OURS = {"EscapeRoomVectorEnv copy=False", "EscapeRoomVectorEnv copy=True"}
SYNC = "gymnasium SyncVectorEnv(ReferenceEscapeRoomEnv)"
ENVPOOL = "envpool CartPole-v1"


def of(lines: list[dict], bench: str) -> list[dict]:
    return [line for line in lines if line["bench"] == bench]


def test_bench_vector_peers_only_measures_every_peer_and_saves_the_peers_suite(tmp_path: Path) -> None:
    out = tmp_path / "peers.jsonl"
    results = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH_VECTOR),
            *TINY,
            "--out",
            str(out),
            "--save",
            "--results-dir",
            str(results),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    printed = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    measured = [r for r in printed if "median_s" in r]

    assert not of(printed, "vector_step") and not of(printed, "summary")  # the overhead section did not run
    for r in measured:
        assert set(harness.RESULT_KEYS) <= set(r)
        assert r["repeats"] == 5 and r["median_s"] > 0 and r["world_steps_per_s"] > 0
        assert {"timed", "other_cpu_cores"} <= set(r)

    ours = of(printed, "peers_vector_step")
    assert {r["impl"] for r in ours} == OURS
    assert sorted({r["num_worlds"] for r in ours}) == [4, 8]  # --peer-worlds plus the headline size
    assert {r["num_worlds"] for r in of(printed, "peers_sync_vector_step")} == {1, 2}
    assert {r["impl"] for r in of(printed, "peers_gymnasium_helper")} == {*OURS, SYNC}
    overhead_impls = {*OURS, ENVPOOL} if HAS_ENVPOOL else OURS
    assert {r["impl"] for r in of(printed, "peers_overhead")} == overhead_impls
    fits = of(printed, "peers_overhead_fit")
    assert {f["impl"] for f in fits} == overhead_impls
    for f in fits:
        assert {"a_us_per_call", "b_us_per_world_step"} <= set(f) and f["num_worlds"] == [1, 4, 16]
    if HAS_ENVPOOL:
        envpool = of(printed, "peers_envpool_step")
        assert {r["mode"] for r in envpool} == {"sync", "async"}
        pair = of(printed, "peers_pair")  # ours and EnvPool's best, measured again in the same rounds
        assert {r["impl"] for r in pair} >= OURS and len(pair) > len(OURS)
        assert all(r["impl"].startswith(ENVPOOL) for r in pair if r["impl"] not in OURS)
        assert all(len(r["times_s"]) == 5 for r in pair)

    (summary,) = of(printed, "peers_summary")
    for key in ("ratio_vs_sync", "ratio_vs_sync_copy_true", "ratio_vs_envpool", "ratio_vs_envpool_copy_true"):
        assert key in summary
    assert summary["ratio_vs_sync"] > 0 and summary["sync_best_world_steps_per_s"] > 0
    assert isinstance(summary["pass_vs_sync"], bool) and isinstance(summary["pass_call_a"], bool)
    assert summary["call_a_us"].keys() == overhead_impls
    if HAS_ENVPOOL:
        assert summary["paired"] is True and summary["ratio_vs_envpool"] > 0
        assert summary["ratio_vs_envpool_sweep"] > 0
        assert summary["envpool_best_config"]["mode"] in {"sync", "async"}
    assert "PASS" in proc.stdout or "FAIL" in proc.stdout

    saved = [json.loads(line) for line in out.read_text().splitlines()]
    assert saved[0]["bench"] == "machine" and saved[1:] == [r for r in printed if r["bench"] != "machine"]
    (jsonl,) = results.glob("*-vector-peers.jsonl")
    (md,) = results.glob("*-vector-peers.md")
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == saved
    assert "## What each peer measures" in md.read_text()
