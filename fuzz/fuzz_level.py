"""Fuzzes the level compiler (SPEC §2.7, §8) with atheris (libFuzzer for Python).

    pip install atheris
    python fuzz/fuzz_level.py -max_total_time=60 WORK_DIR fuzz/corpus/level

An input is ``[flags, cell, momentary, text...]``: ``flags`` bits 0-1 give num_agents - 1, bit 7
the dict form (else the ASCII text itself) and bit 6 a generated level (the text's bytes seed a
generator of rooms, doors with their buttons, cubes, spawns and exits, now and then with a
mistake); ``cell`` the cell size (0: left out, else ``cell / 8`` metres, 255: NaN);
``momentary`` a bitmask of door groups 1-8 (dict form); the text is read as latin-1, so
non-ASCII characters occur. Each input goes through ``compile_level``; a level that compiles is
then played by a ``SimManager`` for a few steps of every action.

The native compiler gives libFuzzer no coverage feedback, so the generated levels and the
grid-aware mutator (:func:`mutate`) are what take most inputs past the character and shape
checks to the compiler's deeper rules and the simulator.

The documented outcomes are ``ValueError`` naming the mistake and ``LevelWarning``. Anything
else is a finding: another exception, a level the compiler accepts but the simulator refuses,
geometry or observations that are not finite, a crash of the native core or a timeout.
"""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
from atheris_harness import byte_mutate, fuzz

import escape_room_env as er
from escape_room_env.levels import compile_level

ALPHABET = "#. SCE12345678abcdefgh"
ACTIONS = np.array(
    [[a, b, c] for a in range(4) for b in range(8) for c in range(5)][::7], dtype=np.int32
)  # 23 spread over all components


def generate(choices: bytes, num_agents: int) -> str:
    """A level drawn at random from ``choices``: mostly valid, sometimes with one mistake."""
    rng = random.Random(choices)
    H, W = rng.randint(3, 20), rng.randint(3, 20)
    grid = [["." for _ in range(W)] for _ in range(H)]
    if rng.random() < 0.7:  # an outer wall
        for r in range(H):
            grid[r][0] = grid[r][-1] = "#"
        grid[0] = ["#"] * W
        grid[-1] = ["#"] * W
    density = rng.choice([0.0, 0.05, 0.2])
    for r in range(H):
        for c in range(W):
            if rng.random() < density:
                grid[r][c] = "#"

    def free(rows: range) -> tuple[int, int] | None:
        for _ in range(40):
            r, c = rng.choice(rows), rng.randrange(W)
            if grid[r][c] == ".":
                return r, c
        return None

    def put(cell, ch: str) -> None:
        if cell is not None:
            grid[cell[0]][cell[1]] = ch

    # Door rows, each a wall with a door run, and its button somewhere below.
    inner = list(range(2, H - 2))
    door_rows = sorted(rng.sample(inner, k=min(len(inner), rng.randint(0, 3))))
    for g, r in enumerate(door_rows):
        grid[r] = ["#"] * W
        start = rng.randrange(W)
        for c in range(start, min(W, start + rng.randint(1, 4))):
            grid[r][c] = str(g + 1)
    row = rng.randrange(min(2, H))  # the exit, near the top
    for c in range(rng.randrange(W), W):
        if grid[row][c] in ".#" and rng.random() < 0.8:
            grid[row][c] = "E"
    for g, r in enumerate(door_rows):
        put(free(range(r + 1, H)), chr(ord("a") + g))
    for _ in range(num_agents + rng.choice([0, 0, 0, 0, 1, -1])):  # spawns, near the bottom
        put(free(range(max(0, H - 3), H)), "S")
    for _ in range(rng.choice([0, 0, 1, 2, 4])):  # cubes, clear of walls, spawns, doors and cubes
        cell = free(range(1, H - 1))
        if cell is not None and all(
            grid[r][c] in ".abcdefghE"
            for r in range(cell[0] - 1, cell[0] + 2)
            for c in range(max(0, cell[1] - 1), min(W, cell[1] + 2))
        ):
            put(cell, "C")
    if rng.random() < 0.15:  # one mistake, or just one more cell
        grid[rng.randrange(H)][rng.randrange(W)] = rng.choice(ALPHABET + "?x\t")
    return "\n".join("".join(row) for row in grid)


def decode(data: bytes) -> tuple[object, int]:
    flags, cell, momentary = (data + bytes(3))[:3]
    num_agents = 1 + (flags & 3)
    text = generate(data[3:], num_agents) if flags & 0x40 else data[3:].decode("latin-1")
    if not flags & 0x80:
        # A string without a newline is a level's name or a path: keep this harness off the disk.
        return (text if "\n" in text else text + "\n"), num_agents
    spec: dict = {"ascii": text, "name": "fuzz"}
    if cell:
        spec["cell_size"] = math.nan if cell == 255 else cell / 8
    if momentary:
        spec["momentary"] = [g + 1 for g in range(8) if momentary >> g & 1]
    return spec, num_agents


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """A fresh generated level a third of the time, libFuzzer's byte mutations one time in six
    (and always for generated levels: new choices), otherwise an edit that keeps the text a grid
    of level characters. Most of these levels get past the character and shape checks, so the
    compiler's deeper rules and the simulator see them."""
    rng = random.Random(seed)
    roll = rng.random()
    if roll < 0.35:  # a fresh generated level
        head = bytes([rng.randrange(4) | 0x40 | (0x80 if rng.random() < 0.7 else 0), rng.randrange(256), 0])
        return head + rng.randbytes(8)
    if roll < 0.5 or len(data) < 4 or data[0] & 0x40:
        return byte_mutate(data, max_size, rng.getrandbits(32))
    head, rows = bytearray(data[:3]), data[3:].decode("latin-1").split("\n")
    width = max(len(r) for r in rows) or 1
    grid = [list(r.ljust(width, ".")) for r in rows]
    op = rng.randrange(6)
    if op <= 2:  # set a few cells
        for _ in range(rng.randint(1, 3)):
            grid[rng.randrange(len(grid))][rng.randrange(width)] = rng.choice(ALPHABET)
    elif op == 3 and len(grid) < 40:  # duplicate a row
        k = rng.randrange(len(grid))
        grid.insert(k, list(grid[k]))
    elif op == 4 and width < 40:  # duplicate a column
        k = rng.randrange(width)
        for row in grid:
            row.insert(k, row[k])
    else:  # the header: agents, form, cell size, momentary groups
        i = rng.randrange(3)
        head[i] = rng.choice([head[i] ^ (1 << rng.randrange(8)), rng.randrange(256), 16, 0])
    out = bytes(head) + "\n".join("".join(r) for r in grid).encode("latin-1")
    return out[:max_size]


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
    fuzz(test_one_input, custom_mutator=mutate)
