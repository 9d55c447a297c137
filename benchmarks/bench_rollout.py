"""What do `rollout` and the state records cost? Rollout world-steps/s next to `SimManager.step`
doing the same simulation, and `get_state` / `set_state` of 4,096 worlds (benchmarks/README.md).

Issue 15's targets: rollout at least 90 % of `SimManager.step`'s throughput at B = 4,096 (T = 200),
and get_state + set_state of 4,096 worlds under 1 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

import escape_room_env as er
from escape_room_env.bench import sim_step_loop

HEADLINE_WORLDS, MIN_RATIO, MAX_STATE_MS = 4096, 0.90, 1.0  # the acceptance targets
STEP = "SimManager.step"
OUT, NEW, FUNCTION = "Rollout.rollout(out=)", "Rollout.rollout", "rollout() (a new pool each call)"
BLIND = "Rollout.rollout(out=, return_observations=False)"
TIMED = {
    STEP: "each sim.step() alone (set_state to the initial states and the actions copied into "
    "action_tensor() before, untimed)",
    OUT: "pool.rollout(sim, states, actions, out=previous result): sets the states, T steps, copies "
    "every step's observations, rewards and dones, gets the final states; a persistent pool",
    NEW: "the same call without out=: new result arrays every call (cut from the memory of the "
    "dropped ones, which the pool keeps)",
    BLIND: "the out= call without observations: the steps before the last skip them (lidar included)",
    FUNCTION: "er.rollout(sim, states, actions, num_threads=...): builds and frees a pool every call",
}
GET, SET_SAME, SET_OTHER, BOTH = (
    "get_state",
    "set_state (same episodes)",
    "set_state (other episodes)",
    "get+set",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = harness.add_common_args(
        argparse.ArgumentParser(description=__doc__), repeats=9, retries=1, wait_idle=10.0
    )
    p.add_argument("--worlds", type=int, nargs="+", help="B, copies per rollout (default 64 1024 4096)")
    p.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="thread counts (default 2 1)")
    p.add_argument("--horizon", type=int, help="T, steps per rollout (default 200; quick 20)")
    p.add_argument("--state-worlds", type=int, help="worlds of the get/set_state timing (default 4096)")
    args = p.parse_args(argv)
    args.worlds = args.worlds or ([64, 256] if args.quick else [64, 1024, 4096])
    args.horizon = args.horizon or (20 if args.quick else 200)
    args.state_worlds = args.state_worlds or (256 if args.quick else HEADLINE_WORLDS)
    return args


def initial_states(batch: int) -> np.ndarray:
    """B mid-episode states (50 random steps in): where every peer starts."""
    sim = er.SimManager(num_worlds=batch, rand_seed=0, num_threads=1)
    rng = np.random.default_rng(0)
    choices = np.array(er.action.NUM_CHOICES)
    for _ in range(50):
        sim.action_tensor().to_numpy()[:] = rng.integers(0, choices, size=(batch, 1, 3))
        sim.step()
    return sim.get_state()


def rollout_bench(suite: harness.Suite, batch: int, threads: int) -> tuple[list[dict[str, Any]], bool]:
    """The five peers at one size and thread count, fresh every round, the same work each; and
    whether the rollout's final states equalled the stepped manager's in every round."""
    args, T = suite.args, suite.args.horizon
    states, rng = initial_states(batch), np.random.default_rng(1)
    actions = rng.integers(0, np.array(er.action.NUM_CHOICES), size=(batch, T, 1, 3), dtype=np.int32)
    pool = [np.ascontiguousarray(actions[:, t, 0]) for t in range(T)]  # step t's actions, (B, 3)
    # Calls of T steps per repeat: about 2**20 world-steps (2**14 quick), at least one.
    calls = args.steps or max(1, round((2**14 if args.quick else 2**20) / (batch * T)))
    same = []

    def make(r: int, stack) -> dict[str, harness.Run]:
        sim = stack.enter_context(er.SimManager(num_worlds=batch, rand_seed=0, num_threads=threads))
        template = stack.enter_context(er.SimManager(num_worlds=1, rand_seed=0, num_threads=1))
        rollouts = stack.enter_context(er.Rollout(num_threads=threads))
        stepped = sim_step_loop(sim, pool)

        def step(n: int) -> float:
            secs = 0.0
            for _ in range(max(1, n // T)):
                sim.set_state(states)
                secs += stepped(T)  # steps 0 .. T-1 of the pool: the rollout's actions
            return secs

        def by_pool(reuse: bool, observed: bool = True) -> harness.Run:
            out = None

            def run(n: int) -> float:
                nonlocal out
                secs = 0.0
                for _ in range(max(1, n // T)):
                    t0 = time.perf_counter()
                    result = rollouts.rollout(
                        template, states, actions, return_observations=observed, out=out if reuse else None
                    )
                    secs += time.perf_counter() - t0
                    out = result if reuse else None  # dropped: its memory goes back to the pool
                return secs

            return run

        def by_function(n: int) -> float:
            secs = 0.0
            for _ in range(max(1, n // T)):
                t0 = time.perf_counter()
                er.rollout(template, states, actions, num_threads=threads)
                secs += time.perf_counter() - t0
            return secs

        def check() -> None:  # after the round: the rollout and the stepped manager agree
            sim.set_state(states)
            stepped(T)
            result = rollouts.rollout(template, states, actions)
            same.append(sim.get_state().tobytes() == result.final_state.tobytes())

        stack.callback(check)
        return {
            STEP: step,
            OUT: by_pool(True),
            NEW: by_pool(False),
            FUNCTION: by_function,
            BLIND: by_pool(True, observed=False),
        }

    records = suite.measure(
        "rollout_step",
        make,
        steps=calls * T,
        warmup=T,
        num_worlds=batch,
        threads=threads,
        horizon=T,
        calls=calls,
        per_peer={name: {"timed": timed} for name, timed in TIMED.items()},
    )
    return records, all(same)


def state_bench(suite: harness.Suite, threads: int) -> dict[str, Any]:
    """get_state and set_state of every world of a manager, per call; set_state of the states it
    already plays (a planner restoring its root) and of states of other episodes (levels rebuilt)."""
    n, args = suite.args.state_worlds, suite.args
    calls = args.steps or (20 if args.quick else 200)

    def make(r: int, stack) -> dict[str, harness.Run]:
        sim = stack.enter_context(er.SimManager(num_worlds=n, rand_seed=0, num_threads=threads))
        other = stack.enter_context(er.SimManager(num_worlds=n, rand_seed=10_000, num_threads=1))
        sim.step(nstep=5)
        other.step(nstep=5)
        mine, theirs = sim.get_state(), other.get_state()
        clock = time.perf_counter

        def timed(call) -> harness.Run:
            def run(k: int) -> float:
                secs = 0.0
                for i in range(k):
                    t0 = clock()
                    call(i)
                    secs += clock() - t0
                return secs

            return run

        return {
            GET: timed(lambda i: sim.get_state()),
            SET_SAME: timed(lambda i: sim.set_state(mine)),
            SET_OTHER: timed(lambda i: sim.set_state(theirs if i % 2 == 0 else mine)),
            BOTH: timed(lambda i: sim.set_state(sim.get_state())),
        }

    records = suite.measure(
        "state_get_set",
        make,
        steps=calls,
        num_worlds=n,
        threads=threads,
        record_bytes=er.SimManager(num_worlds=1, num_threads=1).state_dtype.itemsize,
        timed="each call alone, all worlds (set_state (other episodes): alternately states of another seed "
        "and its own, so every call regenerates the levels)",
    )
    us = {r["impl"]: 1e6 * r["median_s"] / calls for r in records}
    return suite.emit(
        {
            "bench": "state_summary",
            "num_worlds": n,
            "threads": threads,
            **{
                f"us_{key}": us[name]
                for key, name in (("get", GET), ("set_same", SET_SAME), ("set_other", SET_OTHER))
            },
            "us_get_plus_set": us[BOTH],
            "other_cpu_cores": records[0]["other_cpu_cores"],
        }
    )


def summary(
    suite: harness.Suite, records: list[dict[str, Any]], same: dict[tuple[int, int], bool]
) -> list[dict[str, Any]]:
    """Each rollout peer's rate over SimManager.step's, per size and thread count: from the
    medians, and the median of the per-round ratios (rounds pair up)."""
    rows = []
    keys = sorted({(r["num_worlds"], r["threads"]) for r in records})
    for batch, threads in keys:
        group = {r["impl"]: r for r in records if (r["num_worlds"], r["threads"]) == (batch, threads)}
        base = group[STEP]
        row = {
            "bench": "rollout_summary",
            "num_worlds": batch,
            "threads": threads,
            "horizon": base["horizon"],
        }
        row["step_world_steps_per_s"] = base["world_steps_per_s"]
        for key, name in (("out", OUT), ("new", NEW), ("function", FUNCTION), ("blind", BLIND)):
            peer = group[name]
            row[f"{key}_world_steps_per_s"] = peer["world_steps_per_s"]
            row[f"{key}_ratio"] = peer["world_steps_per_s"] / base["world_steps_per_s"]
            row[f"{key}_ratio_paired"] = statistics.median(
                b / t for b, t in zip(base["times_s"], peer["times_s"])
            )
        row["same_trajectory"] = same[batch, threads]
        row["other_cpu_cores"] = base["other_cpu_cores"]
        rows.append(suite.emit(row))
    return rows


def headline(rows: list[dict[str, Any]], states: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        if r["num_worlds"] != HEADLINE_WORLDS:
            continue
        ok = harness.verdict(min(r["out_ratio_paired"], r["new_ratio_paired"]) >= MIN_RATIO)
        lines.append(
            f"[{ok}] rollout, B={r['num_worlds']:,}, T={r['horizon']}, {r['threads']} thread(s): "
            f"{harness.si(r['out_world_steps_per_s'])} world-steps/s with out= "
            f"({100 * r['out_ratio_paired']:.0f} % of SimManager.step's {harness.si(r['step_world_steps_per_s'])}, "
            f"paired; {100 * r['new_ratio_paired']:.0f} % without out=, both held to the target >= "
            f"{100 * MIN_RATIO:.0f} %; {100 * r['blind_ratio_paired']:.0f} % without observations)"
        )
    if not lines:
        lines.append(f"rollout at B={HEADLINE_WORLDS:,}: not measured in this run")
    for s in states:
        ok = (
            harness.verdict(s["us_get_plus_set"] <= 1e3 * MAX_STATE_MS)
            if s["num_worlds"] == HEADLINE_WORLDS
            else "n/a"
        )
        lines.append(
            f"[{ok}] get_state + set_state of {s['num_worlds']:,} worlds, {s['threads']} thread(s): "
            f"{s['us_get_plus_set']:.0f} µs (get {s['us_get']:.0f} µs, set {s['us_set_same']:.0f} µs; "
            f"set of other episodes {s['us_set_other']:.0f} µs; target <= {1e3 * MAX_STATE_MS:.0f} µs)"
        )
    same = all(r["same_trajectory"] for r in rows)
    lines.append(f"rollout final states equal to SimManager.step's in every round: {same}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    suite = harness.Suite(parse_args(argv), "rollout")
    args = suite.args
    records, same = [], {}
    for n in args.worlds:
        for t in args.threads:
            measured, same[n, t] = rollout_bench(suite, n, t)
            records += measured
    rows = summary(suite, records, same)
    states = [state_bench(suite, t) for t in args.threads]
    columns = {
        "B": lambda r: r["num_worlds"],
        "threads": lambda r: r["threads"],
        "SimManager.step": lambda r: harness.si(r["step_world_steps_per_s"]),
        "rollout(out=)": lambda r: (
            f"{harness.si(r['out_world_steps_per_s'])} ({100 * r['out_ratio_paired']:.0f} %)"
        ),
        "rollout": lambda r: (
            f"{harness.si(r['new_world_steps_per_s'])} ({100 * r['new_ratio_paired']:.0f} %)"
        ),
        "rollout() new pool": lambda r: (
            f"{harness.si(r['function_world_steps_per_s'])} ({100 * r['function_ratio_paired']:.0f} %)"
        ),
        "rollout(out=) no observations": lambda r: (
            f"{harness.si(r['blind_world_steps_per_s'])} ({100 * r['blind_ratio_paired']:.0f} %)"
        ),
        "other cores busy": lambda r: r["other_cpu_cores"],
    }
    section = (
        "## Rollout next to SimManager.step\n\nWorld-steps/s (T = "
        f"{args.horizon}); in brackets the median over rounds of the rollout's rate over "
        "SimManager.step's in the same round.\n\n" + harness.table(rows, columns)
    )
    suite.finish("Rollout and state benchmark", headline(rows, states), section)


if __name__ == "__main__":
    main()
