"""How fast is the core? ``SimManager.step()``, its per-call cost, the C++ ``headless`` tool, and
EnvPool CartPole-v1 as the peer, in one run (benchmarks/README.md says what each bench times)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness


def _use_build(pkg: str | None) -> None:
    """Makes ``import escape_room_env`` load the package (and its ``_core``) under directory
    ``pkg`` instead of the installed one: how an A/B worker loads the baseline build."""
    if pkg:
        sys.meta_path[:] = [
            f for f in sys.meta_path if "ScikitBuild" not in type(f).__name__
        ]  # editable finder
        sys.path.insert(0, pkg)


if __name__ == "__main__" and "--worker" in sys.argv:
    _use_build(
        sys.argv[sys.argv.index("--worker") + 1] if len(sys.argv) > sys.argv.index("--worker") + 1 else None
    )

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
    p.add_argument(
        "--baseline",
        type=Path,
        help="A/B: a directory holding another build's escape_room_env package (with its _core), e.g. a "
        "worktree of the old commit built in place; SimManager.step of both builds is then timed in the same "
        "rounds, each in its own worker process",
    )
    p.add_argument("--baseline-headless", type=Path, help="A/B: the baseline build's headless tool")
    p.add_argument(
        "--build", type=Path, help="A/B: the new build's package directory (default: the installed one)"
    )
    p.add_argument(
        "--nstep", type=int, default=16, help="A/B: k of the step(nstep=k) configurations (0: none)"
    )
    p.add_argument("--worker", nargs="?", const="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.worlds_given = args.worlds is not None
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


# -- A/B: two builds in the same rounds ---------------------------------------------------------

AB_WORLDS = (1, 16, 32, 64, 256, 1024, 4096, 16384, 65536)
NEW, BASELINE = "escape_room_env", "escape_room_env (baseline)"


def worker_main() -> None:
    """An A/B worker: builds simulators of the build it imported and times their loops for the
    parent, one JSON request and reply a line (so both builds run in one benchmark run, each in
    its own process, with the same loop code)."""
    import json

    import numpy as np

    sims: dict[str, Any] = {}
    for line in sys.stdin:
        msg = json.loads(line)
        cmd, key = msg["cmd"], msg.get("key")
        reply: dict[str, Any] = {"ok": True}
        if cmd == "make":
            n, k = msg["num_worlds"], msg.get("nstep", 1)
            sim = er.SimManager(num_worlds=n, num_threads=msg["threads"], rand_seed=0)
            actions = sim.action_tensor().to_numpy().reshape(n, 3)
            pool = np.random.default_rng(0).integers(0, (4, 8, 5), size=(8, n, 3)).astype(actions.dtype)
            step, clock = sim.step, time.perf_counter

            def run(  # each key's run keeps its own simulator (defaults bind them now)
                calls: int,
                bare: bool = msg["kind"] == "bare",
                step=step,
                clock=clock,
                k=k,
                actions=actions,
                pool=pool,
            ) -> float:
                if bare:  # a bare loop of step(): the per-call cost
                    t0 = clock()
                    for _ in range(calls):
                        step()
                    return clock() - t0
                secs = 0.0
                for i in range(calls // k):  # new actions each call, copied untimed; `calls` counts steps
                    np.copyto(actions, pool[i % 8])
                    t0 = clock()
                    step(k)
                    secs += clock() - t0
                return secs

            sims[key] = (sim, run)
            reply.update(
                core=str(Path(er._core.__file__).resolve()), version=getattr(er, "__version__", None)
            )
        elif cmd == "run":
            reply["seconds"] = sims[key][1](msg["steps"])
        elif cmd == "close":
            sims.pop(key)[0].close()
        elif cmd == "quit":
            break
        print(json.dumps(reply), flush=True)


class Worker:
    """The parent's end of a worker process running build ``pkg`` (None: the installed one)."""

    def __init__(self, pkg: Path | None):
        import subprocess

        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(pkg or "")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        harness.HELPER_PIDS.append(self.proc.pid)  # its CPU is this benchmark's, not other load

    def call(self, **msg: Any) -> dict[str, Any]:
        import json

        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"A/B worker died on {msg}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write('{"cmd": "quit"}\n')  # no reply: the worker exits
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        harness.HELPER_PIDS.remove(self.proc.pid)


