"""Where does a trained policy fail? Plays one episode in each of N worlds of the default level
(1 agent: rooms ``button``, ``cube_blocking``, ``cube_button``) with a policy saved by
``escape-room train``, sampling its actions as training does, and sorts every episode that did
not escape by the room it ended in and what was left undone there.

    python benchmarks/train_failures.py runs/<name>/policy.pt --worlds 4096 [--json out.json]

Per room it reports how many episodes ended there and, of those, how many had opened the
room's door, how close the room's cube came to its button (``cube_button``), and the steps the
escaping episodes spent in each room (so a time-out can be told from a policy that is stuck).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import escape_room_env as er
from escape_room_env.ppo import load_agent
from escape_room_env.reference import BUTTON_HALF, CUBE_HALF

ROOM_LENGTH = 40.0 / 3.0
ROOMS = ("button", "cube_blocking", "cube_button")
CUBE_BUTTON_CUBE, CUBE_BUTTON_BUTTON = 3, 2  # the last room's cube and button (default level, 1 agent)
PRESSES = float(CUBE_HALF + BUTTON_HALF)  # a cube presses a button closer than this on both axes (2.15)


def _band(position: np.ndarray) -> np.ndarray:
    """The room (or, len(ROOMS), the exit zone) each agent position [W, 2] is in."""
    return np.clip((position[:, 1] // ROOM_LENGTH).astype(int), 0, len(ROOMS))


def play(policy: str, worlds: int, seed: int, greedy: bool) -> dict:
    agent = load_agent(policy)
    torch.manual_seed(seed)  # the sampled actions too: the same report every run
    sim = er.SimManager(num_worlds=worlds, rand_seed=seed, autoreset_mode="DISABLED", num_threads=None)
    obs = sim.observation_tensor().to_torch()
    actions = sim.action_tensor().to_torch()
    done = sim.done_tensor().to_numpy()[:, 0, 0]
    position = sim.host_array("agent_pos")[:, 0]
    door_open = sim.host_array("door_open")
    cube = sim.host_array("cube_pos")[:, CUBE_BUTTON_CUBE]
    button = sim.host_array("level_button_pos")[:, CUBE_BUTTON_BUTTON].copy()
    cube_above = cube[:, 1] > button[:, 1]  # at the start: the cube must be pushed back towards the entrance
    room_steps = np.zeros((worlds, len(ROOMS) + 1), dtype=np.int64)
    door_ever = np.zeros((worlds, len(ROOMS)), dtype=bool)
    cube_gap = np.full(worlds, np.inf)  # closest the last room's cube came to its button (box distance)
    for _ in range(sim.episode_len):
        running = done == 0
        band = _band(position)
        room_steps[np.flatnonzero(running), band[running]] += 1
        with torch.inference_mode():
            flat = obs.reshape(worlds, -1)
            action = agent.act(flat) if greedy else agent.get_action_and_value(flat)[0]
        actions.copy_(action.view(actions.shape).to(actions.dtype))
        sim.step()
        door_ever |= door_open[:, : len(ROOMS)] != 0
        cube_gap = np.minimum(cube_gap, np.abs(cube - button).max(axis=1))
    escaped = sim.termination_reason_tensor().to_numpy()[:, 0, 0] == 1
    band = _band(position)
    failed = ~escaped
    report: dict = {
        "policy": policy,
        "worlds": worlds,
        "seed": seed,
        "actions": "argmax" if greedy else "sampled",
        "escape_rate": float(escaped.mean()),
        "rooms": [],
    }
    for k, name in enumerate(ROOMS):
        here = failed & (band == k)
        row = {
            "room": k,
            "type": name,
            "failures_ended_here": int(here.sum()),
            "share_of_episodes": float(here.mean()),
            "of_those_door_opened": int((here & door_ever[:, k]).sum()),
            "steps_in_room_when_escaped_median": float(np.median(room_steps[escaped, k])) if escaped.any() else None,
            "steps_in_room_when_escaped_p95": float(np.percentile(room_steps[escaped, k], 95))
            if escaped.any()
            else None,
        }
        if name == "cube_button":
            row["of_those_cube_reached_button"] = int((here & (cube_gap < PRESSES)).sum())
            row["of_those_cube_gap_median"] = float(np.median(cube_gap[here])) if here.any() else None
            # An agent on the button opens the door too, while it stands there: the escapes that got
            # through without the cube on the button.
            row["escaped_cube_reached_button"] = int((escaped & (cube_gap < PRESSES)).sum())
            row["escaped"] = int(escaped.sum())
            # Layouts by where the cube starts: below the button (pushed forwards and sideways) or
            # beyond it (the agent must walk round it and push it back).
            for where, mask in (("cube_below_button", ~cube_above), ("cube_beyond_button", cube_above)):
                row[f"escape_rate_{where}"] = float(escaped[mask].mean()) if mask.any() else None
                row[f"episodes_{where}"] = int(mask.sum())
        report["rooms"].append(row)
    report["failures_in_exit_zone"] = int((failed & (band == len(ROOMS))).sum())
    return report


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.3f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("policy", help="runs/<name>/policy.pt")
    parser.add_argument("--worlds", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=1_000_000, help="world seeds (away from training's)")
    parser.add_argument("--greedy", action="store_true", help="argmax actions instead of sampled ones")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    report = play(args.policy, args.worlds, args.seed, args.greedy)
    print(f"{report['worlds']} episodes, {report['actions']} actions: escape rate {report['escape_rate']:.3f}")
    for row in report["rooms"]:
        extra = ""
        if "of_those_cube_reached_button" in row:
            extra = (
                f", cube reached the button in {row['of_those_cube_reached_button']}"
                f" (median closest gap {row['of_those_cube_gap_median']}); of the {row['escaped']} escapes,"
                f" {row['escaped_cube_reached_button']} had the cube on the button; escape rate with the cube"
                f" starting below the button {_rate(row['escape_rate_cube_below_button'])}"
                f" ({row['episodes_cube_below_button']}), beyond it {_rate(row['escape_rate_cube_beyond_button'])}"
                f" ({row['episodes_cube_beyond_button']})"
            )
        print(
            f"  room {row['room']} {row['type']:<13} failures ended here {row['failures_ended_here']:>5} "
            f"({row['share_of_episodes']:.3f}); door had opened in {row['of_those_door_opened']}{extra}; "
            f"escaped episodes spent median {row['steps_in_room_when_escaped_median']} / p95 "
            f"{row['steps_in_room_when_escaped_p95']} steps here"
        )
    print(f"  failures in the exit zone (time-out after the last door): {report['failures_in_exit_zone']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
