"""Core throughput of escape_room_env, with EnvPool CartPole as the peer, in one run (SPEC §9).

Re-run the full benchmark (about 3 minutes on 2 cores) and save the results as
``benchmarks/results/<YYYY-MM-DD>-<machine>-core.jsonl`` (raw JSON lines, machine first) and
``.md`` (machine description, table, headline)::

    python benchmarks/bench_core.py --save

What it measures, one JSON line per configuration (fields in ``harness.RESULT_KEYS``):

- ``core_step``: ``SimManager.step()`` world-steps/s over ``--worlds`` x ``--threads``, one agent,
  full observations, SAME_STEP autoreset. New random actions are written into
  ``action_tensor()`` before every step from a pre-drawn pool; only the ``sim.step()`` calls are
  timed (``"timed"`` field).
- ``core_overhead`` + ``core_overhead_fit``: a bare loop of ``sim.step()`` at 1..64 worlds,
  1 thread, and the least-squares fit t_call = a + b * num_worlds (a in µs per call, b in µs per
  world-step).
- ``headless``: the C++-only ``headless`` tool (no Python), parsed from its JSON lines.
- ``envpool_step`` / ``envpool_overhead``: EnvPool CartPole-v1 in sync mode
  (``batch_size == num_envs``), ``env.step(actions)`` with random 0/1 actions; its per-call time at
  ``num_envs=1``. Skipped with a note when envpool is not installed.

``--quick`` is a seconds-long smoke run (used by ``tests/test_benchmarks.py``).
"""

from __future__ import annotations

import argparse
import gc
import glob
import importlib.util
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

import escape_room_env as er

REPO = Path(__file__).resolve().parent.parent
FULL_WORLDS = (1, 16, 256, 1024, 4096, 16384, 65536)
QUICK_WORLDS = (1, 16, 256)
OVERHEAD_WORLDS = (1, 2, 4, 8, 16, 32, 64)
QUICK_OVERHEAD_WORLDS = (1, 4, 16)
ENVPOOL_CONFIGS = tuple((n, t) for n in (1024, 4096, 16384) for t in (1, 2))  # (num_envs, num_threads)
QUICK_ENVPOOL_CONFIGS = ((1024, 1),)
HEADLINE = (4096, 2)  # ours at (num_worlds, threads) in the headline ratio
ACTION_POOL = 16  # distinct action arrays cycled through, drawn before timing

CORE_TIMED = "sim.step() calls only; new random actions copied into action_tensor() before each call, untimed"
OVERHEAD_TIMED = "whole python loop of sim.step() calls; random actions written once"
ENVPOOL_TIMED = "whole python loop of env.step(actions); actions cycle through 16 random 0/1 arrays"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="short smoke run (seconds)")
    p.add_argument("--worlds", type=int, nargs="+", help=f"num_worlds list (full: {FULL_WORLDS})")
    p.add_argument("--threads", type=int, nargs="+", help="thread counts (default: 1 2)")
    p.add_argument("--repeats", type=int, default=harness.MIN_REPEATS, help="timed repeats, >= 5")
    p.add_argument("--steps", type=int, help="steps per repeat for every bench (default: ~2**20 world-steps)")
    p.add_argument("--out", type=Path, help="append the JSON lines to this file")
    p.add_argument(
        "--save", action="store_true", help="write benchmarks/results/<date>-<machine>-core.{jsonl,md}"
    )
    p.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--note", default="", help="a line for the top of the saved .md summary")
    p.add_argument("--headless", type=Path, help="path of the headless tool (default: see find_headless)")
    p.add_argument("--no-headless", action="store_true", help="skip the C++ headless tool")
    p.add_argument("--no-peers", action="store_true", help="skip EnvPool")
    args = p.parse_args(argv)
    if args.repeats < harness.MIN_REPEATS:
        p.error(f"--repeats must be >= {harness.MIN_REPEATS}")
    args.worlds = args.worlds or list(QUICK_WORLDS if args.quick else FULL_WORLDS)
    args.threads = args.threads or [1, 2]
    return args


def steps_for(num_worlds: int, args: argparse.Namespace) -> int:
    """Steps per repeat: ``--steps``, else about 2**20 world-steps (2**13 in quick mode), 8..20000."""
    return harness.steps_per_repeat(num_worlds, 2**13 if args.quick else 2**20, 8, 20000, args.steps)


