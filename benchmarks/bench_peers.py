"""How does the vector env compare with its peers? World-steps/s of ``EscapeRoomVectorEnv`` against
gymnasium's ``SyncVectorEnv`` over the reference env and EnvPool CartPole-v1, and each ``env.step``'s
fixed cost, in one run (benchmarks/README.md says what each peer times and why rounds are paired)."""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

import escape_room_env as er
from escape_room_env.bench import action_pool

WORLDS = (1, 16, 256, 1024, 4096, 16384, 65536)  # ours and EnvPool sync
ASYNC_BATCHES = (256, 1024, 4096)  # EnvPool async: num_envs = 2 x batch_size, 2 threads
SYNC_WORLDS = (1, 4, 16, 64)  # SyncVectorEnv over the pure-Python reference env
OVERHEAD_WORLDS = (1, 2, 4, 8, 16, 32, 64)
HEADLINE_WORLDS = 4096
PAIR_REPEATS, PAIR_CONFIGS = 15, 3  # EnvPool's best configurations re-measured beside ours
MIN_RATIO_SYNC, MIN_RATIO_ENVPOOL, MAX_CALL_US = 300.0, 1.3, 5.0  # the acceptance targets

OURS, OURS_COPY = "EscapeRoomVectorEnv copy=False", "EscapeRoomVectorEnv copy=True"
ENVPOOL, SYNC_REF = "envpool CartPole-v1", "gymnasium SyncVectorEnv(ReferenceEscapeRoomEnv)"
LOOP = "the whole python loop of {}; actions cycle through 8 arrays drawn before timing"
HELPER_TIMED = (
    "gymnasium.utils.performance.benchmark_vector_step(env, target_duration, seed): its own loop of "
    "env.step(env.action_space.sample()), sampling inside the timer, counting num_envs per step minus "
    "the envs that were resetting; one call per repeat on a fresh env; median_s = num_envs / its rate"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = harness.add_common_args(
        argparse.ArgumentParser(description=__doc__), repeats=7, retries=2, wait_idle=300
    )
    p.add_argument(
        "--headline-worlds", type=int, help=f"num_worlds of the ratios (default {HEADLINE_WORLDS})"
    )
    p.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="thread counts (default 2 1)")
    p.add_argument("--peer-worlds", type=int, nargs="+", help=f"num_worlds of the sweep (default {WORLDS})")
    p.add_argument(
        "--sync-worlds", type=int, nargs="+", help=f"num_envs of SyncVectorEnv (default {SYNC_WORLDS})"
    )
    p.add_argument("--helper-seconds", type=float, help="target_duration of gymnasium's helper (default 2)")
    args = p.parse_args(argv)
    quick = args.quick
    args.headline_worlds = args.headline_worlds or (256 if quick else HEADLINE_WORLDS)
    args.peer_worlds = sorted({*(args.peer_worlds or ((16,) if quick else WORLDS)), args.headline_worlds})
    args.sync_worlds = args.sync_worlds or ((1, 4) if quick else SYNC_WORLDS)
    args.helper_seconds = args.helper_seconds or (0.05 if quick else 2.0)
    return args


def steps_for(num_worlds: int, args: argparse.Namespace) -> int:
    """About 2**19 world-steps per repeat (2**11 quick), 8 ... 20000 calls."""
    return harness.steps_per_repeat(num_worlds, 2**11 if args.quick else 2**19, 8, 20000, args.steps)


def ours(n: int, threads: int, copy: bool, stack) -> harness.Run:
    env = er.EscapeRoomVectorEnv(num_envs=n, seed=0, num_threads=threads, copy=copy)  # NEXT_STEP
    stack.callback(env.close)
    env.reset(seed=0)
    return harness.loop_run(env.step, action_pool(n))


def sync_reference(n: int) -> gymnasium.vector.SyncVectorEnv:
    from escape_room_env.reference import ReferenceEscapeRoomEnv

    return gymnasium.vector.SyncVectorEnv([ReferenceEscapeRoomEnv] * n)


def envpool_fields(envpool: Any, num_envs: int, batch_size: int, threads: int) -> dict[str, Any]:
    sync = batch_size == num_envs
    call = "env.step(actions)" if sync else "env.send(actions, env.recv()[-1]['env_id'])"
    return {
        "num_worlds": batch_size,
        "threads": threads,
        "timed": LOOP.format(call),
        "mode": "sync" if sync else "async",
        "num_envs": num_envs,
        "batch_size": batch_size,
        "envpool_version": envpool.__version__,
    }


