"""The one harness of ``benchmarks/`` (SPEC §9; what each script measures is in README.md).

A script adds its options to :func:`add_common_args`, opens a :class:`Suite`, times its peers
with :meth:`Suite.measure` (warm-up, then the median of >= 5 repeats, one JSON line each) and
ends with :meth:`Suite.finish` (the table, the headline and, with ``--save``, the results).

>>> import argparse
>>> args = add_common_args(argparse.ArgumentParser()).parse_args([])
>>> suite = Suite(args, "demo", echo=False)
>>> (r,) = suite.measure("demo", {"sleep": lambda n: 0.001 * n}, steps=10, num_worlds=4, threads=1)
>>> r["median_s"], r["world_steps_per_s"], r["repeats"]
(0.01, 4000.0, 5)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import importlib.util
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MIN_REPEATS = 5
#: The fields every measurement line carries, in this order (extras come after them).
RESULT_KEYS = ("bench", "impl", "num_worlds", "num_agents", "threads", "steps", "median_s")
RESULT_KEYS += ("world_steps_per_s", "agent_steps_per_s", "repeats")

Run = Callable[[int], Optional[float]]  # run(n) does n steps; it may return the seconds it timed
Make = Callable[[int, contextlib.ExitStack], dict[str, Run]]  # round r's fresh peers


def _repeats(text: str) -> int:
    if int(text) < MIN_REPEATS:
        raise argparse.ArgumentTypeError(f"must be >= {MIN_REPEATS} (SPEC §9)")
    return int(text)


def add_common_args(
    p: argparse.ArgumentParser, repeats: int = MIN_REPEATS, retries: int = 0, wait_idle: float = 0.0
) -> argparse.ArgumentParser:
    """The options every script has; ``--quick`` (a seconds-long smoke run) zeroes the retries."""
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    p.add_argument("--repeats", type=_repeats, default=repeats, help=f"timed repeats (default {repeats})")
    p.add_argument("--steps", type=int, help="steps per repeat of every configuration (default: by size)")
    p.add_argument("--out", type=Path, help="append the JSON lines to this file")
    p.add_argument(
        "--save", action="store_true", help="write <results-dir>/<date>-<machine>-<suite>.jsonl/.md"
    )
    p.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--note", default="", help="a paragraph for the top of the saved .md")
    p.add_argument("--retries", type=int, default=retries, help="re-measure a disturbed configuration")
    p.add_argument("--busy-cores", type=float, default=0.25, help="other processes' load that disturbs")
    p.add_argument("--wait-idle", type=float, default=wait_idle, help="seconds to wait for a quiet spell")
    return p


def steps_per_repeat(num_worlds: int, world_steps: int, lo: int, hi: int, override: int | None = None) -> int:
    """Calls per repeat doing about ``world_steps`` world-steps, within [lo, hi]; ``override`` wins.

    >>> steps_per_repeat(4096, 2**19, 8, 5000), steps_per_repeat(1, 2**19, 8, 5000), steps_per_repeat(1, 4, 8, 9, 3)
    (128, 5000, 3)
    """
    return override or min(max(world_steps // num_worlds, lo), hi)


def record(bench: str, impl: str, times: list[float], *, steps: int, num_worlds: int, threads: int, **extra):
    """One configuration's JSON record from its repeat times (seconds for ``steps`` steps each,
    kept as ``times_s`` in round order: records of one :meth:`Suite.measure` pair up by index)."""
    median_s, num_agents = statistics.median(times), extra.pop("num_agents", 1)
    rate = steps * num_worlds / median_s
    values = (
        bench,
        impl,
        num_worlds,
        num_agents,
        threads,
        steps,
        median_s,
        rate,
        rate * num_agents,
        len(times),
    )
    return {**dict(zip(RESULT_KEYS, values)), **extra, "times_s": times}


class Suite:
    """One benchmark run: its machine description, its records and its result files."""

    def __init__(self, args: argparse.Namespace, name: str, echo: bool = True, **machine: Any):
        if args.quick:
            args.retries, args.wait_idle = 0, 0.0
        self.args, self.name, self.echo = args, name, echo
        self.machine = {**machine_description(), **machine}
        self.records: list[dict[str, Any]] = []
        self.sinks = [args.out.open("a")] if args.out else []
        self.jsonl = None
        if args.save:
            args.results_dir.mkdir(parents=True, exist_ok=True)
            stem = f"{self.machine['date'][:10]}-{machine_short_name(self.machine)}-{name}"
            self.jsonl = args.results_dir / f"{stem}.jsonl"
            self.sinks.append(self.jsonl.open("w"))
        self.emit(self.machine)

    def emit(self, rec: dict[str, Any]) -> dict[str, Any]:
        """Prints ``rec`` as a JSON line and writes it to the result files at once (a run cut
        short keeps what it measured)."""
        line = json.dumps(rec)
        if self.echo:
            print(line, flush=True)
        for f in self.sinks:
            f.write(line + "\n")
            f.flush()
        if rec is not self.machine:
            self.records.append(rec)
        return rec

    def measure(
        self,
        bench: str,
        peers: dict[str, Run] | Make,
        *,
        steps: int,
        warmup: int | None = None,
        repeats: int | None = None,
        per_peer: dict[str, dict[str, Any]] | None = None,
        **fields: Any,
    ) -> list[dict[str, Any]]:
        """Times ``run(steps)`` of every peer in ``repeats`` (>= 5) rounds and emits one record each.

        ``peers`` is ``{impl: run}``, warmed up once by an untimed ``run(warmup)`` (default
        ``steps``), or ``make(r, stack)``, which builds round r's fresh peers (entered into the
        ExitStack, closed after the round) so that repeat r of two peers pairs up and a slow drift
        or one instance's luck with memory placement hits all alike; each round warms its peers up
        (default ``steps // 5``) and times them in an order rotated by r. A configuration during
        which other processes kept more than ``--busy-cores`` cores busy is measured again
        (``--retries``), each attempt after waiting up to ``--wait-idle`` s for a quiet spell; the
        least disturbed is kept. ``fields`` (num_worlds, threads, extras) go into every record,
        ``per_peer[impl]`` into one (its ``bench`` too).
        """
        args, fresh = self.args, callable(peers)
        if warmup is None:  # fresh peers: a fifth (first touch of their buffers); else a whole repeat
            warmup = max(2, steps // 5) if fresh else steps
        attempts = []
        while True:
            if args.wait_idle > 0:
                wait_for_idle(args.wait_idle, args.busy_cores)
            before = cpu_snapshot()
            times = _rounds(peers, steps, warmup, repeats or args.repeats)
            attempts.append((other_cpu_cores(before, cpu_snapshot()), times))
            other = attempts[-1][0] or 0.0
            if other <= args.busy_cores or len(attempts) > args.retries:
                break
            where = f"{bench} at {fields.get('num_worlds')} worlds, {fields.get('threads')} threads"
            print(f"note: other processes used {other} cores during {where}; measuring again", flush=True)
        other, times = min(attempts, key=lambda a: a[0] or 0.0)
        common = {**fields, "warmup_steps": warmup, "other_cpu_cores": other, "attempts": len(attempts)}
        records = []
        for name, t in times.items():
            own = {**common, **(per_peer or {}).get(name, {})}
            records.append(self.emit(record(own.pop("bench", bench), name, t, steps=steps, **own)))
        return records

    def finish(self, title: str, headline: str, *sections: str) -> None:
        """Prints the table of every measurement and the headline; with ``--save`` writes the .md
        (title, re-run command, machine, headline, ``sections``, table) beside the JSON lines."""
        results = table([r for r in self.records if "median_s" in r])
        if self.echo:
            print(f"\n{results}\n\n{headline}", flush=True)
        for f in self.sinks:
            f.close()
        if self.jsonl is None:
            return
        desc = self.machine
        parts = [
            f"# {title}, {desc['date'][:10]}, {machine_short_name(desc)}",
            *([self.args.note] if self.args.note else []),
            f"Re-run: `{rerun_command()}`. Raw JSON lines: `{self.jsonl.name}`.",
            "## Machine\n\n" + "\n".join(f"- {k}: {v}" for k, v in desc.items() if k != "bench"),
            f"## Headline\n\n```\n{headline}\n```",
            *sections,
            "## Results\n\nµs/call = median_s / steps; what each timer holds: `timed` in the JSON lines.\n\n"
            + results,
        ]
        md = self.jsonl.with_suffix(".md")
        md.write_text("\n\n".join(parts) + "\n")
        print(f"\nsaved {self.jsonl} and {md}", flush=True)


def _rounds(peers: dict[str, Run] | Make, steps: int, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of each peer's ``run(steps)`` in each round (see :meth:`Suite.measure`)."""
    fresh, times = callable(peers), {}
    for r in range(repeats):
        with contextlib.ExitStack() as stack:
            runs = peers(r, stack) if fresh else peers
            names = list(runs)
            for name in names if fresh or r == 0 else ():
                runs[name](warmup)
            for k in range(len(names)):
                name = names[(k + r) % len(names)]
                t0 = time.perf_counter()
                timed = runs[name](steps)
                times.setdefault(name, []).append(time.perf_counter() - t0 if timed is None else timed)
            del runs  # before the next round builds its peers
    return times


def rerun_command() -> str:
    """This script's command line, without the options that only say where output goes."""
    argv, kept = sys.argv[1:], []
    while argv:
        arg = argv.pop(0)
        if arg in ("--out", "--results-dir", "--note"):
            argv = argv[1:]
        elif not arg.startswith(("--out=", "--results-dir=", "--note=")):
            kept.append(arg)
    return shlex.join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *kept])


