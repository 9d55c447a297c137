"""World-steps/s against num_worlds, ours and the peers, from saved benchmark results (a PNG).

Reads the JSON lines that ``bench_core.py``, ``bench_vector.py`` (throughput peers) and
``bench_e2e.py`` saved in ``benchmarks/results/`` and draws one log-log plot::

    python benchmarks/plot_sps.py            # the newest results of each suite
    python benchmarks/plot_sps.py --core benchmarks/results/2026-11-21-amd-epyc-2c-core.jsonl \\
        --peers benchmarks/results/2026-11-21-amd-epyc-2c-vector-peers.jsonl \\
        --e2e benchmarks/results/2026-11-21-amd-epyc-2c-e2e.jsonl \\
        --out benchmarks/results/2026-11-21-amd-epyc-2c-sps.png

Series: ``SimManager.step`` (``core_step``, 1 and 2 threads), ``EscapeRoomVectorEnv.step``
(``peers_vector_step``), EnvPool CartPole-v1 (``peers_envpool_step``: the sync sweep as lines,
async as points), gymnasium ``SyncVectorEnv`` over the reference env (``peers_sync_vector_step``),
and the end-to-end tiers with a policy (``e2e_policy``, ``e2e_train``). A missing file leaves its
series out.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

RESULTS = Path(__file__).resolve().parent / "results"


def newest(suite: str, results: Path = RESULTS) -> Path | None:
    """The newest ``<date>-<machine>-<suite>.jsonl`` in ``results`` (by name: dates sort)."""
    paths = sorted(results.glob(f"*-{suite}.jsonl"))
    return paths[-1] if paths else None


def default_out(paths: dict[str, Path | None]) -> Path:
    """``<date>-<machine>-sps.png`` next to the first of the suites' result files."""
    for suite, path in paths.items():
        if path is not None and path.name.endswith(f"-{suite}.jsonl"):
            return path.with_name(path.name[: -len(f"-{suite}.jsonl")] + "-sps.png")
    return RESULTS / "sps.png"


def load(path: Path | None) -> list[dict[str, Any]]:
    if path is None or not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def series(records: Iterable[dict[str, Any]], bench: str, **match: Any) -> tuple[list[int], list[float]]:
    """(num_worlds, world-steps/s) of the records of ``bench`` whose fields equal ``match``, sorted."""
    points = sorted(
        (r["num_worlds"], r["world_steps_per_s"])
        for r in records
        if r.get("bench") == bench and all(r.get(k) == v for k, v in match.items())
    )
    return [n for n, _ in points], [v for _, v in points]


def machine_label(records: list[dict[str, Any]]) -> str:
    desc = next((r for r in records if r.get("bench") == "machine"), None)
    if desc is None:
        return ""
    return f"{desc['cpu_model']}, {desc['cores']} cores, {desc['date'][:10]}"


def headline_note(peers: list[dict[str, Any]]) -> str:
    """The acceptance ratios of the peers' summary, as a few lines for the plot."""
    s = next((r for r in peers if r.get("bench") == "peers_summary"), None)
    if s is None or s.get("ours_world_steps_per_s") is None:
        return ""
    lines = [
        f"EscapeRoomVectorEnv, {s['headline_worlds']:,} worlds, {s['ours_threads']} threads, copy=False:",
        f"{_si(s['ours_world_steps_per_s'])} world-steps/s"
        + (" (paired rounds with EnvPool)" if s.get("paired") else ""),
    ]
    if s.get("ratio_vs_envpool") is not None:
        lines.append(f"= {s['ratio_vs_envpool']:.2f} x EnvPool CartPole-v1 at its best")
    if s.get("ratio_vs_sync") is not None:
        lines.append(f"= {s['ratio_vs_sync']:,.0f} x SyncVectorEnv(reference) at its best")
    return "\n".join(lines)


def _si(x: float, _pos: Any = None) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:g}"


def style(label: str, color: str, marker: str, **kwargs: Any) -> dict[str, Any]:
    """Keyword arguments of ``Axes.plot`` for one series."""
    return {"label": label, "color": color, "marker": marker, "ms": 5, **kwargs}


