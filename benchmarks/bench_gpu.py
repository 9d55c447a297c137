"""The CUDA backend's throughput on one GPU, with the CPU backend and Madrona beside it (SPEC §9).

Re-run the full benchmark (about 2 minutes on an H100, estimated) and save the results as
``benchmarks/results/<YYYY-MM-DD>-<machine>-<gpu>-gpu.jsonl`` (raw JSON lines, machine and GPU
first) and ``.md`` (machine, headlines, tables)::

    python benchmarks/bench_gpu.py --save

Without a usable NVIDIA GPU it prints why and exits 0, measuring nothing. ``--quick`` is a
seconds-long smoke run (``tests/test_bench_gpu.py``). ``benchmarks/gpu_session.sh`` builds,
tests and runs this on a GPU machine in one command.

Every configuration: one agent per world, full observations, SAME_STEP autoreset, rand_seed 0;
one untimed warm-up repeat, then the median of ``--repeats`` (>= 5) timed repeats. New random
actions are written into ``action_tensor()`` before each repeat, untimed (a repeat's steps use
the same actions; the worlds still move and end episodes).

How a step reaches the GPU. The core launches steps as one CUDA graph (the step kernel, then the
renderer's kernel when it is on); it has no path that launches the kernels one by one, so the
"graph against plain launches" question is answered here by the ways of issuing those graphs:

- ``gpu_step``: a Python loop of ``sim.step()``, one step per call: one graph launch and one host
  wait per call. What a training loop that reads every step's tensors on the host pays.
- ``gpu_step_stream``: a Python loop of ``sim.step(stream=s)`` on a torch stream: one graph launch
  per call, no host wait until ``s.synchronize()`` after the last. What a loop that keeps its
  policy on the GPU pays (needs torch).
- ``gpu_step_nstep``: one ``sim.step(nstep=k)``: the step kernel loops on the device, 64 steps per
  launch, one host wait at the end.
- ``headless_gpu``: the C++ ``headless --gpu`` tool (no Python): a host copy of new actions, then
  ``Manager::step()`` and a wait, timed per step without the copy.

The other benches:

- ``gpu_policy``, ``gpu_policy_stream``, ``gpu_policy_only``: a torch policy in the loop. Each
  step ``escape_room_env.ppo.Agent`` (actor and critic MLPs, 2 x ``--hidden`` tanh) reads the
  observations through the zero-copy ``observation_tensor().to_torch()``, samples actions
  (``get_action_and_value``, what a PPO rollout runs) and copies them into
  ``action_tensor().to_torch()``, then ``sim.step()`` (host waits each step), or the whole loop on
  one torch stream with ``sim.step(stream=s)``, or no step at all (the policy's own cost).
- ``gpu_render`` / ``gpu_render_off``: a Python loop of ``sim.step()`` with the batch renderer on
  (64 x 64 RGB + depth) and off; ``frames_per_s`` = agent-steps/s with it on,
  ``render_ms_per_step`` the difference. (One step per call: ``step(nstep=k)`` renders once per
  launch, after its last step, since only the last images can be read.)
- ``cpu_step`` (peer): the CPU backend on every core, bench_core's loop (new actions copied in
  before every ``step()``, untimed), for the sizes up to ``--cpu-max-worlds``.
- ``madrona_reference``: 6.6 M world-steps/s at 8,192 worlds on an RTX 4090, the number
  Madrona's escape room fork reports, as quoted in the issue; not measured here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from bench_core import find_headless

import escape_room_env as er
from escape_room_env import _core

REPO = Path(__file__).resolve().parent.parent
FULL_WORLDS = (1024, 4096, 8192, 16384, 65536, 262144, 1048576)
POLICY_WORLDS = (8192, 65536, 262144)
RENDER_WORLDS = (16384, 65536)
QUICK_WORLDS = (256, 1024)
HEADLESS_MAX_WORLDS = 262144  # the tool draws 64 action arrays up front: 768 MB at 2**20 worlds
TARGET_WORLD_STEPS = 200e6  # at >= 262,144 worlds through SimManager.step() (issue 5)
TARGET_WORLDS = 262144
TARGET_FRAMES = 2e6  # 64 x 64 RGB + depth at >= 65,536 worlds (issue 6)
TARGET_RENDER_WORLDS = 65536
MADRONA = {"num_worlds": 8192, "world_steps_per_s": 6.6e6, "gpu": "RTX 4090"}
ACTIONS = "new random actions written into action_tensor() before each repeat, untimed"

# bench -> (impl, what is timed)
STEP_BENCHES = {
    "gpu_step": (
        "SimManager.step(), one step per call, host waits each call",
        f"python loop of sim.step(); {ACTIONS}",
    ),
    "gpu_step_stream": (
        "SimManager.step(stream=s), one step per call, one host wait at the end",
        f"python loop of sim.step(stream=s) on a torch stream, then s.synchronize(); {ACTIONS}",
    ),
    "gpu_step_nstep": (
        "SimManager.step(nstep=k): device loop, 64 steps per graph launch",
        f"one sim.step(nstep=steps) call; {ACTIONS}",
    ),
}
POLICY_BENCHES = {
    "gpu_policy": ("policy + SimManager.step(), host waits each step", "sim.step()"),
    "gpu_policy_stream": (
        "policy + SimManager.step(stream=s), one host wait at the end",
        "sim.step(stream=s), all on torch stream s; s.synchronize() after the last",
    ),
    "gpu_policy_only": ("policy + action copy, no step", "no step; torch.cuda.synchronize() after the last"),
}
POLICY_TIMED = "python loop: Agent.get_action_and_value(observation_tensor().to_torch()) -> copy into action_tensor().to_torch() -> "
CPU_TIMED = "sim.step() calls only; new random actions copied into action_tensor() before each call, untimed"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="short smoke run (seconds)")
    p.add_argument(
        "--worlds", type=int, nargs="+", help=f"num_worlds of the step benches (full: {FULL_WORLDS})"
    )
    p.add_argument(
        "--policy-worlds", type=int, nargs="+", help=f"num_worlds of the policy loop ({POLICY_WORLDS})"
    )
    p.add_argument(
        "--render-worlds", type=int, nargs="+", help=f"num_worlds of the renderer ({RENDER_WORLDS})"
    )
    p.add_argument("--render-size", type=int, default=None, help="square image size (default 64; quick 16)")
    p.add_argument("--hidden", type=int, default=64, help="hidden units of the policy's MLPs")
    p.add_argument("--cpu-max-worlds", type=int, default=65536, help="largest num_worlds of the CPU peer")
    p.add_argument("--repeats", type=int, default=harness.MIN_REPEATS + 2, help="timed repeats, >= 5")
    p.add_argument("--steps", type=int, help="steps per repeat for every bench (default: by size)")
    p.add_argument("--gpu-id", type=int, default=0)
    p.add_argument(
        "--headless", type=Path, help="path of the headless tool (default: bench_core.find_headless)"
    )
    p.add_argument("--no-headless", action="store_true", help="skip the C++ headless tool")
    p.add_argument("--no-policy", action="store_true", help="skip the policy loop")
    p.add_argument("--no-render", action="store_true", help="skip the renderer")
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU peer")
    p.add_argument("--out", type=Path, help="append the JSON lines to this file")
    p.add_argument(
        "--save", action="store_true", help="write <results-dir>/<date>-<machine>-<gpu>-gpu.{jsonl,md}"
    )
    p.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--note", default="", help="a line for the top of the saved .md summary")
    args = p.parse_args(argv)
    quick = args.quick
    args.worlds = args.worlds or list(QUICK_WORLDS if quick else FULL_WORLDS)
    args.policy_worlds = args.policy_worlds or ([QUICK_WORLDS[0]] if quick else list(POLICY_WORLDS))
    args.render_worlds = args.render_worlds or ([QUICK_WORLDS[0]] if quick else list(RENDER_WORLDS))
    args.render_size = args.render_size or (16 if quick else 64)
    return args


# -- the GPU --------------------------------------------------------------------------------------


def why_no_gpu() -> str | None:
    """None when a CUDA manager can run here, else the reason in a few words."""
    if er.cuda_available():
        return None
    if not _core.CUDA_BUILT:
        return "this build of escape_room_env has no CUDA backend (built without nvcc or with ESCAPE_ROOM_CUDA=OFF)"
    return "no NVIDIA GPU with a working driver was found (escape_room_env.cuda_available() is False)"


def nvidia_smi() -> list[str]:
    """``nvidia-smi --query-gpu=name,driver_version,memory.total`` lines, one per GPU ([] without it)."""
    try:
        proc = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def gpu_description(gpu_id: int, torch) -> dict[str, Any]:
    """The GPU's name, driver and memory (nvidia-smi), and what torch reports about it."""
    smi = nvidia_smi()
    fields = [f.strip() for f in smi[gpu_id].split(",")] if gpu_id < len(smi) else []
    desc: dict[str, Any] = {
        "gpu_id": gpu_id,
        "nvidia_smi": smi,
        "gpu_name": fields[0] if fields else None,
        "gpu_driver": fields[1] if len(fields) > 1 else None,
        "gpu_memory": fields[2] if len(fields) > 2 else None,
        "cuda_devices": int(_core.cuda_device_count()),
    }
    if torch is not None:
        props = torch.cuda.get_device_properties(gpu_id)
        desc["gpu_name"] = desc["gpu_name"] or props.name
        desc["torch_cuda"] = torch.version.cuda
        desc["gpu_multiprocessors"] = props.multi_processor_count
        desc["gpu_capability"] = f"{props.major}.{props.minor}"
    return desc


