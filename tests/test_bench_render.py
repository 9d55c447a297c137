"""Smoke test of benchmarks/bench_render.py: it runs and prints valid JSON lines (no timings asserted)."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_render.py"


def test_bench_render_quick_run_prints_json_lines_and_the_table(tmp_path):
    out = tmp_path / "render.jsonl"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--sizes", "8", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["bench"] == "machine"
    on = [r for r in lines if r["bench"] == "render"]
    off = [r for r in lines if r["bench"] == "render_off"]
    assert len(on) == len(off) == 1
    assert (on[0]["width"], on[0]["height"], on[0]["num_worlds"], on[0]["threads"]) == (8, 8, 16, 1)
    assert on[0]["frames_per_s"] == on[0]["agent_steps_per_s"] > 0
    assert "render_ms_per_step" in on[0] and off[0]["world_steps_per_s"] > 0
    assert "| 8 x 8 | 16 | 1 |" in proc.stdout
    assert "headline configuration not measured" in proc.stdout
