"""What does a PufferLib user get? World-steps/s of the native ``EscapeRoomPufferEnv`` (alone and
behind ``pufferlib.vector``'s Serial and Multiprocessing backends) against PufferLib's generic
emulation of our single env (``GymnasiumPufferEnv`` over ``gym.make("EscapeRoom-v0")``, one world
per env) and our gymnasium ``EscapeRoomVectorEnv``, in one run (benchmarks/README.md says what
each peer times).

Needs: pip install --no-deps pufferlib-core && pip install psutil rich rich-argparse
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
import pufferlib
import pufferlib.emulation
import pufferlib.vector

import escape_room_env as er
from escape_room_env.bench import action_pool
from escape_room_env.puffer import EscapeRoomPufferEnv

WORLDS = (1, 16, 256, 4096)  # native, Serial, Multiprocessing, vector env
EMULATED_WORLDS = (1, 16, 64, 256)  # one Python env (and one simulator) per world
HEADLINE_WORLDS, WORKERS = 4096, 2
MP_IDLE_S = 0.6  # PufferLib's idle workers spin for 0.5 s after their last step before they sleep

NATIVE = "EscapeRoomPufferEnv"
SERIAL = "EscapeRoomPufferEnv in vector.Serial"
MULTI = f"EscapeRoomPufferEnv in vector.Multiprocessing ({WORKERS} workers x 1 thread)"
EMULATED = "GymnasiumPufferEnv(gym.make('EscapeRoom-v0')) in vector.Serial"
VECTOR, VECTOR_COPY = "EscapeRoomVectorEnv copy=False", "EscapeRoomVectorEnv copy=True"
LOOP = "the whole python loop of {}; actions cycle through 8 arrays drawn before timing"
FIELDS = {
    NATIVE: {"timed": LOOP.format("env.step(actions)"), "buffers": "the simulator's own"},
    SERIAL: {
        "timed": LOOP.format("vec.step(actions)"),
        "buffers": "PufferLib's, observations written by the core",
    },
    MULTI: {
        "timed": LOOP.format("vec.step(actions)")
        + f"; then {MP_IDLE_S} s untimed, for the workers to go idle",
        "buffers": "PufferLib's shared memory, observations written by the core",
        "note": "other_cpu_cores counts PufferLib's worker processes as other processes",
    },
    EMULATED: {
        "timed": LOOP.format("vec.step(actions)") + "; each world a gym.make env of num_threads=1",
        "buffers": "PufferLib's, one row per env",
    },
    VECTOR: {"timed": LOOP.format("env.step(actions)"), "autoreset": "NEXT_STEP", "copy": False},
    VECTOR_COPY: {"timed": LOOP.format("env.step(actions)"), "autoreset": "NEXT_STEP", "copy": True},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = harness.add_common_args(argparse.ArgumentParser(description=__doc__), repeats=7, retries=2)
    p.add_argument("--worlds", type=int, nargs="+", help=f"num_worlds of the native peers (default {WORLDS})")
    p.add_argument(
        "--emulated-worlds",
        type=int,
        nargs="+",
        help=f"num_envs of the emulation (default {EMULATED_WORLDS})",
    )
    p.add_argument(
        "--headline-worlds", type=int, help=f"num_worlds of the headline (default {HEADLINE_WORLDS})"
    )
    p.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="thread counts (default 2 1)")
    p.add_argument("--no-multiprocessing", action="store_true", help="leave the Multiprocessing peer out")
    args = p.parse_args(argv)
    quick = args.quick
    args.worlds = sorted(set(args.worlds or ((1, 16) if quick else WORLDS)))
    args.emulated_worlds = sorted(set(args.emulated_worlds or ((1, 4) if quick else EMULATED_WORLDS)))
    args.headline_worlds = args.headline_worlds or max(args.worlds)
    return args


def steps_for(num_worlds: int, args: argparse.Namespace, world_steps: int) -> int:
    return harness.steps_per_repeat(num_worlds, 2**11 if args.quick else world_steps, 8, 5000, args.steps)


def native(n: int, threads: int, stack) -> harness.Run:
    env = EscapeRoomPufferEnv(n, seed=0, num_threads=threads)
    stack.callback(env.close)
    env.reset(seed=0)
    return harness.loop_run(env.step, action_pool(n))


def serial(n: int, threads: int, stack) -> harness.Run:
    vec = pufferlib.vector.make(
        EscapeRoomPufferEnv,
        env_kwargs={"num_envs": n, "num_threads": threads},
        backend=pufferlib.vector.Serial,
    )
    stack.callback(vec.close)
    vec.reset(seed=0)
    return harness.loop_run(vec.step, action_pool(n))


def multiprocessing(n: int, stack) -> harness.Run:
    vec = pufferlib.vector.make(
        EscapeRoomPufferEnv,
        env_kwargs={"num_envs": n // WORKERS, "num_threads": 1},
        num_envs=WORKERS,
        num_workers=WORKERS,
        backend=pufferlib.vector.Multiprocessing,
        overwork=True,  # PufferLib refuses more workers than physical cores without it
    )
    stack.callback(vec.close)
    vec.reset(seed=0)
    loop = harness.loop_run(vec.step, action_pool(n))

    def run(steps: int) -> float:
        t0 = time.perf_counter()
        loop(steps)
        seconds = time.perf_counter() - t0
        time.sleep(MP_IDLE_S)  # so that its spinning workers do not slow the next peer down
        return seconds

    return run


def emulated(n: int, stack) -> harness.Run:
    def creator(buf=None, seed=0):
        return pufferlib.emulation.GymnasiumPufferEnv(
            env_creator=gymnasium.make,
            env_args=["EscapeRoom-v0"],
            env_kwargs={"num_threads": 1},
            buf=buf,
            seed=seed,
        )

    vec = pufferlib.vector.make(creator, num_envs=n, backend=pufferlib.vector.Serial)
    stack.callback(vec.close)
    vec.reset(seed=0)
    return harness.loop_run(vec.step, action_pool(n))


def vector(n: int, threads: int, copy: bool, stack) -> harness.Run:
    env = er.EscapeRoomVectorEnv(n, seed=0, num_threads=threads, copy=copy)
    stack.callback(env.close)
    env.reset(seed=0)
    return harness.loop_run(env.step, action_pool(n))


def sweep(suite: harness.Suite) -> None:
    """The native env, its Serial backend and the vector env, over worlds x threads; the native
    env in Multiprocessing (fewer calls a repeat: on an oversubscribed machine its busy-waiting
    processes take tens of ms a step); then the emulation, one world per env. The native env runs
    beside each in the same rounds."""
    args = suite.args
    for n in args.worlds:
        for threads in args.threads:

            def make(r: int, stack, n: int = n, t: int = threads) -> dict[str, harness.Run]:
                return {
                    NATIVE: native(n, t, stack),
                    SERIAL: serial(n, t, stack),
                    VECTOR: vector(n, t, False, stack),
                    VECTOR_COPY: vector(n, t, True, stack),
                }

            suite.measure(
                "puffer_step",
                make,
                steps=steps_for(n, args, 2**18),
                num_worlds=n,
                threads=threads,
                per_peer=FIELDS,
            )
    for n in () if args.no_multiprocessing else [n for n in args.worlds if n % WORKERS == 0]:

        def make_mp(r: int, stack, n: int = n) -> dict[str, harness.Run]:
            return {MULTI: multiprocessing(n, stack), NATIVE: native(n, WORKERS, stack)}

        steps = harness.steps_per_repeat(n, 2**11, 8, 64, args.steps)
        suite.measure(
            "puffer_multiprocessing_step",
            make_mp,
            steps=steps,
            num_worlds=n,
            threads=WORKERS,
            per_peer=FIELDS,
        )
    for n in args.emulated_worlds:

        def make_emulated(r: int, stack, n: int = n) -> dict[str, harness.Run]:
            return {EMULATED: emulated(n, stack), NATIVE: native(n, 1, stack)}

        suite.measure(
            "puffer_emulated_step",
            make_emulated,
            steps=steps_for(n, args, 2**13),
            num_worlds=n,
            threads=1,
            per_peer=FIELDS,
        )


def paired_ratio(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Median over rounds of a's world-steps/s over b's in the same round (one ``measure`` call)."""
    return statistics.median(
        (a["num_worlds"] * tb) / (b["num_worlds"] * ta) for ta, tb in zip(a["times_s"], b["times_s"])
    )


