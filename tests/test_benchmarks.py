"""Smoke runs of every script in ``benchmarks/`` with tiny sizes, the GPU check's preparation and
dry run, and the harness's own rules. They check what the scripts emit and save, never how fast
anything ran (STYLE.md: timing assertions never go in tests)."""

from __future__ import annotations

import argparse
import doctest
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import escape_room_env as er

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import bench_gpu
import harness

ENVPOOL = importlib.util.find_spec("envpool") is not None
HEADLESS = harness.find_headless() is not None
PUFFERLIB = importlib.util.find_spec("pufferlib") is not None  # tests/test_puffer.py says how to install it
NO_GPU = pytest.mark.skipif(er.cuda_available(), reason="a GPU is usable here: the script would run on it")

# script -> (tiny arguments, the benches it must emit: exactly these)
CASES = {
    "bench_core.py": (
        "--worlds 1 4 --threads 1 --steps 4",
        {"core_step", "core_overhead", "core_overhead_fit", "summary"}
        | ({"headless"} if HEADLESS else set())
        | ({"envpool_step", "envpool_overhead"} if ENVPOOL else set()),
    ),
    "bench_vector.py": (
        "--worlds 1 4 --headline-worlds 8 --threads 1 --steps 4",
        {
            "vector_step",
            "vector_extra",
            "vector_overhead",
            "vector_overhead_extra",
            "vector_overhead_fit",
            "summary",
        },
    ),
    "bench_peers.py": (
        "--headline-worlds 8 --peer-worlds 4 --sync-worlds 1 2 --threads 1 --steps 4 --helper-seconds 0.02",
        {"peers_vector_step", "peers_sync_vector_step", "peers_gymnasium_helper", "peers_overhead"}
        | {"peers_overhead_fit", "peers_summary"}
        | ({"peers_envpool_step", "peers_pair"} if ENVPOOL else set()),
    ),
    "bench_recording.py": ("--worlds 16 --threads 1 --steps 4", {"recording_step", "recording_overhead"}),
    "bench_render.py": ("--worlds 4 --threads 1 --sizes 8", {"render_off", "render", "render_frames"}),
    # rollout next to SimManager.step, and get_state/set_state (issue 15).
    "bench_rollout.py": (
        "--worlds 4 --threads 1 --horizon 4 --state-worlds 8 --steps 2",
        {"rollout_step", "rollout_summary", "state_get_set", "state_summary"},
    ),
    "bench_e2e.py": (
        "--worlds 4 --steps 4 --num-steps 4 --torch-threads 1",
        {"e2e_sim", "e2e_policy", "e2e_train", "e2e_summary"},
    ),
    # The trainer of this tree beside that of a commit (issue 19).
    "bench_train.py": ("--num-envs 8 --updates 1 --baseline HEAD", {"train"}),
    # 1 and 2 local ranks of ppo.train on gloo, and the bare all-reduce (issue 17).
    "bench_distributed.py": (
        "--num-envs 16 --num-steps 4 --updates 1 --hidden 8 --allreduce-calls 5",
        {"dist_train", "dist_allreduce", "dist_summary"},
    ),
    # Its flow on the CPU backend (--cpu-stub): the names a GPU run emits (issue 22).
    "bench_gpu.py": (
        "--cpu-stub --worlds 16 --policy-worlds 4 --render-worlds 4 --render-size 8 --steps 2 --cpu-max-worlds 16",
        {
            "gpu_step",
            "gpu_step_stream",
            "gpu_step_nstep",
            "gpu_policy",
            "gpu_policy_stream",
            "gpu_policy_only",
        }
        | {
            "gpu_render",
            "gpu_render_off",
            "gpu_render_frames",
            "cpu_step",
            "madrona_reference",
            "gpu_summary",
        }
        | ({"headless_gpu"} if HEADLESS else set()),
    ),
    **(
        {
            "bench_puffer.py": (
                "--worlds 1 4 --emulated-worlds 1 2 --threads 2 1 --steps 4",
                {"puffer_step", "puffer_multiprocessing_step", "puffer_emulated_step", "puffer_summary"},
            )
        }
        if PUFFERLIB
        else {}
    ),
}


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=cwd, env=env, check=False)


