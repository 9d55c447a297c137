"""The raw SimManager loop of the Madrona escape room's Python guide, with a random policy.

Run: python examples/sim_manager_loop.py [--worlds 1024] [--steps 2000]
"""

import argparse
import time

import numpy as np

import escape_room_env as er

parser = argparse.ArgumentParser()
parser.add_argument("--worlds", type=int, default=1024)
parser.add_argument("--steps", type=int, default=2000)
parser.add_argument("--seed", type=int, default=42)
args = parser.parse_args()

sim = er.SimManager(exec_mode=er.ExecMode.CPU, num_worlds=args.worlds, rand_seed=args.seed, auto_reset=True)

# Get tensor references once: they share memory with the simulation and never move.
actions = sim.action_tensor().to_numpy()  # [W, 1, 3] int32
rewards = sim.reward_tensor().to_numpy()  # [W, 1, 1] float32
dones = sim.done_tensor().to_numpy()  # [W, 1, 1] int32
reasons = sim.termination_reason_tensor().to_numpy()
progress = sim.progress_tensor().to_numpy()

rng = np.random.default_rng(args.seed)
episode_return = np.zeros(args.worlds, dtype=np.float64)
returns, escapes = [], 0
start = time.perf_counter()
for _ in range(args.steps):
    actions[..., 0] = rng.integers(0, 4, size=args.worlds)[:, None]  # move_amount
    actions[..., 1] = rng.integers(0, 8, size=args.worlds)[:, None]  # move_angle
    actions[..., 2] = rng.integers(0, 5, size=args.worlds)[:, None]  # rotate
    sim.step()
    episode_return += rewards[:, 0, 0]
    done = dones[:, 0, 0] == 1
    if done.any():
        returns.extend(episode_return[done].tolist())
        escapes += int((reasons[done, 0, 0] == 1).sum())
        episode_return[done] = 0.0
elapsed = time.perf_counter() - start

print(f"{args.worlds * args.steps / elapsed:,.0f} world-steps/s (random actions drawn in numpy each step)")
print(
    f"episodes finished: {len(returns)}, escaped: {escapes}, mean return: {np.mean(returns) if returns else 0:.3f}"
)
print(f"mean progress of the running episodes: {progress.mean():.2f} m")
