"""Stable-Baselines3 PPO on the escape room, through ``escape_room_env.sb3.EscapeRoomVecEnv``.

The simulator is already vectorized, so it goes straight to SB3's VecEnv wrappers: VecMonitor
records episode returns (and our ``progress`` / ``termination_reason`` infos), VecNormalize
normalizes observations and rewards.

Run: python examples/sb3_ppo.py [--num-envs 64] [--total-timesteps 200000] [--seed 1]
(about 10 s on two cores; mean progress climbs from ~7 m with a random policy to ~20 m)
Needs: pip install stable-baselines3
"""

import argparse
import time

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

from escape_room_env.sb3 import EscapeRoomVecEnv

parser = argparse.ArgumentParser()
parser.add_argument("--num-envs", type=int, default=64, help="agents stepped together")
parser.add_argument("--total-timesteps", type=int, default=200_000, help="agent steps in total")
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--n-steps", type=int, default=64, help="steps per env in each rollout")
parser.add_argument("--episode-len", type=int, default=200, help="steps before truncation")
parser.add_argument("--num-threads", type=int, default=1, help="simulator CPU threads")
args = parser.parse_args()

torch.set_num_threads(1)  # a small MLP: more torch threads only add overhead

envs = EscapeRoomVecEnv(
    num_envs=args.num_envs, seed=args.seed, episode_len=args.episode_len, num_threads=args.num_threads
)
envs = VecMonitor(envs, info_keywords=("progress", "termination_reason"))
envs = VecNormalize(envs, gamma=0.99)

rollout = args.num_envs * args.n_steps
model = PPO(
    "MlpPolicy",
    envs,
    n_steps=args.n_steps,
    batch_size=min(rollout, 1024),
    n_epochs=4,
    learning_rate=3e-4,
    gamma=0.99,
    ent_coef=0.01,
    seed=args.seed,
    device="cpu",
    verbose=0,
)

start = time.perf_counter()
model.learn(total_timesteps=args.total_timesteps)
elapsed = time.perf_counter() - start

# ep_info_buffer holds VecMonitor's "episode" dicts of the last 100 finished episodes.
episodes = list(model.ep_info_buffer)
if episodes:
    ret = np.mean([e["r"] for e in episodes])
    progress = np.mean([e["progress"] for e in episodes])
    escaped = np.mean([e["termination_reason"] == 1 for e in episodes])
    print(
        f"last {len(episodes)} episodes: mean return {ret:.3f}, mean progress {progress:.2f} m, "
        f"escape rate {escaped:.1%}"
    )
else:
    print("no episode finished yet: raise --total-timesteps or lower --episode-len")
print(f"{model.num_timesteps} steps in {elapsed:.1f} s ({model.num_timesteps / elapsed:,.0f} SPS)")
envs.close()
