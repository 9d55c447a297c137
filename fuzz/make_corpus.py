"""Writes the seed corpora of the fuzz harnesses from real runs (a few KB each).

    python fuzz/make_corpus.py            # rewrites fuzz/corpus/replay/ and fuzz/corpus/level/

``replay/``: recordings made by the C++ recorder (format version 2): every reset mode, 1 to 4
agents, manual and immediate resets with and without seeds, out-of-range actions (recorded
clamped), custom levels (one with a door, a momentary door group and two agents; one where agents
escape between checkpoints, so that the escape bonus and the other reward constants matter to the
fuzzer's config mutations), an unfinished and a truncated file, zero steps. ``level/``: ASCII levels, in the harness's input
encoding (see ``fuzz_level.py``), from the shipped levels and small hand-written ones, valid and
not. Names are stable, so a rerun only changes what the package changed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

import escape_room_env as er
from escape_room_env.levels import level_names, load_level

HERE = Path(__file__).resolve().parent
CORRIDOR = """
#########
#EEEEEEE#
#...1...#
#.......#
#.a...C.#
#.......#
#.S.....#
#########
"""
# Agents walking up escape every third step: rewards that only a digest of every step would see.
SHORT = "#####\n#EEE#\n#...#\n#S.S#\n#####"
DOORS = """
#######
#EEEEE#
#11111#
#.....#
#..a..#
#S...S#
#######
"""


def _drive(sim: er.SimManager, steps: int, seed: int, *, resets: bool, forward: bool = False) -> None:
    rng = np.random.default_rng(seed)
    W = sim.num_worlds
    for i in range(steps):
        # Wild actions too: the core clamps them, the file holds them clamped.
        actions = rng.integers(-2, 10, size=(W, sim.num_agents, 3))
        if forward:  # mostly fast, forward, no turn (clamped: 3, 0, 2)
            actions[rng.random((W, sim.num_agents)) < 0.8] = (9, 0, 2)
        sim.action_tensor().to_numpy()[:] = actions
        if resets and i % 5 == 2:
            sim.reset_tensor().to_numpy()[:] = rng.random(W) < 0.4
        if resets and i % 7 == 3:
            mask = rng.random(W) < 0.5
            mask[0] = True
            seeds = rng.integers(0, 2**64, W, dtype=np.uint64) if i % 2 else None
            sim.reset_worlds(mask, seeds=seeds)
        sim.step()


def replay_corpus(out: Path) -> None:
    cases = {
        "one_world": ({"num_worlds": 1, "autoreset_mode": "next_step"}, 9, 4, False),
        "resets_same_step": ({"num_worlds": 3, "num_agents": 2, "autoreset_mode": "same_step"}, 20, 5, True),
        "resets_next_step": ({"num_worlds": 5, "autoreset_mode": "next_step", "episode_len": 6}, 16, 3, True),
        "disabled_four_agents": (
            {"num_worlds": 2, "num_agents": 4, "autoreset_mode": "disabled"},
            12,
            4,
            True,
        ),
        "custom_rooms_reward": (
            {
                "num_worlds": 9,
                "rooms": ["cube_button", "button"],
                "reward": {"escape_bonus": 3.0, "slack_penalty": 0.0},
                "episode_len": 7,
            },
            10,
            50,
            True,
        ),
        "custom_level": ({"num_worlds": 2, "levels": [CORRIDOR], "autoreset_mode": "next_step"}, 8, 4, True),
        "escapes": ({"num_worlds": 3, "num_agents": 2, "levels": [SHORT], "episode_len": 9}, 24, 8, False),
        "door_level": (
            {
                "num_worlds": 2,
                "num_agents": 2,
                "levels": [
                    {"ascii": DOORS, "momentary": [1], "cell_size": 2.5},
                    CORRIDOR.replace("#.S.....#", "#.S...S.#"),
                ],
                "autoreset_mode": "disabled",
                "reward": {"group_radius": 4.0},
            },
            16,
            6,
            False,
        ),
        "zero_steps": ({"num_worlds": 2}, 0, 50, False),
    }
    forward = {"escapes", "door_level"}
    for name, (kwargs, steps, interval, resets) in cases.items():
        path = out / f"{name}.bin"
        with er.SimManager(num_threads=1, **kwargs) as sim:
            sim.start_recording(path, seed=7, checksum_interval=interval)
            _drive(sim, steps, seed=len(name), resets=resets, forward=name in forward)
            sim.stop_recording()
    # A writer killed before close (header unpatched, no END) and a tail cut inside a record.
    data = (out / "resets_same_step.bin").read_bytes()
    with er.SimManager(num_worlds=2, num_threads=1) as sim:
        sim.start_recording(out / "unfinished.bin", seed=1, checksum_interval=16)
        _drive(sim, 70, seed=1, resets=False)
        unfinished = (out / "unfinished.bin").read_bytes()  # flushed every 64 steps
        sim.stop_recording()
    (out / "unfinished.bin").write_bytes(unfinished)
    (out / "truncated_tail.bin").write_bytes(data[: len(data) - 37])


# The level harness's input: byte 0 picks num_agents and the form, byte 1 the cell size, byte 2
# the momentary groups (a bitmask), the rest is the ASCII text (latin-1).
def level_input(
    text: str, *, num_agents: int = 1, cell: int = 0, momentary: int = 0, as_dict: bool = True
) -> bytes:
    return bytes([(num_agents - 1) | (0x80 if as_dict else 0), cell, momentary]) + text.encode("latin-1")


def level_corpus(out: Path) -> None:
    seeds = {name: load_level(name) for name in level_names()}
    for name, level in seeds.items():
        momentary = sum(1 << (g - 1) for g in level.momentary)
        (out / f"{name}.txt").write_bytes(level_input(level.ascii, momentary=momentary))
        (out / f"{name}_two_agents.txt").write_bytes(
            level_input(level.ascii, num_agents=2, momentary=momentary)
        )
    handmade = {
        "corridor_cube": (CORRIDOR.strip("\n"), 1, 0),
        "tiny": ("###\n#E#\n#S#\n###", 1, 0),
        "no_exit": ("####\n#S.#\n####", 1, 0),
        "two_rooms_momentary": (
            "#######\n#EEEEE#\n#22222#\n#.....#\n#...C.#\n#.b...#\n#11111#\n#.a...#\n#S...S#\n#######",
            2,
            0b10,
        ),
        "ragged": ("#####\n#E#\n#S..#\n#####", 1, 0),
        "unknown_char": ("#####\n#E?.#\n#.S.#\n#####", 1, 0),
        "button_without_door": ("#####\n#E..#\n#.c.#\n#.S.#\n#####", 1, 0),
        "cube_by_wall": ("#####\n#EEE#\n#C..#\n#.S.#\n#####", 1, 0),
        "open_field": ("S   \n    \n   E", 1, 0),
    }
    for name, (text, agents, momentary) in handmade.items():
        (out / f"{name}.txt").write_bytes(level_input(text, num_agents=agents, momentary=momentary))
    (out / "plain_text_form.txt").write_bytes(level_input("#####\n#E..#\n#.S.#\n#####", as_dict=False))
    for agents in range(1, 5):  # generated levels (flag 0x40): the text's bytes seed the generator
        for k in range(2):
            head = bytes([(agents - 1) | 0xC0, 16 * (k + 1), 0b10 * k])
            (out / f"generated_{agents}_agents_{k}.txt").write_bytes(head + f"seed {agents} {k}".encode())
    (out / "big_cells.txt").write_bytes(level_input("###\n#E#\n#S#\n###", cell=200))


def main() -> None:
    for name, make in (("replay", replay_corpus), ("level", level_corpus)):
        out = HERE / "corpus" / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        make(out)
        sizes = sorted(p.stat().st_size for p in out.iterdir())
        print(f"{out}: {len(sizes)} files, {min(sizes)}..{max(sizes)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
