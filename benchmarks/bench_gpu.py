"""How fast is the CUDA backend? World-steps/s on one GPU through ``step()``, ``step(stream=s)``,
``step(nstep=k)`` and the C++ tool, a torch policy in the loop, the batch renderer, the CPU backend
as the peer and Madrona's reported figure beside ours (benchmarks/README.md). Without a usable GPU
it says why and exits 1; ``--cpu-stub`` runs the same flow on the CPU backend instead (to check
the script anywhere: its numbers mean nothing and are never saved)."""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

import escape_room_env as er
from escape_room_env.bench import action_pool, sim_step_loop

WORLDS = (1024, 4096, 8192, 16384, 65536, 262144, 1048576)
POLICY_WORLDS, RENDER_WORLDS = (8192, 65536, 262144), (16384, 65536)
HEADLESS_MAX_WORLDS = 262144  # the tool draws 64 action arrays up front: 768 MB at 2**20 worlds
TARGET_WORLD_STEPS, TARGET_WORLDS = 200e6, 262144  # through SimManager.step()
TARGET_FRAMES, TARGET_RENDER_WORLDS = 2e6, 65536  # 64 x 64 RGB + depth
MADRONA = {"num_worlds": 8192, "world_steps_per_s": 6.6e6, "gpu": "RTX 4090"}
ACTIONS = "new random actions copied into action_tensor() before each repeat, untimed"
STEPS = {  # bench -> (impl, what is timed)
    "gpu_step": ("SimManager.step(), host waits each call", f"python loop of sim.step(); {ACTIONS}"),
    "gpu_step_stream": (
        "SimManager.step(stream=s)",
        f"loop of sim.step(stream=s), then s.synchronize(); {ACTIONS}",
    ),
    "gpu_step_nstep": ("SimManager.step(nstep=k)", f"one sim.step(nstep=steps) call; {ACTIONS}"),
}
POLICY = {  # bench -> what follows the policy's action in each step
    "gpu_policy": "sim.step()",
    "gpu_policy_stream": "sim.step(stream=s), all on torch stream s; s.synchronize() after the last",
    "gpu_policy_only": "no step; torch.cuda.synchronize() after the last",
}
POLICY_TIMED = "loop: Agent.get_action_and_value(observation_tensor().to_torch()) -> action_tensor() -> "


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = harness.add_common_args(argparse.ArgumentParser(description=__doc__), repeats=7)
    p.add_argument("--worlds", type=int, nargs="+", help=f"num_worlds of the step benches (default {WORLDS})")
    p.add_argument(
        "--policy-worlds", type=int, nargs="+", help=f"num_worlds of the policy loop ({POLICY_WORLDS})"
    )
    p.add_argument(
        "--render-worlds", type=int, nargs="+", help=f"num_worlds of the renderer ({RENDER_WORLDS})"
    )
    p.add_argument("--render-size", type=int, help="square image size (default 64; quick 16)")
    p.add_argument("--hidden", type=int, default=64, help="hidden units of the policy's MLPs")
    p.add_argument("--cpu-max-worlds", type=int, default=65536, help="largest num_worlds of the CPU peer")
    p.add_argument("--gpu-id", type=int, default=0)
    p.add_argument("--headless", type=Path, help="the headless tool (default: harness.find_headless)")
    for part in ("headless", "policy", "render", "cpu"):
        p.add_argument(f"--no-{part}", action="store_true", help=f"skip the {part} benches")
    p.add_argument(
        "--cpu-stub", action="store_true", help="run the flow on the CPU backend (a check, not a measurement)"
    )
    args = p.parse_args(argv)
    if args.cpu_stub and args.save:
        p.error("--cpu-stub measures the CPU backend: its numbers are never saved")
    quick = (256, 1024) if args.quick else None
    args.worlds = args.worlds or quick or WORLDS
    args.policy_worlds = args.policy_worlds or (quick[:1] if quick else POLICY_WORLDS)
    args.render_worlds = args.render_worlds or (quick[:1] if quick else RENDER_WORLDS)
    args.render_size = args.render_size or (16 if quick else 64)
    return args


def why_no_gpu() -> str | None:
    """None when a CUDA manager can run here, else why not: the real CUDA error where this build
    reports it (``cuda_unavailable_reason``), else what ``cuda_available()`` allows to say."""
    reason = getattr(er, "cuda_unavailable_reason", None)
    if reason is not None:
        return reason()
    if er.cuda_available():
        return None
    return "escape_room_env.cuda_available() is False (a build without CUDA, no GPU, or too old a driver)"