def bench_ab(suite: harness.Suite) -> dict[str, Any]:
    """``core_step``, ``core_nstep`` and ``core_overhead`` of this build and the baseline in the
    same rounds (order alternating round by round), and the per-call fit of each."""
    args = suite.args
    workers = {NEW: Worker(args.build), BASELINE: Worker(args.baseline)}
    builds = {}

    def run_in(worker: Worker, key: str, calls: int) -> float:
        return worker.call(cmd="run", key=key, steps=calls)["seconds"]

    def measure(bench: str, n: int, threads: int, kind: str, steps: int, nstep: int = 1, **extra: Any):
        key = f"{bench}-{n}-{threads}"
        for name, w in workers.items():
            builds[name] = w.call(cmd="make", key=key, num_worlds=n, threads=threads, kind=kind, nstep=nstep)[
                "core"
            ]
        runs = {name: functools.partial(run_in, w, key) for name, w in workers.items()}
        records = suite.measure(
            bench,
            runs,
            steps=steps,
            num_worlds=n,
            threads=threads,
            per_peer={name: {"core": builds[name], "nstep": nstep} for name in workers},
            **extra,
        )
        for w in workers.values():
            w.call(cmd="close", key=key)
        return records

    try:
        for n in args.worlds:
            for threads in args.threads:
                measure("core_step", n, threads, "step", steps_for(n, args), timed=CORE_TIMED)
        if args.nstep > 1:
            for n in (1024, 4096) if not args.quick else (256,):
                for threads in args.threads:
                    measure(
                        "core_nstep",
                        n,
                        threads,
                        "step",
                        max(4, steps_for(n, args) // args.nstep)
                        * args.nstep,  # steps: a whole number of calls
                        nstep=args.nstep,
                        timed=f"sim.step(nstep={args.nstep}) calls only; new random actions copied before each call, untimed",
                    )
        overhead: dict[str, list] = {NEW: [], BASELINE: []}
        for n in (1, 4, 16) if args.quick else OVERHEAD_WORLDS:
            for r in measure(
                "core_overhead",
                n,
                1,
                "bare",
                overhead_steps(args),
                timed=LOOP_TIMED.format("sim.step() calls; random actions written once"),
            ):
                overhead[r["impl"]].append(r)
    finally:
        for w in workers.values():
            w.close()
    fits = {
        name: suite.emit(harness.per_call_fit(recs, "core_overhead_fit")) for name, recs in overhead.items()
    }
    return fits[NEW] | {"baseline": fits[BASELINE]}


def bench_headless_ab(suite: harness.Suite) -> None:
    """The two builds' headless tools, one process a repeat, alternating."""
    args = suite.args
    paths = {NEW: args.headless or harness.find_headless(), BASELINE: args.baseline_headless}
    if not all(p and Path(p).is_file() for p in paths.values()):
        print(f"note: headless A/B skipped (tools: {paths})")
        return

    def run(path: Path, n: int, threads: int):
        return lambda steps: harness.run_headless(
            path, "--worlds", n, "--steps", steps, "--threads", threads, "--repeats", 1
        )[0]

    for n in args.worlds:
        if n < 256:
            continue
        for threads in args.threads:
            suite.measure(
                "headless",
                {name: run(path, n, threads) for name, path in paths.items()},
                steps=steps_for(n, args),
                warmup=1,
                num_worlds=n,
                threads=threads,
                timed="Manager::step() calls only, in C++ (the tool's own 50-step warm-up; one process a repeat)",
                per_peer={name: {"headless_path": str(path)} for name, path in paths.items()},
            )


def headline(suite: harness.Suite, fit: dict[str, Any]) -> str:
    """Ours at HEADLINE over EnvPool's best, the C++ floor, and the per-call cost (also emitted);
    with a baseline, both builds and the speed-ups measured in the same rounds."""

    def find(bench: str, config=HEADLINE, impl: str | None = None) -> dict[str, Any] | None:
        rows = [
            r
            for r in suite.records
            if r["bench"] == bench
            and (r["num_worlds"], r["threads"]) == config
            and (impl is None or r["impl"] == impl)
        ]
        return rows[0] if rows else None

    def rate(r: dict[str, Any] | None) -> float | None:
        return r and r["world_steps_per_s"]

    def paired_speedup(new: dict[str, Any] | None, old: dict[str, Any] | None) -> float | None:
        if not new or not old:
            return None
        return statistics.median(o / n for n, o in zip(new["times_s"], old["times_s"]))

    ab = suite.args.baseline is not None
    ours, headless = find("core_step", impl=NEW if ab else None), find("headless", impl=NEW if ab else None)
    one_thread = find("core_step", (HEADLINE[0], 1), NEW if ab else None)
    best = max((r for r in suite.records if r["bench"] == "envpool_step"), key=rate, default=None)
    one_env = [1e6 * r["median_s"] / r["steps"] for r in suite.records if r["bench"] == "envpool_overhead"]
    summary = {
        "bench": "summary",
        "ours_config": {"num_worlds": HEADLINE[0], "threads": HEADLINE[1]},
        "ours_world_steps_per_s": rate(ours),
        "ours_1_thread_world_steps_per_s": rate(one_thread),
        "headless_world_steps_per_s": rate(headless),
        "envpool_best_world_steps_per_s": rate(best),
        "envpool_best_config": best and {"num_envs": best["num_worlds"], "num_threads": best["threads"]},
        "ratio_ours_over_envpool_best": rate(ours) / rate(best) if ours and best else None,
        "overhead_a_us_per_call": fit["a_us_per_call"],
        "overhead_b_us_per_world_step": fit["b_us_per_world_step"],
        "envpool_us_per_call_1_env": one_env[0] if one_env else None,
        "loadavg_1min_end": round(os.getloadavg()[0], 2),
    }
    if ab:
        base = {t: find("core_step", (HEADLINE[0], t), BASELINE) for t in (1, 2)}
        nstep = {
            t: (find("core_nstep", (HEADLINE[0], t), NEW), find("core_nstep", (HEADLINE[0], t), BASELINE))
            for t in (1, 2)
        }
        summary.update(
            baseline=str(suite.args.baseline),
            baseline_world_steps_per_s={t: rate(r) for t, r in base.items()},
            speedup_paired={
                t: paired_speedup(find("core_step", (HEADLINE[0], t), NEW), r) for t, r in base.items()
            },
            nstep_speedup_paired={t: paired_speedup(*pair) for t, pair in nstep.items()},
            nstep_world_steps_per_s={t: [rate(r) for r in pair] for t, pair in nstep.items()},
            baseline_overhead_a_us_per_call=fit["baseline"]["a_us_per_call"],
            baseline_overhead_b_us_per_world_step=fit["baseline"]["b_us_per_world_step"],
            headless_speedup_paired=paired_speedup(headless, find("headless", impl=BASELINE)),
        )
    s = suite.emit(summary)
    ratio = s["ratio_ours_over_envpool_best"]
    text = (
        f"ours (SimManager.step, {HEADLINE[0]} worlds, {HEADLINE[1]} threads): "
        f"{harness.si(s['ours_world_steps_per_s'])} world-steps/s (1 thread: {harness.si(s['ours_1_thread_world_steps_per_s'])})\n"
        f"headless C++ at the same size: {harness.si(s['headless_world_steps_per_s'])} world-steps/s\n"
        f"EnvPool CartPole-v1 best: {harness.si(s['envpool_best_world_steps_per_s'])} world-steps/s at "
        f"{s['envpool_best_config']}\nratio ours / EnvPool best: {'n/a' if ratio is None else f'{ratio:.3f}'}\n"
        f"sim.step() per call: a = {fit['a_us_per_call']:.3f} µs + b = {fit['b_us_per_world_step']:.3f} µs "
        f"per world-step (EnvPool env.step at 1 env: {s['envpool_us_per_call_1_env'] or float('nan'):.3f} µs)"
    )
    if ab:
        fmt = lambda x: "n/a" if x is None else f"{x:.2f}x"
        text += (
            f"\nbaseline ({s['baseline']}): {harness.si(s['baseline_world_steps_per_s'][2])} world-steps/s at 2 threads, "
            f"{harness.si(s['baseline_world_steps_per_s'][1])} at 1; new / baseline in the same rounds: "
            f"{fmt(s['speedup_paired'][2])} (2 threads), {fmt(s['speedup_paired'][1])} (1 thread)\n"
            f"step(nstep={suite.args.nstep}) new / baseline: {fmt(s['nstep_speedup_paired'][2])} (2 threads), "
            f"{fmt(s['nstep_speedup_paired'][1])} (1 thread); headless new / baseline: {fmt(s['headless_speedup_paired'])}\n"
            f"baseline per call: a = {s['baseline_overhead_a_us_per_call']:.3f} µs + b = "
            f"{s['baseline_overhead_b_us_per_world_step']:.3f} µs per world-step"
        )
    return text


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.baseline is not None and not args.worlds_given:
        args.worlds = (1, 16, 256) if args.quick else AB_WORLDS
    suite = harness.Suite(args, "core-ab" if args.baseline is not None else "core")
    fit = bench_ab(suite) if args.baseline is not None else bench_ours(suite)
    if not suite.args.no_headless:
        bench_headless_ab(suite) if args.baseline is not None else bench_headless(suite)
    if not suite.args.no_peers:
        bench_envpool(suite)
    suite.finish("Core benchmark", headline(suite, fit))


if __name__ == "__main__":
    worker_main() if "--worker" in sys.argv else main()