# -- statistics ---------------------------------------------------------------------------------


def paired_diff_us(base: list[float], times: list[float], steps: int) -> tuple[float, float]:
    """(median, standard error) over paired repeats of the per-call difference ``times - base``,
    in µs; the standard error of a median is about 1.25 sigma / sqrt(R), sigma from the MAD.

    >>> paired_diff_us([1.0, 1.0, 1.0, 1.0, 1.0], [1.5, 1.25, 1.5, 2.0, 1.5], steps=2)
    (250000.0, 0.0)
    """
    diffs = [1e6 * (t - b) / steps for b, t in zip(base, times)]
    med = statistics.median(diffs)
    mad = statistics.median(abs(d - med) for d in diffs)
    return med, 1.2533 * 1.4826 * mad / len(diffs) ** 0.5


def fit_line(x: list[float], y: list[float], u: list[float]) -> dict[str, Any]:
    """y = a + b·x by least squares weighted by 1/u², with standard errors (scaled by
    chi²/dof when it exceeds 1), the residuals and the unweighted fit beside it.

    >>> f = fit_line([1, 2, 4], [3.0, 5.0, 9.0], [1, 1, 1])
    >>> round(f["a"], 6), round(f["b"], 6), round(f["a_unweighted"], 6)
    (1.0, 2.0, 1.0)
    """
    x, y, w = np.asarray(x, float), np.asarray(y, float), 1 / np.asarray(u, float)
    design = np.stack([np.ones_like(x), x], axis=1)
    (a, b), *_ = np.linalg.lstsq(design * w[:, None], y * w, rcond=None)
    residual = y - (a + b * x)
    chi2 = float(np.sum((residual * w) ** 2) / max(len(x) - 2, 1))
    cov = np.linalg.pinv(design.T @ (design * (w**2)[:, None])) * max(chi2, 1.0)
    (a_ols, b_ols), *_ = np.linalg.lstsq(design, y, rcond=None)
    return {
        "a": float(a),
        "b": float(b),
        "a_se": float(np.sqrt(cov[0, 0])),
        "b_se": float(np.sqrt(cov[1, 1])),
        "chi2_per_dof": chi2,
        "residual": residual.tolist(),
        "a_unweighted": float(a_ols),
        "b_unweighted": float(b_ols),
    }


