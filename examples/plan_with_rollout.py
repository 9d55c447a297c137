"""Lookahead planning with `escape_room_env.rollout`: random shooting from the current states.

Every real step, each of the W worlds tries K action sequences of H steps from its current
state (all W*K copies in one `rollout` call, on a pool of threads kept between calls), keeps the
sequence with the best return and takes its first action for real; the rest of the best
sequence, shifted by one step, is one of the next step's K candidates (a warm start). Simulation
is deterministic, so the real step is exactly the first step of the planned rollout (checked).

The planner and a random policy play the default level (one agent, rooms button, cube_blocking,
cube_button) in W worlds for the same number of steps; both print their mean episode return,
how far they got and how often they escaped.

Run: python examples/plan_with_rollout.py [--num-worlds 32] [--steps 200] [--candidates 16] [--horizon 48]
"""

import argparse
import time

import numpy as np

import escape_room_env as er

parser = argparse.ArgumentParser()
parser.add_argument("--num-worlds", type=int, default=32, help="W: worlds played by each policy")
parser.add_argument("--steps", type=int, default=200, help="real steps (200: one episode per world)")
parser.add_argument("--candidates", type=int, default=16, help="K: action sequences tried per world and step")
parser.add_argument("--horizon", type=int, default=48, help="H: steps each sequence looks ahead")
parser.add_argument(
    "--threads", type=int, default=None, help="rollout and simulator threads (default: the cores)"
)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

W, K, H = args.num_worlds, args.candidates, args.horizon
CHOICES = np.array(er.action.NUM_CHOICES)  # move_amount 4, move_angle 8, rotate 5
rng = np.random.default_rng(args.seed)


class Scores:
    """Returns, escapes and progress of the episodes that end (SAME_STEP: the done step shows the
    finished episode's reward, reason and final progress), and of the ones still running at the end."""

    def __init__(self, sim: er.SimManager):
        self.sim, self.running = sim, np.zeros(sim.num_worlds)
        self.returns, self.escaped, self.progress, self.doors = [], [], [], []

    def after_step(self) -> None:
        sim = self.sim
        self.running += sim.reward_tensor().to_numpy()[:, 0, 0]
        done = sim.done_tensor().to_numpy()[:, 0, 0] == 1
        reason = sim.termination_reason_tensor().to_numpy()[:, 0, 0]
        final_progress = sim.final_progress_tensor().to_numpy()[:, 0, 0]
        final_doors = sim.final_doors_opened_tensor().to_numpy()[:, 0, 0]
        for w in np.flatnonzero(done):
            self.returns.append(self.running[w])
            self.escaped.append(reason[w] == 1)
            self.progress.append(final_progress[w])
            self.doors.append(final_doors[w])
            self.running[w] = 0.0

    def summary(self) -> str:
        unfinished = self.sim.num_worlds if not self.returns else 0  # --steps shorter than an episode
        returns = self.returns or list(self.running)
        progress = self.progress or list(self.sim.progress_tensor().to_numpy()[:, 0, 0])
        doors = self.doors or list(self.sim.doors_opened_tensor().to_numpy()[:, 0, 0])
        episodes = len(returns)
        escapes = int(np.sum(self.escaped))
        note = f" ({unfinished} unfinished episodes)" if unfinished else ""
        return (
            f"{episodes} episodes{note}: mean return {np.mean(returns):+.3f}, mean progress "
            f"{np.mean(progress):.1f} m, doors opened {np.mean(doors):.2f}, escaped {escapes}/{episodes} "
            f"({escapes / episodes:.0%})"
        )


def new_sim() -> er.SimManager:
    # SAME_STEP (the seed's auto_reset=True): a done world starts its next episode in the same step.
    return er.SimManager(num_worlds=W, rand_seed=args.seed, num_threads=args.threads)


def random_sequences(n: int, steps: int) -> np.ndarray:
    return rng.integers(0, CHOICES, size=(n, steps, 1, 3), dtype=np.int32)


# -- random play ------------------------------------------------------------------------------------
start = time.perf_counter()
sim = new_sim()
actions = sim.action_tensor().to_numpy()
random_scores = Scores(sim)
for _ in range(args.steps):
    actions[:] = random_sequences(W, 1)[:, 0]
    sim.step()
    random_scores.after_step()
random_seconds = time.perf_counter() - start

# -- the planner --------------------------------------------------------------------------------------
start = time.perf_counter()
sim = new_sim()
actions = sim.action_tensor().to_numpy()
planner_scores = Scores(sim)
best_plan = random_sequences(W, H)  # the previous step's best sequence of each world, [W, H, 1, 3]
result = None
exact = True
with er.Rollout(num_threads=args.threads) as pool:
    for _ in range(args.steps):
        states = np.repeat(sim.get_state(), K)  # candidate k of world w is copy w*K + k
        plans = random_sequences(W * K, H).reshape(W, K, H, 1, 3)
        plans[:, 0, :-1] = best_plan[:, 1:]  # warm start: the rest of last step's best sequence
        plans = plans.reshape(W * K, H, 1, 3)
        # One call for all W*K copies; scored by reward alone, so without observations (the
        # steps then skip the lidar, most of a step's work).
        result = pool.rollout(sim, states, plans, return_observations=False, out=result)
        # Return of each sequence up to the end of its episode (the done step included).
        reward, done = result.reward[:, :, 0], result.done[:, :, 0]
        alive = np.concatenate([np.ones((W * K, 1), bool), np.cumsum(done, axis=1)[:, :-1] == 0], axis=1)
        returns = (reward * alive).sum(axis=1).reshape(W, K)
        best = returns.argmax(axis=1)  # ties: the lowest k, the warm start first
        chosen = np.arange(W) * K + best
        best_plan = plans[chosen]
        actions[:] = best_plan[:, 0]
        sim.step()
        planner_scores.after_step()
        # Deterministic: the real step is exactly the planned one.
        exact &= sim.reward_tensor().to_numpy()[:, 0, 0].tobytes() == result.reward[chosen, 0, 0].tobytes()
planner_seconds = time.perf_counter() - start

print(f"default level, {W} worlds x {args.steps} steps (seed {args.seed})")
print(f"random play:       {random_scores.summary()}  [{random_seconds:.1f} s]")
print(f"lookahead planner: {planner_scores.summary()}  [{planner_seconds:.1f} s]")
world_steps = args.steps * W * K * H
print(
    f"planner: K={K} sequences x H={H} steps per world and step, {world_steps:,} simulated world-steps "
    f"({world_steps / planner_seconds / 1e6:.2f} M/s); real steps equal to the planned ones: {exact}"
)
