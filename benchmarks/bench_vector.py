"""What does the gymnasium layer cost? ``EscapeRoomVectorEnv.step`` against ``SimManager.step``
at 4,096 worlds, and its extra cost per call extra(N) = a + b·N (benchmarks/README.md says how the
peers are made comparable and what each one times)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from gymnasium.vector import AutoresetMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

import escape_room_env as er
from escape_room_env.bench import action_pool, sim_step_loop

FIT_WORLDS = (1, 4, 16, 64, 256, 1024, 4096)
HEADLINE_WORLDS = 4096
MAX_EXTRA_PCT_COPY, MAX_A_US, MAX_B_NS = 10.0, 3.0, 2.0  # the acceptance targets

SIM, SIM_AA = "SimManager.step", "SimManager.step (A/A control)"
VEC, VEC_COPY = "EscapeRoomVectorEnv.step copy=False", "EscapeRoomVectorEnv.step copy=True"
SIM_OWN, VEC_OWN, VEC_COPY_OWN = (f"{name} own work" for name in (SIM, VEC, VEC_COPY))
VALIDATE = "core action validation (check_actions)"
SIM_TIMED = (
    "each sim.step() call alone; the same actions as the env's copied into action_tensor() before, untimed"
)
VEC_TIMED = (
    "each env.step(actions) call alone; int64 (N, 3) actions copied untimed into the passed buffer before"
)
OWN_TIMED = "each call minus the core call inside it (timed by a shim in the same call)"
TIMED = {
    SIM: SIM_TIMED,
    SIM_AA: SIM_TIMED,
    VEC: VEC_TIMED,
    VEC_COPY: VEC_TIMED,
    VALIDATE: "check_actions alone",
}
TIMED.update(dict.fromkeys((SIM_OWN, VEC_OWN, VEC_COPY_OWN), OWN_TIMED))
# extra_us_<key>: the peer's time per call minus the baseline's, paired round by round
PAIRS = {
    "copy_false": (SIM, VEC),
    "copy_true": (SIM, VEC_COPY),
    "control": (SIM, SIM_AA),
    "incall": (SIM_OWN, VEC_OWN),
    "incall_copy_true": (SIM_OWN, VEC_COPY_OWN),
}
FIT_KEYS = {
    "incall": f"{VEC} (in-call)",
    "copy_false": VEC,
    "incall_copy_true": f"{VEC_COPY} (in-call)",
    "copy_true": VEC_COPY,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = harness.add_common_args(argparse.ArgumentParser(description=__doc__), repeats=9, retries=2)
    p.add_argument(
        "--worlds", type=int, nargs="+", help=f"num_worlds of the fit, 1 thread (default {FIT_WORLDS})"
    )
    p.add_argument(
        "--headline-worlds", type=int, help=f"num_worlds of the comparison (default {HEADLINE_WORLDS})"
    )
    p.add_argument(
        "--threads", type=int, nargs="+", default=[2, 1], help="threads of the comparison (default 2 1)"
    )
    args = p.parse_args(argv)
    args.worlds = args.worlds or ((1, 4, 16) if args.quick else FIT_WORLDS)
    args.headline_worlds = args.headline_worlds or (256 if args.quick else HEADLINE_WORLDS)
    return args


# -- the peers ----------------------------------------------------------------------------------


def vec_run(env: er.EscapeRoomVectorEnv, pool: list[np.ndarray]) -> Callable[[int], float]:
    """``run(n)``: n ``env.step(actions)`` calls, each timed alone exactly like ``sim_step_loop``."""
    actions = np.empty_like(pool[0])
    step, copyto, clock = env.step, np.copyto, time.perf_counter

    def run(n: int) -> float:
        secs = 0.0
        for i in range(n):
            copyto(actions, pool[i % len(pool)])
            t0 = clock()
            step(actions)
            secs += clock() - t0
        return secs

    return run


def own_work(obj: Any, attr: str, run_of: Callable[[Any], Callable[[int], float]]) -> Callable[[int], float]:
    """``run(n)`` of ``run_of(obj)`` minus the time inside ``obj.<attr>``, the core call it makes
    (wrapped in a timing shim): each call's own work, measured in the very call, so that the
    step's milliseconds of noise cancel."""
    inner, core_call, clock = [0.0], getattr(obj, attr), time.perf_counter

    def shim(*args: Any) -> Any:
        t0 = clock()
        result = core_call(*args)
        inner[0] += clock() - t0
        return result

    setattr(obj, attr, shim)
    run = run_of(obj)

    def own(n: int) -> float:
        inner[0] = 0.0
        return run(n) - inner[0]

    return own


