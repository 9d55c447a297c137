"""What recording a replay and trajectory logging cost on ``SimManager.step`` (SPEC §5.2, §5.3, §9).

Re-run the full benchmark (about 3 minutes on 2 cores) and save the results as
``benchmarks/results/<YYYY-MM-DD>-<machine>-recording.jsonl`` (raw JSON lines, machine first) and
``.md`` (machine description, headline, tables)::

    python benchmarks/bench_recording.py --save

The acceptance item it measures: ``SimManager.step`` at 4,096 worlds (1 agent, 2 threads) costs at
most 10 % more while recording (``checksum_interval=50``) than without.

The peers, fresh every repeat (``harness.time_rounds``), all with the same seed, SAME_STEP autoreset
and the same sequence of random actions (a pool drawn before timing, copied into
``action_tensor()`` before each call, untimed), so they simulate the same trajectory (checked:
``same_trajectory``):

- ``SimManager.step``: no recording, no logging. ``SimManager.step (A/A control)``: the same on a
  second simulator; its "overhead" should be 0 and its spread is the noise floor.
- ``recording``: ``start_recording(path, seed=0, checksum_interval=50)`` before the warm-up; every
  timed call writes a STEP record (the reset bitset and the clamped actions, 12.8 kB at 4,096
  worlds, CRC'd), every 50th computes and writes the state hashes of all worlds, every 64th flushes
  the buffer to the file. ``stop_recording()`` (final hash, END record, header patch) is outside
  the timed calls; its time is reported as ``stop_ms``.
- ``trajectory log``: ``enable_trajectory_logging(0, 0, path)``: one formatted line per step.
- ``recording + trajectory log``: both.

Every call is timed alone (``t0 = clock(); sim.step(); t += clock() - t0``). The overhead of a peer
is the median over repeats of the paired difference (peer minus ``SimManager.step``, repeat by
repeat), per call, in µs and in % of ``SimManager.step``, with a standard error from the spread of
the differences. The files go to a temporary directory (``--dir`` to choose; the default is the
system's temp dir) and are deleted after each repeat; the first repeat's recording is replayed with
``SimManager.from_replay`` to check that it verifies (``replay_verified``).

Every record carries ``other_cpu_cores``, the cores other processes kept busy while it ran (0 on an
idle machine); a configuration disturbed by more than ``--busy-cores`` is measured again, up to
``--retries`` times, keeping the least disturbed attempt. ``--quick`` is a seconds-long smoke run.
Timing is judged only in this headline, never in tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

import escape_room_env as er

REPO = Path(__file__).resolve().parent.parent
WORLDS = 4096
QUICK_WORLDS = 256
DEFAULT_REPEATS = 9
CHECKSUM_INTERVAL = 50
SEED = 0
MAX_OVERHEAD_PCT = 10.0  # the target for recording

PLAIN = "SimManager.step"
PLAIN_AA = "SimManager.step (A/A control)"
REC = "recording"
TRAJ = "trajectory log"
BOTH = "recording + trajectory log"
PEERS = (PLAIN, PLAIN_AA, REC, TRAJ, BOTH)
TIMED = (
    "each sim.step() call alone (t0 = clock(); sim.step(); t += clock() - t0); random actions copied "
    "into action_tensor() before t0, untimed"
)
COMPARES = (
    "per call, sim.step() with recording and/or trajectory logging minus sim.step() without; fresh "
    "peers every repeat, same seed, mode and actions, so all simulate the same trajectory; median "
    "over repeats of the paired difference"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="short smoke run (seconds)")
    p.add_argument("--worlds", type=int, help=f"num_worlds (default {WORLDS}; quick {QUICK_WORLDS})")
    p.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="thread counts (default: 2 1)")
    p.add_argument("--repeats", type=int, help=f"timed repeats, >= 5 (default {DEFAULT_REPEATS}; quick 5)")
    p.add_argument("--steps", type=int, help="timed steps per repeat (default 256; quick 16)")
    p.add_argument("--dir", type=Path, help="where the recordings and logs are written (default: temp dir)")
    p.add_argument("--busy-cores", type=float, default=0.25, help="re-measure above this other load")
    p.add_argument("--retries", type=int, default=2, help="re-measurements of a disturbed configuration")
    p.add_argument("--out", type=Path, help="append the JSON lines to this file")
    p.add_argument(
        "--save", action="store_true", help="write benchmarks/results/<date>-<machine>-recording.{jsonl,md}"
    )
    p.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--note", default="", help="a paragraph for the top of the saved .md summary")
    args = p.parse_args(argv)
    args.worlds = args.worlds or (QUICK_WORLDS if args.quick else WORLDS)
    args.repeats = args.repeats or (harness.MIN_REPEATS if args.quick else DEFAULT_REPEATS)
    args.steps = args.steps or (16 if args.quick else 256)
    if args.repeats < harness.MIN_REPEATS:
        p.error(f"--repeats must be >= {harness.MIN_REPEATS}")
    return args


def warmup_steps(steps: int) -> int:
    """At least one flush (64 steps) and one hash checkpoint (50) before the clock starts."""
    return max(64, steps // 4)


def paired_extra(base_times: list[float], times: list[float], steps: int) -> tuple[float, float]:
    """(median, standard error) of the per-call difference over paired repeats, in µs."""
    diffs = [1e6 * (t - b) / steps for b, t in zip(base_times, times)]
    med = statistics.median(diffs)
    mad = statistics.median(abs(d - med) for d in diffs)
    return med, 1.2533 * 1.4826 * mad / len(diffs) ** 0.5


def measure_config(num_worlds: int, threads: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One attempt: the peers at one size, fresh every repeat; returns times and checks."""
    pool = harness.action_pool(num_worlds, SEED)
    checks: dict[str, list] = {"same": [], "stop_ms": [], "bytes": [], "verified": []}

    def make_runs(r: int) -> tuple[dict[str, Callable[[int], float]], Callable[[], None]]:
        peers, files = {}, []
        for name in PEERS:
            sim = er.SimManager(num_worlds=num_worlds, rand_seed=SEED, num_threads=threads)
            tag = f"r{r}-{PEERS.index(name)}"
            if name in (REC, BOTH):
                files.append(workdir / f"{tag}.bin")
                sim.start_recording(files[-1], seed=SEED, checksum_interval=CHECKSUM_INTERVAL)
            else:
                sim.reseed(SEED)  # the same state as the recording peers start from
            if name in (TRAJ, BOTH):
                files.append(workdir / f"{tag}_trajectory.txt")
                sim.enable_trajectory_logging(0, 0, files[-1])
            peers[name] = sim

        def close() -> None:
            hashes = [sim.state_hashes() for sim in peers.values()]
            checks["same"].append(all(np.array_equal(hashes[0], h) for h in hashes[1:]))
            t0 = time.perf_counter()
            steps = peers[REC].stop_recording()
            checks["stop_ms"].append(1e3 * (time.perf_counter() - t0))
            checks["bytes"].append(os.path.getsize(workdir / f"r{r}-{PEERS.index(REC)}.bin") / steps)
            if r == 0:
                checks["verified"].append(replay_verifies(workdir / f"r{r}-{PEERS.index(REC)}.bin", threads))
            for sim in peers.values():
                sim.close()
            for path in files:
                path.unlink()

        return {name: harness.sim_run(sim, pool) for name, sim in peers.items()}, close

    before = harness.cpu_snapshot()
    times = harness.time_rounds(make_runs, args.steps, args.repeats, warmup_steps(args.steps))
    other = harness.other_cpu_cores(before, harness.cpu_snapshot())
    return {"times": times, "checks": checks, "other_cpu_cores": other}


