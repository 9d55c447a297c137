"""The batch renderer's throughput (SPEC §6): first-person RGB + depth frames per second.

Re-run the full benchmark (about a minute on 2 cores) and save the results as
``benchmarks/results/<YYYY-MM-DD>-<machine>-render.jsonl`` and ``.md``::

    python benchmarks/bench_render.py --save

The acceptance item it measures: batch rendering of 64 x 64 RGB + depth for 1,024 worlds on 2 CPU
threads at >= 20,000 frames per second, with the simulation (each frame is one agent's image of
one step; the renderer runs inside ``sim.step()`` right after each world's step).

What is timed: ``sim.step()`` with the renderer on, new random actions copied into
``action_tensor()`` before every step, untimed (``harness.sim_run``). ``frames_per_s`` =
world-steps/s x agents. The same loop with the renderer off is measured beside it, so the
renderer's own share is ``render_ms_per_step`` = step time with it minus step time without.
``--quick`` is a seconds-long smoke run (``tests/test_bench_render.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

import escape_room_env as er

REPO = Path(__file__).resolve().parent.parent
TARGET_FPS = 20_000  # 64 x 64 RGB + depth, 1,024 worlds, 2 threads, with the simulation
HEADLINE = (1024, 64, 64, 2)  # worlds, height, width, threads


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short smoke run (seconds)")
    p.add_argument("--worlds", type=int, nargs="+", help="num_worlds (default: 256 1024 4096; quick 16)")
    p.add_argument("--threads", type=int, nargs="+", help="thread counts (default: 1 2)")
    p.add_argument("--sizes", type=int, nargs="+", help="square image sizes (default: 32 64 128; quick 16)")
    p.add_argument("--agents", type=int, default=1)
    p.add_argument("--repeats", type=int, default=harness.MIN_REPEATS)
    p.add_argument("--out", type=Path, help="append the JSON lines to this file")
    p.add_argument("--save", action="store_true", help="write benchmarks/results/<date>-<machine>-render.*")
    p.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--note", default="", help="a line for the top of the saved .md summary")
    args = p.parse_args(argv)
    args.worlds = args.worlds or ([16] if args.quick else [256, 1024, 4096])
    args.threads = args.threads or [1, 2]
    args.sizes = args.sizes or ([16] if args.quick else [32, 64, 128])
    return args


def steps_for(num_worlds: int, size: int, quick: bool) -> int:
    """About 2**17 frames of 64 x 64 per repeat (fewer for larger images), at least 4 steps."""
    pixels = (2**12 if quick else 2**17) * 64 * 64
    return max(4, pixels // (num_worlds * size * size))


def bench(args: argparse.Namespace, out: Any) -> list[dict[str, Any]]:
    records = []
    for size in args.sizes:
        for num_worlds in args.worlds:
            for threads in args.threads:
                steps = steps_for(num_worlds, size, args.quick)
                pool = harness.action_pool(num_worlds * args.agents)
                pair = {}
                for on in (False, True):
                    sim = er.SimManager(
                        num_worlds=num_worlds,
                        num_agents=args.agents,
                        num_threads=threads,
                        rand_seed=0,
                        enable_batch_renderer=on,
                        render_width=size,
                        render_height=size,
                    )
                    before = harness.cpu_snapshot()
                    times = harness.time_repeats(harness.sim_run(sim, pool), steps, args.repeats)
                    other = harness.other_cpu_cores(before, harness.cpu_snapshot())
                    sim.close()
                    pair[on] = harness.make_result(
                        "render" if on else "render_off",
                        f"SimManager.step, renderer {'on' if on else 'off'}",
                        num_worlds=num_worlds,
                        num_agents=args.agents,
                        threads=threads,
                        steps=steps,
                        times=times,
                        width=size,
                        height=size,
                        other_cpu_cores=other,
                    )
                rec = pair[True]
                rec["frames_per_s"] = rec["agent_steps_per_s"]
                rec["render_ms_per_step"] = 1e3 * (rec["median_s"] - pair[False]["median_s"]) / steps
                rec["timed"] = (
                    "sim.step() with the renderer on; new actions copied in before each step, untimed"
                )
                for r in (pair[False], rec):
                    harness.emit(r, out)
                records += [pair[False], rec]
    return records


def format_frames(records: list[dict[str, Any]]) -> str:
    rows = [
        "| size | worlds | threads | frames/s (with sim) | sim alone, steps/s | renderer ms/step |",
        "|---|---|---|---|---|---|",
    ]
    off = {(r["width"], r["num_worlds"], r["threads"]): r for r in records if r["bench"] == "render_off"}
    for r in records:
        if r["bench"] != "render":
            continue
        base = off[(r["width"], r["num_worlds"], r["threads"])]
        rows.append(
            f"| {r['height']} x {r['width']} | {r['num_worlds']} | {r['threads']} | {r['frames_per_s']:,.0f} | "
            f"{base['world_steps_per_s']:,.0f} | {r['render_ms_per_step']:.2f} |"
        )
    return "\n".join(rows)


def headline(records: list[dict[str, Any]]) -> str:
    worlds, height, width, threads = HEADLINE
    for r in records:
        if r["bench"] == "render" and (r["num_worlds"], r["height"], r["width"], r["threads"]) == HEADLINE:
            verdict = "PASS" if r["frames_per_s"] >= TARGET_FPS else "FAIL"
            return (
                f"[{verdict}] {height} x {width} RGB + depth, {worlds} worlds, {threads} threads, with the "
                f"simulation: {r['frames_per_s']:,.0f} frames/s (target >= {TARGET_FPS:,})"
            )
    return "headline configuration not measured (run without --worlds/--sizes/--threads to include it)"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    desc = harness.machine_description()
    out, jsonl_path, md_path = harness.open_outputs("render", args.out, args.save, args.results_dir, desc)
    records = bench(args, out)
    table = format_frames(records)
    line = headline(records)
    print()
    print(table)
    print()
    print(line)
    if args.save:
        note = f"{args.note}\n\n" if args.note else ""
        md_path.write_text(
            f"# Batch renderer benchmark, {desc['date'][:10]}, {harness.machine_short_name(desc)}\n\n{note}"
            f"Re-run: `python benchmarks/bench_render.py --save`. Raw JSON lines: `{jsonl_path.name}`.\n\n"
            f"## Machine\n\n{harness.format_machine(desc)}\n\n## Headline\n\n```\n{line}\n```\n\n"
            f"## Frames per second\n\n{table}\n"
        )
        print(f"\nsaved {jsonl_path} and {md_path}")
    if out is not None:
        out.close()
    return records


if __name__ == "__main__":
    main()
