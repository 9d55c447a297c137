"""``escape-room bench``: the quick version of ``benchmarks/bench_core.py``, packaged so that it
runs from an installed wheel (the full suite, its peers and saved results live in the repository's
``benchmarks/``).

It measures what bench_core measures: ``SimManager.step()`` world-steps/s (one agent, full
observations, SAME_STEP), new random actions copied into ``action_tensor()`` before every step,
untimed, and only the ``step()`` calls timed; the median of 3 repeats after a warm-up. Then the
per-call overhead: the least-squares fit t = a + b * num_worlds over 1 ... 64 worlds, 1 thread.
EnvPool CartPole-v1 (sync, the same step loop) runs beside it when envpool is installed.

>>> from escape_room_env.bench import run_quick
>>> rows = run_quick(worlds=(4,), threads=(1,), seconds=0.01, peers=False)
>>> rows[0]["impl"], rows[0]["num_worlds"], rows[0]["world_steps_per_s"] > 0
('SimManager.step', 4, True)
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

import escape_room_env as er

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["action_pool", "format_table", "run_quick", "sim_step_loop"]

WORLDS = (1, 64, 1024, 4096)
FIT_WORLDS = (1, 4, 16, 64)
REPEATS = 3
POOL = 8


def _median_seconds_per_step(run: Callable[[int], float], seconds: float) -> float:
    """Calibrates a step count to about ``seconds`` per repeat, warms up, returns the median
    time of one step over REPEATS repeats."""
    n = 1
    while (elapsed := run(n)) < seconds / 4 and n < 1 << 20:
        n *= 2
    n = max(1, int(n * seconds / max(elapsed, 1e-9)))
    return statistics.median(run(n) / n for _ in range(REPEATS))


def action_pool(num_envs: int, count: int = POOL, seed: int = 0) -> list[np.ndarray]:
    """``count`` int64 (num_envs, 3) action arrays, each component uniform over its choices,
    drawn before timing and cycled through."""
    rng = np.random.default_rng(seed)
    return list(rng.integers(0, np.array(er.action.NUM_CHOICES), size=(count, num_envs, 3), dtype=np.int64))


def sim_step_loop(sim: er.SimManager, pool: Sequence[np.ndarray]) -> Callable[[int], float]:
    """``run(n)``: n ``sim.step()`` calls, each timed alone after copying call i's actions from
    ``pool`` into ``action_tensor()`` (untimed); returns the seconds inside the steps. The loop
    every benchmark of ``SimManager.step`` in ``benchmarks/`` uses too."""
    actions = sim.action_tensor().to_numpy().reshape(sim.num_worlds * sim.num_agents, 3)
    step, copyto, clock = sim.step, np.copyto, time.perf_counter

    def run(n: int) -> float:
        secs = 0.0
        for i in range(n):
            copyto(actions, pool[i % len(pool)])
            t0 = clock()
            step()
            secs += clock() - t0
        return secs

    return run


def _sim_run(sim: er.SimManager) -> Callable[[int], float]:
    return sim_step_loop(sim, action_pool(sim.num_worlds * sim.num_agents))


def _envpool_run(envpool: Any, num_envs: int, threads: int) -> Callable[[int], float]:
    with warnings.catch_warnings():  # its float64 Box bounds make gymnasium warn
        warnings.simplefilter("ignore")
        env = envpool.make_gymnasium(
            "CartPole-v1", num_envs=num_envs, batch_size=num_envs, num_threads=threads
        )
    env.reset()
    pool = np.random.default_rng(0).integers(0, 2, size=(16, num_envs), dtype=np.int32)
    step, clock = env.step, time.perf_counter

    def run(n: int) -> float:
        t0 = clock()
        for i in range(n):
            step(pool[i % 16])
        return clock() - t0

    return run


def _row(impl: str, num_worlds: int, threads: int, seconds_per_step: float) -> dict[str, Any]:
    return {
        "impl": impl,
        "num_worlds": num_worlds,
        "threads": threads,
        "us_per_step": 1e6 * seconds_per_step,
        "world_steps_per_s": num_worlds / seconds_per_step,
    }


def run_quick(
    worlds: Sequence[int] = WORLDS,
    threads: Sequence[int] | None = None,
    seconds: float = 0.2,
    peers: bool = True,
) -> list[dict[str, Any]]:
    """Measures ours (and EnvPool's CartPole when ``peers`` and installed); returns one dict per
    configuration, then ``{"impl": "fit", "a_us": ..., "b_us": ...}`` for the per-call overhead."""
    threads = tuple(threads or sorted({1, min(2, os.cpu_count() or 1)}))
    rows = []
    for n in worlds:
        for t in threads:
            with er.SimManager(num_worlds=n, num_threads=t, rand_seed=0) as sim:
                rows.append(_row("SimManager.step", n, t, _median_seconds_per_step(_sim_run(sim), seconds)))
    times = []
    for n in FIT_WORLDS:
        with er.SimManager(num_worlds=n, num_threads=1, rand_seed=0) as sim:
            times.append(_median_seconds_per_step(_sim_run(sim), seconds))
    b, a = np.polyfit(np.array(FIT_WORLDS, dtype=float), np.array(times), 1, w=1.0 / np.array(times))
    if peers:
        envpool: ModuleType | None
        try:
            envpool = importlib.import_module("envpool")  # optional: the peer's rows only
        except ImportError:
            envpool = None
        for n in worlds if envpool is not None else ():
            for t in threads:
                rows.append(
                    _row(
                        "EnvPool CartPole-v1",
                        n,
                        t,
                        _median_seconds_per_step(_envpool_run(envpool, n, t), seconds),
                    )
                )
    rows.append({"impl": "fit", "a_us": 1e6 * a, "b_us": 1e6 * b, "fit_worlds": list(FIT_WORLDS)})
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of :func:`run_quick`'s rows, the overhead fit as its last line."""
    lines = [f"{'impl':<22} {'worlds':>7} {'threads':>7} {'µs/step':>10} {'world-steps/s':>14}"]
    for r in rows:
        if r["impl"] == "fit":
            lines.append(
                f"per-call overhead (1 thread, {r['fit_worlds'][0]}..{r['fit_worlds'][-1]} worlds): "
                f"t = {r['a_us']:.2f} µs + {r['b_us']:.3f} µs x num_worlds"
            )
        else:
            lines.append(
                f"{r['impl']:<22} {r['num_worlds']:>7} {r['threads']:>7} {r['us_per_step']:>10.1f} "
                f"{r['world_steps_per_s']:>14,.0f}"
            )
    return "\n".join(lines)


def main(
    as_json: bool = False, peers: bool = True, worlds: Sequence[int] = WORLDS, seconds: float = 0.2
) -> int:
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, escape_room_env {er.__version__}"
    rows = run_quick(worlds=worlds, seconds=seconds, peers=peers)
    if as_json:
        print(json.dumps({"machine": machine}))
        for r in rows:
            print(json.dumps(r))
    else:
        print(f"escape-room bench (quick; full suite: benchmarks/bench_core.py) on {machine}")
        print(format_table(rows))
    return 0
