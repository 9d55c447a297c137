"""How fast is the core? ``SimManager.step()``, its per-call cost, the C++ ``headless`` tool, and
EnvPool CartPole-v1 as the peer, in one run (benchmarks/README.md says what each bench times)."""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

import escape_room_env as er
from escape_room_env.bench import action_pool, sim_step_loop

WORLDS = (1, 16, 256, 1024, 4096, 16384, 65536)
OVERHEAD_WORLDS = (1, 2, 4, 8, 16, 32, 64)
ENVPOOL_CONFIGS = tuple((n, t) for n in (1024, 4096, 16384) for t in (1, 2))  # (num_envs, threads)
HEADLINE = (4096, 2)  # ours at (num_worlds, threads) in the headline ratio
CORE_TIMED = "sim.step() calls only; new random actions copied into action_tensor() before each call, untimed"
LOOP_TIMED = "whole python loop of {}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = harness.add_common_args(argparse.ArgumentParser(description=__doc__))
    p.add_argument("--worlds", type=int, nargs="+", help=f"num_worlds (default {WORLDS})")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    p.add_argument("--headless", type=Path, help="the headless tool (default: harness.find_headless)")
    p.add_argument("--no-headless", action="store_true", help="skip the C++ headless tool")
    p.add_argument("--no-peers", action="store_true", help="skip EnvPool")
    args = p.parse_args(argv)
    args.worlds = args.worlds or ((1, 16, 256) if args.quick else WORLDS)
    return args


def steps_for(num_worlds: int, args: argparse.Namespace) -> int:
    """About 2**20 world-steps per repeat (2**13 quick), 8 ... 20000 calls."""
    return harness.steps_per_repeat(num_worlds, 2**13 if args.quick else 2**20, 8, 20000, args.steps)


def bare_loop(step: Callable[[], None]) -> harness.Run:
    """``run(n)``: a bare Python loop of n ``step()`` calls."""

    def run(n: int) -> None:
        for _ in range(n):
            step()

    return run


def overhead_steps(args: argparse.Namespace) -> int:
    return args.steps or (200 if args.quick else 5000)


def bench_ours(suite: harness.Suite) -> dict[str, Any]:
    """``core_step`` over worlds x threads, ``core_overhead`` at 1 ... 64 worlds, and its fit."""
    args = suite.args
    for n in args.worlds:
        for threads in args.threads:
            with er.SimManager(num_worlds=n, num_threads=threads, rand_seed=0) as sim:
                suite.measure(
                    "core_step",
                    {"escape_room_env": sim_step_loop(sim, action_pool(n))},
                    steps=steps_for(n, args),
                    num_worlds=n,
                    threads=threads,
                    timed=CORE_TIMED,
                    autoreset=sim.autoreset_mode.name,
                    obs_dim=sim.obs_dim,
                )
    records = []
    for n in (1, 4, 16) if args.quick else OVERHEAD_WORLDS:
        with er.SimManager(num_worlds=n, num_threads=1, rand_seed=0) as sim:
            sim.action_tensor().to_numpy()[:] = action_pool(n, 1)[0].reshape(n, 1, 3)
            records += suite.measure(
                "core_overhead",
                {"escape_room_env": bare_loop(sim.step)},
                steps=overhead_steps(args),
                num_worlds=n,
                threads=1,
                timed=LOOP_TIMED.format("sim.step() calls; random actions written once"),
            )
    return suite.emit(harness.per_call_fit(records, "core_overhead_fit"))


def bench_headless(suite: harness.Suite) -> None:
    """The same step in C++ with no Python: the floor that the Python path should approach."""
    args = suite.args
    path = args.headless or harness.find_headless()
    if path is None or not Path(path).is_file():
        print(f"note: headless tool not found ({path or 'escape_room_env/bin/, build/*/headless'}); skipped")
        return
    timed = "Manager::step() calls only, in C++ (the tool's own 50-step warm-up)"
    for n in args.worlds:
        for threads in args.threads:
            steps = steps_for(n, args)
            flags = f"--worlds {n} --steps {steps} --threads {threads} --agents 1 --repeats {args.repeats}"
            times = harness.run_headless(path, *flags.split())
            fields = {
                "steps": steps,
                "num_worlds": n,
                "threads": threads,
                "timed": timed,
                "headless_path": str(path),
            }
            suite.emit(harness.record("headless", "escape_room_env C++", times, **fields))


