"""CleanRL-style PPO for the escape room, in one module (``escape-room train``).

Parameter-shared policy over all agents of all worlds, MultiDiscrete heads, and rollouts that
are correct under gymnasium's NEXT_STEP autoreset: the step after a done step is the reset
step (its action is ignored and its reward is 0), so it is left out of the loss; truncated
episodes bootstrap from the value of the terminal observation, which NEXT_STEP returns on
the done step itself.

The networks see normalised observations: each feature minus its running mean, times the inverse
of its running standard deviation, clamped to [-10, 10] (``Args.normalize_obs``; the statistics
are frozen during a rollout and its update, then fold that rollout's observations in, and they are
saved in ``policy.pt``). The raw features are fractions of the 40 m level, so that a cube and a
button a metre apart differ by 0.025 in them. Without the normalisation the same trainer levels off
at about 85 % escapes, nearly all its failures in the last room with the cube short of the button
(``benchmarks/train_failures.py``, README "Training").

The simulator runs where the policy does and returns zero-copy torch tensors there
(``device="cuda"`` on a GPU; on the CPU through the env's ``torch_outputs=True``), so the
CPU and the GPU share one code path: the policy's action tensor goes straight to the core,
observations, rewards and flags never leave the device, and ``_DeviceEpisodeStats`` keeps the
statistics gymnasium's ``RecordEpisodeStatistics`` would give from the returned tensors, handing
them to the host once per rollout.

Under ``torchrun`` each process is one rank of a distributed run (``escape_room_env.distributed``):
rank r steps its share of the ``num_envs`` agents, in worlds that continue the global seed
numbering, and the ranks average their gradients every minibatch, so every rank holds the same
parameters after every update; rank 0 alone prints and writes the run folder. Without torchrun no
process group exists and none of this runs.

``policy.pt`` holds only tensors and plain values (dict, str, int, float, bool, None), and
``load_agent`` reads it with ``torch.load(weights_only=True)``: a file holding anything else,
such as a pickle that would run code, is refused before any of it runs.

>>> from escape_room_env.ppo import Args, train
>>> result = train(Args(num_envs=8, num_steps=16, total_timesteps=256, progress_bar=False, log_every=0,
...                     save_dir=None))
>>> result.global_step
256
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import math
import pickle
import sys
import time
import warnings
from pathlib import Path

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("escape_room_env.ppo needs PyTorch: pip install torch (pick your build)") from exc

from escape_room_env.action import NUM_CHOICES
from escape_room_env.distributed import Ranks
from escape_room_env.ppo_args import Args
from escape_room_env.vector_env import EscapeRoomVectorEnv
from escape_room_env.wrappers import RecordActions

__all__ = ["Agent", "Args", "TrainResult", "compute_advantages", "load_agent", "train"]


def _layer(inp: int, out: int, std: float = float(np.sqrt(2))) -> nn.Linear:
    layer = nn.Linear(inp, out)
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, 0.0)
    return layer


class Agent(nn.Module):
    """Actor-critic MLP with one categorical head per action component.

    The heads' logits are laid out as one [N, heads, max(nvec)] block (the missing choices of the
    shorter heads padded with -1e9, probability 0), so that sampling (Gumbel-max), the log
    probability and the entropy of all heads are a handful of batched tensor operations: the
    distributions are exactly those of ``torch.distributions.Categorical`` per head, without its
    per-head objects and checks, and the log-softmax is written out because torch's own is slow
    on a last dimension this short.

    >>> import torch
    >>> agent = Agent(obs_dim=87, hidden=64)
    >>> action, logprob, entropy, value = agent.get_action_and_value(torch.zeros(5, 87))
    >>> action.shape, value.shape
    (torch.Size([5, 3]), torch.Size([5]))
    """

    _slots: torch.Tensor
    _padding: torch.Tensor
    obs_mean: torch.Tensor
    obs_scale: torch.Tensor

    def __init__(self, obs_dim: int, hidden: int = 128, nvec: tuple[int, ...] = NUM_CHOICES):
        super().__init__()
        self.obs_dim = int(obs_dim)
        self.nvec = tuple(int(n) for n in nvec)
        self.critic = nn.Sequential(
            _layer(obs_dim, hidden), nn.Tanh(), _layer(hidden, hidden), nn.Tanh(), _layer(hidden, 1, 1.0)
        )
        self.actor = nn.Sequential(
            _layer(obs_dim, hidden),
            nn.Tanh(),
            _layer(hidden, hidden),
            nn.Tanh(),
            _layer(hidden, sum(self.nvec), 0.01),
        )
        # Where each head's logits go in the padded block, and the block the others start from.
        self._width = max(self.nvec)
        slots = torch.cat([torch.arange(n) + head * self._width for head, n in enumerate(self.nvec)])
        padding = torch.full((len(self.nvec) * self._width,), -1e9)
        padding[slots] = 0.0
        self.register_buffer("_slots", slots, persistent=False)
        self.register_buffer("_padding", padding, persistent=False)
        # The observation normalisation (saved with the policy): the networks see
        # clamp((obs - obs_mean) * obs_scale, -10, 10); the identity until the trainer sets them.
        self.register_buffer("obs_mean", torch.zeros(self.obs_dim))
        self.register_buffer("obs_scale", torch.ones(self.obs_dim))

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """The networks' input for raw observations ``obs`` (what the simulator returns)."""
        return ((obs - self.obs_mean) * self.obs_scale).clamp_(-10.0, 10.0)

    def get_value(self, obs: torch.Tensor, *, normalized: bool = False) -> torch.Tensor:
        """The critic's value of raw observations (or, with ``normalized=True``, of :meth:`normalize`'s)."""
        return self.critic(obs if normalized else self.normalize(obs)).squeeze(-1)

    def log_probs(self, obs: torch.Tensor, *, normalized: bool = False) -> torch.Tensor:
        """Log probabilities of every choice of every head, [N, heads, max(nvec)] (padding: about -1e9)."""
        x = obs if normalized else self.normalize(obs)
        logits = self._padding.expand(x.shape[0], -1).index_copy(1, self._slots, self.actor(x))
        logits = logits.view(x.shape[0], len(self.nvec), self._width)
        shifted = logits - logits.detach().amax(-1, keepdim=True)
        return shifted - shifted.exp().sum(-1, keepdim=True).log()

    def get_action_and_value(
        self, obs: torch.Tensor, action: torch.Tensor | None = None, *, normalized: bool = False
    ):
        """A sampled action (or the log probability of ``action``), its log probability, the
        entropy and the value, for raw observations (or :meth:`normalize`'s, ``normalized=True``)."""
        x = obs if normalized else self.normalize(obs)
        log_probs = self.log_probs(x, normalized=True)
        if action is None:  # Gumbel-max: argmax(log p - log(-log u)) is a sample of p
            gumbel = torch.rand_like(log_probs).log_().neg_().log_()
            action = (log_probs - gumbel).argmax(-1)
        logprob = log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1).sum(-1)
        entropy = -(log_probs.exp() * log_probs).sum((-2, -1))
        return action, logprob, entropy, self.get_value(x, normalized=True)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The most likely action for raw observations (for evaluation and replays)."""
        logits = self.actor(self.normalize(obs)).split(self.nvec, dim=-1)
        return torch.stack([part.argmax(-1) for part in logits], dim=-1)


class _ObservationStatistics:
    """Running mean and variance of the observations, per feature, in float64 (the parallel
    form of Welford's update, as gymnasium's ``NormalizeObservation`` keeps them), written into
    the agent's ``obs_mean`` / ``obs_scale`` after each batch. In a distributed run the batch
    moments are summed over the ranks first, so every rank holds the same bits.

    >>> agent = Agent(obs_dim=2, hidden=4)
    >>> stats = _ObservationStatistics(agent)
    >>> stats.add(torch.tensor([[1.0, 0.0], [3.0, 0.0]]))
    >>> agent.obs_mean.tolist(), agent.obs_scale.tolist()  # variances 1 and 0 (scale 1 / sqrt(1e-8))
    ([2.0, 0.0], [1.0, 10000.0])
    """

    EPSILON = 1e-8  # gymnasium's

    def __init__(self, agent: Agent):
        self.agent = agent
        device = agent.obs_mean.device
        self.count = 0.0
        self.mean = torch.zeros(agent.obs_dim, dtype=torch.float64, device=device)
        self.var = torch.ones(agent.obs_dim, dtype=torch.float64, device=device)

    def add(self, obs: torch.Tensor, ranks: Ranks | None = None) -> None:
        """Folds the raw observations ``obs`` [..., obs_dim] (this rank's) into the statistics."""
        batch = obs.reshape(-1, obs.shape[-1]).double()
        moments = torch.cat([batch.new_tensor([batch.shape[0]]), batch.sum(0), batch.square().sum(0)])
        if ranks is not None:
            ranks.sum(moments)
        n = float(moments[0])
        batch_mean = moments[1 : 1 + self.agent.obs_dim] / n
        batch_var = (moments[1 + self.agent.obs_dim :] / n - batch_mean.square()).clamp_(min=0.0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * (n / total)
        self.var = (self.var * self.count + batch_var * n + delta.square() * (self.count * n / total)) / total
        self.count = total
        self.agent.obs_mean.copy_(self.mean)
        self.agent.obs_scale.copy_((self.var + self.EPSILON).rsqrt())


@dataclasses.dataclass
class TrainResult:
    """What ``train`` returns: the agent and the statistics of the last 1,000 episodes."""

    agent: Agent
    global_step: int
    episodes: int
    mean_return: float
    mean_progress: float
    escape_rate: float
    first_door_rate: float
    seconds: float
    run_dir: Path | None
    rank: int = 0
    """This process's rank (0 without torchrun); ``run_dir`` is None on the others."""
    world_size: int = 1
    """Ranks in the run; the statistics above are theirs together."""


class _EpisodeLog:
    """Statistics of the most recent finished episodes, filled by ``_DeviceEpisodeStats.flush``."""

    def __init__(self, window: int = 1000):
        self.window = window
        self.returns: collections.deque[float] = collections.deque(maxlen=window)
        self.progress: collections.deque[float] = collections.deque(maxlen=window)
        self.escaped: collections.deque[bool] = collections.deque(maxlen=window)
        self.door: collections.deque[bool] = collections.deque(maxlen=window)
        self.count = 0

    def extend(self, count: int, returns: list, progress: list, escaped: list, door: list) -> None:
        """``count`` more finished episodes, the latest of which (up to the window) are listed."""
        self.count += count
        self.returns.extend(returns)
        self.progress.extend(progress)
        self.escaped.extend(escaped)
        self.door.extend(door)

    def summary(self) -> dict[str, float]:
        def mean(values) -> float:
            return float(np.mean(values)) if values else float("nan")

        return {
            "episodes": self.count,
            "mean_return": mean(self.returns),
            "mean_progress": mean(self.progress),
            "escape_rate": mean(self.escaped),
            "first_door_rate": mean(self.door),
        }


class _DeviceEpisodeStats:
    """Episode statistics from the env's returned tensors, on their device (CPU or GPU).

    The numbers gymnasium's ``RecordEpisodeStatistics`` gives under NEXT_STEP: a float64
    running return per env that restarts at 0 on the reset step after a done step (that step's
    reward, 0, belongs to no episode); a done step records the return, the progress, escaped
    (termination_reason == 1) and first door (doors_opened >= 1). Rows stay on the device until
    :meth:`flush`, once per rollout, so the rollout itself never waits for the host.

    >>> import torch
    >>> stats, log = _DeviceEpisodeStats(num_steps=2, num_envs=2, device="cpu"), _EpisodeLog()
    >>> infos = {"progress": torch.tensor([3.0, 1.0]), "termination_reason": torch.tensor([1, -1]),
    ...          "doors_opened": torch.tensor([1, 0])}
    >>> no, yes = torch.tensor([False, False]), torch.tensor([True, False])
    >>> stats.add(0, torch.tensor([0.25, 0.5]), no, no, infos)
    >>> stats.add(1, torch.tensor([1.0, 0.5]), yes, no, infos)
    >>> stats.flush(log)
    >>> log.count, list(log.returns), list(log.progress), list(log.escaped), list(log.door)
    (1, [1.25], [3.0], [True], [True])
    """

    def __init__(self, num_steps: int, num_envs: int, device: torch.device | str):
        def zeros(*shape, dtype=torch.bool):
            return torch.zeros(shape, dtype=dtype, device=device)

        self.running = zeros(num_envs, dtype=torch.float64)  # float64 like RecordEpisodeStatistics
        self.after_done = zeros(num_envs)
        self.done = zeros(num_steps, num_envs)
        self.returns = zeros(num_steps, num_envs, dtype=torch.float64)
        self.progress = zeros(num_steps, num_envs, dtype=torch.float32)
        self.escaped = zeros(num_steps, num_envs)
        self.door = zeros(num_steps, num_envs)
        self.rows = 0

    def add(
        self, t: int, reward: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor, infos: dict
    ) -> None:
        """Row ``t`` of the rollout: one env step's results (NEXT_STEP)."""
        self.running.add_(reward).masked_fill_(self.after_done, 0.0)
        torch.logical_or(terminated, truncated, out=self.done[t])
        self.returns[t] = self.running
        self.progress[t] = infos["progress"]
        torch.eq(infos["termination_reason"], 1, out=self.escaped[t])
        torch.ge(infos["doors_opened"], 1, out=self.door[t])
        self.after_done.copy_(self.done[t])
        self.rows = t + 1

    def flush(self, log: _EpisodeLog, ranks: Ranks | None = None) -> None:
        """Hands the episodes that ended in rows 0..t to ``log`` (in step, then env order) and
        starts the next rollout at row 0. In a distributed run, those of every rank: in step, then
        rank, then env order, which is the order of one process stepping all the worlds."""
        done = self.done[: self.rows]
        window = log.window
        if ranks is not None and ranks.distributed:
            self._flush_all_ranks(log, ranks, done, window)
            return
        returns, progress, escaped, door = (
            values[: self.rows][done][-window:].tolist()
            for values in (self.returns, self.progress, self.escaped, self.door)
        )
        log.extend(int(done.sum()), returns, progress, escaped, door)
        self.rows = 0

    def _flush_all_ranks(self, log: _EpisodeLog, ranks: Ranks, done: torch.Tensor, window: int) -> None:
        step = torch.arange(self.rows, device=done.device).unsqueeze(1).expand_as(done)
        columns = (step, self.returns, self.progress, self.escaped, self.door)
        rows = torch.stack([values[: self.rows][done].double() for values in columns], dim=1)[-window:]
        count, table = ranks.gather_rows(int(done.sum()), rows.cpu())
        table = table[torch.sort(table[:, 0], stable=True).indices][-window:]  # rank order within a step
        returns, progress = table[:, 1].tolist(), table[:, 2].tolist()
        log.extend(count, returns, progress, (table[:, 3] > 0).tolist(), (table[:, 4] > 0).tolist())
        self.rows = 0


def train(args: Args) -> TrainResult:
    """Trains a PPO policy on the escape room and returns it with its final statistics.

    The simulator runs on ``args.device`` and returns torch tensors there (on the CPU too).
    Invalid ``args`` raise ``ValueError`` before anything runs. Under torchrun this process is one
    rank (module docstring); a rank that loses the others raises
    :class:`~escape_room_env.distributed.DistributedError`.
    """
    _check_args(args)
    ranks = Ranks.from_environment()
    if ranks.distributed and args.num_envs % (ranks.world_size * args.num_agents):
        raise ValueError(
            f"num_envs={args.num_envs} must split into whole worlds among {ranks.world_size} ranks: "
            f"a multiple of {ranks.world_size} x num_agents={args.num_agents}"
        )
    requested = _torch_device(args.device)
    device = ranks.device(requested)
    with ranks.connected(requested, args.dist_timeout):
        return _train(args, ranks, device)


def _train(args: Args, ranks: Ranks, device: torch.device) -> TrainResult:
    """``train`` on this rank: its share of the agents, on ``device``."""
    torch.manual_seed(args.seed + ranks.rank)
    rooms = [r.strip() for r in args.rooms.split(",") if r.strip()] or None
    n, steps = args.num_envs // ranks.world_size, args.num_steps
    # World w of the run has the seed seed + w on whichever rank steps it: rank r's first world
    # is r times a rank's number of worlds.
    seed = args.seed + ranks.rank * (n // args.num_agents)
    simulator = EscapeRoomVectorEnv(
        n,
        num_agents=args.num_agents,
        rooms=rooms,
        device=device,
        seed=seed,
        num_threads=ranks.simulator_threads(args.num_threads),
        copy=False,
        torch_outputs=True,
    )
    obs_dim = simulator.single_observation_space.shape[0]
    envs = RecordActions(simulator, ranks.file_name(args.record)) if args.record else simulator
    agent = Agent(obs_dim, args.hidden).to(device)
    ranks.broadcast_parameters(agent)  # rank 0's initialisation everywhere
    obs_stats = _ObservationStatistics(agent) if args.normalize_obs else None
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    batch_size = n * steps  # this rank's share of an update
    global_batch_size = batch_size * ranks.world_size
    minibatch_size = max(1, batch_size // args.num_minibatches)
    num_updates = max(1, args.total_timesteps // global_batch_size)
    obs_buf = torch.zeros((steps, n, obs_dim), device=device)
    act_buf = torch.zeros((steps, n, 3), dtype=torch.long, device=device)
    logp_buf = torch.zeros((steps, n), device=device)
    rew_buf = torch.zeros((steps, n), device=device)
    term_buf = torch.zeros((steps, n), device=device)
    done_buf = torch.zeros((steps, n), device=device)
    valid_buf = torch.zeros((steps, n), device=device)
    val_buf = torch.zeros((steps, n), device=device)

    leader = ranks.rank == 0  # prints, and writes the run folder
    run_dir = _prepare_run_dir(args, ranks.world_size) if leader else None
    curve = _Curve(run_dir)
    log = _EpisodeLog()
    episode_stats = _DeviceEpisodeStats(steps, n, device)
    # The core's observation buffer as a tensor (copy=False): every step rewrites it in place.
    next_obs, _ = envs.reset(seed=seed)
    assert isinstance(next_obs, torch.Tensor)  # torch_outputs=True: every result is a tensor
    if obs_stats is not None:
        obs_stats.add(next_obs, ranks)  # the first rollout already sees normalised observations
    # True where the previous step ended the env's episode: this step is NEXT_STEP's reset step.
    resetting = torch.zeros(n, device=device)
    global_step = 0
    start = time.perf_counter()
    bar = _progress_bar(args, num_updates * global_batch_size) if leader else None

    for update in range(1, num_updates + 1):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = args.learning_rate * (1.0 - (update - 1.0) / num_updates)
        for t in range(steps):
            obs_buf[t] = next_obs
            valid_buf[t] = 1.0 - resetting
            with torch.inference_mode():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            act_buf[t], logp_buf[t], val_buf[t] = action, logprob, value
            # The action tensor goes to the core where it is; the results are tensors there.
            _, reward, terminated, truncated, infos = envs.step(action)
            assert isinstance(reward, torch.Tensor) and isinstance(terminated, torch.Tensor)
            assert isinstance(truncated, torch.Tensor)
            episode_stats.add(t, reward, terminated, truncated, infos)
            rew_buf[t], term_buf[t], done_buf[t] = reward, terminated, episode_stats.done[t]
            resetting = done_buf[t]
        global_step += global_batch_size
        episode_stats.flush(log, ranks)

        with torch.no_grad():
            next_value = agent.get_value(next_obs)
            advantages = compute_advantages(
                rew_buf, val_buf, next_value, term_buf, done_buf, args.gamma, args.gae_lambda
            )
            returns = advantages + val_buf

        # The statistics the rollout used, unchanged until the update is over: one normalisation.
        b_obs = agent.normalize(obs_buf.reshape(-1, obs_dim))
        b_act = act_buf.reshape(-1, 3)
        b_logp, b_adv = logp_buf.reshape(-1), advantages.reshape(-1)
        b_ret, b_val, b_valid = returns.reshape(-1), val_buf.reshape(-1), valid_buf.reshape(-1)
        for _ in range(args.update_epochs):
            order = torch.randperm(batch_size, device=device)
            for begin in range(0, batch_size, minibatch_size):
                mb = order[begin : begin + minibatch_size]
                valid = b_valid.index_select(0, mb)  # index_select: several times faster than [mb] on the CPU
                count = valid.sum().clamp(min=1.0)
                _, new_logp, entropy, new_value = agent.get_action_and_value(
                    b_obs.index_select(0, mb), b_act.index_select(0, mb), normalized=True
                )
                old_value, ret = b_val.index_select(0, mb), b_ret.index_select(0, mb)
                ratio = (new_logp - b_logp.index_select(0, mb)).exp()
                adv = b_adv.index_select(0, mb)
                mean = (adv * valid).sum() / count
                std = (((adv - mean) ** 2 * valid).sum() / count).sqrt()
                adv = (adv - mean) / (std + 1e-8)
                pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef))
                v_clipped = old_value + (new_value - old_value).clamp(-args.clip_coef, args.clip_coef)
                v_loss = 0.5 * torch.max((new_value - ret) ** 2, (v_clipped - ret) ** 2)
                loss = ((pg + args.vf_coef * v_loss - args.ent_coef * entropy) * valid).sum() / count
                optimizer.zero_grad()
                loss.backward()
                ranks.average_gradients(agent.parameters())
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
        if obs_stats is not None:
            obs_stats.add(obs_buf, ranks)

        elapsed = ranks.max(time.perf_counter() - start)  # the slowest rank's: all stop together
        stats = log.summary()
        curve.add(global_step, elapsed, stats)
        if bar is not None:
            bar.update(global_batch_size)
            bar.set_postfix(
                sps=f"{global_step / elapsed:,.0f}",
                ret=f"{stats['mean_return']:.2f}",
                door=f"{stats['first_door_rate']:.2f}",
            )
        if leader and args.log_every and (update % args.log_every == 0 or update == num_updates):
            _print(
                f"step {global_step:>11,}  sps {global_step / elapsed:>9,.0f}  episodes {stats['episodes']:>8,}  "
                f"return {stats['mean_return']:+.3f}  progress {stats['mean_progress']:6.2f} m  "
                f"first door {stats['first_door_rate']:.3f}  escape {stats['escape_rate']:.3f}",
                bar,
            )
        if args.max_minutes and elapsed > args.max_minutes * 60.0:
            if leader:
                _print(f"stopping after {elapsed / 60:.1f} minutes (max_minutes={args.max_minutes})", bar)
            break

    if bar is not None:
        bar.close()
    envs.close()
    stats = log.summary()
    seconds = ranks.max(time.perf_counter() - start)
    if run_dir is not None:
        # Tensors and plain values only, so that load_agent can read it with weights_only=True.
        checkpoint = {"state_dict": agent.state_dict(), "obs_dim": obs_dim, "args": dataclasses.asdict(args)}
        torch.save(checkpoint, run_dir / "policy.pt")
        (run_dir / "summary.json").write_text(
            json.dumps({**stats, "global_step": global_step, "seconds": seconds})
        )
    return TrainResult(
        agent=agent,
        global_step=global_step,
        episodes=log.count,
        mean_return=stats["mean_return"],
        mean_progress=stats["mean_progress"],
        escape_rate=stats["escape_rate"],
        first_door_rate=stats["first_door_rate"],
        seconds=seconds,
        run_dir=run_dir,
        rank=ranks.rank,
        world_size=ranks.world_size,
    )


def compute_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_value: torch.Tensor,
    terminated: torch.Tensor,
    done: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> torch.Tensor:
    """GAE over a [T, N] rollout collected in NEXT_STEP mode.

    The observation after a done step is the terminal one, so a truncated episode bootstraps
    from its value (``values[t + 1]``) and a terminated one does not; the recursion stops at
    every done step. The reset step that follows a done step gets an advantage too, but the
    loss masks it out.

    >>> import torch
    >>> r = torch.tensor([[1.0], [1.0]]); v = torch.zeros(2, 1); z = torch.zeros(2, 1)
    >>> compute_advantages(r, v, torch.tensor([10.0]), z, z, 0.5, 1.0).flatten().tolist()
    [4.0, 6.0]
    """
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(steps)):
        following = next_value if t == steps - 1 else values[t + 1]
        delta = rewards[t] + gamma * following * (1.0 - terminated[t]) - values[t]
        last = delta + gamma * gae_lambda * (1.0 - done[t]) * last
        advantages[t] = last
    return advantages


#: state_dict entries a policy file may lack (older versions of the trainer did not save them).
_OPTIONAL_ENTRIES = ("obs_mean", "obs_scale")


def load_agent(path: str | Path, device: str = "cpu") -> Agent:
    """Loads a policy saved by ``train`` (``<run_dir>/policy.pt``).

    Only tensors and plain values are read (``torch.load(weights_only=True)``): a file that
    holds anything else, such as a pickle that would run code, is refused with ``ValueError``
    before any of it runs, and so is a file that is not such a policy. A missing or unreadable
    file raises ``OSError``.

    >>> import tempfile
    >>> path = tempfile.mkdtemp() + "/notes.pt"
    >>> _ = open(path, "w").write("not a policy")
    >>> load_agent(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: .../notes.pt is not a policy saved by `escape-room train`: ...
    """
    not_a_policy = f"{path} is not a policy saved by `escape-room train`"
    try:
        with warnings.catch_warnings():  # torch's note on a pickle protocol it may not support
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            checkpoint = torch.load(path, map_location=device, weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch reports a broken file with many classes
        if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc):
            reason = "it holds something other than tensors and plain values, which is refused unread"
        else:
            reason = f"cannot read it as a torch checkpoint ({type(exc).__name__}: {_first_line(exc)})"
        raise ValueError(f"{not_a_policy}: {reason}") from None
    fields = checkpoint if isinstance(checkpoint, dict) else {}
    state_dict, obs_dim = fields.get("state_dict"), fields.get("obs_dim")
    hidden = fields["args"].get("hidden") if isinstance(fields.get("args"), dict) else None
    if not (isinstance(state_dict, dict) and isinstance(obs_dim, int) and isinstance(hidden, int)):
        raise ValueError(f"{not_a_policy}: expected a dict with state_dict, obs_dim and args.hidden")  # noqa: TRY004
    if obs_dim < 1 or hidden < 1:
        raise ValueError(f"{not_a_policy}: obs_dim {obs_dim} and hidden {hidden} must be >= 1")
    try:
        with torch.device("meta"):  # the network's shapes, allocating nothing before they are checked
            agent = Agent(obs_dim, hidden)
    except (RuntimeError, TypeError, ValueError) as exc:  # sizes torch cannot hold
        raise ValueError(f"{not_a_policy}: obs_dim {obs_dim}, hidden {hidden}: {_first_line(exc)}") from None
    expected = agent.state_dict()
    unknown = sorted(str(name) for name in state_dict if name not in expected)
    if unknown:
        raise ValueError(f"{not_a_policy}: state_dict has unknown entries {', '.join(unknown[:3])}")
    for name, want in expected.items():
        got = state_dict.get(name)
        if got is None and name in _OPTIONAL_ENTRIES:
            continue  # a policy saved before observations were normalised: the identity
        if not (isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype == want.dtype):
            found = f"{got.dtype} {tuple(got.shape)}" if isinstance(got, torch.Tensor) else type(got).__name__
            raise ValueError(
                f"{not_a_policy}: state_dict[{name!r}] is {found}, the network of obs_dim {obs_dim} "
                f"and hidden {hidden} needs {want.dtype} {tuple(want.shape)}"
            )
    agent = Agent(obs_dim, hidden)  # the shapes are known to fit: now the real one
    agent.load_state_dict({**agent.state_dict(), **state_dict})
    return agent.to(device)


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (torch's run to several paragraphs)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _check_args(args: Args) -> None:
    """``ValueError`` for settings that cannot train (before anything is built)."""
    for name in ("num_steps", "num_minibatches", "update_epochs", "hidden", "total_timesteps"):
        value = getattr(args, name)
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    for name in ("max_minutes", "log_every"):
        value = getattr(args, name)
        if not value >= 0:  # NaN included
            raise ValueError(f"{name} must be >= 0, got {value}")
    if not (math.isfinite(args.learning_rate) and args.learning_rate >= 0):
        raise ValueError(f"learning_rate must be a finite number >= 0, got {args.learning_rate}")
    if not (math.isfinite(args.dist_timeout) and args.dist_timeout > 0):
        raise ValueError(f"dist_timeout must be a finite number > 0, got {args.dist_timeout}")


def _torch_device(name: str) -> torch.device:
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:<index>', got {name!r}") from None


class _Curve:
    """progress.csv: one row per update (steps, seconds, rolling episode statistics)."""

    FIELDS = (
        "global_step",
        "seconds",
        "episodes",
        "mean_return",
        "mean_progress",
        "first_door_rate",
        "escape_rate",
    )

    def __init__(self, run_dir: Path | None):
        self._file = None
        if run_dir is not None:
            self._file = open(run_dir / "progress.csv", "w", newline="")  # noqa: SIM115 - closed in __del__
            self._writer = csv.writer(self._file)
            self._writer.writerow(self.FIELDS)

    def add(self, global_step: int, seconds: float, stats: dict[str, float]) -> None:
        if self._file is not None:
            self._writer.writerow([global_step, f"{seconds:.2f}", *(stats[k] for k in self.FIELDS[2:])])
            self._file.flush()

    def __del__(self) -> None:
        if self._file is not None:
            self._file.close()


def _prepare_run_dir(args: Args, world_size: int) -> Path | None:
    if not args.save_dir:
        return None
    name = args.run_name or f"escape_room_{args.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(args.save_dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = {**dataclasses.asdict(args), "world_size": world_size}
    (run_dir / "args.json").write_text(json.dumps(settings, indent=2))
    return run_dir


def _progress_bar(args: Args, total: int):
    """tqdm's bar, only on a terminal: in a pipe or a log file (stdout or stderr redirected) its
    ``\r`` redraws would flood the output, so the log lines are printed plainly instead."""
    if not args.progress_bar or not (sys.stdout.isatty() and sys.stderr.isatty()):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="step", unit_scale=True, dynamic_ncols=True)


def _print(line: str, bar) -> None:
    if bar is not None:
        bar.write(line)
    else:
        print(line, flush=True)
