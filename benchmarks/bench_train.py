"""How fast does ``escape-room train`` train? Agent-steps/s of ``ppo.train`` with the main
command's settings (every ``Args`` default: 1,024 agents, 32 steps per rollout, 3 epochs of 4
minibatches, observation normalisation), and, with ``--baseline REF``, of the trainer of another
commit, with that commit's defaults, in the same rounds.

The baseline is ``escape_room_env/ppo.py`` and ``ppo_args.py`` as they are at REF (``git show``),
imported beside the working tree's and run on the same simulator, so the A/B isolates the
trainer: each repeat trains ``--updates`` PPO updates (rollouts, GAE, update epochs, episode
statistics) on a fresh simulator, timed by the trainer's own clock, the two trainers alternating
round by round.

    python benchmarks/bench_train.py --baseline 3eaf586 --save
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from escape_room_env import ppo
from escape_room_env.ppo_args import Args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = harness.add_common_args(argparse.ArgumentParser(description=__doc__), retries=2, wait_idle=300)
    p.add_argument("--baseline", help="a git commit whose escape_room_env/ppo.py is timed beside this tree's")
    p.add_argument("--updates", type=int, help="PPO updates per repeat (default 8; --quick: 1)")
    p.add_argument("--num-envs", type=int, default=Args.num_envs, help="agents (default: the main command's)")
    return p.parse_args(argv)


def _module_at(commit: str, path: str, name: str) -> ModuleType:
    """The file ``path`` of ``commit`` (``git show``), imported as the module ``name``."""
    source = subprocess.run(
        ["git", "-C", str(harness.REPO), "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def trainer_at(commit: str) -> tuple[ModuleType, type]:
    """``escape_room_env/ppo.py`` of ``commit`` and the ``Args`` of that commit (its defaults are
    that trainer's main command), each imported as its own module."""
    trainer = _module_at(commit, "escape_room_env/ppo.py", f"ppo_{commit}")
    settings = _module_at(commit, "escape_room_env/ppo_args.py", f"ppo_args_{commit}")
    return trainer, settings.Args


def train_run(trainer: ModuleType, args_type: type, num_envs: int) -> harness.Run:
    """``run(s)`` trains s steps of every env (s / num_steps updates, at least one) with
    ``trainer.train`` at ``args_type``'s defaults, and returns the trainer's own seconds."""

    def run(steps: int) -> float:
        args = args_type(
            num_envs=num_envs,
            total_timesteps=steps * num_envs,
            max_minutes=0,
            log_every=0,
            progress_bar=False,
            save_dir=None,
        )
        return trainer.train(args).seconds

    return run


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.quick:
        args.num_envs = min(args.num_envs, 64)
    updates = args.updates or (1 if args.quick else 8)
    suite = harness.Suite(args, "train-ab" if args.baseline else "train", torch_threads=torch.get_num_threads())
    peers = {"ppo.train (this tree)": train_run(ppo, Args, args.num_envs)}
    if args.baseline:
        peers[f"ppo.train @ {args.baseline}"] = train_run(*trainer_at(args.baseline), args.num_envs)
    timed = "ppo.train's own clock, from after envs.reset() to the end of the last update"
    records = suite.measure(
        "train",
        peers,
        steps=updates * Args.num_steps,
        warmup=1,
        num_worlds=args.num_envs,
        threads=harness.usable_cores(),  # the simulator's (Args.num_threads 0: all cores)
        updates=updates,
        timed=timed,
        torch_threads=torch.get_num_threads(),
    )
    rates = {r["impl"]: r["agent_steps_per_s"] for r in records}
    lines = [f"{name}: {harness.si(rate)} agent-steps/s" for name, rate in rates.items()]
    if args.baseline:
        now, before = rates["ppo.train (this tree)"], rates[f"ppo.train @ {args.baseline}"]
        lines.append(f"this tree / {args.baseline}: {now / before:.2f}x; target >= 100 k: {harness.verdict(now >= 1e5)}")
    suite.finish("Trainer throughput (escape-room train's settings)", "\n".join(lines))


if __name__ == "__main__":
    main()