def headline(suite: harness.Suite) -> str:
    args, records, si = suite.args, suite.records, harness.si
    n = args.headline_worlds
    step = {
        (r["impl"], r["threads"]): r for r in records if r["bench"] == "puffer_step" and r["num_worlds"] == n
    }
    threads = max(
        (t for impl, t in step if impl == NATIVE),
        key=lambda t: step[NATIVE, t]["world_steps_per_s"],
        default=None,
    )
    emulated = {
        r["num_worlds"]: r for r in records if r["bench"] == "puffer_emulated_step" and r["impl"] == EMULATED
    }
    beside = {
        r["num_worlds"]: r for r in records if r["bench"] == "puffer_emulated_step" and r["impl"] == NATIVE
    }
    best_emulated = max(emulated.values(), key=lambda r: r["world_steps_per_s"], default=None)
    at = {impl: step.get((impl, threads)) for impl in (NATIVE, SERIAL, VECTOR, VECTOR_COPY)}
    mp = {
        r["impl"]: r for r in records if r["bench"] == "puffer_multiprocessing_step" and r["num_worlds"] == n
    }
    largest = max(emulated, default=None)
    summary = suite.emit(
        {
            "bench": "puffer_summary",
            "headline_worlds": n,
            "threads": threads,
            **{
                f"{key}_world_steps_per_s": at[impl] and at[impl]["world_steps_per_s"]
                for key, impl in (("native", NATIVE), ("serial", SERIAL))
            },
            "multiprocessing_world_steps_per_s": mp.get(MULTI) and mp[MULTI]["world_steps_per_s"],
            "paired_native_over_multiprocessing": mp.get(MULTI) and paired_ratio(mp[NATIVE], mp[MULTI]),
            "vector_copy_false_world_steps_per_s": at[VECTOR] and at[VECTOR]["world_steps_per_s"],
            "vector_copy_true_world_steps_per_s": at[VECTOR_COPY] and at[VECTOR_COPY]["world_steps_per_s"],
            **{
                f"paired_native_over_{key}": at[impl] and paired_ratio(at[NATIVE], at[impl])
                for key, impl in (
                    ("serial", SERIAL),
                    ("vector_copy_false", VECTOR),
                    ("vector_copy_true", VECTOR_COPY),
                )
            },
            "emulated_best_world_steps_per_s": best_emulated and best_emulated["world_steps_per_s"],
            "emulated_best_num_envs": best_emulated and best_emulated["num_worlds"],
            "emulated_largest_num_envs": largest,
            "paired_native_over_emulated_at_largest": largest
            and paired_ratio(beside[largest], emulated[largest]),
            "native_headline_over_emulated_best": at[NATIVE]
            and best_emulated
            and at[NATIVE]["world_steps_per_s"] / best_emulated["world_steps_per_s"],
            "other_cpu_cores_max": max((r.get("other_cpu_cores") or 0.0 for r in records), default=None),
        }
    )
    if at[NATIVE] is None:
        return f"no native measurement at {n} worlds"

    def x(v: float | None) -> str:
        return "n/a" if v is None else f"{v:,.0f} x" if v >= 100 else f"{v:.2f} x"

    s = summary
    lines = [
        (
            f"At {n} worlds, {threads} threads: EscapeRoomPufferEnv {si(s['native_world_steps_per_s'])} "
            f"world-steps/s; in vector.Serial {si(s['serial_world_steps_per_s'])} (native "
            f"{x(s['paired_native_over_serial'])} that, same rounds)"
        ),
        (
            f"in vector.Multiprocessing ({WORKERS} workers x 1 thread) {si(s['multiprocessing_world_steps_per_s'])} "
            f"(the native env at {WORKERS} threads {x(s['paired_native_over_multiprocessing'])} that, same rounds)"
        ),
        (
            f"EscapeRoomVectorEnv beside it: copy=False {si(s['vector_copy_false_world_steps_per_s'])} (native "
            f"{x(s['paired_native_over_vector_copy_false'])}), copy=True "
            f"{si(s['vector_copy_true_world_steps_per_s'])} (native {x(s['paired_native_over_vector_copy_true'])})"
        ),
        (
            f"PufferLib's emulation (GymnasiumPufferEnv, one world per env, Serial): best "
            f"{si(s['emulated_best_world_steps_per_s'])} at {s['emulated_best_num_envs']} envs; the native env "
            f"{x(s['paired_native_over_emulated_at_largest'])} that at {largest} worlds (1 thread, same rounds) "
            f"and {x(s['native_headline_over_emulated_best'])} its best at the headline size"
        ),
        f"other processes kept up to {s['other_cpu_cores_max']} cores busy during a configuration",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    suite = harness.Suite(parse_args(argv), "puffer", pufferlib=pufferlib.__version__)
    sweep(suite)
    suite.finish("PufferLib peers", headline(suite))


if __name__ == "__main__":
    main()
