"""CleanRL's PPO (cleanrl/ppo.py), shaped as its single file, on ``gym.make_vec``.

What differs from CleanRL's file, and why:
- ``gym.make_vec("EscapeRoomDiscrete-v0", num_envs=N)`` instead of a ``SyncVectorEnv`` of
  ``gym.make`` envs: the simulator steps all envs in one native call. ``EscapeRoomDiscrete-v0`` is
  the env with one ``Discrete(160)`` action, as CleanRL's categorical policy needs.
- Episode statistics: under gymnasium 1.x's default NEXT_STEP autoreset no ``final_info``
  arrives, so CleanRL's ``if "final_info" in infos`` never logs. The vector
  ``RecordEpisodeStatistics`` wrapper puts ``infos["episode"]`` (``r``, ``l``, ``t``) on the step an
  episode ends, with the mask ``infos["_episode"]`` saying which envs ended; the env's own
  ``infos["progress"]`` there is the finished episode's progress (metres).
- NEXT_STEP: the step after a done step only resets that env (its action is ignored, reward 0),
  so those steps are left out of the loss.

Run: python examples/cleanrl_ppo.py [--total-timesteps 2000000] [--num-envs 64] [--seed 1]
(about 80 s on two cores: the mean return climbs from about -0.58 to about +0.35 and the mean
progress from about 8 m to about 25 m)
Needs: torch
"""

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions.categorical import Categorical

import escape_room_env  # noqa: F401  registers the ids (or use "escape_room_env:EscapeRoomDiscrete-v0")

parser = argparse.ArgumentParser()
parser.add_argument("--env-id", default="EscapeRoomDiscrete-v0", help="a Discrete-action env id")
parser.add_argument("--total-timesteps", type=int, default=2_000_000, help="agent steps in total")
parser.add_argument("--num-envs", type=int, default=64, help="envs stepped together")
parser.add_argument("--num-steps", type=int, default=128, help="steps per env in each rollout")
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--learning-rate", type=float, default=2.5e-4)
parser.add_argument("--gamma", type=float, default=0.99)
parser.add_argument("--gae-lambda", type=float, default=0.95)
parser.add_argument("--num-minibatches", type=int, default=4)
parser.add_argument("--update-epochs", type=int, default=4)
parser.add_argument("--clip-coef", type=float, default=0.2)
parser.add_argument("--ent-coef", type=float, default=0.01)
parser.add_argument("--vf-coef", type=float, default=0.5)
parser.add_argument("--max-grad-norm", type=float, default=0.5)
args = parser.parse_args()
batch_size = args.num_envs * args.num_steps
minibatch_size = batch_size // args.num_minibatches
num_iterations = args.total_timesteps // batch_size


def layer_init(layer, std=2**0.5, bias_const=0.0):
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    def __init__(self, envs):
        super().__init__()
        n_obs = int(np.prod(envs.single_observation_space.shape))
        self.critic = nn.Sequential(
            layer_init(nn.Linear(n_obs, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 1), std=1.0),
        )
        self.actor = nn.Sequential(
            layer_init(nn.Linear(n_obs, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, envs.single_action_space.n), std=0.01),
        )

    def get_value(self, x):
        return self.critic(x)

    def get_action_and_value(self, x, action=None):
        probs = Categorical(logits=self.actor(x))
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.critic(x)


np.random.seed(args.seed)
torch.manual_seed(args.seed)
torch.set_num_threads(1)  # a small MLP: more torch threads only add overhead

envs = gym.make_vec(args.env_id, num_envs=args.num_envs, num_threads=1)
envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
assert isinstance(envs.single_action_space, gym.spaces.Discrete), "only discrete action space is supported"

agent = Agent(envs)
optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

obs = torch.zeros((args.num_steps, args.num_envs, *envs.single_observation_space.shape))
actions = torch.zeros((args.num_steps, args.num_envs), dtype=torch.long)
logprobs = torch.zeros((args.num_steps, args.num_envs))
rewards = torch.zeros((args.num_steps, args.num_envs))
dones = torch.zeros((args.num_steps, args.num_envs))
values = torch.zeros((args.num_steps, args.num_envs))