def plot(core: list[dict], peers: list[dict], e2e: list[dict], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=120)
    lines: list[tuple[tuple[list[int], list[float]], dict[str, Any]]] = [
        (
            series(core, "core_step", threads=2),
            style("ours: SimManager.step, 2 threads", color="#08519c", marker="o", lw=2.2),
        ),
        (
            series(core, "core_step", threads=1),
            style("ours: SimManager.step, 1 thread", color="#6baed6", marker="o", lw=1.6),
        ),
        (
            series(peers, "peers_vector_step", impl="EscapeRoomVectorEnv copy=False", threads=2),
            style("ours: EscapeRoomVectorEnv copy=False, 2 threads", color="#006d2c", marker="s", lw=2),
        ),
        (
            series(peers, "peers_vector_step", impl="EscapeRoomVectorEnv copy=True", threads=2),
            style(
                "ours: EscapeRoomVectorEnv copy=True, 2 threads",
                color="#41ab5d",
                marker="s",
                ls="--",
                lw=1.6,
            ),
        ),
        (
            series(peers, "peers_vector_step", impl="EscapeRoomVectorEnv copy=False", threads=1),
            style("ours: EscapeRoomVectorEnv copy=False, 1 thread", color="#a1d99b", marker="s", lw=1.4),
        ),
        (
            series(e2e, "e2e_policy"),
            style("ours + 2x64 MLP forward (e2e tier b), 2 threads", color="#6a51a3", marker="^", lw=1.4),
        ),
        (
            series(e2e, "e2e_train"),
            style("ours + PPO training (e2e tier c), 2 threads", color="#9e9ac8", marker="v", lw=1.4),
        ),
        (
            series(peers, "peers_envpool_step", mode="sync", threads=1),
            style("EnvPool CartPole-v1 sync, 1 thread", color="#d94801", marker="D", lw=1.8),
        ),
        (
            series(peers, "peers_envpool_step", mode="sync", threads=2),
            style("EnvPool CartPole-v1 sync, 2 threads", color="#fd8d3c", marker="D", ls="--", lw=1.4),
        ),
        (
            series(peers, "peers_envpool_step", mode="async"),
            style(
                "EnvPool CartPole-v1 async (x = batch_size)",
                color="#a63603",
                marker="*",
                ms=11,
                ls="none",
            ),
        ),
        (
            series(peers, "peers_sync_vector_step"),
            style(
                "gymnasium SyncVectorEnv(reference env, pure Python)",
                color="#525252",
                marker="x",
                lw=1.8,
            ),
        ),
    ]
    worlds: set[int] = set()
    for (x, y), kwargs in lines:
        if x:
            ax.plot(x, y, **kwargs)
            worlds.update(x)
    if not worlds:
        raise SystemExit("no results to plot (see --core, --peers, --e2e)")

    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ticks = sorted(worlds)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{int(x):,}"))
    ax.yaxis.set_major_formatter(FuncFormatter(_si))
    ax.set_xlabel("num_worlds (envs stepped per call)")
    ax.set_ylabel("world-steps/s (median of ≥ 5 repeats)")
    if 4096 in worlds:
        ax.axvline(4096, color="#bdbdbd", ls=":", lw=1, zorder=0)
    ax.grid(True, which="major", color="#e0e0e0", lw=0.8)
    ax.grid(True, which="minor", axis="y", color="#f0f0f0", lw=0.5)
    note = headline_note(peers)
    if note:
        ax.text(
            0.98,
            0.2,
            note,
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=8.5,
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "#bdbdbd"},
        )
    machine = machine_label(peers) or machine_label(core)
    ax.set_title(f"Throughput vs num_worlds, one agent per world\n{machine}", fontsize=11)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8.5, frameon=False)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--core", type=Path, help="bench_core.py results (default: newest *-core.jsonl)")
    p.add_argument("--peers", type=Path, help="bench_vector.py peers (default: newest *-vector-peers.jsonl)")
    p.add_argument("--e2e", type=Path, help="bench_e2e.py results (default: newest *-e2e.jsonl)")
    p.add_argument("--out", type=Path, help="PNG to write (default: the core file's name, -sps.png)")
    args = p.parse_args(argv)
    core_path = args.core or newest("core")
    peers_path = args.peers or newest("vector-peers")
    e2e_path = args.e2e or newest("e2e")
    out = args.out or default_out({"core": core_path, "vector-peers": peers_path, "e2e": e2e_path})
    written = plot(load(core_path), load(peers_path), load(e2e_path), out)
    print(f"core: {core_path}\npeers: {peers_path}\ne2e: {e2e_path}\nwrote {written}")
    return written


if __name__ == "__main__":
    main()
