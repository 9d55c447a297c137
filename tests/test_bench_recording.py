"""Smoke test of benchmarks/bench_recording.py: it runs and prints valid JSON lines (no timings asserted)."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_recording.py"


def test_bench_recording_quick_run_prints_json_lines(tmp_path):
    out = tmp_path / "rec.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--quick",
            "--worlds",
            "32",
            "--threads",
            "1",
            "--repeats",
            "5",
            "--steps",
            "4",
            "--out",
            str(out),
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["bench"] == "machine" and lines[0]["cores"] >= 1  # the machine description first
    steps = [line for line in lines if line["bench"] == "recording_step"]
    assert steps, [line["bench"] for line in lines]
    for line in steps:
        assert line["num_worlds"] == 32 and line["threads"] == 1 and line["steps"] == 4
        assert line["world_steps_per_s"] > 0 and line["repeats"] >= 5
    assert "recording" in proc.stdout
