"""Smoke tests of ``benchmarks/bench_gpu.py``: ``--help``, the clear exit without a GPU, a quick
run where a GPU exists, and its verdict lines from made-up records. No timing is asserted here
(STYLE.md: timing assertions never go in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import escape_room_env as er

REPO = Path(__file__).resolve().parent.parent
BENCH_GPU = REPO / "benchmarks" / "bench_gpu.py"
sys.path.insert(0, str(REPO / "benchmarks"))
import bench_gpu


def run_bench(tmp_path: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH_GPU), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        check=False,
    )


def test_help_lists_the_options(tmp_path):
    proc = run_bench(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    for option in ("--quick", "--worlds", "--save", "--results-dir", "--no-cpu", "--render-size"):
        assert option in proc.stdout


@pytest.mark.skipif(er.cuda_available(), reason="a CUDA GPU is usable here: the benchmark would run")
def test_without_a_gpu_it_says_why_and_exits_0_writing_nothing(tmp_path):
    results = tmp_path / "results"
    out = tmp_path / "gpu.jsonl"
    proc = run_bench(tmp_path, "--quick", "--save", "--results-dir", str(results), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("bench_gpu: nothing measured:")
    assert "no CUDA backend" in proc.stdout or "cuda_available() is False" in proc.stdout
    assert len(proc.stdout.strip().splitlines()) == 1
    assert not results.exists() and not out.exists()


@pytest.mark.skipif(
    not er.cuda_available(), reason="needs an NVIDIA GPU (escape_room_env.cuda_available() is False)"
)
def test_quick_run_on_a_gpu_saves_every_bench_and_the_gpus_name(tmp_path):
    results = tmp_path / "results"
    out = tmp_path / "gpu.jsonl"
    proc = run_bench(
        tmp_path, "--quick", "--save", "--results-dir", str(results), "--out", str(out), timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    machine = lines[0]
    assert machine["bench"] == "machine" and machine["gpu_name"] and machine["cuda_devices"] >= 1
    benches = {r["bench"] for r in lines if r.get("world_steps_per_s", 0) > 0 and "median_s" in r}
    assert {
        "gpu_step",
        "gpu_step_sync",
        "gpu_step_nstep",
        "gpu_render",
        "gpu_render_off",
        "cpu_step",
    } <= benches
    try:
        import torch

        has_torch = torch.cuda.is_available()
    except ImportError:
        has_torch = False
    if has_torch:
        assert {"gpu_step_stream", "gpu_policy", "gpu_policy_stream", "gpu_policy_only"} <= benches
    assert any(r["bench"] == "madrona_reference" and r["measured"] is False for r in lines)
    saved = sorted(p.name for p in results.iterdir())
    assert len(saved) == 2 and saved[0].endswith("-gpu.jsonl") and saved[1].endswith("-gpu.md")
    assert bench_gpu.gpu_slug(machine) in saved[0]
    assert "## Headlines" in (results / saved[1]).read_text()


def record(bench: str, num_worlds: int, rate: float, **extra) -> dict:
    return {
        "bench": bench,
        "num_worlds": num_worlds,
        "median_s": 1.0,
        "steps": 1,
        "world_steps_per_s": rate,
        "us_per_step": 1.0,
        "threads": 16,
        **extra,
    }


def test_headlines_give_the_verdicts_and_the_madrona_comparison():
    gpu = {"gpu_name": "NVIDIA H100 80GB HBM3"}
    render = {"width": 64, "height": 64, "render_ms_per_step": 1.0}
    records = [
        record("gpu_step", 8192, 33e6),
        record("gpu_step", 262144, 150e6),
        record("gpu_step", 1048576, 250e6),
        record("gpu_step_nstep", 8192, 66e6),
        record("gpu_step_nstep", 262144, 180e6),
        record("cpu_step", 8192, 11e6),
        record("gpu_render", 65536, 2.5e6, frames_per_s=2.5e6, **render),
        record("gpu_render_off", 65536, 9e6),
    ]
    lines = bench_gpu.headlines(records, gpu)
    assert lines[0].startswith("[PASS] SimManager.step(), one step per call on NVIDIA H100 80GB HBM3")
    assert "150.0 M world-steps/s at 262,144 worlds, best 250.0 M at 1,048,576" in lines[0]
    assert lines[1].startswith("[FAIL] SimManager.step(nstep=k), device loop") and "best 180.0 M" in lines[1]
    assert "33.0 M (step(), 5.0 x), 66.0 M (step(nstep=k), 10.0 x)" in lines[2]
    assert "6.6 M world-steps/s reported by Madrona" in lines[2]
    assert lines[3].startswith("[PASS] batch renderer") and "2.50 M frames/s at 65,536 worlds" in lines[3]
    assert "CPU backend peer at 8,192 worlds (16 threads)" in lines[4] and "3.0 x" in lines[4]

    slow = [record("gpu_render", 65536, 1e6, frames_per_s=1e6, **render)]
    lines = bench_gpu.headlines(slow, gpu)
    assert lines[0] == "SimManager.step(), one step per call: not measured at >= 262,144 worlds in this run"
    assert lines[2].startswith("[FAIL] batch renderer")
    assert bench_gpu.gpu_slug(gpu) == "nvidia-h100-80gb-hbm3"
    sweep = bench_gpu.format_sweep(records)
    assert (
        "| 8,192 | 33,000,000 (1.0 µs) | - | 66,000,000 (1.0 µs) | - | 11,000,000 (1.0 µs, 16 thr) |" in sweep
    )