global_step = 0
start_time = time.time()
next_obs, _ = envs.reset(seed=args.seed)
next_obs = torch.Tensor(next_obs)
next_done = torch.zeros(args.num_envs)
returns_seen, progress_seen = [], []

for iteration in range(1, num_iterations + 1):
    frac = 1.0 - (iteration - 1.0) / num_iterations  # CleanRL's learning-rate annealing
    optimizer.param_groups[0]["lr"] = frac * args.learning_rate

    for step in range(args.num_steps):
        global_step += args.num_envs
        obs[step] = next_obs
        dones[step] = next_done
        with torch.no_grad():
            action, logprob, _, value = agent.get_action_and_value(next_obs)
            values[step] = value.flatten()
        actions[step] = action
        logprobs[step] = logprob

        next_obs, reward, terminations, truncations, infos = envs.step(action.numpy())
        next_done = torch.Tensor(np.logical_or(terminations, truncations))
        rewards[step] = torch.as_tensor(reward)
        next_obs = torch.Tensor(next_obs)
        if "episode" in infos:  # the episodes that ended on this step (NEXT_STEP: no final_info)
            ended = infos["_episode"]
            returns_seen += infos["episode"]["r"][ended].tolist()
            progress_seen += infos["progress"][ended].tolist()

    # GAE as in CleanRL; a done step cuts the bootstrap (a time limit is treated as terminal).
    with torch.no_grad():
        next_value = agent.get_value(next_obs).reshape(1, -1)
        advantages = torch.zeros_like(rewards)
        lastgaelam = 0
        for t in reversed(range(args.num_steps)):
            if t == args.num_steps - 1:
                nextnonterminal = 1.0 - next_done
                nextvalues = next_value
            else:
                nextnonterminal = 1.0 - dones[t + 1]
                nextvalues = values[t + 1]
            delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
            advantages[t] = lastgaelam = delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
        returns = advantages + values

    # NEXT_STEP: a step taken from a done step's observation only reset the env; drop it.
    valid = (dones == 0).reshape(-1)
    b_obs = obs.reshape((-1, *envs.single_observation_space.shape))[valid]
    b_logprobs = logprobs.reshape(-1)[valid]
    b_actions = actions.reshape(-1)[valid]
    b_advantages = advantages.reshape(-1)[valid]
    b_returns = returns.reshape(-1)[valid]
    b_values = values.reshape(-1)[valid]

    b_inds = np.arange(len(b_obs))
    for _epoch in range(args.update_epochs):
        np.random.shuffle(b_inds)
        for start in range(0, len(b_inds), minibatch_size):
            mb_inds = b_inds[start : start + minibatch_size]
            _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb_inds], b_actions[mb_inds])
            ratio = (newlogprob - b_logprobs[mb_inds]).exp()
            mb_advantages = b_advantages[mb_inds]
            mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
            pg_loss1 = -mb_advantages * ratio
            pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)
            pg_loss = torch.max(pg_loss1, pg_loss2).mean()
            v_loss = 0.5 * ((newvalue.view(-1) - b_returns[mb_inds]) ** 2).mean()
            loss = pg_loss - args.ent_coef * entropy.mean() + v_loss * args.vf_coef
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
            optimizer.step()

    sps = int(global_step / (time.time() - start_time))
    if returns_seen:
        print(
            f"global_step={global_step}, episodic_return={np.mean(returns_seen):+.3f}, "
            f"progress={np.mean(progress_seen):.1f} m, episodes={len(returns_seen)}, SPS={sps}",
            flush=True,
        )
    else:
        print(f"global_step={global_step}, episodic_return=n/a (no episode ended yet), SPS={sps}", flush=True)
    returns_seen, progress_seen = [], []

envs.close()
