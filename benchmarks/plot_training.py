"""Plots a training run's progress.csv (written by `escape-room train`) as a PNG.

python benchmarks/plot_training.py runs/<name>/progress.csv -o benchmarks/results/<name>.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def read_curve(path: Path) -> dict[str, list[float]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {key: [float(row[key]) for row in rows] for key in rows[0]} if rows else {}


def plot(curve: dict[str, list[float]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [s / 1e6 for s in curve["global_step"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(steps, curve["mean_progress"], color="tab:blue")
    left.set_xlabel("agent-steps (millions)")
    left.set_ylabel("mean progress of the last 1,000 episodes (m)")
    for edge in (40 / 3, 80 / 3, 40.0):  # room boundaries of the default level
        left.axhline(edge, color="grey", linewidth=0.5, linestyle=":")
    right.plot(steps, curve["first_door_rate"], label="first door opened", color="tab:green")
    right.plot(steps, curve["escape_rate"], label="escaped", color="tab:red")
    right.set_xlabel("agent-steps (millions)")
    right.set_ylabel("rate over the last 1,000 episodes")
    right.set_ylim(0, 1)
    right.legend(loc="center right")
    minutes = curve["seconds"][-1] / 60
    fig.suptitle(f"{title} ({minutes:.1f} min wall time)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--title", default="escape-room train (PPO, default level)")
    args = parser.parse_args()
    plot(read_curve(args.csv), args.out, args.title)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
