"""PPO on the escape room through PufferLib: its vector API, its default policy and its action
sampler, driven by a CleanRL-style loop you can read top to bottom.

Why not PufferLib's own trainer (``pufferlib.pufferl.PuffeRL``)? In ``pufferlib-core`` 3.0.23 its
advantage function runs only in the compiled extension ``pufferlib._C``, which the wheel builds for
CUDA against torch 2.9.0 (it links ``libcudart.so.12`` and ``libtorch_cuda.so``). On a CPU build of
torch (2.13 here) that extension does not load, and every ``PuffeRL.train()`` stops with
"Training requires the pufferlib._C extension". Importing ``pufferlib.pufferl`` also turns every
``RuntimeWarning`` of the process into an error and makes Ctrl-C exit at once (``os._exit(0)``).
So this file drives the pieces ``PuffeRL`` drives (``pufferlib.vector``'s ``async_reset`` /
``recv`` / ``send``, ``pufferlib.models.Default``, ``pufferlib.pytorch.sample_logits``) with a
CleanRL PPO update. With a CUDA build of torch 2.9.0, ``pufferlib.pufferl.PuffeRL(config, vecenv,
policy)`` takes the same ``vecenv`` and ``policy``.

Resets are PufferLib's (same step): on a done step the observation is already the next episode's
first. A time-limit end (``truncations``) is treated as terminal, as CleanRL does; the observation
holds the steps remaining, so the value can see it coming.

Run: python examples/puffer_train.py [--backend Serial|Multiprocessing] [--total-timesteps 2_000_000]
(2,000,000 steps: 1.5 to 2.5 minutes on two cores, 15-23 k steps/s. On 2026-12-06 the mean episode
return climbed from -0.58 to +0.35 in the first 1 M steps and to 0.4-0.6 by 3 M, progress from 8 m
to 24-29 m of the 41.5 m, doors opened per episode from 0.38 to 1.0-1.5, and a few escapes)
Needs: pip install --no-deps pufferlib-core && pip install psutil rich rich-argparse
"""

import argparse
import time

import numpy as np
import pufferlib.models
import pufferlib.pytorch
import pufferlib.vector
import torch

from escape_room_env.puffer import EscapeRoomPufferEnv

parser = argparse.ArgumentParser()
parser.add_argument("--backend", choices=["Serial", "Multiprocessing"], default="Serial")
parser.add_argument(
    "--num-envs", type=int, default=1, help="PufferLib envs (one process each with Multiprocessing)"
)
parser.add_argument("--worlds-per-env", type=int, default=256, help="worlds in each env")
parser.add_argument("--total-timesteps", type=int, default=2_000_000, help="agent steps in total")
parser.add_argument("--num-steps", type=int, default=64, help="steps per env in each rollout")
parser.add_argument("--episode-len", type=int, default=200, help="steps before truncation")
parser.add_argument(
    "--num-threads", type=int, default=None, help="simulator threads per env (default: all cores)"
)
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--learning-rate", type=float, default=2.5e-4)
parser.add_argument("--gamma", type=float, default=0.99)
parser.add_argument("--gae-lambda", type=float, default=0.95)
parser.add_argument("--update-epochs", type=int, default=4)
parser.add_argument("--num-minibatches", type=int, default=4)
parser.add_argument("--clip-coef", type=float, default=0.2)
parser.add_argument("--ent-coef", type=float, default=0.01)
parser.add_argument("--vf-coef", type=float, default=0.5)
parser.add_argument("--max-grad-norm", type=float, default=0.5)
args = parser.parse_args()

torch.manual_seed(args.seed)
torch.set_num_threads(1)  # a small MLP: more torch threads only add overhead

# One env of many worlds already fills the cores; Multiprocessing runs num_envs of them in
# processes of their own (PufferLib refuses more workers than cores unless told to overwork).
backend = getattr(pufferlib.vector, args.backend)
vector_options = {"num_workers": args.num_envs, "overwork": True} if args.backend == "Multiprocessing" else {}
vecenv = pufferlib.vector.make(
    EscapeRoomPufferEnv,
    num_envs=args.num_envs,
    backend=backend,
    seed=args.seed,
    env_kwargs={
        "num_envs": args.worlds_per_env,
        "episode_len": args.episode_len,
        "num_threads": args.num_threads,
        "log_interval": args.num_steps,  # about one statistics report per env and rollout
    },
    **vector_options,
)
num_agents = vecenv.num_agents
policy = pufferlib.models.Default(vecenv.driver_env, hidden_size=128)
optimizer = torch.optim.Adam(policy.parameters(), lr=args.learning_rate, eps=1e-5)

