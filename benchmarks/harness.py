"""The one timing harness shared by every script in ``benchmarks/`` (STYLE.md, SPEC §9).

A benchmark hands :func:`measure` a callable ``run(n)`` that performs ``n`` steps. The harness
runs it once untimed (warm-up), then ``repeats`` (>= 5) timed times, takes the median and emits
one JSON line per configuration::

    {"bench": ..., "impl": ..., "num_worlds": ..., "num_agents": ..., "threads": ...,
     "steps": ..., "median_s": ..., "world_steps_per_s": ..., "agent_steps_per_s": ...,
     "repeats": ..., <extra fields>}

``run(n)`` may return the seconds it timed itself (to leave per-step work such as writing new
actions out of the measurement); if it returns None the harness times the whole call.

>>> import time
>>> r = measure("demo", "sleep", lambda n: time.sleep(n * 1e-4), num_worlds=2, num_agents=1,
...             threads=1, steps=10, echo=False)
>>> sorted(r) == sorted(RESULT_KEYS) and r["repeats"] == 5
True
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

#: The fields every measurement line carries (extras come after them).
RESULT_KEYS = (
    "bench",
    "impl",
    "num_worlds",
    "num_agents",
    "threads",
    "steps",
    "median_s",
    "world_steps_per_s",
    "agent_steps_per_s",
    "repeats",
)

MIN_REPEATS = 5

Run = Callable[[int], Optional[float]]


def time_repeats(
    run: Run, steps: int, repeats: int = MIN_REPEATS, warmup_steps: int | None = None
) -> list[float]:
    """Seconds taken by ``repeats`` calls of ``run(steps)``, after one untimed ``run(warmup_steps)``.

    ``warmup_steps`` defaults to ``steps`` (one full untimed repeat).
    """
    if repeats < MIN_REPEATS:
        raise ValueError(f"repeats must be >= {MIN_REPEATS} (SPEC §9), got {repeats}")
    run(steps if warmup_steps is None else warmup_steps)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        timed = run(steps)
        times.append(timed if timed is not None else time.perf_counter() - t0)
    return times


def time_rounds(
    make_runs: Callable[[int], tuple[Mapping[str, Run], Callable[[], None]]],
    steps: int,
    repeats: int = MIN_REPEATS,
    warmup_steps: int | None = None,
) -> dict[str, list[float]]:
    """:func:`time_repeats` for several peers at once, with fresh peers every repeat, so that
    repeat r of two peers can be paired.

    ``make_runs(r)`` builds round r's peers and returns ``({name: run}, close)``. Each round
    warms every peer up with an untimed ``run(warmup_steps)`` (default ``steps``), times one
    ``run(steps)`` of each in an order rotated by r, then calls ``close()``. A slow drift (clock
    frequency, other load) then hits all peers alike, and a peer's luck with memory placement
    (cache conflicts of its buffers) is drawn again every round instead of biasing all of them.

    >>> times = time_rounds(lambda r: ({"a": lambda n: 1.0 * n, "b": lambda n: 2.0 * n}, lambda: None), 3)
    >>> times["a"], times["b"]
    ([3.0, 3.0, 3.0, 3.0, 3.0], [6.0, 6.0, 6.0, 6.0, 6.0])
    """
    if repeats < MIN_REPEATS:
        raise ValueError(f"repeats must be >= {MIN_REPEATS} (SPEC §9), got {repeats}")
    times: dict[str, list[float]] = {}
    for r in range(repeats):
        runs, close = make_runs(r)
        try:
            names = list(runs)
            for name in names:
                runs[name](steps if warmup_steps is None else warmup_steps)
            for k in range(len(names)):
                name = names[(k + r) % len(names)]
                t0 = time.perf_counter()
                timed = runs[name](steps)
                times.setdefault(name, []).append(timed if timed is not None else time.perf_counter() - t0)
        finally:
            close()
    return times


def make_result(
    bench: str,
    impl: str,
    *,
    num_worlds: int,
    num_agents: int,
    threads: int,
    steps: int,
    times: list[float],
    **extra: Any,
) -> dict[str, Any]:
    """One configuration's JSON record from its repeat times (seconds for ``steps`` steps each)."""
    median_s = statistics.median(times)
    world_steps_per_s = steps * num_worlds / median_s
    return {
        "bench": bench,
        "impl": impl,
        "num_worlds": num_worlds,
        "num_agents": num_agents,
        "threads": threads,
        "steps": steps,
        "median_s": median_s,
        "world_steps_per_s": world_steps_per_s,
        "agent_steps_per_s": world_steps_per_s * num_agents,
        "repeats": len(times),
        **extra,
    }


def emit(record: dict[str, Any], out: TextIO | None = None, echo: bool = True) -> None:
    """Prints ``record`` as one JSON line (if ``echo``) and appends it to ``out`` (if given)."""
    line = json.dumps(record)
    if echo:
        print(line, flush=True)
    if out is not None:
        out.write(line + "\n")
        out.flush()


