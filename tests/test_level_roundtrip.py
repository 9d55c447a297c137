"""Every custom level that plays replays exactly (issue 14, item 6).

Levels are generated at random and written in every form ``levels=`` accepts (Level objects,
row lists, dicts, text with indentation, blank or space rows around it, trailing spaces, CRLF,
level files, shipped names). For each form: ``Level.from_dict(level.to_dict())`` gives the same
level and the core compiles the same geometry, and a recording with random actions replays
through ``SimManager.from_replay`` to the end without divergence, ending in the same state hashes.
"""

from __future__ import annotations

import dataclasses
import json
import re
import warnings

import numpy as np
import pytest
from helpers import random_actions

import escape_room_env as er
from escape_room_env.levels import CompiledLevel, Level, LevelWarning, compile_level, parse_level

GEOMETRY = [f.name for f in dataclasses.fields(CompiledLevel) if f.name != "level"]


def quiet_compile(spec, num_agents: int = 1) -> CompiledLevel:
    with warnings.catch_warnings():  # random levels may wall an exit off
        warnings.simplefilter("ignore", LevelWarning)
        return compile_level(spec, num_agents)


def assert_same_geometry(a: CompiledLevel, b: CompiledLevel, *, same_name: bool = True) -> None:
    for name in GEOMETRY if same_name else set(GEOMETRY) - {"warnings"}:  # warnings name the level
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, name
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            assert x == y, name


def random_grid(rng: np.random.Generator) -> list[str]:
    """The rows of a random level that compiles for 2 agents, with floor (spaces) along its
    edges as often as not: a first or last row of spaces, a first column of spaces, trailing
    spaces."""
    while True:
        h, w = int(rng.integers(4, 10)), int(rng.integers(4, 10))
        grid = rng.choice(np.array(list(". #")), size=(h, w), p=[0.5, 0.35, 0.15])
        if rng.random() < 0.5:
            grid[0, :] = " "
        if rng.random() < 0.5:
            grid[-1, :] = " "
        if rng.random() < 0.5:
            grid[:, 0] = " "
        if rng.random() < 0.5:
            grid[:, -1] = " "
        if rng.random() < 0.5:  # a door row with its button
            r = int(rng.integers(1, h - 1))
            grid[r, :] = "#"
            first = int(rng.integers(0, w - 1))
            grid[r, first : first + int(rng.integers(1, 3))] = "1"
            grid[r - 1 if rng.random() < 0.5 else r + 1, int(rng.integers(0, w))] = "a"
        free = [(r, c) for r in range(h) for c in range(w) if grid[r, c] in ". "]
        if len(free) < 4:
            continue
        for k, ch in zip(rng.permutation(len(free))[:3], "SSE"):
            grid[free[k]] = ch
        rows = ["".join(row) for row in grid]
        try:
            quiet_compile(rows and {"ascii": rows}, 2)
        except ValueError:
            continue
        return rows