batch_size = args.num_steps * num_agents
minibatch_size = batch_size // args.num_minibatches
num_updates = max(1, args.total_timesteps // batch_size)
obs_shape, nvec = vecenv.single_observation_space.shape, vecenv.single_action_space.nvec
obs = torch.zeros((args.num_steps, num_agents, *obs_shape))
actions = torch.zeros((args.num_steps, num_agents, len(nvec)), dtype=torch.int64)
logprobs = torch.zeros((args.num_steps, num_agents))
rewards = torch.zeros((args.num_steps, num_agents))
dones = torch.zeros((args.num_steps, num_agents))
values = torch.zeros((args.num_steps, num_agents))

vecenv.async_reset(args.seed)
o, *_ = vecenv.recv()
next_obs = torch.as_tensor(o)  # a view of PufferLib's buffer: read before the next send
next_done = torch.zeros(num_agents)
global_step, start, report = 0, time.perf_counter(), {}

for update in range(1, num_updates + 1):
    optimizer.param_groups[0]["lr"] = args.learning_rate * (1.0 - (update - 1.0) / num_updates)
    stats = []
    for step in range(args.num_steps):
        obs[step], dones[step] = next_obs, next_done
        with torch.no_grad():
            logits, value = policy(next_obs)
            action, logprob, _ = pufferlib.pytorch.sample_logits(logits)
        actions[step], logprobs[step], values[step] = action, logprob, value.flatten()
        vecenv.send(action.numpy())
        o, r, terminals, truncations, _, infos, _, _ = vecenv.recv()
        global_step += num_agents
        rewards[step] = torch.as_tensor(r)
        next_obs = torch.as_tensor(o)
        next_done = torch.as_tensor(terminals | truncations, dtype=torch.float32)
        stats += infos  # PufferLib info dicts: episode statistics, at most one per env per rollout

    # Generalized advantage estimation (CleanRL's), bootstrapped from the value of next_obs.
    with torch.no_grad():
        next_value = policy(next_obs)[1].flatten()
        advantages = torch.zeros_like(rewards)
        last = torch.zeros(num_agents)
        for t in reversed(range(args.num_steps)):
            following, not_done = (
                (next_value, 1.0 - next_done)
                if t == args.num_steps - 1
                else (values[t + 1], 1.0 - dones[t + 1])
            )
            delta = rewards[t] + args.gamma * following * not_done - values[t]
            last = delta + args.gamma * args.gae_lambda * not_done * last
            advantages[t] = last
        returns = advantages + values

    b_obs, b_actions = obs.reshape(-1, *obs_shape), actions.reshape(-1, len(nvec))
    b_logprobs, b_advantages = logprobs.reshape(-1), advantages.reshape(-1)
    b_returns, b_values = returns.reshape(-1), values.reshape(-1)
    for _epoch in range(args.update_epochs):
        for mb in torch.randperm(batch_size).split(minibatch_size):
            logits, new_value = policy(b_obs[mb])
            _, new_logprob, entropy = pufferlib.pytorch.sample_logits(logits, action=b_actions[mb])
            ratio = (new_logprob - b_logprobs[mb]).exp()
            adv = b_advantages[mb]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg_loss = torch.max(
                -adv * ratio, -adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)
            ).mean()
            new_value = new_value.flatten()
            v_clipped = b_values[mb] + (new_value - b_values[mb]).clamp(-args.clip_coef, args.clip_coef)
            v_loss = (
                0.5 * torch.max((new_value - b_returns[mb]) ** 2, (v_clipped - b_returns[mb]) ** 2).mean()
            )
            loss = pg_loss - args.ent_coef * entropy.mean() + args.vf_coef * v_loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), args.max_grad_norm)
            optimizer.step()

    if stats:  # the means over every env's reports of this rollout
        report = {key: float(np.mean([s[key] for s in stats])) for key in stats[0]}
        sps = global_step / (time.perf_counter() - start)
        print(
            f"update {update}/{num_updates}  steps {global_step:,}  SPS {sps:,.0f}  "
            + "  ".join(f"{k} {v:.3f}" for k, v in report.items()),
            flush=True,
        )

elapsed = time.perf_counter() - start
print(
    f"{global_step:,} agent steps in {elapsed:.1f} s ({global_step / elapsed:,.0f} SPS); last report: {report}"
)
vecenv.close()