def gpu_slug(desc: dict[str, Any]) -> str:
    """A file-name-safe GPU name: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    words = re.findall(r"[a-z0-9]+", (desc.get("gpu_name") or "gpu").lower())
    return "-".join(words[:5]) or "gpu"


def import_torch():
    """torch with CUDA, or None (the stream and policy benches then skip with a note)."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


# -- measuring ------------------------------------------------------------------------------------


def gpu_manager(args: argparse.Namespace, num_worlds: int, **kwargs) -> er.SimManager:
    return er.SimManager(er.ExecMode.CUDA, args.gpu_id, num_worlds, 0, **kwargs)


def action_pool(num_worlds: int) -> list[np.ndarray]:
    """harness's pool of random actions, as int32 [W, 1, 3] arrays for ``_write_input``."""
    return [a.astype(np.int32).reshape(num_worlds, 1, 3) for a in harness.action_pool(num_worlds)]


def nstep_run(sim: er.SimManager, pool: list[np.ndarray]) -> Callable[[int], float]:
    """``run(n)``: new actions written in (untimed), then one timed ``sim.step(nstep=n)``."""
    count = [0]

    def run(n: int) -> float:
        sim._write_input("action", pool[count[0] % len(pool)])
        count[0] += 1
        t0 = time.perf_counter()
        sim.step(nstep=n)
        return time.perf_counter() - t0

    return run