def per_call_fit(records: list[dict[str, Any]], bench: str) -> dict[str, Any]:
    """t_call = a + b·num_worlds over ``records`` (µs), weighted by 1/t (relative residuals: an
    unweighted fit lets the largest point decide the intercept); bench_core and bench_peers."""
    n = [r["num_worlds"] for r in records]
    t = [1e6 * r["median_s"] / r["steps"] for r in records]
    fit = fit_line(n, t, t)
    return {
        "bench": bench,
        "impl": records[0]["impl"],
        "threads": records[0]["threads"],
        "num_worlds": n,
        "us_per_call": [round(v, 4) for v in t],
        "a_us_per_call": fit["a"],
        "b_us_per_world_step": fit["b"],
        "max_rel_residual": max(abs(r / v) for r, v in zip(fit["residual"], t)),
        "a_us_per_call_unweighted": fit["a_unweighted"],
        "b_us_per_world_step_unweighted": fit["b_unweighted"],
    }


# -- other load on the machine ------------------------------------------------------------------


#: Processes that work for this one (a benchmark's worker processes): their CPU counts as ours.
HELPER_PIDS: list[int] = []


def _helper_cpu_seconds() -> float:
    total = 0
    for pid in HELPER_PIDS:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def cpu_snapshot() -> tuple[float, float, float] | None:
    """(wall s, busy CPU-s of the machine, CPU-s of this process, its finished children and its
    HELPER_PIDS); None without ``/proc/stat``."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except OSError:
        return None
    own = os.times()
    busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait (guest time is inside user)
    mine = own.user + own.system + own.children_user + own.children_system  # children: e.g. headless runs
    return time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), mine + _helper_cpu_seconds()


def other_cpu_cores(before, after) -> float | None:
    """Cores other processes kept busy between two :func:`cpu_snapshot` s (ours not counted)."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    return round(max(0.0, (after[1] - before[1]) - (after[2] - before[2])) / (after[0] - before[0]), 3)


