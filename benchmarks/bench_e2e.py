"""What does training see? World-steps/s of ``EscapeRoomVectorEnv`` in Isaac Lab's three tiers:
(a) simulation only, (b) + a policy forward, (c) + the PPO update (benchmarks/README.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

import escape_room_env as er
from escape_room_env import ppo
from escape_room_env.bench import action_pool

WORLDS, HEADLINE_WORLDS = (256, 1024, 4096), 4096
TIERS = {
    "e2e_sim": "(a) simulation only",
    "e2e_policy": "(b) + policy forward",
    "e2e_train": "(c) + PPO update",
}
TIMED = {
    "e2e_sim": "the whole python loop of env.step(actions); actions cycle through 8 int64 (N, 3) arrays",
    "e2e_policy": "the whole python loop of: obs -> torch.from_numpy -> Agent.get_action_and_value under "
    "torch.inference_mode() -> env.step(action.numpy())",
    "e2e_train": "escape_room_env.ppo.train: its own clock, from after envs.reset() to the end (rollouts, "
    "GAE, update epochs, episode statistics)",
}
IMPL = {bench: f"EscapeRoomVectorEnv {tier}" for bench, tier in TIERS.items()}
PER_PEER = {IMPL[b]: {"bench": b, "tier": tier, "timed": TIMED[b]} for b, tier in TIERS.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = harness.add_common_args(argparse.ArgumentParser(description=__doc__), retries=2, wait_idle=300)
    p.add_argument("--worlds", type=int, nargs="+", help=f"num_worlds (default {WORLDS})")
    p.add_argument("--threads", type=int, default=2, help="simulator threads (default 2)")
    p.add_argument(
        "--torch-threads", type=int, default=harness.usable_cores(), help="default: the usable cores"
    )
    p.add_argument("--hidden", type=int, default=64, help="width of the policy's 2 hidden layers")
    p.add_argument("--num-steps", type=int, default=ppo.Args.num_steps, help="rollout length of tier c")
    p.add_argument("--update-epochs", type=int, default=ppo.Args.update_epochs, help="tier c")
    p.add_argument("--num-minibatches", type=int, default=ppo.Args.num_minibatches, help="tier c")
    p.add_argument(
        "--updates", type=int, help="PPO updates per repeat of tier c (default: ~2**17 world-steps)"
    )
    args = p.parse_args(argv)
    args.worlds = args.worlds or ((16, 64) if args.quick else WORLDS)
    return args


def make_env(n: int, args: argparse.Namespace, stack) -> er.EscapeRoomVectorEnv:
    env = er.EscapeRoomVectorEnv(num_envs=n, seed=0, num_threads=args.threads, copy=False)  # NEXT_STEP
    stack.callback(env.close)
    return env


def policy_run(env: er.EscapeRoomVectorEnv, agent: ppo.Agent) -> harness.Run:
    """Tier b: ``run(n)`` is n steps whose actions the policy samples from the last observation."""
    obs = [env.reset(seed=0)[0]]

    def run(n: int) -> None:
        o = obs[0]
        with torch.inference_mode():
            for _ in range(n):
                o = env.step(agent.get_action_and_value(torch.from_numpy(o))[0].numpy())[0]
        obs[0] = o

    return run


def train_run(n: int, args: argparse.Namespace) -> harness.Run:
    """Tier c: ``run(s)`` trains s steps of every world (s / num_steps PPO updates, at least one)
    with ``ppo.train`` and returns its own seconds."""
    fields = ("hidden", "num_steps", "update_epochs", "num_minibatches")

    def run(steps: int) -> float:
        kw = {f: getattr(args, f) for f in fields}
        total = steps * n
        return ppo.train(
            ppo.Args(
                seed=1,
                num_envs=n,
                num_threads=args.threads,
                total_timesteps=total,
                max_minutes=0,
                log_every=0,
                progress_bar=False,
                save_dir=None,
                **kw,
            )
        ).seconds

    return run


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    suite = harness.Suite(args, "e2e", torch_threads=torch.get_num_threads())
    common = {"threads": args.threads, "copy": False, "autoreset": "NEXT_STEP", "hidden": args.hidden}
    common.update(torch_threads=torch.get_num_threads(), per_peer=PER_PEER)
    rates: dict[int, dict[str, float]] = {}
    for n in args.worlds:
        steps = harness.steps_per_repeat(n, 2**10 if args.quick else 2**18, 8, 5000, args.steps)
        updates = args.updates or (1 if args.quick else max(1, 2**17 // (n * args.num_steps)))

        def make(r: int, stack, n: int = n) -> dict[str, harness.Run]:  # tiers a and b, fresh every round
            torch.manual_seed(0)
            env, policy_env = make_env(n, args, stack), make_env(n, args, stack)
            env.reset(seed=0)
            agent = ppo.Agent(env.single_observation_space.shape[0], args.hidden)
            runs = {IMPL["e2e_sim"]: harness.loop_run(env.step, action_pool(n))}
            return {**runs, IMPL["e2e_policy"]: policy_run(policy_env, agent)}

        records = suite.measure("e2e", make, steps=steps, num_worlds=n, **common)
        train = {IMPL["e2e_train"]: train_run(n, args)}
        steps = updates * args.num_steps
        records += suite.measure(
            "e2e_train", train, steps=steps, warmup=1, num_worlds=n, updates=updates, **common
        )
        rates[n] = {r["bench"]: r["world_steps_per_s"] for r in records}
    del common["per_peer"]
    summary = {"world_steps_per_s": {str(n): tiers for n, tiers in rates.items()}, **common}
    suite.emit(
        {
            "bench": "e2e_summary",
            "headline_worlds": HEADLINE_WORLDS if HEADLINE_WORLDS in rates else max(rates),
            **summary,
        }
    )
    tiers = [", ".join(f"{TIERS[b]} {harness.si(v)}" for b, v in t.items()) for t in rates.values()]
    suite.finish(
        "End-to-end benchmark", "\n".join(f"{n:>5} worlds: {t} world-steps/s" for n, t in zip(rates, tiers))
    )


if __name__ == "__main__":
    main()