def measure(
    bench: str,
    impl: str,
    run: Run,
    *,
    num_worlds: int,
    num_agents: int,
    threads: int,
    steps: int,
    repeats: int = MIN_REPEATS,
    warmup_steps: int | None = None,
    out: TextIO | None = None,
    echo: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """Times ``run`` (warm-up, median of ``repeats``), emits and returns its JSON record."""
    times = time_repeats(run, steps, repeats, warmup_steps)
    record = make_result(
        bench,
        impl,
        num_worlds=num_worlds,
        num_agents=num_agents,
        threads=threads,
        steps=steps,
        times=times,
        **extra,
    )
    emit(record, out, echo)
    return record


# -- other load on the machine --------------------------------------------------------------


def cpu_snapshot() -> tuple[float, float, float] | None:
    """(wall seconds, busy CPU-seconds of the whole machine, CPU-seconds of this process), from
    ``/proc/stat`` and ``os.times()``; None where ``/proc/stat`` is missing (not Linux)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice]: busy = all but idle, iowait
    # (guest time is already inside user).
    ticks = [int(x) for x in fields[:8]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    own = os.times()
    return time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), own.user + own.system


def other_cpu_cores(
    before: tuple[float, float, float] | None, after: tuple[float, float, float] | None
) -> float | None:
    """Cores kept busy by other processes between two :func:`cpu_snapshot` s (0 = idle machine).

    Our own threads (the simulator's workers included) are not counted; the value has the
    resolution of the kernel's tick (10 ms of CPU time over the interval).
    """
    if before is None or after is None or after[0] <= before[0]:
        return None
    busy, own = after[1] - before[1], after[2] - before[2]
    return round(max(0.0, busy - own) / (after[0] - before[0]), 3)


def wait_for_idle(max_wait_s: float, busy_cores: float, window_s: float = 1.0) -> float | None:
    """Waits until other processes keep at most ``busy_cores`` cores busy over a ``window_s``
    window, or ``max_wait_s`` has passed; returns the last window's :func:`other_cpu_cores`
    (None without ``/proc/stat``). On a shared machine this starts a configuration in a quiet
    spell instead of spending its retries inside someone else's job.

    >>> other = wait_for_idle(0.0, 0.25, window_s=0.01)
    >>> other is None or other >= 0.0
    True
    """
    deadline = time.perf_counter() + max_wait_s
    while True:
        before = cpu_snapshot()
        time.sleep(window_s)
        other = other_cpu_cores(before, cpu_snapshot())
        if other is None or other <= busy_cores or time.perf_counter() >= deadline:
            return other


def least_disturbed(
    measure: Callable[[], Any],
    disturbance: Callable[[Any], float | None],
    retries: int,
    busy_cores: float,
    what: str,
) -> tuple[Any, int]:
    """Runs ``measure()``, and again (up to ``retries`` more times) while other processes kept
    more than ``busy_cores`` cores busy during it (``disturbance(result)``, an
    :func:`other_cpu_cores`); returns (the least disturbed result, the attempts made).

    >>> least_disturbed(lambda: 0.5, lambda r: r, retries=0, busy_cores=0.25, what="a doctest")
    note: other processes used 0.5 cores during a doctest
    (0.5, 1)
    """
    attempts = []
    while True:
        attempts.append(measure())
        other = disturbance(attempts[-1])
        if (other or 0.0) <= busy_cores:
            break
        again = len(attempts) <= retries
        print(
            f"note: other processes used {other} cores during {what}"
            + ("; measuring again" if again else ""),
            flush=True,
        )
        if not again:
            break
    return min(attempts, key=lambda a: disturbance(a) or 0.0), len(attempts)


# -- reporting -------------------------------------------------------------------------------


def _si(x: float) -> str:
    """3 significant digits with a k/M/G suffix: 1234567 -> '1.23M'."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def format_table(records: Iterable[dict[str, Any]]) -> str:
    """A fixed-width table (markdown-compatible) of the measurement records among ``records``."""
    header = (
        "bench",
        "impl",
        "worlds",
        "agents",
        "threads",
        "steps",
        "median ms",
        "world-steps/s",
        "µs/call",
    )
    rows = [header]
    for r in records:
        if "median_s" not in r:
            continue
        us_per_call = 1e6 * r["median_s"] / r["steps"]
        rows.append(
            (
                r["bench"],
                r["impl"],
                str(r["num_worlds"]),
                str(r["num_agents"]),
                str(r["threads"]),
                str(r["steps"]),
                f"{1e3 * r['median_s']:.2f}",
                _si(r["world_steps_per_s"]),
                f"{us_per_call:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def print_table(records: Iterable[dict[str, Any]]) -> None:
    """Prints :func:`format_table` of ``records``."""
    print(format_table(records), flush=True)


# -- machine description ---------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _version(module: str) -> str | None:
    try:
        return getattr(importlib.import_module(module), "__version__", "unknown")
    except Exception:  # noqa: BLE001 (not installed, or broken: the description still gets written)
        return None


def machine_description() -> dict[str, Any]:
    """CPU model, usable cores, load, library versions and the date, as one JSON-able dict.

    The 1-minute load average shows whether something else competed for the cores.
    """
    return {
        "bench": "machine",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cores": _cores(),
        "memory_gb": _memory_gb(),
        "loadavg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "torch": _version("torch"),
        "envpool": _version("envpool"),
        "escape_room_env": _version("escape_room_env"),
        "escape_room_env_core_built": _core_built(),
        "git_commit": _git_commit(),
    }


def _core_built() -> str | None:
    """When the loaded native module was built (its file's mtime): tells re-runs apart."""
    spec = importlib.util.find_spec("escape_room_env._core")
    if spec is None or not spec.origin:
        return None
    mtime = datetime.datetime.fromtimestamp(Path(spec.origin).stat().st_mtime).astimezone()
    return mtime.isoformat(timespec="seconds")


def _git_commit() -> str | None:
    """``HEAD``'s short hash, with ``-dirty`` when tracked files have uncommitted changes."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


def _memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine_short_name(desc: dict[str, Any] | None = None) -> str:
    """A file-name-safe machine name, e.g. ``amd-epyc-2c`` (CPU model words + core count)."""
    desc = desc or machine_description()
    model = re.sub(r"\(.*?\)|@.*|\bprocessor\b|\bcpu\b|\d+-core", " ", desc["cpu_model"], flags=re.IGNORECASE)
    words = re.findall(r"[a-z0-9]+", model.lower())[:3] or ["cpu"]
    return "-".join(words) + f"-{desc['cores']}c"


def result_paths(suite: str, results_dir: Path, desc: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """``(<dir>/<date>-<machine>-<suite>.jsonl, the same .md)``."""
    desc = desc or machine_description()
    stem = f"{desc['date'][:10]}-{machine_short_name(desc)}-{suite}"
    return results_dir / f"{stem}.jsonl", results_dir / f"{stem}.md"


def steps_per_repeat(num_worlds: int, world_steps: int, lo: int, hi: int, override: int | None = None) -> int:
    """Calls per timed repeat so that one repeat does about ``world_steps`` world-steps, kept
    within [lo, hi]; ``override`` (a script's ``--steps``) wins when given.

    >>> steps_per_repeat(4096, 2**19, 8, 5000), steps_per_repeat(1, 2**19, 8, 5000), steps_per_repeat(1, 4, 8, 9, 3)
    (128, 5000, 3)
    """
    if override:
        return override
    return min(max(world_steps // num_worlds, lo), hi)


ACTION_POOL = 8  # distinct action arrays cycled through, drawn before timing


def action_pool(num_envs: int, seed: int = 0) -> list:
    """ACTION_POOL int64 (num_envs, 3) arrays, each component uniform over its choices."""
    from escape_room_env.bench import action_pool as draw

    return draw(num_envs, ACTION_POOL, seed)


def sim_run(sim, pool: list, read_obs: bool = False) -> Callable[[int], float]:
    """``run(n)``: n ``sim.step()`` calls, each timed alone after copying call i's actions in;
    with ``read_obs``, the observations are copied out after each call (untimed). The package's
    own loop (``escape_room_env.bench.sim_step_loop``, which ``escape-room bench`` times too)."""
    from escape_room_env.bench import sim_step_loop

    return sim_step_loop(sim, pool, read_obs)


class Tee:
    """Writes to several files at once (``--out`` and ``--save`` together)."""

    def __init__(self, files: list[TextIO]):
        self.files = files

    def write(self, text: str) -> None:
        for f in self.files:
            f.write(text)

    def flush(self) -> None:
        for f in self.files:
            f.flush()

    def close(self) -> None:
        for f in self.files:
            f.close()


def open_outputs(
    suite: str, out_path: Path | None, save: bool, results_dir: Path, desc: dict[str, Any]
) -> tuple[Tee | None, Path | None, Path | None]:
    """The JSON-lines sinks of a benchmark run: ``--out`` (appended) and, with ``--save``, the
    results file of ``suite``; each starts with the machine description, also printed.
    Returns (sink or None, .jsonl path, .md path) — the paths are None without ``--save``."""
    files: list[TextIO] = []
    jsonl_path = md_path = None
    if out_path:
        files.append(out_path.open("a"))
    if save:
        results_dir.mkdir(parents=True, exist_ok=True)
        jsonl_path, md_path = result_paths(suite, results_dir, desc)
        files.append(jsonl_path.open("w"))
    out = Tee(files) if files else None
    if out is not None:
        write_machine(out, desc)
    print(json.dumps(desc), flush=True)
    return out, jsonl_path, md_path


def write_machine(out: TextIO, desc: dict[str, Any] | None = None) -> dict[str, Any]:
    """Writes the machine description as the first JSON line of a result file; returns it."""
    desc = desc or machine_description()
    emit(desc, out, echo=False)
    return desc


def format_machine(desc: dict[str, Any]) -> str:
    """The machine description as a markdown bullet list, for result summaries."""
    return "\n".join(f"- {k}: {v}" for k, v in desc.items() if k != "bench")


if __name__ == "__main__":  # python benchmarks/harness.py: print this machine's description
    json.dump(machine_description(), sys.stdout, indent=2)
    print()