def wait_for_idle(max_wait_s: float, busy_cores: float, window_s: float = 1.0) -> float | None:
    """Waits until other processes use at most ``busy_cores`` over a window, or ``max_wait_s``."""
    deadline = time.perf_counter() + max_wait_s
    while True:
        before = cpu_snapshot()
        time.sleep(window_s)
        other = other_cpu_cores(before, cpu_snapshot())
        if other is None or other <= busy_cores or time.perf_counter() >= deadline:
            return other


# -- peers and tools shared by several scripts --------------------------------------------------


def loop_run(step: Callable[[Any], Any], pool: list) -> Run:
    """``run(n)``: a bare Python loop of n ``step(actions)``, actions cycled from ``pool``."""

    size = len(pool)

    def run(n: int) -> None:
        for i in range(n):
            step(pool[i % size])

    return run


def import_envpool() -> Any:
    """envpool, or None with a note (its peers are then skipped)."""
    try:
        import envpool
    except ImportError as e:
        print(f"note: envpool is not importable ({e}); its peers are skipped (pip install envpool)")
        return None
    return envpool


def cartpole(envpool: Any, num_envs: int, batch_size: int, threads: int, stack: contextlib.ExitStack) -> Run:
    """EnvPool CartPole-v1 as a peer: ``env.step(actions)`` when batch_size == num_envs (sync),
    else ``recv``/``send`` (async); actions are 8 random 0/1 arrays drawn before timing."""
    import warnings

    pool = list(np.random.default_rng(0).integers(0, 2, size=(8, batch_size), dtype=np.int32))
    with warnings.catch_warnings():  # gymnasium's Box float64 -> float32 notice
        warnings.simplefilter("ignore")
        env = envpool.make_gymnasium(
            "CartPole-v1", num_envs=num_envs, batch_size=batch_size, num_threads=threads
        )
        env.observation_space  # noqa: B018 (built, and warned about, on first use: here)
    stack.callback(env.close)
    if batch_size == num_envs:
        env.reset()
        return loop_run(env.step, pool)
    env.async_reset()

    def run(n: int) -> None:
        for i in range(n):
            env.send(pool[i % len(pool)], env.recv()[-1]["env_id"])

    return run