def forms(rows: list[str], rng: np.random.Generator, tmp_path) -> dict[str, object]:
    """The same rows in every accepted form; text forms are dedented and lose blank rows around
    them, so they may compile to a smaller level: each form only has to replay as it played."""
    text = "\n".join(rows)
    indent = " " * int(rng.integers(1, 9))
    indented = "\n".join(indent + row for row in rows)
    trailing = [row + "  " for row in rows]
    extra = {"momentary": [1], "cell_size": float(rng.choice([2.0, 2.5, 3.0, 7.25])), "name": "random"}
    has_door = "1" in text
    out = {
        "Level": Level(text),
        "Level indented": Level(indented),
        "Level blank lines around": Level("\n\n" + text + "\n\n"),
        "Level CRLF": Level("\r\n".join(rows) + "\r\n", (1,) if has_door else (), 3.0, "crlf"),
        "Level trailing spaces": Level("\n".join(trailing)),
        "Level from row list": Level("\n".join(rows)),
        "rows": {"ascii": rows},
        "rows indented": {"ascii": [indent + row for row in rows]},
        "rows with CR": {"ascii": [row + "\r" for row in rows]},
        "rows, space row on top": {"ascii": [" " * len(rows[0]), *rows]},
        "rows, space row below": {"ascii": [*rows, " " * len(rows[0])]},
        "rows trailing spaces": {"ascii": trailing},
        "rows tuple with extras": {"ascii": tuple(rows), **(extra if has_door else {"cell_size": 2.5})},
        "text": text + "\n",
        "text triple-quoted": "\n" + indented + "\n" + indent[:-1],
        "text CRLF": "\r\n".join(indent + row for row in rows) + "\r\n",
        "text space rows around": " " * len(rows[0]) + "\n" + text + "\n" + " " * len(rows[0]),
        "text trailing spaces": "\n".join(trailing),
        "dict indented text": {"ascii": "\n" + indented + "\n  ", "cell_size": 2.25, "name": "d"},
        "dict text with extras": {"ascii": text, **(extra if has_door else {"name": "x"})},
    }
    txt = tmp_path / "level.txt"
    txt.write_text("\n" + indented + "\n\n", encoding="utf-8")
    out["path .txt"] = txt
    as_json = tmp_path / "level.json"
    as_json.write_text(json.dumps({"ascii": "\n" + indented + "\n", "description": "d"}), "utf-8")
    out["path .json"] = str(as_json)
    rows_json = tmp_path / "rows.json"
    rows_json.write_text(json.dumps({"ascii": [indent + row for row in rows], "cell_size": 4}), "utf-8")
    out["path .json rows"] = rows_json
    return out


def replay_and_compare(sim: er.SimManager, path, rng: np.random.Generator, steps: int) -> None:
    """Records ``steps`` random steps of ``sim``, replays them, and checks the replay."""
    actions = sim.action_tensor().to_numpy()
    with sim.recording(path, seed=int(rng.integers(2**32)), checksum_interval=7):
        for _ in range(steps):
            actions[:] = random_actions(rng, sim.num_worlds, sim.num_agents)
            sim.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LevelWarning)
        replay = er.SimManager.from_replay(path)
    with replay:
        assert replay.levels == sim.levels
        for played, replayed in zip(sim.levels, replay.levels):
            num_agents = sim.num_agents
            assert_same_geometry(quiet_compile(played, num_agents), quiet_compile(replayed, num_agents))
        while not replay.replay_step():
            pass
        assert replay.get_replay_step_count() == (steps, steps)
        np.testing.assert_array_equal(replay.state_hashes(), sim.state_hashes())


def test_level_round_trip_preserves_every_form(tmp_path):
    rng = np.random.default_rng(14)
    for _ in range(40):
        rows = random_grid(rng)
        for name, spec in forms(rows, rng, tmp_path).items():
            level = parse_level(spec)
            stored = json.loads(json.dumps(level.to_dict()))  # what a replay file holds
            again = Level.from_dict(stored)
            assert again == level, name
            assert Level.from_dict(again.to_dict()) == again, name
            assert_same_geometry(quiet_compile(level, 2), quiet_compile(again, 2))


def test_forms_that_mean_the_same_level_compile_alike(tmp_path):
    rng = np.random.default_rng(6)
    for _ in range(20):
        rows = random_grid(rng)
        all_forms = forms(rows, rng, tmp_path)
        # As written: the rows exactly, whatever the line ends or blank lines around them.
        exact = quiet_compile({"ascii": rows}, 2)
        for name in ("Level", "Level blank lines around", "Level from row list", "rows", "rows with CR"):
            assert_same_geometry(quiet_compile(all_forms[name], 2), exact, same_name=False)
        assert parse_level(all_forms["Level CRLF"]).rows() == rows
        # Text: the indentation and blank rows around it are layout.
        dedented = quiet_compile(all_forms["text"], 2)
        for name in ("text triple-quoted", "text CRLF", "text space rows around", "path .txt", "path .json"):
            assert_same_geometry(quiet_compile(all_forms[name], 2), dedented, same_name=False)
        # Explicit rows keep their spaces: an indented row list is wider.
        assert quiet_compile(all_forms["rows indented"], 2).cols == exact.cols + len(
            parse_level(all_forms["rows indented"]).rows()[0]
        ) - len(rows[0])


