"""End-to-end throughput in three tiers, as Isaac Lab reports them (SPEC §9).

Re-run the full benchmark (about 5 minutes on an idle 2-core machine) and save the results as
``benchmarks/results/<YYYY-MM-DD>-<machine>-e2e.jsonl`` (raw JSON lines, machine first) and ``.md``
(machine description, headline, table)::

    python benchmarks/bench_e2e.py --save

World-steps/s of ``EscapeRoomVectorEnv`` (copy=False, NEXT_STEP, ``--threads`` simulator threads)
at ``--worlds`` (256, 1024, 4096), one agent per world, in three tiers:

- ``e2e_sim`` (a) simulation only: a Python loop of ``env.step(actions)``, actions cycled from 8
  random int64 arrays drawn before timing.
- ``e2e_policy`` (b) plus a policy forward: every step, ``torch.from_numpy(obs)`` goes through
  ``escape_room_env.ppo.Agent`` (actor and critic MLPs, 2 hidden layers of ``--hidden`` = 64, tanh)
  and ``get_action_and_value`` samples the actions that the step gets, under
  ``torch.inference_mode()``: the forward a PPO rollout makes, without storing the rollout.
- ``e2e_train`` (c) plus the PPO update: ``escape_room_env.ppo.train`` itself (CleanRL's loop:
  rollouts of ``--num-steps`` steps into buffers, GAE, ``--update-epochs`` epochs of
  ``--num-minibatches`` minibatches of the clipped loss with Adam; episode statistics from
  gymnasium's ``RecordEpisodeStatistics``), ``--updates`` updates per repeat, timed by train's own
  clock (from after the env's reset to the end: env and agent construction are left out).

Tiers a and b run on fresh envs and agents every repeat (``harness.time_rounds``, same seed); tier c
builds its own in every ``train`` call. Torch runs on ``--torch-threads`` threads, by default as
many as there are usable cores (torch's own default): the simulator's worker thread spins only
200 µs after a step before it sleeps, far less than a forward pass at these sizes, so the two do
not fight for long, and on the 2-core machine 2 torch threads beat 1 in tiers b and c. The value
is recorded in every line. Every record has
``other_cpu_cores``; each attempt first waits (up to ``--wait-idle`` s) for a quiet spell, and a
disturbed configuration is measured again (``--busy-cores``, ``--retries``).
``--quick`` is a seconds-long smoke run (``tests/test_bench_e2e.py``); timing is never asserted in
tests.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

import escape_room_env as er
from escape_room_env import ppo

REPO = Path(__file__).resolve().parent.parent
FULL_WORLDS = (256, 1024, 4096)
QUICK_WORLDS = (16, 64)
HEADLINE_WORLDS = 4096
SEED = 0

SIM, POLICY, TRAIN = "e2e_sim", "e2e_policy", "e2e_train"
TIER_NAMES = {
    SIM: "(a) simulation only",
    POLICY: "(b) + policy forward",
    TRAIN: "(c) + PPO update",
}
TIMED = {
    SIM: "the whole python loop of env.step(actions); actions cycle through 8 int64 (N, 3) arrays drawn "
    "before timing",
    POLICY: "the whole python loop of: obs -> torch.from_numpy -> Agent.get_action_and_value (sampled "
    "actions, value) under torch.inference_mode() -> env.step(action.numpy())",
    TRAIN: "escape_room_env.ppo.train(Args(...)): its own clock, from after envs.reset() to the end "
    "(rollouts, GAE, update epochs, episode statistics)",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="short smoke run (seconds)")
    p.add_argument("--worlds", type=int, nargs="+", help=f"num_worlds (full: {FULL_WORLDS})")
    p.add_argument("--threads", type=int, default=2, help="simulator threads (default 2)")
    p.add_argument(
        "--torch-threads", type=int, default=harness._cores(), help="torch.set_num_threads (default: cores)"
    )
    p.add_argument("--hidden", type=int, default=64, help="width of the policy's 2 hidden layers")
    p.add_argument(
        "--num-steps", type=int, default=ppo.Args.num_steps, help="rollout length of tier c (steps per env)"
    )
    p.add_argument("--update-epochs", type=int, default=ppo.Args.update_epochs, help="tier c")
    p.add_argument("--num-minibatches", type=int, default=ppo.Args.num_minibatches, help="tier c")
    p.add_argument("--repeats", type=int, default=harness.MIN_REPEATS, help="timed repeats, >= 5")
    p.add_argument("--steps", type=int, help="env steps per repeat of tiers a and b (default: by size)")
    p.add_argument("--updates", type=int, help="PPO updates per repeat of tier c (default: by size)")
    p.add_argument(
        "--retries",
        type=int,
        help="measure a configuration again when other processes were busy meanwhile (default 2, quick 0)",
    )
    p.add_argument(
        "--busy-cores",
        type=float,
        default=0.25,
        help="other processes' CPU use (cores) above which a configuration counts as disturbed",
    )
    p.add_argument(
        "--wait-idle",
        type=float,
        help="before each attempt, wait up to this many seconds for other processes to use at most "
        "--busy-cores (default 300, quick 0)",
    )
    p.add_argument("--out", type=Path, help="append the JSON lines to this file")
    p.add_argument(
        "--save", action="store_true", help="write benchmarks/results/<date>-<machine>-e2e.{jsonl,md}"
    )
    p.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--note", default="", help="a line for the top of the saved .md summary")
    args = p.parse_args(argv)
    if args.repeats < harness.MIN_REPEATS:
        p.error(f"--repeats must be >= {harness.MIN_REPEATS}")
    args.worlds = args.worlds or list(QUICK_WORLDS if args.quick else FULL_WORLDS)
    if args.retries is None:
        args.retries = 0 if args.quick else 2
    if args.wait_idle is None:
        args.wait_idle = 0.0 if args.quick else 300.0
    return args


def loop_steps(num_worlds: int, args: argparse.Namespace) -> int:
    """Env steps per repeat of tiers a and b: about 2**18 world-steps (2**10 quick), 8 ... 5000."""
    return harness.steps_per_repeat(num_worlds, 2**10 if args.quick else 2**18, 8, 5000, args.steps)


def train_updates(num_worlds: int, args: argparse.Namespace) -> int:
    """PPO updates per repeat of tier c: about 2**17 world-steps (one update at 4,096 worlds)."""
    if args.updates:
        return args.updates
    if args.quick:
        return 1
    return max(1, 2**17 // (num_worlds * args.num_steps))


# -- the tiers ------------------------------------------------------------------------------


def make_env(num_worlds: int, args: argparse.Namespace) -> er.EscapeRoomVectorEnv:
    return er.EscapeRoomVectorEnv(num_envs=num_worlds, seed=SEED, num_threads=args.threads, copy=False)


def sim_run(env: er.EscapeRoomVectorEnv, pool: list[np.ndarray]) -> Callable[[int], None]:
    """Tier a: ``run(n)`` is a loop of n ``env.step(actions)``."""
    step, size = env.step, len(pool)

    def run(n: int) -> None:
        for i in range(n):
            step(pool[i % size])

    return run


def policy_run(env: er.EscapeRoomVectorEnv, agent: ppo.Agent) -> Callable[[int], None]:
    """Tier b: ``run(n)`` is n steps whose actions the policy samples from the last observation."""
    obs = [env.reset(seed=SEED)[0]]
    step, act = env.step, agent.get_action_and_value

    def run(n: int) -> None:
        o = obs[0]
        with torch.inference_mode():
            for _ in range(n):
                action = act(torch.from_numpy(o))[0]
                o = step(action.numpy())[0]
        obs[0] = o

    return run


def train_run(num_worlds: int, args: argparse.Namespace) -> Callable[[int], float]:
    """Tier c: ``run(u)`` trains u PPO updates with ``ppo.train`` and returns its seconds."""

    def run(updates: int) -> float:
        result = ppo.train(
            ppo.Args(
                seed=SEED + 1,
                num_envs=num_worlds,
                num_threads=args.threads,
                hidden=args.hidden,
                num_steps=args.num_steps,
                update_epochs=args.update_epochs,
                num_minibatches=args.num_minibatches,
                total_timesteps=updates * num_worlds * args.num_steps,
                max_minutes=0,
                log_every=0,
                progress_bar=False,
                save_dir=None,
            )
        )
        return result.seconds

    return run


def with_retries(
    measure: Callable[[], Any], what: str, args: argparse.Namespace
) -> tuple[Any, float | None, int]:
    """``measure()`` after waiting for a quiet spell (``--wait-idle``), again while disturbed
    (:func:`harness.least_disturbed`); returns (the result, its other_cpu_cores, attempts)."""

    def attempt() -> tuple[Any, float | None]:
        if args.wait_idle > 0:
            harness.wait_for_idle(args.wait_idle, args.busy_cores)
        before = harness.cpu_snapshot()
        result = measure()
        return result, harness.other_cpu_cores(before, harness.cpu_snapshot())

    (result, other), attempts = harness.least_disturbed(
        attempt, lambda a: a[1], args.retries, args.busy_cores, what
    )
    return result, other, attempts


def common_extra(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "copy": False,
        "autoreset": "NEXT_STEP",
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "hidden": args.hidden,
        "loadavg_1min": round(os.getloadavg()[0], 2),
    }


def bench_sim_and_policy(
    num_worlds: int, args: argparse.Namespace, out: TextIO | None
) -> list[dict[str, Any]]:
    """Tiers a and b at one size, in the same rounds (fresh env and agent each)."""
    pool = harness.action_pool(num_worlds, SEED)
    steps = loop_steps(num_worlds, args)

    def make_runs(r: int) -> tuple[dict[str, Callable[[int], None]], Callable[[], None]]:
        torch.manual_seed(SEED)
        sim_env, policy_env = make_env(num_worlds, args), make_env(num_worlds, args)
        sim_env.reset(seed=SEED)
        agent = ppo.Agent(sim_env.single_observation_space.shape[0], args.hidden)
        runs = {SIM: sim_run(sim_env, pool), POLICY: policy_run(policy_env, agent)}

        def close() -> None:
            sim_env.close()
            policy_env.close()
            runs.clear()

        return runs, close

    times, other, attempts = with_retries(
        lambda: harness.time_rounds(make_runs, steps, args.repeats, max(2, steps // 5)),
        f"tiers a and b at {num_worlds} worlds",
        args,
    )
    records = []
    for tier in (SIM, POLICY):
        record = harness.make_result(
            tier,
            f"EscapeRoomVectorEnv {TIER_NAMES[tier]}",
            num_worlds=num_worlds,
            num_agents=1,
            threads=args.threads,
            steps=steps,
            times=times[tier],
            tier=TIER_NAMES[tier],
            timed=TIMED[tier],
            **common_extra(args),
            other_cpu_cores=other,
            attempts=attempts,
        )
        harness.emit(record, out)
        records.append(record)
    return records


def bench_train(num_worlds: int, args: argparse.Namespace, out: TextIO | None) -> dict[str, Any]:
    """Tier c at one size: one untimed ``train`` call of one update, then ``--repeats`` timed."""
    updates = train_updates(num_worlds, args)
    run = train_run(num_worlds, args)
    times, other, attempts = with_retries(
        lambda: harness.time_repeats(run, updates, args.repeats, warmup_steps=1),
        f"tier c at {num_worlds} worlds",
        args,
    )
    record = harness.make_result(
        TRAIN,
        f"EscapeRoomVectorEnv {TIER_NAMES[TRAIN]}",
        num_worlds=num_worlds,
        num_agents=1,
        threads=args.threads,
        steps=updates * args.num_steps,
        times=times,
        tier=TIER_NAMES[TRAIN],
        timed=TIMED[TRAIN],
        **common_extra(args),
        updates=updates,
        num_steps=args.num_steps,
        update_epochs=args.update_epochs,
        num_minibatches=args.num_minibatches,
        other_cpu_cores=other,
        attempts=attempts,
    )
    harness.emit(record, out)
    return record


# -- summary --------------------------------------------------------------------------------


def summarize(records: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """World-steps/s per tier and size, and each tier's share of tier a's rate."""
    rates: dict[int, dict[str, float]] = {}
    for r in records:
        rates.setdefault(r["num_worlds"], {})[r["bench"]] = r["world_steps_per_s"]
    headline = HEADLINE_WORLDS if HEADLINE_WORLDS in rates else max(rates)
    return {
        "bench": "e2e_summary",
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "hidden": args.hidden,
        "headline_worlds": headline,
        "world_steps_per_s": {str(n): tiers for n, tiers in rates.items()},
        "fraction_of_sim": {
            str(n): {t: v / tiers[SIM] for t, v in tiers.items() if t != SIM} for n, tiers in rates.items()
        },
        "train_world_steps_per_s_at_headline": rates[headline].get(TRAIN),
        "other_cpu_cores_max": max((r["other_cpu_cores"] or 0.0 for r in records), default=None),
    }


def format_headline(s: dict[str, Any]) -> str:
    lines = []
    for n, tiers in s["world_steps_per_s"].items():
        parts = [f"{TIER_NAMES[t]} {harness._si(v)}" for t, v in tiers.items()]
        lines.append(f"{n:>5} worlds: " + ", ".join(parts) + " world-steps/s")
    n = s["headline_worlds"]
    frac = s["fraction_of_sim"][str(n)]
    lines.append(
        f"tier (c) with a 2 x {s['hidden']} MLP at {n} worlds, {s['threads']} sim threads, "
        f"{s['torch_threads']} torch threads: {harness._si(s['train_world_steps_per_s_at_headline'])} "
        f"world-steps/s ({100 * frac.get(POLICY, float('nan')):.0f} % of sim-only with the forward, "
        f"{100 * frac.get(TRAIN, float('nan')):.0f} % with the update)"
    )
    lines.append(f"other processes kept up to {s['other_cpu_cores_max']} cores busy during a configuration")
    return "\n".join(lines)


def format_tiers(records: list[dict[str, Any]]) -> str:
    """A markdown table: one row per size, one column per tier (world-steps/s)."""
    by_size: dict[int, dict[str, dict[str, Any]]] = {}
    for r in records:
        by_size.setdefault(r["num_worlds"], {})[r["bench"]] = r
    tiers = [t for t in (SIM, POLICY, TRAIN) if any(t in row for row in by_size.values())]
    header = ["worlds", *(TIER_NAMES[t] for t in tiers), "other cores (max)"]
    rows = [header]
    for n, row in sorted(by_size.items()):
        cells = [harness._si(row[t]["world_steps_per_s"]) if t in row else "n/a" for t in tiers]
        other = max((row[t]["other_cpu_cores"] or 0.0 for t in row), default=0.0)
        rows.append([str(n), *cells, str(other)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def write_summary(
    path: Path, desc: dict[str, Any], records: list[dict[str, Any]], summary: dict[str, Any], note: str
) -> None:
    what = "\n".join(f"- `{t}` {TIER_NAMES[t]}: {TIMED[t]}" for t in (SIM, POLICY, TRAIN))
    parts = [
        f"# End-to-end benchmark, {desc['date'][:10]}, {harness.machine_short_name(desc)}",
        *([note] if note else []),
        (
            "Re-run: `python benchmarks/bench_e2e.py --save`. "
            f"Raw JSON lines: `{path.with_suffix('.jsonl').name}`."
        ),
        "## Machine\n\n" + harness.format_machine(desc),
        "## Headline\n\n```\n" + format_headline(summary) + "\n```",
        "## Tiers (world-steps/s)\n\nWhat is timed:\n\n" + what + "\n\n" + format_tiers(records),
        "## Per-configuration timings\n\nµs/call = median_s / steps (for tier c, per env step, "
        "update included).\n\n" + harness.format_table(records),
    ]
    path.write_text("\n\n".join(parts) + "\n")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    desc = {**harness.machine_description(), "torch_threads": torch.get_num_threads()}
    out, jsonl_path, md_path = harness.open_outputs("e2e", args.out, args.save, args.results_dir, desc)

    t0 = time.perf_counter()
    records: list[dict[str, Any]] = []
    for num_worlds in args.worlds:
        records += bench_sim_and_policy(num_worlds, args, out)
        records.append(bench_train(num_worlds, args, out))
    summary = summarize(records, args)
    summary["total_s"] = time.perf_counter() - t0
    summary["loadavg_1min_end"] = round(os.getloadavg()[0], 2)
    harness.emit(summary, out)

    print()
    harness.print_table(records)
    print()
    print(format_tiers(records))
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