def find_headless() -> Path | None:
    """The C++ ``headless`` tool installed with the loaded ``_core`` (it runs the same code as the
    Python numbers), else the newest Release build in ``build/*/``."""
    core = importlib.util.find_spec("escape_room_env._core")
    installed = Path(core.origin).parent / "bin" / "headless" if core and core.origin else None
    if installed is not None and installed.is_file():
        return installed
    builds = [
        p
        for p in REPO.glob("build/*/headless")
        if "CMAKE_BUILD_TYPE:STRING=Release\n" in _read(p.parent / "CMakeCache.txt")
    ]
    return max(builds, key=lambda p: p.stat().st_mtime, default=None)


def _read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def run_headless(path: Path, *flags: Any) -> list[float]:
    """Seconds of each repeat the tool reports (its JSON lines); raises with its stderr on failure."""
    cmd = [str(path), *map(str, flags)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr.strip() or proc.stdout.strip())[-300:])
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return [line["seconds"] for line in lines if line.get("bench") == "headless"]


# -- reporting ----------------------------------------------------------------------------------


def si(x: float | None) -> str:
    """3 significant digits with a k/M/G suffix: 1234567 -> '1.23M'."""
    if x is None:
        return "n/a"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


COLUMNS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "bench": lambda r: r["bench"],
    "impl": lambda r: r["impl"],
    "worlds": lambda r: r["num_worlds"],
    "agents": lambda r: r["num_agents"],
    "threads": lambda r: r["threads"],
    "steps": lambda r: r["steps"],
    "median ms": lambda r: f"{1e3 * r['median_s']:.2f}",
    "world-steps/s": lambda r: si(r["world_steps_per_s"]),
    "µs/call": lambda r: f"{1e6 * r['median_s'] / r['steps']:.2f}",
}


def table(rows: list[dict[str, Any]], columns: dict[str, Callable[[dict[str, Any]], Any]] = COLUMNS) -> str:
    """A markdown table of ``rows``, one column per ``{header: cell function}``."""
    cells = [list(columns)] + [[str(f(r)) for f in columns.values()] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else "PASS" if ok else "FAIL"


# -- machine description ------------------------------------------------------------------------


def machine_description() -> dict[str, Any]:
    """CPU, usable cores, memory, load (something else on the cores skews timings), library
    versions, when the native module was built, the commit and the date."""
    cpu = re.search(r"^model name\s*:\s*(.+)$", _read(Path("/proc/cpuinfo")), re.MULTILINE)
    core = importlib.util.find_spec("escape_room_env._core")
    built = (
        datetime.datetime.fromtimestamp(Path(core.origin).stat().st_mtime) if core and core.origin else None
    )
    return {
        "bench": "machine",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": cpu.group(1).strip() if cpu else platform.processor() or "unknown",
        "cores": usable_cores(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "loadavg_1min": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{m: _version(m) for m in ("numpy", "torch", "envpool", "escape_room_env")},
        "escape_room_env_core_built": built and built.astimezone().isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
    }


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _version(module: str) -> str | None:
    try:
        return getattr(importlib.import_module(module), "__version__", "unknown")
    except Exception:  # noqa: BLE001 (missing or broken: the description is written all the same)
        return None


def _git_commit() -> str | None:
    """``HEAD``'s short hash, with ``-dirty`` when tracked files have uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
        ).stdout

    try:
        dirty = git("status", "--porcelain", "--untracked-files=no").strip()
        return git("rev-parse", "--short", "HEAD").strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_short_name(desc: dict[str, Any]) -> str:
    """A file-name-safe machine name, e.g. ``amd-epyc-2c`` (CPU model words + core count)."""
    model = re.sub(r"\(.*?\)|@.*|\bprocessor\b|\bcpu\b|\d+-core", " ", desc["cpu_model"], flags=re.IGNORECASE)
    return "-".join(re.findall(r"[a-z0-9]+", model.lower())[:3] or ["cpu"]) + f"-{desc['cores']}c"


if __name__ == "__main__":  # python benchmarks/harness.py: this machine's description
    print(json.dumps(machine_description(), indent=2))
