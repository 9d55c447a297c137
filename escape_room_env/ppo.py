"""CleanRL-style PPO for the escape room, in one module (``escape-room train``).

Parameter-shared policy over all agents of all worlds, MultiDiscrete heads, and rollouts that
are correct under gymnasium's NEXT_STEP autoreset: the step after a done step is the reset
step (its action is ignored and its reward is 0), so it is left out of the loss; truncated
episodes bootstrap from the value of the terminal observation, which NEXT_STEP returns on
the done step itself.

On CPU the simulator returns numpy arrays and episode statistics come from gymnasium's
``RecordEpisodeStatistics``. With ``--device cuda`` the simulator runs on the GPU too
(``device="cuda"``, zero-copy torch tensors): the policy's action tensor goes straight to the
core, observations, rewards and flags never leave the GPU, and ``_DeviceEpisodeStats`` keeps
the same statistics from the returned tensors, handing them to the host once per rollout.

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
import time
from pathlib import Path

import numpy as np

try:
    import torch
    from torch import nn
    from torch.distributions.categorical import Categorical
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("escape_room_env.ppo needs PyTorch: pip install torch (pick your build)") from exc

import gymnasium

from escape_room_env.action import NUM_CHOICES
from escape_room_env.vector_env import EscapeRoomVectorEnv

__all__ = ["Agent", "Args", "TrainResult", "compute_advantages", "load_agent", "train"]


@dataclasses.dataclass
class Args:
    """Training configuration; every field is a command-line flag of ``escape-room train``."""

    seed: int = 1
    """Seed of the worlds (world w uses seed + w), of torch and of action sampling."""
    num_envs: int = 1024
    """Agents stepped in parallel (num_envs / num_agents worlds)."""
    num_agents: int = 1
    """Agents per world."""
    rooms: str = ""
    """Comma-separated room types (empty: the default level)."""
    num_threads: int = 0
    """CPU threads of the simulator (0: all cores)."""
    device: str = "cpu"
    """Where the policy and the simulator run: cpu, or cuda (the rollout stays on the GPU)."""
    total_timesteps: int = 60_000_000
    """Agent-steps to train for."""
    max_minutes: float = 15.0
    """Stop after this much wall time (0: no limit)."""
    learning_rate: float = 2.5e-4
    """Adam learning rate."""
    anneal_lr: bool = True
    """Decay the learning rate linearly over total_timesteps."""
    num_steps: int = 32
    """Steps per env in one rollout."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """Lambda of generalised advantage estimation."""
    num_minibatches: int = 4
    """Minibatches per epoch."""
    update_epochs: int = 4
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
    log_every: int = 10
    """Print a log line every this many updates (0: never)."""
    progress_bar: bool = True
    """Show a tqdm progress bar."""
    save_dir: str | None = "runs"
    """Where to write the run folder (policy.pt, progress.csv, args.json); empty: don't save."""
    run_name: str = ""
    """Run folder name (default: escape_room_<seed>_<time>)."""


def _layer(inp: int, out: int, std: float = float(np.sqrt(2))) -> nn.Linear:
    layer = nn.Linear(inp, out)
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, 0.0)
    return layer


