"""A random policy on the gymnasium vector env, made with gymnasium.make_vec.

Run: python examples/random_rollout.py [--num-envs 4096] [--steps 500]
"""

import argparse
import time

import gymnasium as gym
import numpy as np

import escape_room_env  # noqa: F401  (registers EscapeRoom-v0)

parser = argparse.ArgumentParser()
parser.add_argument("--num-envs", type=int, default=4096)
parser.add_argument("--steps", type=int, default=500)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

envs = gym.make_vec("EscapeRoom-v0", num_envs=args.num_envs, seed=args.seed)
envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
obs, infos = envs.reset(seed=args.seed)
rng = np.random.default_rng(args.seed)
returns, doors = [], []
start = time.perf_counter()
for _ in range(args.steps):
    actions = rng.integers(0, envs.single_action_space.nvec, size=(args.num_envs, 3))
    obs, rewards, terminated, truncated, infos = envs.step(actions)
    if "episode" in infos:
        finished = infos["_episode"]
        returns.extend(infos["episode"]["r"][finished])
        doors.extend(infos["doors_opened"][finished])
elapsed = time.perf_counter() - start
envs.close()
print(f"{args.num_envs * args.steps / elapsed:,.0f} env-steps/s with a numpy random policy")
print(
    f"{len(returns)} episodes: mean return {np.mean(returns):+.3f}, first door opened in {np.mean(np.array(doors) >= 1):.1%}"
)