def replay_verifies(path: Path, threads: int) -> bool:
    """Whether the recording replays with every hash checkpoint matching."""
    with er.SimManager.from_replay(path, num_threads=threads) as sim:
        try:
            while not sim.replay_step():
                pass
        except er.ReplayDivergenceError:
            return False
    return True


def bench(num_worlds: int, threads: int, args: argparse.Namespace, workdir: Path, out: TextIO | None):
    best, attempts = harness.least_disturbed(
        lambda: measure_config(num_worlds, threads, args, workdir),
        lambda a: a["other_cpu_cores"],
        args.retries,
        args.busy_cores,
        f"{num_worlds} worlds, {threads} threads",
    )
    times, checks = best["times"], best["checks"]
    common = {
        "autoreset": "SAME_STEP",
        "other_cpu_cores": best["other_cpu_cores"],
        "loadavg_1min": round(os.getloadavg()[0], 2),
        "attempts": attempts,
    }
    records = []
    for name in PEERS:
        record = harness.make_result(
            "recording_step",
            name,
            num_worlds=num_worlds,
            num_agents=1,
            threads=threads,
            steps=args.steps,
            times=times[name],
            timed=TIMED,
            warmup_steps=warmup_steps(args.steps),
            checksum_interval=CHECKSUM_INTERVAL if name in (REC, BOTH) else None,
            **common,
        )
        harness.emit(record, out)
        records.append(record)
    plain_us = 1e6 * statistics.median(times[PLAIN]) / args.steps
    overhead: dict[str, Any] = {
        "bench": "recording_overhead",
        "num_worlds": num_worlds,
        "num_agents": 1,
        "threads": threads,
        "steps": args.steps,
        "repeats": args.repeats,
        "compares": COMPARES,
        "plain_us_per_call": plain_us,
    }
    for key, name in (("control", PLAIN_AA), ("recording", REC), ("trajectory", TRAJ), ("both", BOTH)):
        med, se = paired_extra(times[PLAIN], times[name], args.steps)
        overhead[f"extra_us_{key}"] = med
        overhead[f"extra_se_us_{key}"] = se
        overhead[f"extra_pct_{key}"] = 100 * med / plain_us
        overhead[f"ratio_of_medians_pct_{key}"] = 100 * (
            statistics.median(times[name]) / statistics.median(times[PLAIN]) - 1
        )
    overhead.update(
        checksum_interval=CHECKSUM_INTERVAL,
        file_bytes_per_step=statistics.median(checks["bytes"]),
        stop_ms=statistics.median(checks["stop_ms"]),
        same_trajectory=all(checks["same"]),
        replay_verified=all(checks["verified"]),
        **common,
    )
    harness.emit(overhead, out)
    return records, overhead


