"""What do recording a replay and trajectory logging cost on ``SimManager.step``? Five peers fed the
same actions, fresh every round, paired (benchmarks/README.md says what each writes)."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

import escape_room_env as er
from escape_room_env.bench import action_pool, sim_step_loop

WORLDS, CHECKSUM_INTERVAL, MAX_OVERHEAD_PCT = 4096, 50, 10.0  # the acceptance configuration and target
PLAIN, PLAIN_AA = "SimManager.step", "SimManager.step (A/A control)"
REC, TRAJ, BOTH = "recording", "trajectory log", "recording + trajectory log"
KEYS = {"control": PLAIN_AA, "recording": REC, "trajectory": TRAJ, "both": BOTH}
TIMED = "each sim.step() call alone; random actions copied into action_tensor() before each, untimed"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = harness.add_common_args(argparse.ArgumentParser(description=__doc__), repeats=9, retries=2)
    p.add_argument("--worlds", type=int, help=f"num_worlds (default {WORLDS}; quick 256)")
    p.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="thread counts (default 2 1)")
    p.add_argument("--dir", type=Path, help="where the recordings and logs go (default: a temp dir)")
    args = p.parse_args(argv)
    args.worlds = args.worlds or (256 if args.quick else WORLDS)
    args.steps = args.steps or (16 if args.quick else 256)
    return args


def replay_verifies(path: Path, threads: int) -> bool:
    """Whether the recording replays with every hash checkpoint matching."""
    with er.SimManager.from_replay(path, num_threads=threads) as sim:
        try:
            while not sim.replay_step():
                pass
        except er.ReplayDivergenceError:
            return False
    return True


def bench(suite: harness.Suite, threads: int, workdir: Path) -> dict[str, Any]:
    """The peers at one thread count; emits their records and the overheads."""
    n, steps, pool = suite.args.worlds, suite.args.steps, action_pool(suite.args.worlds)
    checks: dict[str, list] = {"same": [], "stop_ms": [], "bytes": [], "verified": []}

    def make(r: int, stack) -> dict[str, harness.Run]:
        stack.callback(lambda: [p.unlink() for p in workdir.glob(f"r{r}-*")])  # after the simulators close
        sims = {}
        for i, name in enumerate((PLAIN, PLAIN_AA, REC, TRAJ, BOTH)):
            sim = sims[name] = stack.enter_context(
                er.SimManager(num_worlds=n, rand_seed=0, num_threads=threads)
            )
            if name in (REC, BOTH):
                sim.start_recording(workdir / f"r{r}-{i}.bin", seed=0, checksum_interval=CHECKSUM_INTERVAL)
            else:
                sim.reseed(0)  # the state the recording peers start from
            if name in (TRAJ, BOTH):
                sim.enable_trajectory_logging(0, 0, workdir / f"r{r}-{i}.txt")

        def check() -> None:  # before the simulators close (the stack unwinds last in, first out)
            hashes = [sim.state_hashes() for sim in sims.values()]
            checks["same"].append(all(np.array_equal(hashes[0], h) for h in hashes[1:]))
            t0 = time.perf_counter()
            recorded = sims[REC].stop_recording()
            checks["stop_ms"].append(1e3 * (time.perf_counter() - t0))
            checks["bytes"].append((workdir / f"r{r}-2.bin").stat().st_size / recorded)
            if r == 0:
                checks["verified"].append(replay_verifies(workdir / f"r{r}-2.bin", threads))

        stack.callback(check)
        return {name: sim_step_loop(sim, pool) for name, sim in sims.items()}

    # The warm-up holds at least one flush (every 64 steps) and one hash checkpoint (50).
    records = suite.measure(
        "recording_step",
        make,
        steps=steps,
        warmup=max(64, steps // 4),
        num_worlds=n,
        threads=threads,
        timed=TIMED,
        autoreset="SAME_STEP",
    )
    times = {r["impl"]: r["times_s"] for r in records}
    plain_us = 1e6 * statistics.median(times[PLAIN]) / steps
    overhead = {
        "bench": "recording_overhead",
        "num_worlds": n,
        "threads": threads,
        "steps": steps,
        "plain_us_per_call": plain_us,
    }
    for key, name in KEYS.items():
        med, se = harness.paired_diff_us(times[PLAIN], times[name], steps)
        overhead.update(
            {f"extra_us_{key}": med, f"extra_se_us_{key}": se, f"extra_pct_{key}": 100 * med / plain_us}
        )
    overhead.update(
        checksum_interval=CHECKSUM_INTERVAL,
        file_bytes_per_step=statistics.median(checks["bytes"]),
        stop_ms=statistics.median(checks["stop_ms"]),
        same_trajectory=all(checks["same"]),
        replay_verified=all(checks["verified"]),
        other_cpu_cores=records[0]["other_cpu_cores"],
    )
    return suite.emit(overhead)


def headline(o: dict[str, Any]) -> str:
    ok = harness.verdict(o["extra_pct_recording"] <= MAX_OVERHEAD_PCT)
    which = " (the acceptance configuration)" if (o["num_worlds"], o["threads"]) == (WORLDS, 2) else ""
    return (
        f"{o['num_worlds']} worlds, {o['threads']} threads{which}: SimManager.step {o['plain_us_per_call']:.1f} µs/call\n"
        f"  [{ok}] recording (checksum_interval {CHECKSUM_INTERVAL}): {o['extra_pct_recording']:+.2f} % "
        f"({o['extra_us_recording']:+.1f} ± {o['extra_se_us_recording']:.1f} µs/call; target <= {MAX_OVERHEAD_PCT:g} %)\n"
        f"  trajectory log: {o['extra_pct_trajectory']:+.2f} %; both: {o['extra_pct_both']:+.2f} %; "
        f"A/A control: {o['extra_pct_control']:+.2f} %\n"
        f"  file: {o['file_bytes_per_step'] / 1e3:.1f} kB per step; stop_recording() {o['stop_ms']:.2f} ms; same "
        f"trajectory: {o['same_trajectory']}; the recording replays and verifies: {o['replay_verified']}"
    )


def main(argv: list[str] | None = None) -> None:
    suite = harness.Suite(parse_args(argv), "recording")
    with tempfile.TemporaryDirectory(dir=suite.args.dir, prefix="bench_recording_") as tmp:
        overheads = [bench(suite, threads, Path(tmp)) for threads in suite.args.threads]
    suite.finish("Recording benchmark", "\n".join(headline(o) for o in overheads))


if __name__ == "__main__":
    main()
