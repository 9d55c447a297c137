"""Train the built-in PPO from Python (the same code as `escape-room train`).

Run: python examples/train_ppo.py [--minutes 2]
"""

import argparse

from escape_room_env.ppo import Args, train

parser = argparse.ArgumentParser()
parser.add_argument("--minutes", type=float, default=2.0)
parser.add_argument("--num-envs", type=int, default=1024)
cli = parser.parse_args()

result = train(Args(num_envs=cli.num_envs, max_minutes=cli.minutes, log_every=5, save_dir="runs"))
print(
    f"{result.global_step:,} steps: progress {result.mean_progress:.2f} m, "
    f"first door {result.first_door_rate:.1%}, escape {result.escape_rate:.1%}"
)