def overhead_steps(args: argparse.Namespace) -> int:
    return args.steps or (200 if args.quick else 5000)


# -- ours: SimManager.step() -----------------------------------------------------------------


def random_actions(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """``shape + (3,)`` int32 actions, each component uniform over its choices."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.array(er.action.NUM_CHOICES), size=(*shape, 3), dtype=np.int32)


def bench_core_step(args: argparse.Namespace, out: TextIO | None) -> list[dict[str, Any]]:
    records = []
    for num_worlds in args.worlds:
        for threads in args.threads:
            with er.SimManager(num_worlds=num_worlds, num_threads=threads, rand_seed=0) as sim:
                records.append(
                    harness.measure(
                        "core_step",
                        "escape_room_env",
                        harness.sim_run(sim, harness.action_pool(num_worlds)),
                        num_worlds=num_worlds,
                        num_agents=1,
                        threads=threads,
                        steps=steps_for(num_worlds, args),
                        repeats=args.repeats,
                        out=out,
                        timed=CORE_TIMED,
                        autoreset=sim.autoreset_mode.name,
                        obs_dim=sim.obs_dim,
                    )
                )
    return records


def step_loop(step: Callable[[], None]) -> Callable[[int], None]:
    """``run(n)``: a bare Python loop of n ``step()`` calls."""

    def run(n: int) -> None:
        for _ in range(n):
            step()

    return run


def bench_core_overhead(args: argparse.Namespace, out: TextIO | None) -> list[dict[str, Any]]:
    """``sim.step()`` per-call time at small num_worlds, 1 thread, then the fit a + b * N."""
    records = []
    for num_worlds in QUICK_OVERHEAD_WORLDS if args.quick else OVERHEAD_WORLDS:
        with er.SimManager(num_worlds=num_worlds, num_threads=1, rand_seed=0) as sim:
            sim.action_tensor().to_numpy()[:] = random_actions((num_worlds, 1))
            records.append(
                harness.measure(
                    "core_overhead",
                    "escape_room_env",
                    step_loop(sim.step),
                    num_worlds=num_worlds,
                    num_agents=1,
                    threads=1,
                    steps=overhead_steps(args),
                    repeats=args.repeats,
                    out=out,
                    timed=OVERHEAD_TIMED,
                )
            )
    fit = fit_overhead(records)
    harness.emit(fit, out)
    return [*records, fit]


def fit_overhead(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Least-squares fit t_call = a + b * num_worlds; a in µs per call, b in µs per world-step.

    The fit minimises relative residuals (rows weighted by 1 / t): timing noise grows with t, and
    an unweighted fit lets the 64-world point decide the intercept (which then often comes out
    negative). The unweighted fit is kept alongside for comparison.
    """
    n = np.array([r["num_worlds"] for r in records], dtype=float)
    t_us = np.array([1e6 * r["median_s"] / r["steps"] for r in records])
    design = np.stack([np.ones_like(n), n], axis=1)
    (a, b), *_ = np.linalg.lstsq(design / t_us[:, None], np.ones_like(t_us), rcond=None)
    (a_ols, b_ols), *_ = np.linalg.lstsq(design, t_us, rcond=None)
    rel_residual = (t_us - (a + b * n)) / t_us
    return {
        "bench": "core_overhead_fit",
        "impl": "escape_room_env",
        "threads": 1,
        "num_worlds": n.astype(int).tolist(),
        "us_per_call": t_us.round(4).tolist(),
        "a_us_per_call": float(a),
        "b_us_per_world_step": float(b),
        "max_rel_residual": float(np.abs(rel_residual).max()),
        "fit": "least squares on relative residuals (weights 1/t)",
        "a_us_per_call_unweighted": float(a_ols),
        "b_us_per_world_step_unweighted": float(b_ols),
    }


# -- ours: the C++ headless tool -------------------------------------------------------------


def find_headless() -> Path | None:
    """The tool built with the loaded ``_core`` (the installed package's bin/), so that it runs the
    same code as the Python numbers; else the newest Release-built ``build/*/headless``."""
    core = importlib.util.find_spec("escape_room_env._core")
    if core is not None and core.origin:
        installed = Path(core.origin).parent / "bin" / "headless"
        if installed.is_file():
            return installed
    builds = [
        Path(p) for p in glob.glob(str(REPO / "build" / "*" / "headless")) if _release_build(Path(p).parent)
    ]
    return max(builds, key=lambda p: p.stat().st_mtime, default=None)


def _release_build(build_dir: Path) -> bool:
    cache = build_dir / "CMakeCache.txt"
    return cache.is_file() and "CMAKE_BUILD_TYPE:STRING=Release\n" in cache.read_text()


def run_headless(path: Path, num_worlds: int, threads: int, steps: int, repeats: int) -> list[float]:
    """Runs the tool once; returns the seconds of each repeat from its JSON lines."""
    flags = f"--worlds {num_worlds} --steps {steps} --threads {threads} --agents 1 --repeats {repeats}"
    cmd = [str(path), *flags.split()]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return [line["seconds"] for line in lines if line.get("bench") == "headless"]


def bench_headless(args: argparse.Namespace, out: TextIO | None) -> list[dict[str, Any]]:
    path = args.headless or find_headless()
    if path is None or not Path(path).is_file():
        print(f"note: headless tool not found ({path or 'build/*/headless, escape_room_env/bin/'}); skipped")
        return []
    print(f"headless tool: {path}", flush=True)
    records = []
    for num_worlds in args.worlds:
        for threads in args.threads:
            steps = steps_for(num_worlds, args)
            times = run_headless(Path(path), num_worlds, threads, steps, args.repeats)
            record = harness.make_result(
                "headless",
                "escape_room_env C++",
                num_worlds=num_worlds,
                num_agents=1,
                threads=threads,
                steps=steps,
                times=times,
                timed="Manager::step() calls only, in C++ (tool's own 50-step warm-up)",
                headless_path=str(path),
            )
            harness.emit(record, out)
            records.append(record)
    return records


# -- peer: EnvPool CartPole ------------------------------------------------------------------


def make_cartpole(envpool: Any, num_envs: int, threads: int) -> Any:
    with warnings.catch_warnings():  # gymnasium's Box float64 -> float32 notice
        warnings.simplefilter("ignore")
        env = envpool.make_gymnasium(
            "CartPole-v1", num_envs=num_envs, batch_size=num_envs, num_threads=threads
        )
        env.reset()
    return env


def cartpole_run(env: Any, num_envs: int) -> Callable[[int], None]:
    pool = np.random.default_rng(0).integers(0, 2, size=(ACTION_POOL, num_envs), dtype=np.int32)

    def run(n: int) -> None:
        for i in range(n):
            env.step(pool[i % ACTION_POOL])

    return run


def bench_envpool(args: argparse.Namespace, out: TextIO | None) -> list[dict[str, Any]]:
    try:
        import envpool
    except ImportError as e:
        print(f"note: envpool is not importable ({e}); peers skipped (pip install envpool)")
        return []
    records = []
    configs = [
        ("envpool_step", n, t, steps_for(n, args))
        for n, t in (QUICK_ENVPOOL_CONFIGS if args.quick else ENVPOOL_CONFIGS)
    ]
    configs.append(("envpool_overhead", 1, 1, overhead_steps(args)))
    for bench, num_envs, threads, steps in configs:
        env = make_cartpole(envpool, num_envs, threads)
        records.append(
            harness.measure(
                bench,
                "envpool CartPole-v1",
                cartpole_run(env, num_envs),
                num_worlds=num_envs,
                num_agents=1,
                threads=threads,
                steps=steps,
                repeats=args.repeats,
                out=out,
                timed=ENVPOOL_TIMED,
                batch_size=num_envs,
                envpool_version=envpool.__version__,
            )
        )
        env.close()
        del env
        gc.collect()  # its worker threads must be gone before the next configuration
    return records


# -- summary ---------------------------------------------------------------------------------


def headline(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Ours at HEADLINE / EnvPool's best, and the fitted per-call overhead."""

    def find(bench: str, num_worlds: int, threads: int) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in records
                if (r["bench"], r.get("num_worlds"), r.get("threads")) == (bench, num_worlds, threads)
            ),
            None,
        )

    ours = find("core_step", *HEADLINE)
    headless = find("headless", *HEADLINE)
    best = max(
        (r for r in records if r["bench"] == "envpool_step"),
        key=lambda r: r["world_steps_per_s"],
        default=None,
    )
    fit = next((r for r in records if r["bench"] == "core_overhead_fit"), None)
    peer_1 = next((r for r in records if r["bench"] == "envpool_overhead"), None)
    summary: dict[str, Any] = {
        "bench": "summary",
        "ours_config": {"num_worlds": HEADLINE[0], "threads": HEADLINE[1]},
        "ours_world_steps_per_s": ours["world_steps_per_s"] if ours else None,
        "headless_world_steps_per_s": headless["world_steps_per_s"] if headless else None,
        "envpool_best_world_steps_per_s": best["world_steps_per_s"] if best else None,
        "envpool_best_config": None,
        "ratio_ours_over_envpool_best": None,
        "overhead_a_us_per_call": fit["a_us_per_call"] if fit else None,
        "overhead_b_us_per_world_step": fit["b_us_per_world_step"] if fit else None,
        "envpool_us_per_call_1_env": 1e6 * peer_1["median_s"] / peer_1["steps"] if peer_1 else None,
    }
    if best:
        summary["envpool_best_config"] = {
            "num_envs": best["num_worlds"],
            "batch_size": best["batch_size"],
            "num_threads": best["threads"],
        }
    if ours and best:
        summary["ratio_ours_over_envpool_best"] = ours["world_steps_per_s"] / best["world_steps_per_s"]
    return summary