def step_run(sim: er.SimManager, pool: list[np.ndarray], stream=None) -> Callable[[int], float]:
    """``run(n)``: new actions written in (untimed), then a timed loop of n ``sim.step()``, or
    with ``stream`` of n ``sim.step(stream=stream)`` and one ``stream.synchronize()``."""
    count, step = [0], sim.step
    kwargs = {} if stream is None else {"stream": stream}

    def run(n: int) -> float:
        sim._write_input("action", pool[count[0] % len(pool)])
        count[0] += 1
        t0 = time.perf_counter()
        for _ in range(n):
            step(**kwargs)
        if stream is not None:
            stream.synchronize()
        return time.perf_counter() - t0

    return run


def skipped(bench: str, impl: str, num_worlds: int, why: str, out) -> dict[str, Any]:
    record = {"bench": bench, "impl": impl, "num_worlds": num_worlds, "skipped": why}
    harness.emit(record, out)
    return record


def steps_for(args: argparse.Namespace, num_worlds: int, world_steps: int, lo: int, hi: int) -> int:
    if args.quick:
        world_steps, lo, hi = max(world_steps >> 12, 1), min(lo, 4), min(hi, 32)
    return harness.steps_per_repeat(num_worlds, world_steps, lo, hi, args.steps)


def measure(
    args, bench: str, impl: str, run, num_worlds: int, steps: int, out, defer: bool = False, **extra
) -> dict[str, Any]:
    """``harness.measure`` of one GPU configuration (one agent; ``threads`` 1: one host thread
    drives the GPU), with ``us_per_step``; emitted (printed, and written to ``out``) unless
    ``defer``: the caller then adds fields and emits it."""
    record = harness.measure(
        bench,
        impl,
        run,
        num_worlds=num_worlds,
        num_agents=1,
        threads=1,
        steps=steps,
        repeats=args.repeats,
        echo=False,
        **extra,
    )
    record["us_per_step"] = 1e6 * record["median_s"] / steps
    if not defer:
        harness.emit(record, out)
    return record


