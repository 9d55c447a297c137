"""Fuzzes the level compiler (SPEC §2.7, §8) with atheris (libFuzzer for Python).

    pip install atheris
    python fuzz/fuzz_level.py -max_total_time=60 WORK_DIR fuzz/corpus/level

An input is ``[flags, cell, momentary, text...]``: ``flags`` bits 0-1 give num_agents - 1 and
bit 7 the dict form (else the ASCII text itself); ``cell`` the cell size (0: left out, else
``cell / 8`` metres, 255: NaN); ``momentary`` a bitmask of door groups 1-8 (dict form); the text
is read as latin-1, so non-ASCII characters occur. Each input goes through ``compile_level``; a
level that compiles is then played by a ``SimManager`` for a few steps of every action.

The documented outcomes are ``ValueError`` naming the mistake and ``LevelWarning``. Anything
else is a finding: another exception, a level the compiler accepts but the simulator refuses,
geometry or observations that are not finite, a crash of the native core or a timeout.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from atheris_harness import fuzz

import escape_room_env as er
from escape_room_env.levels import compile_level

ACTIONS = np.array(
    [[a, b, c] for a in range(4) for b in range(8) for c in range(5)][::7], dtype=np.int32
)  # 23 spread over all components


def decode(data: bytes) -> tuple[object, int]:
    flags, cell, momentary = (data + bytes(3))[:3]
    text = data[3:].decode("latin-1")
    num_agents = 1 + (flags & 3)
    if not flags & 0x80:
        # A string without a newline is a level's name or a path: keep this harness off the disk.
        return (text if "\n" in text else text + "\n"), num_agents
    spec: dict = {"ascii": text, "name": "fuzz"}
    if cell:
        spec["cell_size"] = math.nan if cell == 255 else cell / 8
    if momentary:
        spec["momentary"] = [g + 1 for g in range(8) if momentary >> g & 1]
    return spec, num_agents


def check_geometry(level) -> None:
    for name in ("walls", "doors", "buttons", "cubes", "spawns", "exits", "band_y"):
        values = getattr(level, name)
        assert np.isfinite(values).all(), name
    assert level.rows >= 1 and level.cols >= 1
    assert len(level.exits) >= 1 and level.num_spawns >= 1
    assert math.isfinite(level.exit_y) and level.norm_length > 0
    assert len(level.door_groups) == len(level.doors) and len(level.button_groups) == len(level.buttons)


def test_one_input(data: bytes) -> None:
    spec, num_agents = decode(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            level = compile_level(spec, num_agents=num_agents)
        except ValueError:
            return
        check_geometry(level)
        # What the compiler accepts, the simulator plays.
        with er.SimManager(
            num_worlds=len(ACTIONS) // 4,
            num_agents=num_agents,
            levels=level.level,
            num_threads=1,
            episode_len=6,
            autoreset_mode="same_step",
        ) as sim:
            actions = sim.action_tensor().to_numpy()
            W = sim.num_worlds
            for step in range(8):
                actions[:] = ACTIONS[(np.arange(W * num_agents) + step) % len(ACTIONS)].reshape(actions.shape)
                sim.step()
                assert np.isfinite(sim.observation_tensor().to_numpy()).all()
                assert np.isfinite(sim._state("agent_pos")).all()
            sim.state_hashes()


if __name__ == "__main__":
    fuzz(test_one_input)
