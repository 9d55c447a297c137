"""``Args``, the PPO trainer's settings (:mod:`escape_room_env.ppo`): a torch-free module, so that
the command line builds ``escape-room train``'s flags without importing PyTorch.

>>> from escape_room_env.ppo_args import Args
>>> Args(num_envs=64).num_envs, Args().seed
(64, 1)
"""

from __future__ import annotations

import dataclasses

__all__ = ["Args"]


@dataclasses.dataclass
class Args:
    """Training configuration; every field is a command-line flag of ``escape-room train``."""

    seed: int = 1
    """Seed of the worlds (world w uses seed + w), of torch and of action sampling."""
    num_envs: int = 1024
    """Agents stepped in parallel, in all (num_envs / num_agents worlds; under torchrun split evenly among the ranks)."""
    num_agents: int = 1
    """Agents per world."""
    rooms: str = ""
    """Comma-separated room types (empty: the default level)."""
    num_threads: int = 0
    """CPU threads of the simulator (0: all cores; under torchrun, the node's cores shared among its ranks)."""
    device: str = "cpu"
    """Where the policy and the simulator run: cpu, or cuda (the rollout stays on the GPU; under torchrun cuda:LOCAL_RANK)."""
    total_timesteps: int = 60_000_000
    """Agent-steps to train for."""
    max_minutes: float = 15.0
    """Stop after this much wall time (0: no limit)."""
    learning_rate: float = 5e-4
    """Adam learning rate (with normalised observations 5e-4 learns the cube rooms sooner than 2.5e-4 and ends as high)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly over total_timesteps."""
    num_steps: int = 32
    """Steps per env in one rollout."""
    gamma: float = 0.995
    """Discount factor (0.995: the door a cube opens pays off tens of steps after the push)."""
    gae_lambda: float = 0.98
    """Lambda of generalised advantage estimation (0.98: advantages that reach back to the push)."""
    num_minibatches: int = 4
    """Minibatches per epoch."""
    update_epochs: int = 3
    """Optimisation epochs per rollout."""
    clip_coef: float = 0.2
    """PPO clipping coefficient."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Gradient clipping norm."""
    hidden: int = 128
    """Width of the two hidden layers of actor and critic."""
    normalize_obs: bool = True
    """Normalise the policy's observations by their running mean and variance (kept in policy.pt)."""
    log_every: int = 10
    """Print a log line every this many updates (0: never)."""
    progress_bar: bool = True
    """Show a tqdm progress bar."""
    save_dir: str | None = "runs"
    """Where to write the run folder (policy.pt, progress.csv, args.json); empty: don't save."""
    run_name: str = ""
    """Run folder name (default: escape_room_<seed>_<time>)."""
    record: str = ""
    """Record every step the trainer simulates to this replay file (under torchrun one per rank: <stem>.rank<r>.bin)."""
    dist_timeout: float = 300.0
    """Under torchrun: seconds a rank waits for the others (rendezvous, each collective) before it fails."""
