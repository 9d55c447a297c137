"""Issue 14 item 7: a recording whose config block was changed to other valid values, with every
CRC fixed up (so that the file passes the format checks), never replays as verified with results
different from the recording's.

Each test records a real file with ``SimManager.recording``, rewrites its config block (and the
header fields that mirror it) with config_bytes, config_crc32 and header_crc32 recomputed, and
replays it with ``SimManager.from_replay`` + ``replay_step`` to the end. An edit that changes what
the simulation computes must raise ``ReplayDivergenceError`` (the state hash or the output digest
of a checkpoint differs); an edit that changes nothing the simulation computes (a note, a level's
name) must replay with exactly the recorded outputs.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import escape_room_env as er

LEVEL = "#######\n#EEEEE#\n#.....#\n#...C.#\n#.....#\n#..S..#\n#######"
# One agent walking straight up escapes every third step (SAME_STEP resets it in place).
SHORT_LEVEL = "#####\n#EEE#\n#...#\n#.S.#\n#####"
FORWARD_FAST = (3, 0, 2)  # move_amount FAST, move_angle FORWARD, rotate NONE
OUTPUTS = ("reward", "done", "terminated", "truncated", "observation")
STATE = "differ from the recording in their state$"
OUTPUTS_ONLY = (
    r"differ from the recording in their outputs \(rewards, flags or observations\), their state equal$"
)


def record(path, *, steps: int, checksum_interval: int, seed: int = 7, actions=None, **kwargs) -> dict:
    """Records ``steps`` steps (random actions, or ``actions`` every step) and returns the
    outputs of every step, as the replay must reproduce them."""
    rng = np.random.default_rng(seed)
    got = {name: [] for name in OUTPUTS}
    with (
        er.SimManager(num_threads=1, **kwargs) as sim,
        sim.recording(path, seed=seed, checksum_interval=checksum_interval),
    ):
        for _ in range(steps):
            act = sim.action_tensor().to_numpy()
            if actions is None:
                act[:] = rng.integers(0, [4, 8, 5], size=act.shape)
            else:
                act[:] = actions
            sim.step()
            _collect(sim, got)
    return {name: np.stack(values) for name, values in got.items()}


def _collect(sim: er.SimManager, got: dict) -> None:
    for name in OUTPUTS:
        got[name].append(getattr(sim, f"{name}_tensor")().to_numpy().copy())


def replay(path) -> dict:
    """Replays the file to its end (raising what the replay raises); every step's outputs."""
    got = {name: [] for name in OUTPUTS}
    with er.SimManager.from_replay(path, num_threads=1) as sim:
        _, total = sim.get_replay_step_count()
        for i in range(total):
            last = sim.replay_step()
            _collect(sim, got)
            assert last is (i == total - 1)
        assert sim.get_replay_checkpoints_verified() > 0
    return {name: np.stack(values) for name, values in got.items()}


def rewrite_config(src, dst, edit: Callable[[dict], None], header: dict | None = None) -> dict:
    """``src`` copied to ``dst`` with its config block edited by ``edit`` (in place, on the parsed
    JSON) and header fields set (name: value), every size and CRC fixed; returns the new config."""
    data = bytearray(Path(src).read_bytes())
    (size,) = struct.unpack_from("<Q", data, 48)
    config = json.loads(data[96 : 96 + size])
    edit(config)
    block = json.dumps(config).encode()
    head = data[:96]
    fields = {"episode_len": (28, "<I"), "autoreset_mode": (40, "<I"), "rand_seed": (32, "<Q")}
    for name, value in (header or {}).items():
        struct.pack_into(fields[name][1], head, fields[name][0], value)
    struct.pack_into("<Q", head, 48, len(block))
    struct.pack_into("<I", head, 76, zlib.crc32(block))
    struct.pack_into("<I", head, 80, zlib.crc32(bytes(head[:80])))
    Path(dst).write_bytes(bytes(head) + block + bytes(data[96 + size :]))
    return config