def bench_steps(args, out, gpu: dict[str, Any], torch) -> list[dict[str, Any]]:
    """``gpu_step``, ``gpu_step_stream`` and ``gpu_step_nstep`` over ``--worlds``."""
    records = []
    stream = torch.cuda.Stream(args.gpu_id) if torch is not None else None
    for num_worlds in args.worlds:
        pool = action_pool(num_worlds)
        for bench, (impl, timed) in STEP_BENCHES.items():
            if bench == "gpu_step_stream" and stream is None:
                records.append(skipped(bench, impl, num_worlds, "needs torch with CUDA", out))
                continue
            # One step per call pays a launch (and a wait) per step: fewer steps at small sizes.
            per_call = bench != "gpu_step_nstep"
            steps = steps_for(args, num_worlds, 2**25, 16, 2048 if per_call else 8192)
            try:
                sim = gpu_manager(args, num_worlds)
            except (ValueError, er.EscapeRoomError) as e:  # too little GPU memory: say so, go on
                records.append(skipped(bench, impl, num_worlds, str(e), out))
                continue
            if bench == "gpu_step":
                run = step_run(sim, pool)
            elif bench == "gpu_step_stream":
                run = step_run(sim, pool, stream)
            else:
                run = nstep_run(sim, pool)
            with sim:
                records.append(
                    measure(
                        args, bench, impl, run, num_worlds, steps, out, device=gpu["gpu_name"], timed=timed
                    )
                )
    return records


def bench_headless(args, out, gpu: dict[str, Any]) -> list[dict[str, Any]]:
    """``headless --gpu``: the same per-call step in C++, for the sizes up to HEADLESS_MAX_WORLDS."""
    path = args.headless or find_headless()
    if path is None or not Path(path).is_file():
        print(f"note: headless tool not found ({path or 'escape_room_env/bin/, build/*/headless'}); skipped")
        return [skipped("headless_gpu", "escape_room_env C++ (headless --gpu)", 0, "tool not found", out)]
    records = []
    for num_worlds in [w for w in args.worlds if w <= HEADLESS_MAX_WORLDS]:
        steps = steps_for(args, num_worlds, 2**25, 16, 2048)
        flags = (
            f"--worlds {num_worlds} --steps {steps} --agents 1 --repeats {args.repeats} --gpu {args.gpu_id}"
        )
        proc = subprocess.run(
            [str(path), *flags.split()], capture_output=True, text=True, timeout=600, check=False
        )
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        times = [line["seconds"] for line in lines if line.get("bench") == "headless"]
        if proc.returncode != 0 or len(times) < harness.MIN_REPEATS:
            why = (proc.stderr.strip() or proc.stdout.strip())[-300:]
            records.append(
                skipped("headless_gpu", "escape_room_env C++ (headless --gpu)", num_worlds, why, out)
            )
            continue
        record = harness.make_result(
            "headless_gpu",
            "escape_room_env C++ (headless --gpu), one step per call",
            num_worlds=num_worlds,
            num_agents=1,
            threads=1,
            steps=steps,
            times=times,
            device=gpu["gpu_name"],
            timed="Manager::step() + synchronize() per step, in C++; new actions copied in before each, untimed",
            headless_path=str(path),
        )
        record["us_per_step"] = 1e6 * record["median_s"] / steps
        harness.emit(record, out)
        records.append(record)
    return records