def nvidia_smi(*query: str) -> list[str]:
    """``nvidia-smi --query-gpu=<query>`` lines, one per GPU ([] without it)."""
    cmd = ["nvidia-smi", f"--query-gpu={','.join(query)}", "--format=csv,noheader"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


class Device:
    """The GPU the benches run on, or (``--cpu-stub``) the CPU backend standing in for it."""

    def __init__(self, args: argparse.Namespace, torch: Any):
        self.torch, self.stub, self.gpu_id = torch, args.cpu_stub, args.gpu_id
        self.mode = er.ExecMode.CPU if self.stub else er.ExecMode.CUDA
        self.torch_device = torch.device("cpu" if self.stub else f"cuda:{args.gpu_id}")
        smi = nvidia_smi("name", "driver_version", "memory.total", "compute_cap")
        names = ("gpu_name", "gpu_driver", "gpu_memory", "gpu_capability")
        fields = smi[args.gpu_id].split(", ") if args.gpu_id < len(smi) else []
        self.description = {**dict.fromkeys(names), **dict(zip(names, fields)), "nvidia_smi": smi}
        self.description["torch_cuda"] = torch.version.cuda
        if self.stub or not fields:
            self.description["gpu_name"] = (
                "CPU stub" if self.stub else torch.cuda.get_device_name(args.gpu_id)
            )

    def manager(self, num_worlds: int, **kwargs: Any) -> er.SimManager:
        return er.SimManager(self.mode, self.gpu_id, num_worlds, 0, **kwargs)

    def stream(self) -> Any:
        return None if self.stub else self.torch.cuda.Stream(self.torch_device)

    def synchronize(self, stream: Any = None) -> None:
        if not self.stub:
            (stream or self.torch.cuda).synchronize()


def step_run(device: Device, sim: er.SimManager, bench: str) -> harness.Run:
    """``run(n)``: new actions copied in (untimed), then n steps the way ``bench`` issues them."""
    torch, pool, count = device.torch, action_pool(sim.num_worlds), [0]
    actions = sim.action_tensor().to_torch()
    stream = device.stream() if bench == "gpu_step_stream" else None

    def run(n: int) -> float:
        actions.copy_(torch.from_numpy(pool[count[0] % len(pool)].reshape(actions.shape)))
        count[0] += 1
        device.synchronize()
        t0 = time.perf_counter()
        if bench == "gpu_step_nstep":
            sim.step(nstep=n)
        else:
            for _ in range(n):
                sim.step(stream=stream)
            if stream is not None:
                device.synchronize(stream)
        return time.perf_counter() - t0

    return run


def policy_run(device: Device, sim: er.SimManager, bench: str, hidden: int) -> harness.Run:
    """``run(n)``: n steps of a torch policy reading the observations in place and writing the
    actions in place, then the step as ``bench`` says."""
    from escape_room_env.ppo import Agent

    torch = device.torch
    torch.manual_seed(0)
    agent = Agent(sim.obs_dim, hidden=hidden).to(device.torch_device)
    obs = sim.observation_tensor().to_torch().view(sim.num_worlds, sim.obs_dim)
    act = sim.action_tensor().to_torch().view(sim.num_worlds, 3)
    stream = device.stream() if bench == "gpu_policy_stream" else None
    context = torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()

    def run(n: int) -> float:
        device.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad(), context:
            for _ in range(n):
                act.copy_(agent.get_action_and_value(obs)[0])
                if bench != "gpu_policy_only":
                    sim.step(stream=stream)
        device.synchronize(stream)
        return time.perf_counter() - t0

    return run


def steps_for(args: argparse.Namespace, num_worlds: int, world_steps: int, lo: int, hi: int) -> int:
    if args.quick:
        world_steps, lo, hi = max(world_steps >> 12, 1), min(lo, 4), min(hi, 32)
    return harness.steps_per_repeat(num_worlds, world_steps, lo, hi, args.steps)


def bench_all(suite: harness.Suite, device: Device) -> None:
    """Every bench in turn; a size the GPU has too little memory for is skipped with the reason."""
    args, size = suite.args, suite.args.render_size

    def measure(bench: str, impl: str, run: harness.Run, n: int, steps: int, **extra: Any) -> dict[str, Any]:
        gpu = {"device": device.description["gpu_name"], "timed": STEPS.get(bench, ("", ""))[1]}
        return suite.measure(bench, {impl: run}, steps=steps, num_worlds=n, threads=1, **{**gpu, **extra})[0]

    def skip(bench: str, n: int, why: Exception) -> None:
        suite.emit({"bench": bench, "num_worlds": n, "skipped": str(why)})

    for n in args.worlds:
        for bench, (impl, _) in STEPS.items():
            hi = 8192 if bench == "gpu_step_nstep" else 2048  # one step per call pays a launch per step
            try:
                with device.manager(n) as sim:
                    measure(bench, impl, step_run(device, sim, bench), n, steps_for(args, n, 2**25, 16, hi))
            except (ValueError, er.EscapeRoomError) as e:  # too little memory: say so, go on
                skip(bench, n, e)
    path = None if args.no_headless else args.headless or harness.find_headless()
    for n in [w for w in args.worlds if w <= HEADLESS_MAX_WORLDS] if path else ():
        steps, on_gpu = steps_for(args, n, 2**25, 16, 2048), () if device.stub else ("--gpu", device.gpu_id)
        try:
            times = harness.run_headless(
                path, "--worlds", n, "--steps", steps, "--repeats", args.repeats, *on_gpu
            )
        except RuntimeError as e:
            skip("headless_gpu", n, e)
            continue
        timed = "Manager::step() + synchronize() per step, in C++; new actions copied in before each, untimed"
        gpu = {"device": device.description["gpu_name"], "timed": timed}
        suite.emit(
            harness.record(
                "headless_gpu", "C++ headless --gpu", times, steps=steps, num_worlds=n, threads=1, **gpu
            )
        )
    for n in () if args.no_policy else args.policy_worlds:
        for bench, then in POLICY.items():
            with device.manager(n) as sim:
                run = policy_run(device, sim, bench, args.hidden)
                steps = steps_for(args, n, 2**22, 8, 512)
                measure(
                    bench, f"policy + {then}", run, n, steps, timed=POLICY_TIMED + then, hidden=args.hidden
                )
    for n in () if args.no_render else args.render_worlds:
        steps, pair = steps_for(args, n, 2**21 * 4096 // (size * size), 4, 256), {}
        for on in (False, True):
            with device.manager(n, enable_batch_renderer=on, render_width=size, render_height=size) as sim:
                impl = f"SimManager.step(), one step per call, renderer {'on' if on else 'off'}"
                run, bench = step_run(device, sim, "gpu_step"), "gpu_render" if on else "gpu_render_off"
                pair[on] = measure(
                    bench, impl, run, n, steps, timed=STEPS["gpu_step"][1], width=size, height=size
                )
        render_ms = 1e3 * (pair[True]["median_s"] - pair[False]["median_s"]) / steps
        frames = {"bench": "gpu_render_frames", "num_worlds": n, "width": size, "height": size}
        suite.emit(
            {**frames, "frames_per_s": pair[True]["agent_steps_per_s"], "render_ms_per_step": render_ms}
        )
    for n in () if args.no_cpu else [w for w in args.worlds if w <= args.cpu_max_worlds]:
        with er.SimManager(num_worlds=n, rand_seed=0) as sim:
            timed = (
                "sim.step() calls only; new random actions copied into action_tensor() before each, untimed"
            )
            run, steps = sim_step_loop(sim, action_pool(n)), steps_for(args, n, 2**21, 4, 2000)
            suite.measure(
                "cpu_step",
                {"SimManager.step(), CPU backend": run},
                steps=steps,
                num_worlds=n,
                threads=sim.num_threads,
                timed=timed,
            )
    impl = f"Madrona escape room fork, {MADRONA['gpu']} (reported there, quoted in the issue; not measured)"
    suite.emit({"bench": "madrona_reference", "impl": impl, **MADRONA, "measured": False})


def by_worlds(records: list[dict[str, Any]], bench: str) -> dict[int, dict[str, Any]]:
    return {r["num_worlds"]: r for r in records if r["bench"] == bench and "skipped" not in r}


def headlines(records: list[dict[str, Any]], gpu: str) -> list[str]:
    """The verdicts against the targets, and Madrona's figure beside ours at its size."""

    def m(rate: float) -> str:
        return f"{rate / 1e6:,.1f} M"

    lines = []
    for bench, what in (
        ("gpu_step", "SimManager.step(), one step per call"),
        ("gpu_step_nstep", "SimManager.step(nstep=k)"),
    ):
        big = {w: r for w, r in by_worlds(records, bench).items() if w >= TARGET_WORLDS}
        if not big:
            lines.append(f"{what}: not measured at >= {TARGET_WORLDS:,} worlds in this run")
            continue
        at, top = (
            big.get(TARGET_WORLDS) or big[min(big)],
            max(big.values(), key=lambda r: r["world_steps_per_s"]),
        )
        lines.append(
            f"[{harness.verdict(top['world_steps_per_s'] >= TARGET_WORLD_STEPS)}] {what} on {gpu}: "
            f"{m(at['world_steps_per_s'])} world-steps/s at {at['num_worlds']:,} worlds, best {m(top['world_steps_per_s'])} "
            f"at {top['num_worlds']:,} (target >= {TARGET_WORLD_STEPS / 1e6:,.0f} M at >= {TARGET_WORLDS:,} worlds)"
        )
    ours = [(b, by_worlds(records, b).get(MADRONA["num_worlds"])) for b in ("gpu_step", "gpu_step_nstep")]
    if any(r for _, r in ours):
        shown = ", ".join(
            f"{m(r['world_steps_per_s'])} ({'step()' if b == 'gpu_step' else 'step(nstep=k)'}, "
            f"{r['world_steps_per_s'] / MADRONA['world_steps_per_s']:.1f} x)"
            for b, r in ours
            if r
        )
        lines.append(
            f"{MADRONA['num_worlds']:,} worlds on {gpu} (this run): {shown}, next to {m(MADRONA['world_steps_per_s'])} "
            f"world-steps/s reported by Madrona's escape room fork on an {MADRONA['gpu']} (quoted, not measured here)"
        )
    frames = [r for w, r in by_worlds(records, "gpu_render_frames").items() if w >= TARGET_RENDER_WORLDS]
    if frames:
        top = max(frames, key=lambda r: r["frames_per_s"])
        ok = top["frames_per_s"] >= TARGET_FRAMES and top["width"] == 64
        lines.append(
            f"[{harness.verdict(ok)}] batch renderer on {gpu}, {top['height']} x {top['width']} RGB + depth with the "
            f"simulation: {top['frames_per_s'] / 1e6:,.2f} M frames/s at {top['num_worlds']:,} worlds "
            f"(target >= {TARGET_FRAMES / 1e6:.0f} M at >= {TARGET_RENDER_WORLDS:,} worlds, 64 x 64)"
        )
    steps, cpu = by_worlds(records, "gpu_step"), by_worlds(records, "cpu_step")
    for w in sorted(set(steps) & set(cpu))[-1:]:
        lines.append(
            f"CPU backend peer at {w:,} worlds ({cpu[w]['threads']} threads): {m(cpu[w]['world_steps_per_s'])} "
            f"world-steps/s; the GPU's step() {steps[w]['world_steps_per_s'] / cpu[w]['world_steps_per_s']:,.1f} x that"
        )
    return lines


SWEEP = {"gpu_step": "step()", "gpu_step_stream": "step(stream=s)", "gpu_step_nstep": "step(nstep=k)"}
SWEEP.update(headless_gpu="C++ headless --gpu", cpu_step="CPU backend")


def sweep_table(records: list[dict[str, Any]]) -> str:
    """World-steps/s (µs per step) of every way of stepping, against num_worlds."""
    by = {bench: by_worlds(records, bench) for bench in SWEEP}

    def cell(bench: str) -> Any:
        def text(w: int) -> str:
            r = by[bench].get(w)
            return (
                "-"
                if r is None
                else f"{r['world_steps_per_s']:,.0f} ({1e6 * r['median_s'] / r['steps']:,.1f} µs)"
            )

        return text

    columns = {"worlds": lambda w: f"{w:,}", **{title: cell(b) for b, title in SWEEP.items()}}
    return harness.table(sorted(set().union(*by.values())), columns)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = None if args.cpu_stub else why_no_gpu()
    if reason is not None:
        print(f"bench_gpu: no usable GPU, nothing measured: {reason}", file=sys.stderr)
        return 1
    import torch

    if not (args.cpu_stub or torch.cuda.is_available()):
        print(
            f"bench_gpu: torch {torch.__version__} sees no GPU; the policy and stream benches need it",
            file=sys.stderr,
        )
        return 1
    torch.distributions.Distribution.set_default_validate_args(False)  # it syncs with the host
    device = Device(args, torch)
    gpu = device.description["gpu_name"]
    suite = harness.Suite(
        args, "-".join(re.findall(r"[a-z0-9]+", gpu.lower())[:5]) + "-gpu", **device.description
    )
    bench_all(suite, device)
    lines = headlines(suite.records, gpu)
    suite.emit({"bench": "gpu_summary", "headlines": lines, "gpu_name": gpu})
    sweep = "## World-steps/s against num_worlds (µs per step)\n\nEvery step is one CUDA graph launch: "
    sweep += "`step()` waits once per step, `step(stream=s)` once at the end, `step(nstep=k)` loops on the device.\n\n"
    suite.finish(f"GPU benchmark ({gpu})", "\n".join(lines), sweep + sweep_table(suite.records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