def assert_same(got: dict, want: dict) -> None:
    for name in OUTPUTS:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def assert_diverges(path, reason: str) -> er.ReplayDivergenceError:
    """The replay raises ReplayDivergenceError (from from_replay's step-0 check or a
    replay_step) with ``reason``; it never finishes as verified."""
    with pytest.raises(er.ReplayDivergenceError) as info:
        replay(path)
    assert re.search(reason, str(info.value)), str(info.value)
    return info.value


@pytest.fixture(scope="module")
def rooms_recording(tmp_path_factory):
    """8 worlds, 2 agents, the default rooms, NEXT_STEP, 60 steps, a checkpoint every 10."""
    path = tmp_path_factory.mktemp("rooms") / "rooms.bin"
    outputs = record(
        path, steps=60, checksum_interval=10, num_worlds=8, num_agents=2, autoreset_mode="next_step",
        episode_len=25,
    )  # fmt: skip
    return path, outputs


@pytest.fixture(scope="module")
def level_recording(tmp_path_factory):
    """4 worlds, 1 agent, a custom level, SAME_STEP, 40 steps, a checkpoint every 8."""
    path = tmp_path_factory.mktemp("level") / "level.bin"
    outputs = record(path, steps=40, checksum_interval=8, num_worlds=4, levels=[LEVEL], episode_len=30)
    return path, outputs


def test_the_unedited_recordings_replay_exactly(tmp_path, rooms_recording, level_recording):
    for path, outputs in (rooms_recording, level_recording):
        assert_same(replay(path), outputs)
        # Rewritten with nothing changed (the JSON re-serialised, every CRC recomputed): the same.
        copy = tmp_path / path.name
        rewrite_config(path, copy, lambda config: None)
        assert_same(replay(copy), outputs)
    assert np.abs(rooms_recording[1]["reward"]).max() > 0
    assert rooms_recording[1]["done"].any() and level_recording[1]["done"].any()


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def edit(config):
        target = config
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return edit


def _cell(row: int, col: int, char: str):
    def edit(config):
        rows = config["levels"][0]["ascii"]
        assert rows[row][col] != char
        rows[row] = rows[row][:col] + char + rows[row][col + 1 :]

    return edit


# Edits the state hash does not see: the output chains of the checkpoints must, whichever steps
# the rewards differ on (group_radius: only between checkpoints).
OUTPUT_EDITS = {
    "progress_scale": _set("reward", "progress_scale", 0.07),
    "slack_penalty": _set("reward", "slack_penalty", 0.01),
    "slack_penalty 0": _set("reward", "slack_penalty", 0),
    "group_bonus": _set("reward", "group_bonus", 2.5),
    # the rewards differ at steps 11, 14, 16-19, 22, 23, 44-49, 57 and 59; checkpoints: every 10th
    "group_radius": _set("reward", "group_radius", 50.0),
}


@pytest.mark.parametrize("case", list(OUTPUT_EDITS))
def test_reward_constant_changed_diverges_in_the_outputs(tmp_path, rooms_recording, case):
    path, _ = rooms_recording
    edited = tmp_path / "edited.bin"
    config = rewrite_config(path, edited, OUTPUT_EDITS[case])
    assert er.SimManager.read_replay_metadata(edited).reward == config["reward"]  # a valid file
    error = assert_diverges(edited, OUTPUTS_ONLY)
    # the state is the same (the same actions, the same physics): only the outputs tell
    assert re.search(r"diverged at step [1-9]\d*: ", str(error)), str(error)