def bench_policy(args, out, gpu: dict[str, Any], torch) -> list[dict[str, Any]]:
    """A torch policy in the loop: steps that wait, steps queued on a stream, the policy alone."""
    if torch is None:
        return [skipped("gpu_policy", "torch policy loop", 0, "needs torch with CUDA", out)]
    from escape_room_env.ppo import Agent

    # Argument validation syncs with the host (a bool of a GPU tensor) in every Categorical.
    torch.distributions.Distribution.set_default_validate_args(False)
    device = torch.device("cuda", args.gpu_id)
    records = []
    for num_worlds in args.policy_worlds:
        steps = steps_for(args, num_worlds, 2**22, 8, 512)
        for bench, (impl, timed) in POLICY_BENCHES.items():
            torch.manual_seed(0)
            with gpu_manager(args, num_worlds) as sim:
                agent = Agent(sim.obs_dim, hidden=args.hidden).to(device)
                obs = sim.observation_tensor().to_torch().view(num_worlds, sim.obs_dim)
                act = sim.action_tensor().to_torch().view(num_worlds, 3)
                stream = torch.cuda.Stream(device) if bench == "gpu_policy_stream" else None
                run = policy_run(torch, sim, agent, obs, act, bench, stream)
                records.append(
                    measure(
                        args,
                        bench,
                        impl,
                        run,
                        num_worlds,
                        steps,
                        out,
                        device=gpu["gpu_name"],
                        hidden=args.hidden,
                        timed=POLICY_TIMED + timed,
                    )
                )
    return records


def policy_run(torch, sim, agent, obs, act, bench: str, stream) -> Callable[[int], float]:
    def run(n: int) -> float:
        torch.cuda.synchronize()
        context = torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()
        t0 = time.perf_counter()
        with torch.no_grad(), context:
            for _ in range(n):
                action, _, _, _ = agent.get_action_and_value(obs)
                act.copy_(action)
                if bench == "gpu_policy":
                    sim.step()
                elif bench == "gpu_policy_stream":
                    sim.step(stream=stream)
        if stream is not None:
            stream.synchronize()
        else:
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    return run


