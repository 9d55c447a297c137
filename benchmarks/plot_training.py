"""Plots training runs' progress.csv files (written by `escape-room train`) as one PNG: mean
progress and escape rate against agent-steps, and the escape rate against wall time with the
learning targets (80 % before 4 minutes, 95 % within 15), one line per run.

python benchmarks/plot_training.py runs/<a>/progress.csv runs/<b>/progress.csv --labels "seed 1" "seed 2" \\
    -o benchmarks/results/<name>.png
"""

from __future__ import annotations

import argparse
import csv
import itertools
from pathlib import Path


def read_curve(path: Path) -> dict[str, list[float]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {key: [float(row[key]) for row in rows] for key in rows[0]} if rows else {}


def plot(curves: dict[str, dict[str, list[float]]], out: Path, title: str, wall_time: bool = True) -> None:
    """``curves``: label -> the columns of one progress.csv. Without ``wall_time`` (runs made on
    different numbers of cores, compared by steps) the third panel is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3 if wall_time else 2, figsize=(16, 4.2) if wall_time else (12, 4.6))
    progress, by_steps, by_time = (*axes, None)[:3]
    # More runs than the default cycle's 10 colours: 20 distinct ones, so no two lines share one.
    colours = plt.get_cmap("tab20").colors if len(curves) > 10 else plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (label, curve), colour in zip(curves.items(), itertools.cycle(colours)):
        steps = [s / 1e6 for s in curve["global_step"]]
        minutes = [s / 60 for s in curve["seconds"]]
        progress.plot(steps, curve["mean_progress"], label=label, color=colour)
        by_steps.plot(steps, curve["escape_rate"], label=label, color=colour)
        if by_time is not None:
            by_time.plot(minutes, curve["escape_rate"], label=f"{label} ({minutes[-1]:.1f} min)", color=colour)
    by_steps.set_ylim(0, 1)
    by_steps.set_ylabel("escape rate over the last 1,000 episodes")
    for edge in (40 / 3, 80 / 3, 40.0):  # room boundaries of the default level
        progress.axhline(edge, color="grey", linewidth=0.5, linestyle=":")
    progress.set_ylabel("mean progress of the last 1,000 episodes (m)")
    for ax in (progress, by_steps):
        ax.set_xlabel("agent-steps (millions)")
    if by_time is not None:
        by_time.set_ylabel("escape rate over the last 1,000 episodes")
        by_time.set_xlabel("wall time (minutes)")
        by_time.set_ylim(0, 1)
        by_time.axhline(0.95, color="grey", linewidth=0.7, linestyle="--")
        by_time.plot([4, 4], [0, 0.8], color="grey", linewidth=0.7, linestyle="--")
        by_time.plot([0, 4], [0.8, 0.8], color="grey", linewidth=0.7, linestyle="--")
        by_time.annotate("targets: 80 % by 4 min, 95 % by 15", (0.3, 0.965), fontsize=8, color="grey")
        by_time.legend(loc="lower right", fontsize=8)
    else:
        by_steps.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", type=Path, nargs="+", help="progress.csv files, one line each")
    parser.add_argument("--labels", nargs="+", help="one per file (default: the run folder's name)")
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--title", default="escape-room train (PPO, default level)")
    parser.add_argument("--steps-only", action="store_true", help="leave out the wall-time panel")
    args = parser.parse_args()
    labels = args.labels or [path.parent.name for path in args.csv]
    if len(labels) != len(args.csv):
        parser.error(f"--labels gives {len(labels)} labels for {len(args.csv)} files")
    curves = {label: read_curve(path) for label, path in zip(labels, args.csv)}
    plot(curves, args.out, args.title, wall_time=not args.steps_only)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
