"""How fast is the batch renderer? First-person RGB + depth frames per second with the simulation,
and the same loop with the renderer off beside it (benchmarks/README.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

import escape_room_env as er
from escape_room_env.bench import action_pool, sim_step_loop

TARGET_FPS = 20_000  # 64 x 64 RGB + depth, 1,024 worlds, 2 threads, with the simulation
HEADLINE = (1024, 64, 2)  # worlds, image size, threads
TIMED = "sim.step() calls only; new actions copied into action_tensor() before each step, untimed"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = harness.add_common_args(argparse.ArgumentParser(description=__doc__))
    p.add_argument("--worlds", type=int, nargs="+", help="num_worlds (default 256 1024 4096; quick 16)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    p.add_argument("--sizes", type=int, nargs="+", help="square image sizes (default 64; quick 16)")
    p.add_argument("--agents", type=int, default=1)
    args = p.parse_args(argv)
    args.worlds = args.worlds or ([16] if args.quick else [256, 1024, 4096])
    args.sizes = args.sizes or ([16] if args.quick else [64])
    return args


def frames(suite: harness.Suite, size: int, n: int, threads: int) -> dict[str, Any]:
    """The loop with the renderer off, then on; emits both and the frames/s they give."""
    args, pair = suite.args, {}
    # About 2**17 frames of 64 x 64 per repeat (fewer for larger images), at least 4 steps.
    steps = args.steps or max(4, (2**12 if args.quick else 2**17) * 64 * 64 // (n * size * size))
    fields = {"num_worlds": n, "num_agents": args.agents, "threads": threads, "width": size, "height": size}
    for on in (False, True):
        kw = {"enable_batch_renderer": on, "render_width": size, "render_height": size}
        with er.SimManager(
            num_worlds=n, num_agents=args.agents, num_threads=threads, rand_seed=0, **kw
        ) as sim:
            run = {
                f"SimManager.step, renderer {'on' if on else 'off'}": sim_step_loop(
                    sim, action_pool(n * args.agents)
                )
            }
            (pair[on],) = suite.measure(
                "render" if on else "render_off", run, steps=steps, timed=TIMED, **fields
            )
    return suite.emit(
        {
            "bench": "render_frames",
            **fields,
            "frames_per_s": pair[True]["agent_steps_per_s"],
            "render_ms_per_step": 1e3 * (pair[True]["median_s"] - pair[False]["median_s"]) / steps,
            "sim_world_steps_per_s": pair[False]["world_steps_per_s"],
        }
    )


def main(argv: list[str] | None = None) -> None:
    suite = harness.Suite(parse_args(argv), "render")
    args = suite.args
    rows = [frames(suite, size, n, t) for size in args.sizes for n in args.worlds for t in args.threads]
    line = "headline configuration not measured"
    for r in rows:
        if (r["num_worlds"], r["width"], r["threads"]) == HEADLINE:
            line = (
                f"[{harness.verdict(r['frames_per_s'] >= TARGET_FPS)}] {r['width']} x {r['width']} RGB + depth, "
                f"{r['num_worlds']} worlds, {r['threads']} threads, with the simulation: "
                f"{r['frames_per_s']:,.0f} frames/s (target >= {TARGET_FPS:,})"
            )
    columns = {
        "size": lambda r: f"{r['height']} x {r['width']}",
        "worlds": lambda r: r["num_worlds"],
        "threads": lambda r: r["threads"],
        "frames/s (with sim)": lambda r: f"{r['frames_per_s']:,.0f}",
        "sim alone, steps/s": lambda r: f"{r['sim_world_steps_per_s']:,.0f}",
        "renderer ms/step": lambda r: f"{r['render_ms_per_step']:.2f}",
    }
    suite.finish("Batch renderer benchmark", line, "## Frames per second\n\n" + harness.table(rows, columns))


if __name__ == "__main__":
    main()