def bench_render(args, out, gpu: dict[str, Any]) -> list[dict[str, Any]]:
    """A loop of ``step()`` with the renderer on and off."""
    records = []
    size = args.render_size
    for num_worlds in args.render_worlds:
        steps = steps_for(args, num_worlds, 2**21 * 4096 // (size * size), 4, 256)
        pair = {}
        for on in (False, True):
            bench = "gpu_render" if on else "gpu_render_off"
            impl = f"SimManager.step(), one step per call, renderer {'on' if on else 'off'}"
            kwargs = {"enable_batch_renderer": on, "render_width": size, "render_height": size}
            try:
                sim = gpu_manager(args, num_worlds, **kwargs)
            except (ValueError, er.EscapeRoomError) as e:
                records.append(skipped(bench, impl, num_worlds, str(e), out))
                break
            with sim:
                pair[on] = measure(
                    args,
                    bench,
                    impl,
                    step_run(sim, action_pool(num_worlds)),
                    num_worlds,
                    steps,
                    out,
                    defer=True,
                    device=gpu["gpu_name"],
                    width=size,
                    height=size,
                    timed=STEP_BENCHES["gpu_step"][1],
                )
        if len(pair) == 2:
            pair[True]["frames_per_s"] = pair[True]["agent_steps_per_s"]
            pair[True]["render_ms_per_step"] = (
                1e3 * (pair[True]["median_s"] - pair[False]["median_s"]) / steps
            )
        for record in pair.values():
            harness.emit(record, out)
            records.append(record)
    return records


def bench_cpu(args, out) -> list[dict[str, Any]]:
    """The CPU backend on every core, bench_core's loop, for the sizes up to --cpu-max-worlds."""
    records = []
    for num_worlds in [w for w in args.worlds if w <= args.cpu_max_worlds]:
        steps = steps_for(args, num_worlds, 2**21, 4, 2000)
        with er.SimManager(num_worlds=num_worlds, rand_seed=0) as sim:
            before = harness.cpu_snapshot()
            times = harness.time_repeats(
                harness.sim_run(sim, harness.action_pool(num_worlds)), steps, args.repeats
            )
            record = harness.make_result(
                "cpu_step",
                "SimManager.step(), CPU backend (peer)",
                num_worlds=num_worlds,
                num_agents=1,
                threads=sim.num_threads,
                steps=steps,
                times=times,
                other_cpu_cores=harness.other_cpu_cores(before, harness.cpu_snapshot()),
                timed=CPU_TIMED,
            )
        record["us_per_step"] = 1e6 * record["median_s"] / steps
        harness.emit(record, out)
        records.append(record)
    return records


def madrona_reference(out) -> dict[str, Any]:
    record = {
        "bench": "madrona_reference",
        "impl": f"Madrona escape room fork, {MADRONA['gpu']} (reported there, quoted in the issue; not measured)",
        "num_worlds": MADRONA["num_worlds"],
        "num_agents": 1,
        "world_steps_per_s": MADRONA["world_steps_per_s"],
        "measured": False,
    }
    harness.emit(record, out)
    return record


# -- reporting ------------------------------------------------------------------------------------


def _by(records, bench: str) -> dict[int, dict[str, Any]]:
    return {r["num_worlds"]: r for r in records if r["bench"] == bench and "median_s" in r}


def _m(rate: float) -> str:
    return f"{rate / 1e6:,.1f} M"


def step_verdict(records: list[dict[str, Any]], bench: str, what: str, name: str) -> str:
    """The world-steps/s target (>= 200 M at >= 262,144 worlds) for one way of stepping."""
    big = {w: r for w, r in _by(records, bench).items() if w >= TARGET_WORLDS}
    if not big:
        return f"{what}: not measured at >= {TARGET_WORLDS:,} worlds in this run"
    at = big.get(TARGET_WORLDS) or big[min(big)]
    best = max(big.values(), key=lambda r: r["world_steps_per_s"])
    verdict = "PASS" if best["world_steps_per_s"] >= TARGET_WORLD_STEPS else "FAIL"
    return (
        f"[{verdict}] {what} on {name}, one agent, full observations: {_m(at['world_steps_per_s'])} "
        f"world-steps/s at {at['num_worlds']:,} worlds, best {_m(best['world_steps_per_s'])} at "
        f"{best['num_worlds']:,} (target >= {TARGET_WORLD_STEPS / 1e6:,.0f} M at >= {TARGET_WORLDS:,} worlds)"
    )


def headlines(records: list[dict[str, Any]], gpu: dict[str, Any]) -> list[str]:
    name = gpu["gpu_name"] or "this GPU"
    lines = [
        step_verdict(records, "gpu_step", "SimManager.step(), one step per call", name),
        step_verdict(records, "gpu_step_nstep", "SimManager.step(nstep=k), device loop", name),
    ]
    ours = [(b, _by(records, b).get(MADRONA["num_worlds"])) for b in ("gpu_step", "gpu_step_nstep")]
    ours = [(b, r) for b, r in ours if r is not None]
    if ours:
        shown = ", ".join(
            f"{_m(r['world_steps_per_s'])} ({'step()' if b == 'gpu_step' else 'step(nstep=k)'}, "
            f"{r['world_steps_per_s'] / MADRONA['world_steps_per_s']:.1f} x)"
            for b, r in ours
        )
        lines.append(
            f"{MADRONA['num_worlds']:,} worlds on {name} (this run): {shown}, next to "
            f"{MADRONA['world_steps_per_s'] / 1e6:.1f} M world-steps/s reported by Madrona's escape room fork on an "
            f"{MADRONA['gpu']} (different GPUs; Madrona's number is quoted, not measured here)"
        )
    render = {w: r for w, r in _by(records, "gpu_render").items() if "frames_per_s" in r}
    big_render = {w: r for w, r in render.items() if w >= TARGET_RENDER_WORLDS}
    if big_render:
        best = max(big_render.values(), key=lambda r: r["frames_per_s"])
        verdict = "PASS" if best["frames_per_s"] >= TARGET_FRAMES and best["width"] == 64 else "FAIL"
        lines.append(
            f"[{verdict}] batch renderer on {name}, {best['height']} x {best['width']} RGB + depth with the "
            f"simulation, one step per call: {best['frames_per_s'] / 1e6:,.2f} M frames/s at "
            f"{best['num_worlds']:,} worlds (target >= {TARGET_FRAMES / 1e6:.0f} M at >= "
            f"{TARGET_RENDER_WORLDS:,} worlds, 64 x 64)"
        )
    steps, cpu = _by(records, "gpu_step"), _by(records, "cpu_step")
    common = sorted(set(cpu) & set(steps))
    if common:
        w = common[-1]
        lines.append(
            f"CPU backend peer at {w:,} worlds ({cpu[w]['threads']} threads): "
            f"{cpu[w]['world_steps_per_s'] / 1e6:,.2f} M world-steps/s; the GPU's step() "
            f"{steps[w]['world_steps_per_s'] / cpu[w]['world_steps_per_s']:,.1f} x that"
        )
    return lines


SWEEP_COLUMNS = (
    ("gpu_step", "step()"),
    ("gpu_step_stream", "step(stream=s)"),
    ("gpu_step_nstep", "step(nstep=k)"),
    ("headless_gpu", "C++ headless --gpu"),
    ("cpu_step", "CPU backend (threads)"),
)


def format_sweep(records: list[dict[str, Any]]) -> str:
    """World-steps/s (and µs per step) of every way of stepping, against num_worlds."""
    by = {bench: _by(records, bench) for bench, _ in SWEEP_COLUMNS}
    rows = [
        "| worlds | " + " | ".join(title for _, title in SWEEP_COLUMNS) + " |",
        "|---|" + "---|" * len(SWEEP_COLUMNS),
    ]
    for w in sorted(set().union(*by.values())):
        cells = []
        for bench, _ in SWEEP_COLUMNS:
            r = by[bench].get(w)
            if r is None:
                cells.append("-")
                continue
            threads = f", {r['threads']} thr" if bench == "cpu_step" else ""
            cells.append(f"{r['world_steps_per_s']:,.0f} ({r['us_per_step']:,.1f} µs{threads})")
        rows.append(f"| {w:,} | " + " | ".join(cells) + " |")
    rows.append(
        f"| {MADRONA['num_worlds']:,} | Madrona escape room fork, {MADRONA['gpu']}: "
        f"{MADRONA['world_steps_per_s']:,.0f} (quoted, not measured) |" + " |" * (len(SWEEP_COLUMNS) - 1)
    )
    return "\n".join(rows)


def format_per_step(records: list[dict[str, Any]], benches: tuple[str, ...]) -> str:
    rows = ["| bench | worlds | µs per step | world-steps/s | what is timed |", "|---|---|---|---|---|"]
    for r in records:
        if r["bench"] in benches and "median_s" in r:
            rows.append(
                f"| {r['bench']} | {r['num_worlds']:,} | {r['us_per_step']:,.1f} | "
                f"{r['world_steps_per_s']:,.0f} | {r['timed']} |"
            )
    return "\n".join(rows)


def format_render(records: list[dict[str, Any]]) -> str:
    rows = [
        "| size | worlds | frames/s (with sim) | sim alone, steps/s | renderer ms/step |",
        "|---|---|---|---|---|",
    ]
    off = _by(records, "gpu_render_off")
    for r in records:
        if r["bench"] == "gpu_render" and "frames_per_s" in r:
            rows.append(
                f"| {r['height']} x {r['width']} | {r['num_worlds']:,} | {r['frames_per_s']:,.0f} | "
                f"{off[r['num_worlds']]['world_steps_per_s']:,.0f} | {r['render_ms_per_step']:.3f} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = why_no_gpu()
    if reason is not None:
        print(f"bench_gpu: nothing measured: {reason}. Run it on a machine with an NVIDIA GPU.", flush=True)
        return 0
    torch = import_torch()
    gpu = gpu_description(args.gpu_id, torch)
    desc = {**harness.machine_description(), **gpu}
    suite = f"{gpu_slug(gpu)}-gpu"
    out, jsonl_path, md_path = harness.open_outputs(suite, args.out, args.save, args.results_dir, desc)
    if torch is None:
        print("note: torch with CUDA is not installed: the stream and policy benches are skipped", flush=True)

    records = bench_steps(args, out, gpu, torch)
    if not args.no_headless:
        records += bench_headless(args, out, gpu)
    if not args.no_policy:
        records += bench_policy(args, out, gpu, torch)
    if not args.no_render:
        records += bench_render(args, out, gpu)
    if not args.no_cpu:
        records += bench_cpu(args, out)
    records.append(madrona_reference(out))

    lines = headlines(records, gpu)
    sweep = format_sweep(records)
    policy = format_per_step(records, tuple(POLICY_BENCHES))
    render = format_render(records)
    summary = {
        "bench": "gpu_summary",
        "headlines": lines,
        "gpu_name": gpu["gpu_name"],
        "nvidia_smi": gpu["nvidia_smi"],
    }
    harness.emit(summary, out, echo=False)
    print()
    harness.print_table(records)
    print()
    print(sweep)
    print()
    print("\n".join(lines), flush=True)
    if args.save:
        note = f"{args.note}\n\n" if args.note else ""
        md_path.write_text(
            f"# GPU benchmark, {desc['date'][:10]}, {gpu['gpu_name']}\n\n{note}"
            f"Re-run: `python benchmarks/bench_gpu.py --save` (or `bash benchmarks/gpu_session.sh`). "
            f"Raw JSON lines: `{jsonl_path.name}`.\n\n"
            f"## Machine\n\n{harness.format_machine(desc)}\n\n"
            "## Headlines\n\n```\n" + "\n".join(lines) + "\n```\n\n"
            "## World-steps/s against num_worlds (µs per step)\n\n"
            "Every step is one CUDA graph launch (the core has no path that launches the kernels one by "
            "one): `step()` launches and waits once per step, `step(stream=s)` launches once per step "
            "and waits once at the end, `step(nstep=k)` loops on the device, 64 steps per launch. "
            f"The C++ tool steps like `step()`, without Python.\n\n{sweep}\n\n"
            f"## A torch policy in the loop (hidden {args.hidden})\n\n{policy}\n\n"
            f"## Batch renderer\n\n{render}\n\n"
            f"## Every measurement\n\n{harness.format_table(records)}\n"
        )
        print(f"\nsaved {jsonl_path} and {md_path}", flush=True)
    if out is not None:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
