"""How does training scale over ranks? ``escape_room_env.ppo.train`` as 1 and 2 local ranks
(gloo, CPU) in the same rounds, the time its collectives take per update, and a bare all-reduce
of its gradient buffer: the inputs of the scaling estimate in benchmarks/README.md.

Three kinds of peers, for each world size W > 1 of ``--ranks``:

- ``1 rank, all cores``: the plain run (``--num-envs`` agents, the machine's cores for the
  simulator and for torch), what one process does with the whole machine;
- ``1 rank, 1/W of it``: one rank's share alone (num_envs / W agents, cores / W threads), the
  reference of perfect scaling: W of them would make W times its agent-steps/s;
- ``W ranks``: the distributed run (num_envs in all, cores / W threads each).

Each peer is one set of processes started as torchrun would start them (its environment
variables, one free port) that joins once and then trains once per repeat (one untimed update
first), the peers taking turns round by round; the timer is ``train``'s own clock (from after the
env's reset to the end, the slowest rank's). Rank 0 also reports the seconds spent inside each
collective, which include waiting for the slower rank.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

TIMED = {
    "dist_train": "escape_room_env.ppo.train's own clock (TrainResult.seconds: after envs.reset() to the end, "
    "the slowest rank's): rollouts, GAE, the update epochs with the gradient all-reduce, the episode "
    "statistics' gather; the same processes every repeat, a fresh train() call each",
    "dist_allreduce": "a loop of torch.distributed.all_reduce calls between 2 local ranks (gloo), after a "
    "barrier; rank 0's clock",
}
#: The Ranks methods a rank spends time in during an update (each returns at once with one rank).
COLLECTIVES = ("average_gradients", "max", "gather_rows")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = harness.add_common_args(argparse.ArgumentParser(description=__doc__), retries=1, wait_idle=120)
    p.add_argument("--ranks", type=int, nargs="+", default=[2], help="world sizes beside 1 rank (default 2)")
    p.add_argument("--num-envs", type=int, help="agents in all (default 1024, the trainer's; quick 64)")
    p.add_argument("--num-steps", type=int, help="rollout length (default: the trainer's, 32; quick 8)")
    p.add_argument("--hidden", type=int, help="width of the policy (default: the trainer's, 128)")
    p.add_argument("--updates", type=int, help="PPO updates per repeat (default 2; quick 1)")
    p.add_argument("--device", default="cpu", help="the trainer's --device (cuda:0: the ranks share GPU 0)")
    p.add_argument(
        "--allreduce-calls", type=int, help="calls per repeat of the bare all-reduce (default 200)"
    )
    p.add_argument("--worker", choices=["train", "allreduce"], help=argparse.SUPPRESS)  # a rank's part
    p.add_argument("--threads", type=int, help=argparse.SUPPRESS)  # a rank's simulator and torch threads
    args = p.parse_args(argv)
    from escape_room_env.ppo import Args

    args.num_envs = args.num_envs or (64 if args.quick else Args.num_envs)
    args.num_steps = args.num_steps or (8 if args.quick else Args.num_steps)
    args.hidden = args.hidden or (16 if args.quick else Args.hidden)
    args.updates = args.updates or (1 if args.quick else 2)
    args.allreduce_calls = args.allreduce_calls or (5 if args.quick else 200)
    return args


# -- one rank (a child process) ------------------------------------------------------------------


def train_worker(args: argparse.Namespace) -> None:
    """One rank: joins the others once (as a caller's own script would; ``train`` then uses that
    process group), then for every line ``{"updates": u}`` on stdin trains u updates with
    ``ppo.train``; rank 0 prints its seconds and those spent inside each collective of ``Ranks``."""
    import torch
    import torch.distributed as dist

    from escape_room_env.distributed import Ranks
    from escape_room_env.ppo import Agent, Args, train

    ranks = Ranks.from_environment()
    torch.set_num_threads(args.threads)
    if ranks.distributed:  # as Ranks.connected would: NCCL between ranks with a GPU each
        if args.device.startswith("cuda"):
            torch.cuda.set_device(ranks.device(torch.device(args.device)))
        dist.init_process_group("cpu:gloo,cuda:nccl" if args.device == "cuda" else "gloo")
    spent = dict.fromkeys(COLLECTIVES, 0.0)

    def timed(name: str):
        method = getattr(Ranks, name)

        def run(self, *a, **kw):
            t0 = time.perf_counter()
            try:
                return method(self, *a, **kw)
            finally:
                spent[name] += time.perf_counter() - t0

        return run

    for name in COLLECTIVES:
        setattr(Ranks, name, timed(name))
    params = sum(p.numel() for p in Agent(87, args.hidden).parameters())
    for line in sys.stdin:
        updates = json.loads(line)["updates"]
        spent.update(dict.fromkeys(COLLECTIVES, 0.0))
        result = train(
            Args(
                num_envs=args.num_envs,
                num_steps=args.num_steps,
                hidden=args.hidden,
                total_timesteps=updates * args.num_envs * args.num_steps,
                num_threads=args.threads,
                device=args.device,
                max_minutes=0,
                progress_bar=False,
                log_every=0,
                save_dir=None,
            )
        )
        if result.rank == 0:
            outcome = {"seconds": result.seconds, "global_step": result.global_step, "params": params}
            print(json.dumps({**outcome, "collectives_s": spent}), flush=True)
    if ranks.distributed:
        dist.destroy_process_group()


def allreduce_worker(args: argparse.Namespace) -> None:
    """Rank 0 prints its seconds for ``allreduce_calls`` all-reduces of the gradient buffer and of
    one float64 (the latency), ``repeats`` times each after one untimed round."""
    import torch
    import torch.distributed as dist

    from escape_room_env.ppo import Agent

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    params = sum(p.numel() for p in Agent(87, args.hidden).parameters())
    buffers = {"gradients": torch.zeros(params), "one float64": torch.zeros(1, dtype=torch.float64)}
    times: dict[str, list[float]] = {name: [] for name in buffers}
    for repeat in range(args.repeats + 1):
        for name, buffer in buffers.items():
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(args.allreduce_calls):
                dist.all_reduce(buffer)
            if repeat:  # the first round warms up
                times[name].append(time.perf_counter() - t0)
    if dist.get_rank() == 0:
        print(json.dumps({"times_s": times, "params": params}), flush=True)
    dist.destroy_process_group()


# -- the parent: the ranks as torchrun would start them ------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Job:
    """``world_size`` ranks of ``worker`` on this node, ``num_envs`` agents in all, ``threads``
    simulator and torch threads each; results come on rank 0's stdout."""

    def __init__(self, worker: str, world_size: int, num_envs: int, threads: int, args: argparse.Namespace):
        port, self.name, self.procs = free_port(), f"{worker} x {world_size}", []
        flags = {"num-envs": num_envs, "threads": threads, "num-steps": args.num_steps, "hidden": args.hidden}
        flags.update(
            {"device": args.device, "allreduce-calls": args.allreduce_calls, "repeats": args.repeats}
        )
        cmd = [sys.executable, __file__, "--worker", worker, *(f"--{k}={v}" for k, v in flags.items())]
        for rank in range(world_size):
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MASTER_ADDR": "127.0.0.1"}
            env.update(MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size))
            env.update(LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world_size))
            out = subprocess.PIPE if rank == 0 else subprocess.DEVNULL
            self.procs.append(subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=out, text=True))

    def ask(self, command: dict[str, Any] | None = None) -> dict[str, Any]:
        """Sends ``command`` to every rank (none: just waits) and reads rank 0's answer."""
        if command is not None:
            for proc in self.procs:
                proc.stdin.write(json.dumps(command) + "\n")
                proc.stdin.flush()
        line = self.procs[0].stdout.readline()
        if not line:
            self.close()
            raise RuntimeError(
                f"{self.name}: a rank ended: exit statuses {[p.returncode for p in self.procs]}"
            )
        return json.loads(line)

    def close(self) -> None:
        for proc in self.procs:
            if proc.stdin and not proc.stdin.closed:
                proc.stdin.close()
        for proc in self.procs:
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()