STATE_EDITS = {  # (recording, edit, header fields)
    "a wall cell in the level": ("level", _cell(4, 1, "#"), {}),
    "a floor cell in the level": ("level", _cell(2, 1, "#"), {}),
    "a corner cell in the level": ("level", _cell(1, 1, "#"), {}),
    "the cube moved": ("level", lambda c: (_cell(3, 4, ".")(c), _cell(3, 2, "C")(c)), {}),
    "the level's cell_size": ("level", _set("levels", 0, "cell_size", 2.5), {}),
    "the level's momentary door groups": ("doors", _set("levels", 0, "momentary", [1]), {}),
    "episode_len (header and config)": ("rooms", _set("episode_len", 24), {"episode_len": 24}),
    "the rooms' order": ("rooms", _set("rooms", ["cube_button", "cube_blocking", "button"]), {}),
    "a room replaced": ("rooms", _set("rooms", ["button", "button", "cube_button"]), {}),
    "a room fewer": ("rooms", _set("rooms", ["button", "cube_blocking"]), {}),
    "a world's seed": ("rooms", _set("world_seeds", 3, 12345), {}),
    "a world's episode": ("rooms", _set("world_episodes", 0, 1), {}),
    "autoreset_mode (header and config)": (
        "rooms",
        _set("autoreset_mode", "SAME_STEP"),
        {"autoreset_mode": 1},
    ),
    "rooms for the level": (
        "level",
        lambda c: (c.pop("levels"), c.pop("world_levels"), _set("rooms", ["button"])(c)),
        {},
    ),
}


@pytest.fixture(scope="module")
def level_doors_recording(tmp_path_factory):
    """A level with a door and its button, which the agent presses and leaves (a momentary door
    group would close again)."""
    level = "#######\n#EEEEE#\n#11111#\n#.....#\n#..a..#\n#..S..#\n#######"
    path = tmp_path_factory.mktemp("doors") / "doors.bin"
    outputs = record(path, steps=12, checksum_interval=4, num_worlds=1, levels=[level], actions=FORWARD_FAST)
    return path, outputs


@pytest.mark.parametrize("case", list(STATE_EDITS))
def test_simulation_changed_diverges(tmp_path, rooms_recording, level_recording, level_doors_recording, case):
    which, edit, header = STATE_EDITS[case]
    path, _ = {"rooms": rooms_recording, "level": level_recording, "doors": level_doors_recording}[which]
    edited = tmp_path / "edited.bin"
    rewrite_config(path, edited, edit, header)
    er.SimManager.read_replay_metadata(edited)  # a valid file
    assert_diverges(edited, f"{STATE}|{OUTPUTS_ONLY}")


NEUTRAL_EDITS = {
    "recorded_with": _set("recorded_with", "someone else"),
    "an extra key": _set("notes", {"why": "kept as is"}),
    "the level's name": _set("levels", 0, "name", "renamed"),
    "start": _set("start", "fresh"),
    "the level's rows as one string": lambda c: c["levels"][0].__setitem__(
        "ascii", "\n".join(c["levels"][0]["ascii"])
    ),
}


@pytest.mark.parametrize("case", list(NEUTRAL_EDITS))
def test_edit_that_changes_nothing_simulated_replays_exactly(tmp_path, level_recording, case):
    path, outputs = level_recording
    edited = tmp_path / "edited.bin"
    rewrite_config(path, edited, NEUTRAL_EDITS[case])
    assert_same(replay(edited), outputs)


@pytest.mark.parametrize("interval", [1, 50])
def test_escape_bonus_changed_between_checkpoints_never_replays_verified(tmp_path, interval):
    """The escape bonus is paid on a single step. With a checkpoint after every step the edit is
    caught; with the default interval every escape here falls between checkpoints (steps 3, 6,
    ..., 18 of 20; checkpoints at 0 and 20), so only a digest that covers every step's outputs
    (not just the checkpoint's) can catch it."""
    path = tmp_path / "short.bin"
    outputs = record(
        path, steps=20, checksum_interval=interval, num_worlds=1, levels=[SHORT_LEVEL], actions=FORWARD_FAST
    )
    escapes = np.flatnonzero(outputs["done"][:, 0, 0]) + 1  # 1-based steps
    assert escapes.tolist() == [3, 6, 9, 12, 15, 18]
    assert_same(replay(path), outputs)
    edited = tmp_path / "edited.bin"
    rewrite_config(path, edited, _set("reward", "escape_bonus", 7.0))
    assert_diverges(edited, OUTPUTS_ONLY)