OURS_FIELDS = {
    name: {"timed": LOOP.format("env.step(actions)"), "copy": name == OURS_COPY} for name in (OURS, OURS_COPY)
}


def sweep(suite: harness.Suite, envpool: Any) -> None:
    """Ours over worlds x threads, EnvPool sync over the same and async, SyncVectorEnv(reference)."""
    args = suite.args
    for n in args.peer_worlds:
        for threads in args.threads:
            suite.measure(
                "peers_vector_step",
                lambda r, stack, n=n, t=threads: {
                    OURS: ours(n, t, False, stack),
                    OURS_COPY: ours(n, t, True, stack),
                },
                steps=steps_for(n, args),
                num_worlds=n,
                threads=threads,
                per_peer=OURS_FIELDS,
            )
    configs = [(n, n, t) for n in args.peer_worlds for t in args.threads]
    configs += [(2 * b, b, max(args.threads)) for b in ((16,) if args.quick else ASYNC_BATCHES)]
    for num_envs, batch, threads in configs if envpool else ():
        suite.measure(
            "peers_envpool_step",
            lambda r, stack, c=(num_envs, batch, threads): {ENVPOOL: harness.cartpole(envpool, *c, stack)},
            steps=steps_for(batch, args),
            **envpool_fields(envpool, num_envs, batch, threads),
        )
    for n in args.sync_worlds:  # it makes ~10**3 world-steps/s: about 1,024 of them a repeat (16 quick)
        steps = args.steps or max(2, (16 if args.quick else 1024) // n)

        def make(r: int, stack, n: int = n) -> dict[str, harness.Run]:
            env = sync_reference(n)
            stack.callback(env.close)
            env.reset(seed=0)
            return {SYNC_REF: harness.loop_run(env.step, action_pool(n))}

        timed = LOOP.format("env.step(actions)")
        suite.measure("peers_sync_vector_step", make, steps=steps, num_worlds=n, threads=1, timed=timed)


def pair(suite: harness.Suite, envpool: Any) -> None:
    """Ours at the headline size (at the sweep's faster thread count) and EnvPool's best
    configurations of the sweep, measured again in the same rounds: the acceptance ratio."""
    args, n = suite.args, suite.args.headline_worlds
    swept = [
        r for r in suite.records if (r["bench"], r["impl"], r["num_worlds"]) == ("peers_vector_step", OURS, n)
    ]
    best = sorted((r for r in suite.records if r["bench"] == "peers_envpool_step"), key=rate, reverse=True)
    if not swept or not best:
        return
    threads = max(swept, key=rate)["threads"]
    configs = {envpool_name(r): (r["num_envs"], r["batch_size"], r["threads"]) for r in best[:PAIR_CONFIGS]}

    def make(r: int, stack) -> dict[str, harness.Run]:
        runs = {OURS: ours(n, threads, False, stack), OURS_COPY: ours(n, threads, True, stack)}
        return {**runs, **{name: harness.cartpole(envpool, *c, stack) for name, c in configs.items()}}

    per_peer = {name: envpool_fields(envpool, *c) for name, c in configs.items()}
    # Calls per repeat: between what either size would get alone (their geometric mean).
    steps = int(np.sqrt(steps_for(n, args) * steps_for(best[0]["num_worlds"], args)))
    suite.measure(
        "peers_pair",
        make,
        steps=steps,
        repeats=args.repeats if args.quick else max(args.repeats, PAIR_REPEATS),
        num_worlds=n,
        threads=threads,
        per_peer={**OURS_FIELDS, **per_peer},
    )


def envpool_name(r: dict[str, Any]) -> str:
    return f"{ENVPOOL} ({r['mode']}, {r['num_envs']} envs, batch {r['batch_size']}, {r['threads']} threads)"


def helper(suite: harness.Suite) -> None:
    """gymnasium's own ``benchmark_vector_step``, unchanged, on ours at the headline size and on
    SyncVectorEnv(reference) at its best num_envs: our numbers checked by code we did not write."""
    from gymnasium.utils.performance import benchmark_vector_step

    args, n, threads = suite.args, suite.args.headline_worlds, suite.args.threads[0]
    sync = max((r for r in suite.records if r["bench"] == "peers_sync_vector_step"), key=rate, default=None)
    envs = {OURS: lambda: er.EscapeRoomVectorEnv(n, seed=0, num_threads=threads), OURS_COPY: None}
    envs[OURS_COPY] = lambda: er.EscapeRoomVectorEnv(n, seed=0, num_threads=threads, copy=True)
    if sync:
        envs[SYNC_REF] = lambda: sync_reference(sync["num_worlds"])
    for name, make_env in envs.items():
        size = sync["num_worlds"] if name == SYNC_REF else n

        def run(_: int, make_env=make_env, size=size) -> float:
            env = make_env()
            try:
                return size / benchmark_vector_step(env, target_duration=args.helper_seconds, seed=0)
            finally:
                env.close()

        suite.measure(
            "peers_gymnasium_helper",
            {name: run},
            steps=1,
            num_worlds=size,
            threads=1 if name == SYNC_REF else threads,
            timed=HELPER_TIMED,
            target_duration_s=args.helper_seconds,
        )


def overhead(suite: harness.Suite, envpool: Any) -> list[dict[str, Any]]:
    """``env.step`` at 1 ... 64 envs, 1 thread, ours and EnvPool sync in the same rounds, and
    bench_core's fit t(N) = a + b·N: a is the fixed cost of one call."""
    records = []
    for n in (1, 4, 16) if suite.args.quick else OVERHEAD_WORLDS:

        def make(r: int, stack, n: int = n) -> dict[str, harness.Run]:
            runs = {OURS: ours(n, 1, False, stack), OURS_COPY: ours(n, 1, True, stack)}
            return {**runs, ENVPOOL: harness.cartpole(envpool, n, n, 1, stack)} if envpool else runs

        steps = suite.args.steps or (200 if suite.args.quick else 2000)
        per_peer = {**OURS_FIELDS, ENVPOOL: envpool_fields(envpool, n, n, 1) if envpool else {}}
        records += suite.measure(
            "peers_overhead",
            make,
            steps=steps,
            num_worlds=n,
            threads=1,
            per_peer=per_peer,
        )
    impls = dict.fromkeys(r["impl"] for r in records)
    return [
        suite.emit(harness.per_call_fit([r for r in records if r["impl"] == i], "peers_overhead_fit"))
        for i in impls
    ]


def rate(r: dict[str, Any] | None) -> float | None:
    return None if r is None else r["world_steps_per_s"]


def paired_ratio(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Median over rounds of a's world-steps/s over b's in the same round (one ``measure`` call)."""
    return statistics.median(
        (a["num_worlds"] * tb) / (b["num_worlds"] * ta) for ta, tb in zip(a["times_s"], b["times_s"])
    )


def headline(suite: harness.Suite, fits: list[dict[str, Any]]) -> str:
    """The acceptance ratios and the fixed cost per call against their targets (also emitted)."""
    n, records = suite.args.headline_worlds, suite.records

    def best(bench: str, impl: str | None = None) -> dict[str, Any] | None:
        rows = [
            r
            for r in records
            if r["bench"] == bench and impl in (None, r["impl"]) and (impl is None or r["num_worlds"] == n)
        ]
        return max(rows, key=rate, default=None)

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else a / b

    sweep = {impl: best("peers_vector_step", impl) for impl in (OURS, OURS_COPY)}
    pairs = {r["impl"]: r for r in records if r["bench"] == "peers_pair"}
    mine = {impl: pairs.get(impl, sweep[impl]) for impl in (OURS, OURS_COPY)}
    theirs = [r for name, r in pairs.items() if name.startswith(ENVPOOL)] if mine[OURS] else []
    # EnvPool's best configuration is, for each of ours, the one that comes closest round by round.
    by_config = {r["impl"]: paired_ratio(mine[OURS], r) for r in theirs}
    envpool = min(theirs, key=lambda r: by_config[r["impl"]]) if theirs else best("peers_envpool_step")
    vs_envpool = {
        impl: min(paired_ratio(mine[impl], r) for r in theirs)
        if theirs
        else ratio(rate(mine[impl]), rate(envpool))
        for impl in (OURS, OURS_COPY)
    }
    sync = best("peers_sync_vector_step")
    helper = {r["impl"]: rate(r) for r in records if r["bench"] == "peers_gymnasium_helper"}
    a = {f["impl"]: f["a_us_per_call"] for f in fits}
    worst_a = max((a[i] for i in (OURS, OURS_COPY) if i in a), default=None)
    s = suite.emit(
        {
            "bench": "peers_summary",
            "headline_worlds": n,
            "ours_world_steps_per_s": rate(mine[OURS]),
            "ours_threads": mine[OURS] and mine[OURS]["threads"],
            "ours_copy_true_world_steps_per_s": rate(mine[OURS_COPY]),
            "sync_best_world_steps_per_s": rate(sync),
            "sync_best_num_envs": sync and sync["num_worlds"],
            "envpool_best_world_steps_per_s": rate(envpool),
            "envpool_best_config": envpool
            and {k: envpool[k] for k in ("num_envs", "batch_size", "threads", "mode")},
            "paired": bool(theirs),
            "paired_ratio_by_envpool_config": by_config,
            "ratio_vs_sync": ratio(rate(mine[OURS]), rate(sync)),
            "ratio_vs_sync_copy_true": ratio(rate(mine[OURS_COPY]), rate(sync)),
            "ratio_vs_envpool": vs_envpool[OURS],
            "ratio_vs_envpool_copy_true": vs_envpool[OURS_COPY],
            "sweep_ours_world_steps_per_s": rate(sweep[OURS]),
            "sweep_envpool_best_world_steps_per_s": rate(best("peers_envpool_step")),
            "call_a_us": a,
            "call_b_us_per_env": {f["impl"]: f["b_us_per_world_step"] for f in fits},
            "pass_call_a": None if worst_a is None else worst_a <= MAX_CALL_US,
            "helper_world_steps_per_s": helper,
            "helper_ratio_vs_sync": ratio(helper.get(OURS), helper.get(SYNC_REF)),
            "other_cpu_cores_max": max((r.get("other_cpu_cores") or 0.0 for r in records), default=None),
        }
    )

    def x(v: float | None) -> str:
        return "n/a" if v is None else f"{v:,.0f} x" if v >= 100 else f"{v:.2f} x"

    def at_least(v: float | None, target: float) -> str:
        return harness.verdict(None if v is None else v >= target)

    si, calls = harness.si, "; ".join(f"{impl} a = {v:.2f} µs" for impl, v in a.items())
    helpers = ", ".join(f"{impl} {si(v)}" for impl, v in helper.items())
    lines = [
        (
            f"[{at_least(s['ratio_vs_sync'], MIN_RATIO_SYNC)}] EscapeRoomVectorEnv at {n} worlds ({s['ours_threads']} "
            f"threads), copy=False {si(s['ours_world_steps_per_s'])} world-steps/s = {x(s['ratio_vs_sync'])} gymnasium "
            f"SyncVectorEnv(reference) at its best ({si(s['sync_best_world_steps_per_s'])} at num_envs "
            f"{s['sync_best_num_envs']}); copy=True {x(s['ratio_vs_sync_copy_true'])} (target >= {MIN_RATIO_SYNC:g} x)"
        ),
        (
            f"[{at_least(s['ratio_vs_envpool'], MIN_RATIO_ENVPOOL)}] the same over EnvPool CartPole-v1 at its best "
            f"({si(s['envpool_best_world_steps_per_s'])} at {s['envpool_best_config']}, paired: {s['paired']}): "
            f"copy=False {x(s['ratio_vs_envpool'])}, copy=True {x(s['ratio_vs_envpool_copy_true'])} (target >= "
            f"{MIN_RATIO_ENVPOOL:g} x); in the sweep ours {si(s['sweep_ours_world_steps_per_s'])}, EnvPool best "
            f"{si(s['sweep_envpool_best_world_steps_per_s'])}"
        ),
        f"[{harness.verdict(s['pass_call_a'])}] fixed cost of one env.step, t(N) = a + b·N at 1 thread: {calls}",
        f"[info] gymnasium's benchmark_vector_step: {helpers}; ratio {x(s['helper_ratio_vs_sync'])}",
        f"other processes kept up to {s['other_cpu_cores_max']} cores busy during a configuration",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    suite = harness.Suite(parse_args(argv), "vector-peers")
    envpool = harness.import_envpool()
    sweep(suite, envpool)
    pair(suite, envpool)
    helper(suite)
    fits = overhead(suite, envpool)
    fit_lines = [
        f"- {f['impl']}: a = {f['a_us_per_call']:.3f} µs, b = {1e3 * f['b_us_per_world_step']:.1f} ns/env "
        f"(max relative residual {100 * f['max_rel_residual']:.1f} %); µs per call by N: {f['us_per_call']}"
        for f in fits
    ]
    suite.finish(
        "Vector env throughput peers",
        headline(suite, fits),
        "## Per-call fits t(N) = a + b·N (1 thread)\n\n" + "\n".join(fit_lines),
    )


if __name__ == "__main__":
    main()