def bench_envpool(suite: harness.Suite) -> None:
    """EnvPool CartPole-v1, sync (batch_size == num_envs), and its per-call cost at one env."""
    args, envpool = suite.args, harness.import_envpool()
    configs = [("envpool_step", n, t) for n, t in (((1024, 1),) if args.quick else ENVPOOL_CONFIGS)]
    for bench, n, threads in [*configs, ("envpool_overhead", 1, 1)] if envpool else ():
        with contextlib.ExitStack() as stack:
            suite.measure(
                bench,
                {"envpool CartPole-v1": harness.cartpole(envpool, n, n, threads, stack)},
                steps=steps_for(n, args) if n > 1 else overhead_steps(args),
                num_worlds=n,
                threads=threads,
                timed=LOOP_TIMED.format("env.step(actions); actions cycle through 8 random 0/1 arrays"),
                batch_size=n,
                envpool_version=envpool.__version__,
            )
        gc.collect()  # its worker threads must be gone before the next configuration


def headline(suite: harness.Suite, fit: dict[str, Any]) -> str:
    """Ours at HEADLINE over EnvPool's best, the C++ floor, and the per-call cost (also emitted)."""

    def find(bench: str) -> dict[str, Any] | None:
        rows = [
            r for r in suite.records if r["bench"] == bench and (r["num_worlds"], r["threads"]) == HEADLINE
        ]
        return rows[0] if rows else None

    def rate(r: dict[str, Any] | None) -> float | None:
        return r and r["world_steps_per_s"]

    ours, headless = find("core_step"), find("headless")
    best = max((r for r in suite.records if r["bench"] == "envpool_step"), key=rate, default=None)
    one_env = [1e6 * r["median_s"] / r["steps"] for r in suite.records if r["bench"] == "envpool_overhead"]
    s = suite.emit(
        {
            "bench": "summary",
            "ours_config": {"num_worlds": HEADLINE[0], "threads": HEADLINE[1]},
            "ours_world_steps_per_s": rate(ours),
            "headless_world_steps_per_s": rate(headless),
            "envpool_best_world_steps_per_s": rate(best),
            "envpool_best_config": best and {"num_envs": best["num_worlds"], "num_threads": best["threads"]},
            "ratio_ours_over_envpool_best": rate(ours) / rate(best) if ours and best else None,
            "overhead_a_us_per_call": fit["a_us_per_call"],
            "overhead_b_us_per_world_step": fit["b_us_per_world_step"],
            "envpool_us_per_call_1_env": one_env[0] if one_env else None,
            "loadavg_1min_end": round(os.getloadavg()[0], 2),
        }
    )
    ratio = s["ratio_ours_over_envpool_best"]
    return (
        f"ours (SimManager.step, {HEADLINE[0]} worlds, {HEADLINE[1]} threads): "
        f"{harness.si(s['ours_world_steps_per_s'])} world-steps/s\n"
        f"headless C++ at the same size: {harness.si(s['headless_world_steps_per_s'])} world-steps/s\n"
        f"EnvPool CartPole-v1 best: {harness.si(s['envpool_best_world_steps_per_s'])} world-steps/s at "
        f"{s['envpool_best_config']}\nratio ours / EnvPool best: {'n/a' if ratio is None else f'{ratio:.3f}'}\n"
        f"sim.step() per call: a = {fit['a_us_per_call']:.3f} µs + b = {fit['b_us_per_world_step']:.3f} µs "
        f"per world-step (EnvPool env.step at 1 env: {s['envpool_us_per_call_1_env'] or float('nan'):.3f} µs)"
    )


def main(argv: list[str] | None = None) -> None:
    suite = harness.Suite(parse_args(argv), "core")
    fit = bench_ours(suite)
    if not suite.args.no_headless:
        bench_headless(suite)
    if not suite.args.no_peers:
        bench_envpool(suite)
    suite.finish("Core benchmark", headline(suite, fit))


if __name__ == "__main__":
    main()
