"""World-steps/s against num_worlds, ours and the peers, from saved results: one log-log PNG of the
JSON lines that bench_core.py, bench_peers.py and bench_e2e.py saved (benchmarks/README.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

RESULTS = Path(__file__).resolve().parent / "results"
SUITES = {"core": "core", "peers": "vector-peers", "e2e": "e2e"}
# One line per series: suite | bench | the fields a record must have | color marker width style | label
SERIES = """
core  | core_step              | threads=2                                        | #08519c o 2.2 -  | ours: SimManager.step, 2 threads
core  | core_step              | threads=1                                        | #6baed6 o 1.6 -  | ours: SimManager.step, 1 thread
peers | peers_vector_step      | impl=EscapeRoomVectorEnv copy=False, threads=2  | #006d2c s 2.0 -  | ours: EscapeRoomVectorEnv copy=False, 2 threads
peers | peers_vector_step      | impl=EscapeRoomVectorEnv copy=True, threads=2   | #41ab5d s 1.6 -- | ours: EscapeRoomVectorEnv copy=True, 2 threads
peers | peers_vector_step      | impl=EscapeRoomVectorEnv copy=False, threads=1  | #a1d99b s 1.4 -  | ours: EscapeRoomVectorEnv copy=False, 1 thread
e2e   | e2e_policy             |                                                  | #6a51a3 ^ 1.4 -  | ours + 2x64 MLP forward (e2e tier b), 2 threads
e2e   | e2e_train              |                                                  | #9e9ac8 v 1.4 -  | ours + PPO training (e2e tier c), 2 threads
peers | peers_envpool_step     | mode=sync, threads=1                             | #d94801 D 1.8 -  | EnvPool CartPole-v1 sync, 1 thread
peers | peers_envpool_step     | mode=sync, threads=2                             | #fd8d3c D 1.4 -- | EnvPool CartPole-v1 sync, 2 threads
peers | peers_envpool_step     | mode=async                                       | #a63603 * 1.0 none | EnvPool CartPole-v1 async (x = batch_size)
peers | peers_sync_vector_step |                                                  | #525252 x 1.8 -  | gymnasium SyncVectorEnv(reference env, pure Python)
"""


def series() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """SERIES as (suite, bench, match, Axes.plot keyword arguments)."""
    rows = []
    for line in SERIES.strip().splitlines():
        suite, bench, match, style, label = (cell.strip() for cell in line.split("|"))
        pairs = (kv.split("=", 1) for kv in match.split(", ") if kv)
        color, marker, lw, ls = style.split()
        kw = {
            "label": label,
            "color": color,
            "marker": marker,
            "lw": float(lw),
            "ls": ls,
            "ms": 11 if marker == "*" else 5,
        }
        rows.append((suite, bench, {k: int(v) if v.isdigit() else v for k, v in pairs}, kw))
    return rows


def load(path: Path | None) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path else []


def si(x: float, _pos: Any = None) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:g}"


def note(peers: list[dict[str, Any]]) -> str:
    """The acceptance ratios of the peers' summary, a few lines for the plot."""
    s = next((r for r in peers if r.get("bench") == "peers_summary"), None)
    if s is None or s.get("ours_world_steps_per_s") is None:
        return ""
    lines = [
        f"EscapeRoomVectorEnv, {s['headline_worlds']:,} worlds, {s['ours_threads']} threads, copy=False:",
        f"{si(s['ours_world_steps_per_s'])} world-steps/s"
        + (" (paired rounds with EnvPool)" if s.get("paired") else ""),
    ]
    if s.get("ratio_vs_envpool") is not None:
        lines.append(f"= {s['ratio_vs_envpool']:.2f} x EnvPool CartPole-v1 at its best")
    if s.get("ratio_vs_sync") is not None:
        lines.append(f"= {s['ratio_vs_sync']:,.0f} x SyncVectorEnv(reference) at its best")
    return "\n".join(lines)


def plot(data: dict[str, list[dict[str, Any]]], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=120)
    worlds: set[int] = set()
    for suite, bench, match, style in series():
        points = sorted(
            (r["num_worlds"], r["world_steps_per_s"])
            for r in data[suite]
            if r.get("bench") == bench and all(r.get(k) == v for k, v in match.items())
        )
        if points:
            ax.plot(*zip(*points), **style)
            worlds.update(n for n, _ in points)
    if not worlds:
        raise SystemExit("no results to plot (see --core, --peers, --e2e)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sorted(worlds)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{int(x):,}"))
    ax.yaxis.set_major_formatter(FuncFormatter(si))
    ax.set_xlabel("num_worlds (envs stepped per call)")
    ax.set_ylabel("world-steps/s (median of ≥ 5 repeats)")
    if 4096 in worlds:
        ax.axvline(4096, color="#bdbdbd", ls=":", lw=1, zorder=0)
    ax.grid(True, which="major", color="#e0e0e0", lw=0.8)
    ax.grid(True, which="minor", axis="y", color="#f0f0f0", lw=0.5)
    box = {"boxstyle": "round", "facecolor": "white", "edgecolor": "#bdbdbd"}
    ax.text(
        0.98,
        0.2,
        note(data["peers"]),
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=8.5,
        bbox=box,
    )
    desc = next((r for r in data["peers"] + data["core"] if r.get("bench") == "machine"), None)
    machine = f"{desc['cpu_model']}, {desc['cores']} cores, {desc['date'][:10]}" if desc else ""
    ax.set_title(f"Throughput vs num_worlds, one agent per world\n{machine}", fontsize=11)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8.5, frameon=False)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__)
    for key, suite in SUITES.items():
        p.add_argument(f"--{key}", type=Path, help=f"results (default: the newest *-{suite}.jsonl)")
    p.add_argument(
        "--out", type=Path, help="PNG to write (default: <date>-<machine>-sps.png beside the results)"
    )
    args = p.parse_args(argv)
    paths = {
        key: getattr(args, key) or max(RESULTS.glob(f"*-{suite}.jsonl"), default=None)
        for key, suite in SUITES.items()
    }
    named = [(path, f"-{SUITES[key]}.jsonl") for key, path in paths.items() if path]
    stems = [path.with_name(path.name[: -len(end)]) for path, end in named if path.name.endswith(end)]
    out = args.out or Path(f"{(stems or [RESULTS / 'sps'])[0]}-sps.png")
    written = plot({key: load(path) for key, path in paths.items()}, out)
    print("\n".join(f"{key}: {path}" for key, path in paths.items()) + f"\nwrote {written}")
    return written


if __name__ == "__main__":
    main()