class Agent(nn.Module):
    """Actor-critic MLP with one categorical head per action component.

    >>> import torch
    >>> agent = Agent(obs_dim=87, hidden=64)
    >>> action, logprob, entropy, value = agent.get_action_and_value(torch.zeros(5, 87))
    >>> action.shape, value.shape
    (torch.Size([5, 3]), torch.Size([5]))
    """

    def __init__(self, obs_dim: int, hidden: int = 128, nvec: tuple[int, ...] = NUM_CHOICES):
        super().__init__()
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

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def get_action_and_value(self, obs: torch.Tensor, action: torch.Tensor | None = None):
        logits = torch.split(self.actor(obs), self.nvec, dim=-1)
        dists = [Categorical(logits=part) for part in logits]
        if action is None:
            action = torch.stack([d.sample() for d in dists], dim=-1)
        logprob = torch.stack([d.log_prob(a) for d, a in zip(dists, action.unbind(-1))], dim=-1).sum(-1)
        entropy = torch.stack([d.entropy() for d in dists], dim=-1).sum(-1)
        return action, logprob, entropy, self.get_value(obs)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The most likely action (for evaluation and replays)."""
        logits = torch.split(self.actor(obs), self.nvec, dim=-1)
        return torch.stack([part.argmax(-1) for part in logits], dim=-1)


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


class _EpisodeLog:
    """Statistics of the most recent finished episodes (from RecordEpisodeStatistics infos)."""

    def __init__(self, window: int = 1000):
        self.returns: collections.deque[float] = collections.deque(maxlen=window)
        self.progress: collections.deque[float] = collections.deque(maxlen=window)
        self.escaped: collections.deque[bool] = collections.deque(maxlen=window)
        self.door: collections.deque[bool] = collections.deque(maxlen=window)
        self.count = 0

    def add(self, infos: dict) -> None:
        if "episode" not in infos:
            return
        done = np.flatnonzero(infos["_episode"])
        self.extend(
            done.size,
            infos["episode"]["r"][done].tolist(),
            infos["progress"][done].tolist(),
            (infos["termination_reason"][done] == 1).tolist(),
            (infos["doors_opened"][done] >= 1).tolist(),
        )

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
    """Episode statistics from the env's returned tensors, on their device (``--device cuda``).

    The same numbers as ``RecordEpisodeStatistics`` + ``_EpisodeLog.add`` under NEXT_STEP: a
    float64 running return per env that restarts at 0 on the reset step after a done step (that
    step's reward, 0, belongs to no episode); a done step records the return, the progress,
    escaped (termination_reason == 1) and first door (doors_opened >= 1). Rows stay on the device
    until :meth:`flush`, once per rollout, so the rollout itself never waits for the host.

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

    def flush(self, log: _EpisodeLog) -> None:
        """Hands the episodes that ended in rows 0..t to ``log`` (in step, then env order) and
        starts the next rollout at row 0."""
        done = self.done[: self.rows]
        window = log.returns.maxlen
        returns, progress, escaped, door = (
            values[: self.rows][done][-window:].tolist()
            for values in (self.returns, self.progress, self.escaped, self.door)
        )
        log.extend(int(done.sum()), returns, progress, escaped, door)
        self.rows = 0


def train(args: Args, *, _torch_env: bool | None = None) -> TrainResult:
    """Trains a PPO policy on the escape room and returns it with its final statistics.

    With ``args.device`` a GPU, the simulator runs there too and returns torch tensors;
    ``_torch_env=True`` takes that code path with a CPU simulator (for tests).
    """
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = torch.device(args.device)
    torch_env = device.type != "cpu" if _torch_env is None else bool(_torch_env)
    rooms = [r.strip() for r in args.rooms.split(",") if r.strip()] or None
    envs = EscapeRoomVectorEnv(
        args.num_envs,
        num_agents=args.num_agents,
        rooms=rooms,
        device=device if torch_env else "cpu",
        seed=args.seed,
        num_threads=args.num_threads or None,
        copy=False,
        _torch_outputs=torch_env,
    )
    if not torch_env:
        envs = gymnasium.wrappers.vector.RecordEpisodeStatistics(envs, buffer_length=1000)
    obs_dim = envs.single_observation_space.shape[0]
    agent = Agent(obs_dim, args.hidden).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    n, steps = args.num_envs, args.num_steps
    batch_size = n * steps
    minibatch_size = max(1, batch_size // args.num_minibatches)
    num_updates = max(1, args.total_timesteps // batch_size)
    obs_buf = torch.zeros((steps, n, obs_dim), device=device)
    act_buf = torch.zeros((steps, n, 3), dtype=torch.long, device=device)
    logp_buf = torch.zeros((steps, n), device=device)
    rew_buf = torch.zeros((steps, n), device=device)
    term_buf = torch.zeros((steps, n), device=device)
    done_buf = torch.zeros((steps, n), device=device)
    valid_buf = torch.zeros((steps, n), device=device)
    val_buf = torch.zeros((steps, n), device=device)

    run_dir = _prepare_run_dir(args)
    curve = _Curve(run_dir)
    log = _EpisodeLog()
    device_stats = _DeviceEpisodeStats(steps, n, device) if torch_env else None
    next_obs, _ = envs.reset(seed=args.seed)
    if torch_env:
        next_obs_t = next_obs  # the core's buffer as a tensor (copy=False): every step rewrites it
    else:
        next_obs_t = torch.as_tensor(next_obs, device=device).clone()  # copy=False: obs is the core's buffer
    # True where the previous step ended the env's episode: this step is NEXT_STEP's reset step.
    resetting = torch.zeros(n, device=device)
    global_step = 0
    start = time.perf_counter()
    bar = _progress_bar(args, num_updates * batch_size)

    for update in range(1, num_updates + 1):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = args.learning_rate * (1.0 - (update - 1.0) / num_updates)
        for t in range(steps):
            obs_buf[t] = next_obs_t
            valid_buf[t] = 1.0 - resetting
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs_t)
            act_buf[t], logp_buf[t], val_buf[t] = action, logprob, value
            if device_stats is None:
                next_obs, reward, terminated, truncated, infos = envs.step(action.cpu().numpy())
                done = np.logical_or(terminated, truncated)
                rew_buf[t] = torch.as_tensor(reward, device=device)
                term_buf[t] = torch.as_tensor(terminated, device=device, dtype=torch.float32)
                done_buf[t] = torch.as_tensor(done, device=device, dtype=torch.float32)
                next_obs_t = torch.as_tensor(next_obs, device=device).clone()
                log.add(infos)
            else:  # the action tensor goes to the core where it is; the results are tensors there
                _, reward, terminated, truncated, infos = envs.step(action)
                device_stats.add(t, reward, terminated, truncated, infos)
                rew_buf[t], term_buf[t], done_buf[t] = reward, terminated, device_stats.done[t]
            resetting = done_buf[t]
        global_step += batch_size
        if device_stats is not None:
            device_stats.flush(log)

        with torch.no_grad():
            next_value = agent.get_value(next_obs_t)
            advantages = compute_advantages(
                rew_buf, val_buf, next_value, term_buf, done_buf, args.gamma, args.gae_lambda
            )
            returns = advantages + val_buf

        b_obs = obs_buf.reshape(-1, obs_dim)
        b_act = act_buf.reshape(-1, 3)
        b_logp, b_adv = logp_buf.reshape(-1), advantages.reshape(-1)
        b_ret, b_val, b_valid = returns.reshape(-1), val_buf.reshape(-1), valid_buf.reshape(-1)
        for _ in range(args.update_epochs):
            order = torch.randperm(batch_size, device=device)
            for begin in range(0, batch_size, minibatch_size):
                mb = order[begin : begin + minibatch_size]
                valid = b_valid[mb]
                count = valid.sum().clamp(min=1.0)
                _, new_logp, entropy, new_value = agent.get_action_and_value(b_obs[mb], b_act[mb])
                ratio = (new_logp - b_logp[mb]).exp()
                adv = b_adv[mb]
                mean = (adv * valid).sum() / count
                std = (((adv - mean) ** 2 * valid).sum() / count).sqrt()
                adv = (adv - mean) / (std + 1e-8)
                pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef))
                v_clipped = b_val[mb] + (new_value - b_val[mb]).clamp(-args.clip_coef, args.clip_coef)
                v_loss = 0.5 * torch.max((new_value - b_ret[mb]) ** 2, (v_clipped - b_ret[mb]) ** 2)
                loss = ((pg + args.vf_coef * v_loss - args.ent_coef * entropy) * valid).sum() / count
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

        elapsed = time.perf_counter() - start
        stats = log.summary()
        curve.add(global_step, elapsed, stats)
        if bar is not None:
            bar.update(batch_size)
            bar.set_postfix(
                sps=f"{global_step / elapsed:,.0f}",
                ret=f"{stats['mean_return']:.2f}",
                door=f"{stats['first_door_rate']:.2f}",
            )
        if args.log_every and (update % args.log_every == 0 or update == num_updates):
            _print(
                f"step {global_step:>11,}  sps {global_step / elapsed:>9,.0f}  episodes {stats['episodes']:>8,}  "
                f"return {stats['mean_return']:+.3f}  progress {stats['mean_progress']:6.2f} m  "
                f"first door {stats['first_door_rate']:.3f}  escape {stats['escape_rate']:.3f}",
                bar,
            )
        if args.max_minutes and elapsed > args.max_minutes * 60.0:
            _print(f"stopping after {elapsed / 60:.1f} minutes (max_minutes={args.max_minutes})", bar)
            break

    if bar is not None:
        bar.close()
    envs.close()
    stats = log.summary()
    seconds = time.perf_counter() - start
    if run_dir is not None:
        checkpoint = {"state_dict": agent.state_dict(), "obs_dim": obs_dim, "args": dataclasses.asdict(args)}
        torch.save(checkpoint, run_dir / "policy.pt")
        (run_dir / "summary.json").write_text(
            json.dumps({**stats, "global_step": global_step, "seconds": seconds})
        )
    return TrainResult(
        agent=agent,
        global_step=global_step,
        episodes=stats["episodes"],
        mean_return=stats["mean_return"],
        mean_progress=stats["mean_progress"],
        escape_rate=stats["escape_rate"],
        first_door_rate=stats["first_door_rate"],
        seconds=seconds,
        run_dir=run_dir,
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


def load_agent(path: str | Path, device: str = "cpu") -> Agent:
    """Loads a policy saved by ``train`` (``<run_dir>/policy.pt``)."""
    checkpoint = torch.load(path, map_location=device, weights_only=False)
    agent = Agent(checkpoint["obs_dim"], checkpoint["args"]["hidden"])
    agent.load_state_dict(checkpoint["state_dict"])
    return agent.to(device)


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


def _prepare_run_dir(args: Args) -> Path | None:
    if not args.save_dir:
        return None
    name = args.run_name or f"escape_room_{args.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(args.save_dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "args.json").write_text(json.dumps(dataclasses.asdict(args), indent=2))
    return run_dir


def _progress_bar(args: Args, total: int):
    if not args.progress_bar:
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