@pytest.mark.parametrize("script", CASES)
def test_script_emits_and_saves_one_record_per_configuration(script, tmp_path):
    tiny, benches = CASES[script]
    out, results = tmp_path / "out.jsonl", tmp_path / "results"
    save = [] if script == "bench_gpu.py" else ["--save", "--results-dir", str(results)]
    cmd = [sys.executable, str(BENCHMARKS / script), "--quick", "--repeats", "5", *tiny.split()]
    proc = run(*cmd, "--out", str(out), *save, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["bench"] == "machine" and {"cpu_model", "cores", "git_commit"} <= set(lines[0])
    assert {r["bench"] for r in lines[1:]} == benches
    assert [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")] == lines
    for r in (r for r in lines if "median_s" in r):
        assert tuple(r)[: len(harness.RESULT_KEYS)] == harness.RESULT_KEYS
        assert r["repeats"] == len(r["times_s"]) == 5 and r["world_steps_per_s"] > 0 and r["timed"]
    if save:
        (jsonl,) = results.glob("*.jsonl")
        assert [json.loads(line) for line in jsonl.read_text().splitlines()] == lines
        md = jsonl.with_suffix(".md").read_text()
        assert f"Re-run: `python benchmarks/{script} --quick --repeats 5 {tiny} --save`" in md
        assert "## Headline" in md and "| bench " in md


def test_train_failures_sorts_every_episode_that_did_not_escape_by_the_room_it_ended_in(tmp_path):
    torch = pytest.importorskip("torch")
    from escape_room_env.ppo import Agent

    agent = Agent(obs_dim=87, hidden=8)
    with torch.no_grad():  # a policy that always stands still: STOP, FORWARD, no rotation
        agent.actor[-1].weight.zero_()
        agent.actor[-1].bias.copy_(torch.tensor([9.0, 0, 0, 0] + [9.0] + [0] * 7 + [0, 0, 9.0, 0, 0]))
    policy = tmp_path / "policy.pt"
    torch.save({"state_dict": agent.state_dict(), "obs_dim": 87, "args": {"hidden": 8}}, policy)
    report = tmp_path / "report.json"
    cmd = [sys.executable, str(BENCHMARKS / "train_failures.py"), str(policy), "--worlds", "6", "--greedy"]
    proc = run(*cmd, "--json", str(report), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("6 episodes, argmax actions: escape rate 0.000\n")
    got = json.loads(report.read_text())
    assert (got["worlds"], got["actions"], got["escape_rate"], got["failures_in_exit_zone"]) == (6, "argmax", 0.0, 0)
    assert [r["type"] for r in got["rooms"]] == ["button", "cube_blocking", "cube_button"]
    assert [r["failures_ended_here"] for r in got["rooms"]] == [6, 0, 0]
    assert [r["of_those_door_opened"] for r in got["rooms"]] == [0, 0, 0]
    assert got["rooms"][0]["steps_in_room_when_escaped_median"] is None  # nothing escaped


@NO_GPU
def test_bench_gpu_without_a_gpu_says_why_and_exits_1_saving_nothing(tmp_path):
    proc = run(
        sys.executable,
        str(BENCHMARKS / "bench_gpu.py"),
        "--quick",
        "--save",
        "--results-dir",
        "r",
        cwd=tmp_path,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert (
        proc.stderr.startswith("bench_gpu: no usable GPU, nothing measured: ")
        and bench_gpu.why_no_gpu() in proc.stderr
    )
    assert not (tmp_path / "r").exists()


def test_bench_gpu_headlines_give_the_verdicts_and_madrona_beside_ours():
    def rec(bench: str, n: int, rate: float, **extra) -> dict:
        return {"bench": bench, "num_worlds": n, "world_steps_per_s": rate, "threads": 16, **extra}

    frames = {"width": 64, "height": 64, "render_ms_per_step": 1.0}
    records = [
        rec("gpu_step", 8192, 33e6),
        rec("gpu_step", 262144, 150e6),
        rec("gpu_step", 1048576, 250e6),
        rec("gpu_step_nstep", 8192, 66e6),
        rec("gpu_step_nstep", 262144, 180e6),
        rec("gpu_step_nstep", 1048576, 0, skipped="out of memory"),
        rec("cpu_step", 8192, 11e6),
        rec("gpu_render_frames", 65536, 0, frames_per_s=2.5e6, **frames),
    ]
    lines = bench_gpu.headlines(records, "H100")
    assert lines[0].startswith(
        "[PASS] SimManager.step(), one step per call on H100: 150.0 M world-steps/s at 262,144"
    )
    assert lines[0].endswith("best 250.0 M at 1,048,576 (target >= 200 M at >= 262,144 worlds)")
    assert (
        lines[1].startswith("[FAIL] SimManager.step(nstep=k) on H100")
        and "best 180.0 M at 262,144" in lines[1]
    )
    assert "33.0 M (step(), 5.0 x), 66.0 M (step(nstep=k), 10.0 x), next to 6.6 M" in lines[2]
    assert lines[3].startswith("[PASS] batch renderer") and "2.50 M frames/s at 65,536 worlds" in lines[3]
    assert (
        lines[4]
        == "CPU backend peer at 8,192 worlds (16 threads): 11.0 M world-steps/s; the GPU's step() 3.0 x that"
    )
    assert bench_gpu.headlines([], "H100") == [
        "SimManager.step(), one step per call: not measured at >= 262,144 worlds in this run",
        "SimManager.step(nstep=k): not measured at >= 262,144 worlds in this run",
    ]


def session(*args: str, wheels: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ER_WHEELS": str(wheels), "ER_SITE": str(wheels / "site")}
    return run("bash", str(BENCHMARKS / "gpu_session.sh"), *args, cwd=wheels, env=env)


def test_gpu_session_check_fails_early_until_the_wheels_are_fetched(tmp_path):
    missing = session("--check", wheels=tmp_path)
    assert missing.returncode == 1 and "--fetch-wheels" in missing.stdout
    for name in ("gymnasium-1.4.0", "farama_notifications-0.0.6"):
        (tmp_path / f"{name}-py3-none-any.whl").touch()
    fetched = session("--check", wheels=tmp_path)
    assert fetched.returncode == 0, fetched.stdout
    assert "ok: gymnasium-1.4.0-py3-none-any.whl" in fetched.stdout
    assert "no escape_room_env wheel" in fetched.stdout  # the GPU machine will build it


@NO_GPU
def test_gpu_session_dry_run_shows_the_plan_and_budget_and_fails_without_a_gpu(tmp_path):
    proc = session("--dry-run", wheels=tmp_path)
    assert proc.returncode == 1
    assert "plan (480 s in all" in proc.stdout
    for phase, budget in {"gpu": 20, "install": 120, "smoke": 60, "tests": 150, "bench": 130}.items():
        assert any(line.split()[:3] == [phase, str(budget), "s"] for line in proc.stdout.splitlines())
    assert "--maxfail=3" in proc.stdout and "300 worlds x 50 steps" in proc.stdout
    assert f"GPU usable: no: {bench_gpu.why_no_gpu()}" in proc.stdout
    assert not (tmp_path / "site").exists()  # a dry run installs and runs nothing


def test_harness_measures_again_while_disturbed_and_keeps_the_quietest(monkeypatch, capsys):
    disturbance = iter([1.0, 0.5, 0.1, 0.0])
    monkeypatch.setattr(harness, "other_cpu_cores", lambda before, after: next(disturbance))
    args = harness.add_common_args(argparse.ArgumentParser()).parse_args(["--retries", "2"])
    suite = harness.Suite(args, "test", echo=False)
    (r,) = suite.measure("b", {"i": lambda n: 1.0}, steps=1, num_worlds=1, threads=1)
    assert (r["other_cpu_cores"], r["attempts"]) == (0.1, 3)
    assert capsys.readouterr().out.count("measuring again") == 2


def test_harness_builds_fresh_peers_every_round_and_closes_them_first(monkeypatch):
    events = []

    def make(r, stack):
        events.append(f"build {r}")
        stack.callback(events.append, f"close {r}")
        return {"a": lambda n: 2.0, "b": lambda n: 3.0}

    args = harness.add_common_args(argparse.ArgumentParser()).parse_args([])
    a, b = harness.Suite(args, "test", echo=False).measure("x", make, steps=2, num_worlds=4, threads=1)
    assert events == [f"{what} {r}" for r in range(5) for what in ("build", "close")]
    assert (a["median_s"], a["world_steps_per_s"], b["times_s"]) == (2.0, 4.0, [3.0] * 5)


def test_harness_refuses_fewer_than_five_repeats_and_its_examples_hold():
    with pytest.raises(SystemExit):
        harness.add_common_args(argparse.ArgumentParser()).parse_args(["--repeats", "4"])
    assert doctest.testmod(harness).failed == 0