def peers(args: argparse.Namespace) -> list[dict[str, Any]]:
    """(world_size, num_envs, threads) of every peer, named."""
    cores, n = harness.usable_cores(), args.num_envs
    found = [{"impl": f"1 rank, all {cores} cores", "world_size": 1, "num_envs": n, "threads": cores}]
    for w in args.ranks:
        share = {"num_envs": n // w, "threads": max(1, cores // w)}
        found.append({"impl": f"1 rank, 1/{w} of it", "world_size": 1, **share})
        found.append({"impl": f"{w} ranks", "world_size": w, **share, "num_envs": n})
    return found


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        (train_worker if args.worker == "train" else allreduce_worker)(args)
        return
    suite = harness.Suite(args, "distributed")
    steps = args.updates * args.num_steps
    per_update: dict[str, dict[str, list[float]]] = {}
    params = 0

    def run_of(peer: dict[str, Any], stack: contextlib.ExitStack) -> harness.Run:
        job = Job("train", peer["world_size"], peer["num_envs"], peer["threads"], args)
        stack.callback(job.close)
        spent = per_update[peer["impl"]] = {name: [] for name in COLLECTIVES}

        def run(n: int) -> float:
            nonlocal params
            updates = max(1, n // args.num_steps)
            outcome = job.ask({"updates": updates})
            assert outcome["global_step"] == updates * peer["num_envs"] * args.num_steps, outcome
            params = outcome["params"]
            if n == steps:  # a timed repeat, not the warm-up
                for name, seconds in outcome["collectives_s"].items():
                    spent[name].append(seconds / updates)
            return outcome["seconds"]

        return run

    configs = peers(args)
    per_peer = {
        p["impl"]: {"world_size": p["world_size"], "num_worlds": p["num_envs"], "threads": p["threads"]}
        for p in configs
    }
    with contextlib.ExitStack() as stack:
        runs = {p["impl"]: run_of(p, stack) for p in configs}
        records = suite.measure(
            "dist_train",
            runs,
            steps=steps,
            warmup=args.num_steps,  # one untimed update in each (warm) set of processes
            updates=args.updates,
            num_steps=args.num_steps,
            hidden=args.hidden,
            device=args.device,
            timed=TIMED["dist_train"],
            per_peer=per_peer,
        )
    allreduce = bare_allreduce(suite, args)
    summary = summarise(args, records, per_update, allreduce, params)
    suite.emit(summary)
    suite.finish("Distributed training benchmark", headline(summary))


def bare_allreduce(suite: harness.Suite, args: argparse.Namespace) -> dict[str, float]:
    """µs per call of the gradient buffer's and of one float64's all-reduce between 2 local ranks."""
    job = Job("allreduce", 2, args.num_envs, 1, args)
    outcome = job.ask()
    job.close()
    found = {}
    for name, times in outcome["times_s"].items():
        size = 4 * outcome["params"] if name == "gradients" else 8
        rec = suite.emit(
            harness.record(
                "dist_allreduce",
                f"gloo all_reduce, {name} ({size:,} bytes), 2 ranks",
                times,
                steps=args.allreduce_calls,
                num_worlds=1,
                threads=1,
                bytes=size,
                timed=TIMED["dist_allreduce"],
            )
        )
        found[name] = 1e6 * rec["median_s"] / args.allreduce_calls
    return found


def summarise(args, records, per_update, allreduce_us, params) -> dict[str, Any]:
    """Each peer's agent-steps/s, seconds per update and time in collectives; the speed-up of W
    ranks over the plain run and their scaling efficiency against W times one share; the sizes."""
    from escape_room_env.ppo import Args

    peers_found = {}
    for r in records:
        collectives = {name: statistics.median(v) for name, v in per_update[r["impl"]].items() if v}
        peers_found[r["impl"]] = {
            "world_size": r["world_size"],
            "agent_steps_per_s": r["world_steps_per_s"],
            "ms_per_update": round(1e3 * r["median_s"] / args.updates, 2),
            "collectives_ms_per_update": {k: round(1e3 * v, 3) for k, v in collectives.items()},
        }
    plain = next(p["agent_steps_per_s"] for impl, p in peers_found.items() if impl.startswith("1 rank, all"))
    scaling = {}
    for w in args.ranks:
        ranks, share = peers_found[f"{w} ranks"], peers_found[f"1 rank, 1/{w} of it"]
        scaling[str(w)] = {
            "speedup_over_plain_run": round(ranks["agent_steps_per_s"] / plain, 3),
            "efficiency_vs_w_shares": round(ranks["agent_steps_per_s"] / (w * share["agent_steps_per_s"]), 3),
        }
    allreduces = Args.update_epochs * Args.num_minibatches  # one gradient all-reduce per minibatch
    return {
        "bench": "dist_summary",
        "num_envs": args.num_envs,
        "num_steps": args.num_steps,
        "hidden": args.hidden,
        "device": args.device,
        "peers": peers_found,
        "scaling": scaling,
        "params": params,
        "gradient_bytes": 4 * params,
        "gradient_allreduces_per_update": allreduces,
        "gradient_bytes_per_update": 4 * params * allreduces,
        "other_collectives_per_update": "1 max (8 bytes), 2 all_gather (16 bytes, then <= 1000 x 5 float64 rows)",
        "allreduce_us": {k: round(v, 2) for k, v in allreduce_us.items()},
    }


def headline(s: dict[str, Any]) -> str:
    lines = []
    for impl, p in s["peers"].items():
        comm = sum(p["collectives_ms_per_update"].values())
        lines.append(
            f"{impl}: {harness.si(p['agent_steps_per_s'])} agent-steps/s, {p['ms_per_update']:.0f} ms per update"
            + (f" ({comm:.1f} ms in collectives)" if p["world_size"] > 1 else "")
        )
    for w, x in s["scaling"].items():
        lines.append(
            f"{w} ranks: {x['speedup_over_plain_run']:.2f} x the plain run, "
            f"{100 * x['efficiency_vs_w_shares']:.0f} % of {w} x one share"
        )
    lines.append(
        f"gradient all-reduce: {s['params']:,} float32 = {s['gradient_bytes'] / 1e3:.0f} kB, "
        f"{s['gradient_allreduces_per_update']} per update; bare gloo all-reduce between 2 local ranks: "
        f"{s['allreduce_us']['gradients']:.0f} µs, one float64 {s['allreduce_us']['one float64']:.0f} µs"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