def format_headline(s: dict[str, Any]) -> str:
    def num(x: float | None, fmt: str = ".3g") -> str:
        return "n/a" if x is None else format(x, fmt)

    w, t = s["ours_config"]["num_worlds"], s["ours_config"]["threads"]
    ours = (
        f"ours (SimManager.step, {w} worlds, {t} threads): {num(s['ours_world_steps_per_s'])} world-steps/s"
    )
    headless = f"headless C++ at the same size: {num(s['headless_world_steps_per_s'])} world-steps/s"
    peer = (
        f"EnvPool CartPole-v1 best: {num(s['envpool_best_world_steps_per_s'])} world-steps/s"
        f" at {s['envpool_best_config']}"
    )
    ratio = f"ratio ours / EnvPool best: {num(s['ratio_ours_over_envpool_best'], '.3f')}"
    overhead = (
        f"sim.step() per call: a = {num(s['overhead_a_us_per_call'], '.3f')} µs + "
        f"b = {num(s['overhead_b_us_per_world_step'], '.3f')} µs per world-step"
        f" (EnvPool env.step at 1 env: {num(s['envpool_us_per_call_1_env'], '.3f')} µs per call)"
    )
    return f"{ours}\n{headless}\n{peer}\n{ratio}\n{overhead}"


def write_summary(
    path: Path, desc: dict[str, Any], records: list[dict[str, Any]], summary: dict[str, Any], note: str
) -> None:
    parts = [
        f"# Core benchmark, {desc['date'][:10]}, {harness.machine_short_name(desc)}",
        *([note] if note else []),
        f"Re-run: `python benchmarks/bench_core.py --save`. Raw JSON lines: `{path.with_suffix('.jsonl').name}`.",
        "## Machine\n\n" + harness.format_machine(desc),
        "## Headline\n\n```\n" + format_headline(summary) + "\n```",
        "## Results\n\n`core_step` times only the `sim.step()` calls (new random actions are written "
        "before each, untimed); `core_overhead` and `envpool_*` time the whole Python loop; `headless` "
        "is C++ only. µs/call = median_s / steps.\n\n" + harness.format_table(records),
    ]
    path.write_text("\n\n".join(parts) + "\n")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    desc = harness.machine_description()
    out, jsonl_path, md_path = harness.open_outputs("core", args.out, args.save, args.results_dir, desc)

    t0 = time.perf_counter()
    records = bench_core_step(args, out) + bench_core_overhead(args, out)
    if not args.no_headless:
        records += bench_headless(args, out)
    if not args.no_peers:
        records += bench_envpool(args, out)
    summary = headline(records)
    summary["total_s"] = time.perf_counter() - t0
    summary["loadavg_1min_end"] = round(os.getloadavg()[0], 2)  # other work on the cores skews timings
    harness.emit(summary, out)

    print()
    harness.print_table(records)
    print()
    print(format_headline(summary))
    if args.save:
        write_summary(md_path, desc, records, summary, args.note)
        print(f"\nsaved {jsonl_path} and {md_path}")
    if out is not None:
        out.close()
    return summary


if __name__ == "__main__":
    main()