@pytest.mark.parametrize("num_agents", [1, 2])
def test_every_level_form_replays_exactly(tmp_path, num_agents):
    rng = np.random.default_rng(100 + num_agents)
    for i in range(6):
        rows = random_grid(rng)
        specs = list(forms(rows, rng, tmp_path).values())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LevelWarning)
            sim = er.SimManager(num_worlds=len(specs), num_agents=num_agents, levels=specs, num_threads=1)
        with sim:
            replay_and_compare(sim, tmp_path / f"forms{i}.bin", rng, steps=40)


@pytest.mark.parametrize("name", ["corridor", "maze", "cooperation"])
def test_shipped_levels_replay_exactly(tmp_path, name):
    rng = np.random.default_rng(3)
    level = parse_level(name)
    assert Level.from_dict(level.to_dict()) == level
    num_agents = len(quiet_compile(level, 1).spawns)
    with er.SimManager(num_worlds=2, num_agents=num_agents, levels=name, num_threads=1) as sim:
        replay_and_compare(sim, tmp_path / f"{name}.bin", rng, steps=30)


def test_indented_level_object_replays_with_its_floor_column(tmp_path):
    # The case of the report: a Level whose rows share leading spaces (floor) played 7 columns
    # wide; the file held the text, and the reader dedented it to 5.
    level = Level("  #####\n  #E.E#\n  #111#\n  #.a.#\n  #S.S#\n  #####", momentary=(1,), cell_size=2.5)
    assert level.to_dict()["ascii"][0] == "  #####"
    assert quiet_compile(level).cols == 7
    with er.SimManager(num_worlds=2, num_agents=2, levels=level, num_threads=1) as sim:
        replay_and_compare(sim, tmp_path / "indented.bin", np.random.default_rng(1), steps=25)


def test_level_holds_the_rows_the_core_compiles():
    assert Level("\n\nS.\r\n.E\r\n\n").ascii == "S.\n.E"
    assert Level("S.\r\r\n.E").rows() == ["S.", ".E"]
    # Spaces are floor in a Level: nothing but empty lines around the rows is dropped.
    assert Level("  \nS.\n.E\n  ").rows() == ["  ", "S.", ".E", "  "]
    assert Level("S.\n.E", cell_size=3).cell_size == 3.0
    assert isinstance(Level("S.\n.E", cell_size=np.float32(2.5)).cell_size, float)
    assert Level("S.\n.E", momentary=np.array([1])).momentary == (1,)


@pytest.mark.parametrize(
    "spec",
    [
        "\tS.a\n\t.1.\n\tE..",
        {"ascii": ["S.a", ".1.", "E.\t"]},
        Level("S.a\n.1\t\nE.."),
    ],
)
def test_tabs_are_not_floor_in_any_form(spec):
    with pytest.raises(ValueError, match=r"column \d+: unknown character"):
        compile_level(spec)


@pytest.mark.parametrize(
    ("kwargs", "what"),
    [
        ({"cell_size": "2"}, "'cell_size' must be a number"),
        ({"cell_size": True}, "'cell_size' must be a number"),
        ({"momentary": 1}, "'momentary' must be a list of door groups 1-8"),
        ({"name": 3}, "level name must be a string"),
    ],
)
def test_bad_level_fields_raise_value_error(kwargs, what):
    with pytest.raises(ValueError, match=re.escape(what)):
        Level("S\nE", **kwargs)


def test_huge_integer_cell_size_is_out_of_range_not_overflow():
    with pytest.raises(ValueError, match=r"cell_size must be between 2 .* and 1000 metres, got inf"):
        compile_level(Level("S\nE", cell_size=10**400))