def format_overheads(overheads: list[dict[str, Any]]) -> str:
    header = (
        "worlds",
        "threads",
        "step µs",
        "A/A control",
        "recording",
        "trajectory log",
        "both",
        "other cores",
    )
    rows = [header]
    for o in overheads:
        cells = [str(o["num_worlds"]), str(o["threads"]), f"{o['plain_us_per_call']:.1f}"]
        for key in ("control", "recording", "trajectory", "both"):
            cells.append(
                f"{o[f'extra_us_{key}']:+.1f} ± {o[f'extra_se_us_{key}']:.1f} µs ({o[f'extra_pct_{key}']:+.2f} %)"
            )
        cells.append(str(o["other_cpu_cores"]))
        rows.append(tuple(cells))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def format_headline(overheads: list[dict[str, Any]]) -> str:
    lines = []
    for o in overheads:
        verdict = "PASS" if o["extra_pct_recording"] <= MAX_OVERHEAD_PCT else "FAIL"
        acceptance = (o["num_worlds"], o["threads"]) == (WORLDS, 2)
        which = " (the acceptance configuration)" if acceptance else ""
        size = f"{o['num_worlds']} worlds, {o['threads']} thread{'s' if o['threads'] > 1 else ''}{which}"
        recording = (
            f"recording (checksum_interval {o['checksum_interval']}): {o['extra_pct_recording']:+.2f} % "
            f"({o['extra_us_recording']:+.1f} ± {o['extra_se_us_recording']:.1f} µs/call) "
            f"-> {verdict} (target <= {MAX_OVERHEAD_PCT:.0f} %)"
        )
        others = (
            f"trajectory log to a file: {o['extra_pct_trajectory']:+.2f} %; both: {o['extra_pct_both']:+.2f} %; "
            f"A/A control: {o['extra_pct_control']:+.2f} %"
        )
        checks = (
            f"file: {o['file_bytes_per_step'] / 1e3:.1f} kB per step; stop_recording() {o['stop_ms']:.2f} ms; "
            f"same trajectory: {o['same_trajectory']}; the recording replays and verifies: {o['replay_verified']}"
        )
        lines += [
            f"{size}: SimManager.step {o['plain_us_per_call']:.1f} µs/call",
            *("  " + x for x in (recording, others, checks)),
        ]
    return "\n".join(lines)


def write_summary(path: Path, desc: dict[str, Any], records, overheads, note: str) -> None:
    parts = [
        f"# Recording benchmark, {desc['date'][:10]}, {harness.machine_short_name(desc)}",
        *([note] if note else []),
        (
            "Re-run: `python benchmarks/bench_recording.py --save`. Raw JSON lines: "
            f"`{path.with_suffix('.jsonl').name}`."
        ),
        "## Machine\n\n" + harness.format_machine(desc),
        "## Headline\n\n```\n" + format_headline(overheads) + "\n```",
        "## Overhead per call\n\nCompared: " + COMPARES + ". ± is the standard error of the median paired "
        "difference; % is of `SimManager.step`; `A/A control` is a second plain `SimManager` (should be "
        "0); `other cores` is the CPU other processes used meanwhile.\n\n" + format_overheads(overheads),
        "## Per-peer timings\n\nEach call timed alone (see `timed` in the `.jsonl`); µs/call = median_s / "
        "steps.\n\n" + harness.format_table(records),
    ]
    path.write_text("\n\n".join(parts) + "\n")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    desc = harness.machine_description()
    out, jsonl_path, md_path = harness.open_outputs("recording", args.out, args.save, args.results_dir, desc)
    records, overheads = [], []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench_recording_") as tmp:
        for threads in args.threads:
            recs, overhead = bench(args.worlds, threads, args, Path(tmp), out)
            records += recs
            overheads.append(overhead)
    print()
    harness.print_table(records)
    print()
    print(format_overheads(overheads))
    print()
    print(format_headline(overheads))
    if args.save:
        write_summary(md_path, desc, records, overheads, args.note)
        print(f"\nsaved {jsonl_path} and {md_path}")
    if out is not None:
        out.close()
    return overheads


if __name__ == "__main__":
    main()