class _Core:
    """``sim._impl`` with a replaceable ``step``; everything else passes through."""

    def __init__(self, core: Any):
        self.step, self._core = core.step, core

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)


def validate_run(sim: er.SimManager, pool: list[np.ndarray], warm: er.SimManager) -> Callable[[int], float]:
    """``run(n)``: the core's validation pass alone (``check_actions``) on the actions a call gets,
    then the step, untimed. The pass is the env's work although the core call makes it, so the
    in-call extra adds it back. A call right after a step runs its code cold, as does the one core
    call of ``env.step`` (whose cold start the shim takes out), so the same call on a one-world
    simulator warms the code first: what is timed is the pass over the N rows."""
    actions, warm_actions = np.empty_like(pool[0]), np.zeros((1, 3), dtype=pool[0].dtype)
    check, warm_check, step, clock = (
        sim._impl.check_actions,
        warm._impl.check_actions,
        sim._impl.step_actions,
        time.perf_counter,
    )

    def run(n: int) -> float:
        secs = 0.0
        for i in range(n):
            np.copyto(actions, pool[i % len(pool)])
            warm_check(warm_actions)
            t0 = clock()
            check(actions)
            secs += clock() - t0
            step(actions)
        return secs

    return run


def measure(suite: harness.Suite, bench: str, n: int, threads: int, steps: int) -> dict[str, Any]:
    """The peers at one size, fresh every round, all reset to the same seed and fed the same
    actions; emits their records and the extra costs (the ``<bench>_extra`` record)."""
    pool, same = action_pool(n), []
    mode = AutoresetMode.NEXT_STEP

    def make(r: int, stack) -> dict[str, Callable[[int], float]]:
        def sim() -> er.SimManager:
            s = stack.enter_context(
                er.SimManager(num_worlds=n, rand_seed=0, num_threads=threads, autoreset_mode=mode)
            )
            s.reset_worlds(None, seeds=0)
            return s

        def env(copy: bool) -> er.EscapeRoomVectorEnv:
            e = er.EscapeRoomVectorEnv(
                num_envs=n, seed=0, num_threads=threads, copy=copy, autoreset_mode=mode
            )
            stack.callback(e.close)
            e.reset(seed=0)
            return e

        def own_sim(s: er.SimManager) -> Callable[[int], float]:
            s._impl = _Core(s._impl)
            return own_work(s._impl, "step", lambda core: sim_step_loop(s, pool))

        peers = {SIM: sim(), SIM_AA: sim(), VEC: env(False), VEC_COPY: env(True)}
        peers.update({SIM_OWN: sim(), VEC_OWN: env(False), VEC_COPY_OWN: env(True), VALIDATE: sim()})

        def same_trajectory() -> None:  # before the peers close (the stack unwinds last in, first out)
            hashes = [
                p.state_hashes() if isinstance(p, er.SimManager) else p.sim.state_hashes()
                for p in peers.values()
            ]
            same.append(all(np.array_equal(hashes[0], h) for h in hashes[1:]))

        stack.callback(same_trajectory)
        warm = stack.enter_context(er.SimManager(num_worlds=1, rand_seed=0, num_threads=1))
        return {
            SIM: sim_step_loop(peers[SIM], pool),
            SIM_AA: sim_step_loop(peers[SIM_AA], pool),
            VEC: vec_run(peers[VEC], pool),
            VEC_COPY: vec_run(peers[VEC_COPY], pool),
            SIM_OWN: own_sim(peers[SIM_OWN]),
            VEC_OWN: own_work(peers[VEC_OWN], "_step_actions", lambda e: vec_run(e, pool)),
            VEC_COPY_OWN: own_work(peers[VEC_COPY_OWN], "_step_actions", lambda e: vec_run(e, pool)),
            VALIDATE: validate_run(peers[VALIDATE], pool, warm),
        }

    per_peer = {name: {"timed": timed} for name, timed in TIMED.items()}
    records = suite.measure(
        bench,
        make,
        steps=steps,
        num_worlds=n,
        threads=threads,
        per_peer=per_peer,
        autoreset=mode.name,
    )
    times = {r["impl"]: r["times_s"] for r in records}
    for name in (VEC_OWN, VEC_COPY_OWN):  # the validation pass is the env's own work
        times[name] = [own + check for own, check in zip(times[name], times[VALIDATE])]
    sim_us = 1e6 * statistics.median(times[SIM]) / steps
    extra: dict[str, Any] = {
        "bench": {"vector_step": "vector_extra"}.get(bench, f"{bench}_extra"),
        "num_worlds": n,
        "threads": threads,
        "steps": steps,
    }
    extra["sim_us_per_call"] = sim_us
    extra["validation_us"] = 1e6 * statistics.median(times[VALIDATE]) / steps
    for key, (base, peer) in PAIRS.items():
        med, se = harness.paired_diff_us(times[base], times[peer], steps)
        extra.update(
            {f"extra_us_{key}": med, f"extra_se_us_{key}": se, f"extra_pct_{key}": 100 * med / sim_us}
        )
    extra.update(
        autoreset=mode.name, other_cpu_cores=records[0]["other_cpu_cores"], same_trajectory=all(same)
    )
    if not extra["same_trajectory"]:
        print(f"warning: peers diverged at {n} worlds: the comparison is not like for like")
    return suite.emit(extra)


def fit(extras: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """extra(N) = a + b·N, weighted by 1/u², u = max(standard error, 2 % of the value, 5 ns): the
    errors span three decades, and the 2 % floor keeps a few ultra-precise small-N points from
    deciding b alone. The envelope: the least a at b = target, and the least b at a = target, that
    keep every measured point under the line; chi²/dof >> 1 says extra(N) is not a straight line."""
    n = np.array([e["num_worlds"] for e in extras], dtype=float)
    y = np.array([e[f"extra_us_{key}"] for e in extras])
    u = np.maximum.reduce(
        [np.array([e[f"extra_se_us_{key}"] for e in extras]), 0.02 * np.abs(y), np.full_like(y, 0.005)]
    )
    f = harness.fit_line(n, y, u)
    return {
        "bench": "vector_overhead_fit",
        "impl": FIT_KEYS[key],
        "key": key,
        "threads": 1,
        "num_worlds": n.astype(int).tolist(),
        "extra_us": y.round(4).tolist(),
        "a_us": f["a"],
        "b_ns_per_env": 1e3 * f["b"],
        "a_se_us": f["a_se"],
        "b_se_ns_per_env": 1e3 * f["b_se"],
        "residual_us": np.round(f["residual"], 4).tolist(),
        "chi2_per_dof": f["chi2_per_dof"],
        "a_us_unweighted": f["a_unweighted"],
        "b_ns_per_env_unweighted": 1e3 * f["b_unweighted"],
        "envelope_a_us_at_target_b": float(np.max(y - MAX_B_NS * 1e-3 * n)),
        "envelope_b_ns_at_target_a": float(1e3 * np.max((y - MAX_A_US) / n)),
    }


def headline(suite: harness.Suite, extras: list[dict[str, Any]], fits: list[dict[str, Any]]) -> str:
    """The two acceptance numbers against their targets (also emitted as the summary)."""

    def by_threads(key: str) -> dict[int, float]:
        return {e["threads"]: e[key] for e in extras if e["bench"] == "vector_extra"}

    def text(values: dict[int, float]) -> str:
        return ", ".join(f"{t} threads {p:+.2f} %" for t, p in values.items()) or "n/a"

    pct = by_threads("extra_pct_copy_true")
    worst = max(pct.values(), default=None)
    incall = next((f for f in fits if f["key"] == "incall"), None)
    s = suite.emit(
        {
            "bench": "summary",
            "headline_worlds": suite.args.headline_worlds,
            "extra_pct_copy_true_by_threads": pct,
            "extra_pct_copy_false_by_threads": by_threads("extra_pct_copy_false"),
            "extra_pct_incall_copy_true_by_threads": by_threads("extra_pct_incall_copy_true"),
            "extra_pct_copy_true_worst": worst,
            "pass_copy_true": None if worst is None else worst <= MAX_EXTRA_PCT_COPY,
            "fit_a_us_copy_false": incall and incall["a_us"],
            "fit_b_ns_per_env_copy_false": incall and incall["b_ns_per_env"],
            "pass_copy_false_fit": incall
            and incall["a_us"] <= MAX_A_US
            and incall["b_ns_per_env"] <= MAX_B_NS,
            "all_same_trajectory": all(e["same_trajectory"] for e in extras),
            "other_cpu_cores_max": max((e["other_cpu_cores"] or 0.0 for e in extras), default=None),
        }
    )
    lines = [
        (
            f"[{harness.verdict(s['pass_copy_true'])}] EscapeRoomVectorEnv.step copy=True at {s['headline_worlds']} "
            f"worlds costs {text(pct)} over SimManager.step (target <= {MAX_EXTRA_PCT_COPY:g} %)"
        ),
        f"       in-call (the env's own work, the step's noise cancelled): {text(s['extra_pct_incall_copy_true_by_threads'])}",
        f"       copy=False end to end: {text(s['extra_pct_copy_false_by_threads'])}",
    ]
    for f in fits:
        mark = f"[{harness.verdict(s['pass_copy_false_fit'])}]" if f is incall else "[info]"
        target = f" (target a <= {MAX_A_US:g} µs, b <= {MAX_B_NS:g} ns/env)" if f is incall else ""
        lines.append(
            f"{mark} {f['impl']} extra over SimManager.step: a = {f['a_us']:.3f} ± {f['a_se_us']:.3f} µs, "
            f"b = {f['b_ns_per_env']:.3f} ± {f['b_se_ns_per_env']:.3f} ns/env{target}; chi²/dof {f['chi2_per_dof']:.1f}, "
            f"envelope a >= {f['envelope_a_us_at_target_b']:.2f} µs at b = {MAX_B_NS:g}, b >= "
            f"{f['envelope_b_ns_at_target_a']:.2f} ns/env at a = {MAX_A_US:g}"
        )
    lines.append(
        f"other processes kept up to {s['other_cpu_cores_max']} cores busy during a configuration; "
        f"all peers simulated the same trajectories: {s['all_same_trajectory']}"
    )
    return "\n".join(lines)


def extras_table(extras: list[dict[str, Any]]) -> str:
    """The extra costs per configuration, µs per call ± standard error (% of SimManager.step)."""

    def cell(key: str) -> Callable[[dict[str, Any]], str]:
        return lambda e: (
            f"{e[f'extra_us_{key}']:.3f} ± {e[f'extra_se_us_{key}']:.3f} ({e[f'extra_pct_{key}']:+.2f} %)"
        )

    columns = {
        "bench": lambda e: e["bench"],
        "worlds": lambda e: e["num_worlds"],
        "threads": lambda e: e["threads"],
    }
    columns["sim µs/call"] = lambda e: f"{e['sim_us_per_call']:.2f}"
    columns.update({key: cell(key) for key in PAIRS})
    columns["other cores"] = lambda e: e["other_cpu_cores"]
    return harness.table(extras, columns)


def main(argv: list[str] | None = None) -> None:
    suite = harness.Suite(parse_args(argv), "vector")
    args = suite.args
    n = args.headline_worlds
    headline_steps = harness.steps_per_repeat(n, 2**12 if args.quick else 2**19, 8, 5000, args.steps)
    extras = [measure(suite, "vector_step", n, threads, headline_steps) for threads in args.threads]
    for n in args.worlds:
        steps = harness.steps_per_repeat(
            n, 2**11 if args.quick else 2**18, 16 if args.quick else 64, 5000, args.steps
        )
        extras.append(measure(suite, "vector_overhead", n, 1, steps))
    fitted = [e for e in extras if e["bench"] == "vector_overhead_extra"]
    fits = [suite.emit(fit(fitted, key)) for key in FIT_KEYS] if len(fitted) > 1 else []
    suite.finish(
        "Vector env benchmark",
        headline(suite, extras, fits),
        "## Extra cost per call (µs ± standard error; % of `SimManager.step`)\n\n" + extras_table(extras),
    )


if __name__ == "__main__":
    main()
