"""State records, rollouts, copies, named access and replay seeking (issue 15).

``get_state`` / ``set_state`` must make a manager show and continue exactly as the one the state
was taken from; ``rollout`` must equal stepping a manager; copies and pickles go through the
state; ``sim.world(w)`` reads what the raw arrays hold; ``seek`` lands where a fresh replay
stepped to the same step is. Every comparison is of bytes: floats included, bit for bit.
"""

from __future__ import annotations

import concurrent.futures
import copy
import hashlib
import pickle
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import ALL_TENSOR_NAMES, as_bytes, random_actions, record_bytes, run_python

import escape_room_env as er

REPO = Path(__file__).resolve().parent.parent
MODES = ("same_step", "next_step", "disabled")
INPUTS = ("action", "reset")  # written by the caller, not shown by the state

# Four spawns, a latching door (group 1), a momentary door (group 2) and a cube to hold 'b' down.
FOUR_AGENT_LEVEL = {
    "name": "four",
    "momentary": [2],
    "ascii": """
###########
#EEEEEEEEE#
#.........#
#.........#
###2222####
#.........#
#...C.....#
#.........#
#......b..#
###1111####
#.........#
#.......a.#
#S.S.S.S..#
###########
""",
}

# (name, SimManager options, the agent counts the layout allows)
KINDS = [
    ("button", {"rooms": ["button"]}, (1, 4)),
    ("double_button", {"rooms": ["double_button"]}, (2, 4)),
    ("cube_blocking", {"rooms": ["cube_blocking"]}, (1, 4)),
    ("cube_button", {"rooms": ["cube_button"]}, (1, 4)),
    ("default_rooms", {}, (1, 4)),
    ("shipped_levels", {"levels": ["cooperation", "corridor", "maze"]}, (1, 1)),
    ("four_agent_level", {"levels": FOUR_AGENT_LEVEL}, (1, 4)),
]


def _round_trip_configs() -> list:
    """Every room kind in every reset mode, the agent counts 1-4 cycled across each mode (3k + m
    mod 4 runs through all four as k does), the renderer on for half (each kind and each mode
    gets both), short episodes for half (so the 500 steps cross several episode ends)."""
    params = []
    for k, (name, options, (lo, hi)) in enumerate(KINDS):
        for m, mode in enumerate(MODES):
            agents = min(max(1 + (3 * k + m) % 4, lo), hi)
            renderer = (k + m) % 2 == 0
            config = {
                **options,
                "num_agents": agents,
                "autoreset_mode": mode,
                "episode_len": 60 if (k + m) % 3 else 200,
                "enable_batch_renderer": renderer,
                "render_width": 8,
                "render_height": 6,
            }
            label = f"{name}-{mode}-{agents}a-{'render' if renderer else 'norender'}"
            params.append(pytest.param(config, id=label))
    return params


def make(config: dict, num_worlds: int = 4, rand_seed: int = 42, num_threads: int = 1) -> er.SimManager:
    return er.SimManager(num_worlds=num_worlds, rand_seed=rand_seed, num_threads=num_threads, **config)


def tensor_views(sim: er.SimManager) -> dict[str, np.ndarray]:
    """Zero-copy views of every exported tensor (the images too when the renderer is on)."""
    names = ALL_TENSOR_NAMES + (("rgb", "depth") if sim.batch_renderer_enabled else ())
    return {name: sim.tensor(name).to_numpy() for name in names}


def outputs(sim: er.SimManager) -> dict[str, bytes]:
    """The bytes of everything a manager shows now: every tensor, the state hashes, the states."""
    shown = {name: view.tobytes() for name, view in tensor_views(sim).items()}
    shown["state_hashes"] = sim.state_hashes().tobytes()
    shown["state"] = record_bytes(sim.get_state())
    return shown


def assert_same_outputs(got: dict[str, bytes], want: dict[str, bytes], skip=()) -> None:
    assert got.keys() - set(skip) == want.keys() - set(skip)
    differ = [name for name in want if name not in skip and got[name] != want[name]]
    assert not differ, f"these differ: {differ}"


def random_plan(rng: np.random.Generator, steps: int, sim: er.SimManager, reset_p: float = 0.02):
    """Random in-range actions [T, W, A, 3] and reset flags [T, W] (out-of-episode resets)."""
    w, a = sim.num_worlds, sim.num_agents
    actions = np.stack([random_actions(rng, w, a) for _ in range(steps)])
    resets = (rng.random((steps, w)) < reset_p).astype(np.int32)
    return actions, resets


def drive(sim: er.SimManager, actions: np.ndarray, resets: np.ndarray) -> list[str]:
    """Steps with the plan; a digest of everything shown after each step."""
    views = tensor_views(sim)
    act, rst = views["action"], views["reset"]
    digests = []
    for t in range(len(actions)):
        act[:] = actions[t]
        rst[:] = resets[t]
        sim.step()
        h = hashlib.blake2b(digest_size=16)
        for view in views.values():
            h.update(view.tobytes())
        h.update(sim.state_hashes().tobytes())
        h.update(record_bytes(sim.get_state()))
        digests.append(h.hexdigest())
    return digests


def retraced(records: np.ndarray) -> np.ndarray:
    """The records with their observations zeroed and their observation_key no longer matching:
    set_state must trace the observations afresh, as it does for a record whose state was edited."""
    out = records.copy()
    out["observation"] = 0.0
    out["observation_key"] ^= np.uint64(1)
    return out


def assert_same_run(got: list[str], want: list[str]) -> None:
    assert len(got) == len(want)
    first = next((t for t, (a, b) in enumerate(zip(got, want)) if a != b), None)
    assert first is None, f"the runs part at step {first + 1} of {len(want)}"


# -- get_state / set_state --------------------------------------------------------------------


@pytest.mark.parametrize("config", _round_trip_configs())
def test_set_state_shows_at_once_and_continues_500_steps_bit_identically(config):
    rng = np.random.default_rng(zlib.crc32(repr(sorted(config.items())).encode()))
    sim = make(config)
    k = int(rng.integers(1, 300))  # a random step, episodes ended and reset on the way
    drive(sim, *random_plan(rng, k, sim))
    at_k, state = outputs(sim), sim.get_state()
    assert state.shape == (sim.num_worlds,) and state.dtype == sim.state_dtype
    plan = random_plan(rng, 500, sim)
    want = drive(sim, *plan)
    at_end = outputs(sim)

    sim.set_state(state)  # back in the same manager
    assert_same_outputs(outputs(sim), at_k, skip=INPUTS)
    assert_same_run(drive(sim, *plan), want)
    assert_same_outputs(outputs(sim), at_end)

    # Into a second manager of the same configuration, another seed and thread count, with the
    # observations traced afresh from the state (they equal those the record kept).
    with make(config, rand_seed=7, num_threads=2) as other:
        other.set_state(retraced(state))
        assert_same_outputs(outputs(other), at_k, skip=INPUTS)
        assert_same_run(drive(other, *plan), want)
        assert_same_outputs(outputs(other), at_end)


def test_states_move_between_worlds_and_a_subset_leaves_the_others_alone():
    config = {"levels": ["cooperation", "corridor", "maze"], "autoreset_mode": "next_step"}
    rng = np.random.default_rng(5)
    sim = make(config, num_worlds=6)
    drive(sim, *random_plan(rng, 37, sim))
    state, shown = sim.get_state(), tensor_views(sim)
    obs, hashes = shown["observation"].copy(), sim.state_hashes()

    other = make(config, num_worlds=6, rand_seed=100)
    untouched = other.get_state()
    other.set_state(state[[4, 0]], worlds=[1, 5])  # world 4's state into world 1, world 0's into 5
    after = other.get_state()
    assert as_bytes(after[[1, 5]]) == as_bytes(state[[4, 0]])
    assert as_bytes(after[[0, 2, 3, 4]]) == as_bytes(untouched[[0, 2, 3, 4]])
    assert [other.level_of_world(w) for w in range(6)] == [0, 1, 2, 0, 1, 0]  # level_index moved too
    assert other.state_hashes()[[1, 5]].tolist() == hashes[[4, 0]].tolist()
    np.testing.assert_array_equal(tensor_views(other)["observation"][[1, 5]], obs[[4, 0]])
    assert as_bytes(sim.get_state([4, 0])) == as_bytes(state[[4, 0]])  # get_state(worlds) picks

    # The moved worlds continue as the originals do.
    actions = np.stack([random_actions(rng, 6, 1) for _ in range(120)])
    swapped = actions.copy()
    swapped[:, [1, 5]] = actions[:, [4, 0]]
    for t in range(120):
        for s, a in ((sim, actions[t]), (other, swapped[t])):
            s.action_tensor().to_numpy()[:] = a
            s.step()
        assert as_bytes(sim.get_state([4, 0])) == as_bytes(other.get_state([1, 5])), f"step {t + 1}"


def test_an_edited_records_observations_are_traced_afresh_and_an_intact_ones_shown_as_kept():
    """A record keeps the observations its world showed, with observation_key, a digest of the
    state fields they are computed from (seed ... agent_escaped): set_state shows them as kept
    while those fields are intact and traces them afresh when one was edited."""
    config = {"rooms": ["cube_button", "double_button"], "num_agents": 2, "autoreset_mode": "next_step"}
    rng = np.random.default_rng(11)
    sim, traced = make(config, num_worlds=3), make(config, num_worlds=3, rand_seed=9)
    drive(sim, *random_plan(rng, 23, sim, reset_p=0.0))
    early = sim.get_state()
    drive(sim, *random_plan(rng, 41, sim, reset_p=0.0))
    late = sim.get_state()
    assert (early["observation_key"] != late["observation_key"]).all()
    assert sim.get_state()["observation_key"].tolist() == late["observation_key"].tolist()  # a digest

    def mirrored_cubes(r, cubes):  # x -> -x: sign bits, 64 bytes apart for cubes c and c + 8
        pos = r["cube_pos"].copy()
        pos[:, cubes, 0] *= -1
        return pos

    edits = [
        ("seed", lambda r: r["seed"] + 1),
        ("episode", lambda r: r["episode"] + 1),
        ("steps_left", lambda r: r["steps_left"] - 3),
        ("door_open", lambda r: 1 - r["door_open"]),
        ("cube_pos", lambda r: r["cube_pos"] + 0.5),
        ("cube_pos", lambda r: mirrored_cubes(r, slice(None))),
        ("cube_pos", lambda r: mirrored_cubes(r, [0, 8])),
        ("agent_pos", lambda r: late["agent_pos"]),
        ("agent_yaw", lambda r: r["agent_yaw"] + 0.25),
        ("agent_max_y", lambda r: r["agent_max_y"] + 0.75),
    ]
    for field, edit in edits:
        edited = early.copy()
        edited[field] = edit(early)
        sim.set_state(edited)
        traced.set_state(retraced(edited))
        shown = sim.observation_tensor().to_numpy()
        np.testing.assert_array_equal(shown, traced.observation_tensor().to_numpy(), err_msg=field)
        assert shown.tobytes() != early["observation"].tobytes(), field  # the edit shows
        # get_state now holds the traced observations, under a key that matches again.
        again = sim.get_state()
        assert again["observation"].tobytes() == shown.tobytes()
        assert again["observation_key"].tolist() != early["observation_key"].tolist(), field

    # An edit of agent_escaped alone shows in the partners' slots.
    edited = early.copy()
    edited["agent_escaped"][:, 1] = 1 - edited["agent_escaped"][:, 1]
    sim.set_state(edited)
    np.testing.assert_array_equal(
        sim.observation_tensor().to_numpy()[:, 0, 89], edited["agent_escaped"][:, 1]
    )

    # The observations are an output, as reward is: an intact record's are shown as it holds them,
    # whatever the padding bytes between its fields hold (numpy's copies need not keep them).
    kept = early.copy()
    kept["observation"][0, 0, :5] = [0.5, 0.25, 0.0, 0.125, -0.5]
    covered = np.zeros(kept.dtype.itemsize, bool)
    for name in kept.dtype.names:
        field, offset = kept.dtype.fields[name][:2]
        covered[offset : offset + field.itemsize] = True
    assert not covered.all()  # the layout has padding
    raw = kept.view(np.uint8).reshape(len(kept), -1)
    raw[:, ~covered] = 0xAB
    sim.set_state(kept)
    np.testing.assert_array_equal(sim.observation_tensor().to_numpy(), kept["observation"])


def test_a_write_into_a_state_array_shows_at_once_and_get_state_keeps_what_it_shows():
    config = {"rooms": ["cube_button"], "num_agents": 2}
    rng = np.random.default_rng(3)
    sim, other = make(config, num_worlds=3), make(config, num_worlds=3, rand_seed=8)
    drive(sim, *random_plan(rng, 17, sim, reset_p=0.0))
    before = sim.observation_tensor().to_numpy().copy()
    sim.write_array("agent_pos", sim.host_array("agent_pos") + np.float32(0.5))
    shown = sim.observation_tensor().to_numpy().copy()
    assert shown.tobytes() != before.tobytes()  # traced from the moved agents at once
    state = sim.get_state()
    other.set_state(retraced(state))  # the moved state, traced afresh elsewhere
    np.testing.assert_array_equal(other.observation_tensor().to_numpy(), shown)
    other.set_state(state)  # and as the record keeps it
    np.testing.assert_array_equal(other.observation_tensor().to_numpy(), shown)
    sim.write_array("action", (1, 2, 3))  # an input: nothing else changes
    np.testing.assert_array_equal(sim.observation_tensor().to_numpy(), shown)


def test_a_state_record_names_its_configuration_and_the_world():
    sim = er.SimManager(
        num_worlds=3,
        rand_seed=40,
        num_threads=1,
        num_agents=2,
        rooms=["double_button", "cube_button"],
        autoreset_mode="next_step",
        episode_len=90,
        enable_batch_renderer=True,
        render_width=16,
        render_height=8,
        reward={"escape_bonus": 3.0},
    )
    sim.step(nstep=7)
    state = sim.get_state()
    assert state["state_version"].tolist() == [2, 2, 2]
    assert state["rules_version"].tolist() == [er.RULES_VERSION] * 3
    assert state["num_agents"].tolist() == [2, 2, 2] and state["episode_len"].tolist() == [90] * 3
    assert state["autoreset_mode"].tolist() == [0, 0, 0]  # NEXT_STEP 0, SAME_STEP 1, DISABLED 2
    assert state["render_size"].tolist() == [[8, 16]] * 3  # (height, width)
    assert state["rooms"].tolist() == [[1, 3, -1, -1]] * 3  # indices into ROOM_TYPES, -1 padded
    np.testing.assert_array_equal(state["reward_config"][0], np.float32([0.05, 0.005, 1.25, 2.0, 3.0]))
    assert state["levels_digest"].tolist() == [0, 0, 0]  # generated levels
    assert state["seed"].tolist() == [40, 41, 42] and state["episode"].tolist() == [0, 0, 0]
    assert state["steps_left"].tolist() == [83, 83, 83] and state["level_index"].tolist() == [-1] * 3
    np.testing.assert_array_equal(state["agent_pos"], sim.host_array("agent_pos"))
    np.testing.assert_array_equal(state["door_open"], sim.host_array("door_open"))
    np.testing.assert_array_equal(state["final_observation"], sim.host_array("final_observation"))
    np.testing.assert_array_equal(state["observation"], sim.observation_tensor().to_numpy())
    assert state.dtype.names[-2:] == ("observation", "observation_key")
    assert state.tobytes() == sim.get_state().tobytes()  # padding zeroed: equal states, equal bytes
    # The layout: a new one bumps state_version (sizes for 1-4 agents at state_version 2).
    sizes = [
        er.SimManager(num_worlds=1, num_agents=a, num_threads=1).state_dtype.itemsize for a in (1, 2, 3, 4)
    ]
    assert sizes == [984, 1760, 2592, 3464]
    renderer_off = er.SimManager(num_worlds=1, num_threads=1, levels="maze").get_state()
    assert renderer_off["render_size"].tolist() == [[0, 0]] and renderer_off["rooms"].tolist() == [[-1] * 4]
    assert renderer_off["levels_digest"][0] != 0 and renderer_off["level_index"].tolist() == [0]


BASE = {
    "rooms": ["button", "cube_button"],
    "enable_batch_renderer": True,
    "render_width": 8,
    "render_height": 8,
}


@pytest.mark.parametrize(
    ("changed", "field"),
    [
        ({"num_agents": 2}, "num_agents"),
        ({"episode_len": 100}, "episode_len"),
        ({"autoreset_mode": "disabled"}, "autoreset_mode"),
        ({"render_width": 16}, "render_size"),
        ({"enable_batch_renderer": False}, "render_size"),
        ({"rooms": ["cube_button", "button"]}, "rooms"),
        ({"rooms": None, "levels": "corridor"}, "rooms"),
        ({"reward": {"slack_penalty": 0.01}}, "reward_config"),
    ],
)
def test_a_state_of_another_configuration_is_a_value_error_naming_the_field(changed, field):
    mine = make(BASE, num_worlds=2)
    theirs = make({**BASE, **changed}, num_worlds=2)
    for to, state in ((mine, theirs.get_state()), (theirs, mine.get_state())):
        before = to.get_state()
        with pytest.raises(ValueError, match=rf"states\[0\] belongs to another configuration: its {field}\b"):
            to.set_state(state)
        assert as_bytes(to.get_state()) == as_bytes(before)  # nothing written
        with pytest.raises(ValueError, match=rf"belongs to another configuration: its {field}\b"):
            er.rollout(to, state, np.zeros((2, 3, to.num_agents, 3), np.int32))


def test_states_of_other_levels_are_refused_by_their_digest():
    corridor = make({"levels": "corridor"}, num_worlds=2)
    maze = make({"levels": "maze"}, num_worlds=2)
    with pytest.raises(ValueError, match=r"its levels_digest differs"):
        maze.set_state(corridor.get_state())
    both = make({"levels": ["maze", "corridor"]}, num_worlds=2)  # a list is another configuration too
    with pytest.raises(ValueError, match=r"its levels_digest differs"):
        both.set_state(maze.get_state())


def test_corrupted_short_and_mistyped_records_raise_clear_errors():
    sim = make({}, num_worlds=3)
    sim.step(nstep=3)
    good = sim.get_state()
    hashes = sim.state_hashes()

    def corrupt(field, value, record=0):
        bad = good.copy()
        bad[field][record] = value
        return bad

    with pytest.raises(ValueError, match=r"states\[0\] belongs to another configuration: its state_version"):
        sim.set_state(corrupt("state_version", 99))
    with pytest.raises(ValueError, match=r"states\[2\] belongs to another configuration: its rules_version"):
        sim.set_state(corrupt("rules_version", er.RULES_VERSION + 1, record=2))
    with pytest.raises(ValueError, match=r"its levels_digest"):
        sim.set_state(corrupt("levels_digest", 12345))
    with pytest.raises(ValueError, match=r"states\[1\]: level_index 2 is not a level of this manager"):
        sim.set_state(corrupt("level_index", 2, record=1))
    # Values no world can hold, in any field, are refused naming it (nothing is written).
    impossible = [
        ("agent_pos", np.nan, r"agent_pos holds nan \(it must be finite\)"),
        ("agent_yaw", np.inf, r"agent_yaw holds inf"),
        ("cube_pos", -np.inf, r"cube_pos holds -inf"),
        ("final_observation", np.nan, r"final_observation holds nan"),
        ("observation", np.inf, r"observation holds inf"),
        ("reward", np.nan, r"reward holds nan"),
        ("status", 200, r"status holds 200 \(expected 0\.\.2\)"),
        ("steps_left", -5, r"steps_left holds -5 \(expected 0\.\.200\)"),
        ("steps_left", 201, r"steps_left holds 201 \(expected 0\.\.200\)"),
        ("final_elapsed_steps", 10**6, r"final_elapsed_steps holds 1000000"),
        ("last_reason", 2, r"last_reason holds 2 \(expected -1\.\.1\)"),
        ("termination_reason", -2, r"termination_reason holds -2"),
        ("door_open", 3, r"door_open holds 3 \(expected 0\.\.1\)"),
        ("agent_escaped", 2, r"agent_escaped holds 2"),
        ("final_doors_opened", 9, r"final_doors_opened holds 9 \(expected 0\.\.8\)"),
    ]
    for field, value, message in impossible:
        with pytest.raises(
            ValueError, match=r"states\[2\]: " + message + r".*: not a state a world can be in"
        ):
            sim.set_state(corrupt(field, value, record=2))
    with pytest.raises(ValueError, match=r"states has 2 records for 3 worlds"):
        sim.set_state(good[:2])
    with pytest.raises(ValueError, match=r"states has 3 records for 2 worlds"):
        sim.set_state(good, worlds=[0, 1])
    with pytest.raises(TypeError, match=r"states must be records of the manager's state_dtype .*got \|u1"):
        sim.set_state(good.view(np.uint8).reshape(3, -1))  # the raw bytes
    with pytest.raises(TypeError, match=r"states must be records .*got \|u1"):
        sim.set_state(good.view(np.uint8).reshape(3, -1)[:, :-8])  # short records
    with pytest.raises(TypeError, match=r"got <f8"):
        sim.set_state(np.zeros(3))
    with pytest.raises(TypeError, match=r"records of another layout \(984 bytes; the manager's: 984\)"):
        sim.set_state(good[["seed", "episode"]])  # a view of some fields
    with pytest.raises(ValueError, match=r"worlds\[0\] is 3, not a world of this manager \(0 to 2\)"):
        sim.set_state(good[:1], worlds=[3])
    with pytest.raises(ValueError, match=r"worlds lists world 1 twice"):
        sim.set_state(good[:2], worlds=[1, 1])
    with pytest.raises(TypeError, match=r"worlds must be a world index"):
        sim.set_state(good[:1], worlds=[0.5])
    with pytest.raises(ValueError, match=r"worlds\[0\] is 7"):
        sim.get_state([7])
    assert sim.state_hashes().tolist() == hashes.tolist()  # every refusal wrote nothing


def test_set_state_is_refused_while_recording_or_replaying(tmp_path):
    sim = make({}, num_worlds=2)
    state = sim.get_state()
    with sim.recording(tmp_path / "r.bin", seed=1):
        sim.step(nstep=3)
        assert sim.get_state()["steps_left"].tolist() == [197, 197]  # reading is fine
        with pytest.raises(er.EscapeRoomError, match=r"set_state\(\) cannot run while recording"):
            sim.set_state(state)
    replay = er.SimManager.from_replay(tmp_path / "r.bin", num_threads=1)
    with pytest.raises(er.EscapeRoomError, match=r"set_state\(\) cannot run while replaying"):
        replay.set_state(replay.get_state())


# -- copies and pickles -----------------------------------------------------------------------


TWIN = {
    "num_agents": 2,
    "levels": [FOUR_AGENT_LEVEL, "cooperation"],
    "autoreset_mode": "next_step",
    "episode_len": 50,
    "enable_batch_renderer": True,
    "render_width": 8,
    "render_height": 8,
    "reward": {"escape_bonus": 2.0},
}


def assert_same_info(got, want) -> None:
    """Equal infos: the same keys, arrays equal bit for bit (object arrays element by element)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys()
        for key in want:
            assert_same_info(got[key], want[key])
    elif isinstance(want, np.ndarray) and want.dtype == object:
        assert got.shape == want.shape
        for a, b in zip(got, want):
            assert_same_info(a, b)
    elif isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    else:
        assert got == want


def pickle_copy(obj):
    return pickle.loads(pickle.dumps(obj))


@pytest.mark.parametrize("twin_of", [copy.deepcopy, pickle_copy], ids=["deepcopy", "pickle"])
def test_simmanager_twin_continues_as_the_original(twin_of):
    rng = np.random.default_rng(3)
    sim = make(TWIN, num_worlds=5, rand_seed=9)
    drive(sim, *random_plan(rng, 73, sim, reset_p=0.05))
    # Pending input the twin must carry too: new actions and a reset flag not stepped yet.
    sim.action_tensor().to_numpy()[:] = random_actions(rng, 5, 2)
    sim.reset_tensor().to_numpy()[:] = [0, 1, 0, 0, 1]
    twin = twin_of(sim)
    assert twin is not sim and twin.build_options() == sim.build_options()
    assert_same_outputs(outputs(twin), outputs(sim))
    sim.step()
    twin.step()
    assert_same_outputs(outputs(twin), outputs(sim))
    plan = random_plan(rng, 150, sim, reset_p=0.05)
    assert_same_run(drive(twin, *plan), drive(sim, *plan))
    # Independent: the twin's steps leave the original where it is.
    before = as_bytes(sim.get_state())
    twin.step(nstep=10)
    assert as_bytes(sim.get_state()) == before and as_bytes(twin.get_state()) != before


@pytest.mark.parametrize("twin_of", [copy.deepcopy, pickle_copy], ids=["deepcopy", "pickle"])
def test_escape_room_env_twin_continues_as_the_original(twin_of):
    env = er.EscapeRoomEnv(rooms=["cube_button", "button"], episode_len=40)
    env.reset(seed=11)
    for _ in range(17):
        env.step(env.action_space.sample())
    twin = twin_of(env)
    assert twin.sim is not env.sim
    rng = np.random.default_rng(5)
    ends = 0
    for t in range(120):  # three episodes' worth: terminated/truncated, then reset()
        action = rng.integers(0, env.action_space.nvec)
        got, want = twin.step(action), env.step(action)
        assert got[0].tobytes() == want[0].tobytes(), f"step {t}"
        assert got[1:4] == want[1:4], f"step {t}"
        assert_same_info(got[4], want[4])
        if want[2] or want[3]:
            ends += 1
            assert twin.np_random.integers(1 << 30) == env.np_random.integers(1 << 30)
            assert twin.reset()[0].tobytes() == env.reset()[0].tobytes()
    assert ends >= 2
    # The spaces' generators are carried too: sample() continues as the original's.
    assert [twin.action_space.sample().tolist() for _ in range(5)] == [
        env.action_space.sample().tolist() for _ in range(5)
    ]


@pytest.mark.parametrize("twin_of", [copy.deepcopy, pickle_copy], ids=["deepcopy", "pickle"])
@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_vector_env_twin_continues_as_the_original(twin_of, mode):
    envs = er.EscapeRoomVectorEnv(8, num_agents=2, autoreset_mode=mode, episode_len=30, num_threads=1, seed=4)
    envs.reset(seed=4)
    rng = np.random.default_rng(0)
    for _ in range(21):
        envs.step(rng.integers(0, envs.single_action_space.nvec, size=(8, 3)))
    twin = twin_of(envs)
    assert twin.sim is not envs.sim and twin.num_envs == 8 and twin.autoreset_mode == envs.autoreset_mode
    for _ in range(80):
        actions = rng.integers(0, envs.single_action_space.nvec, size=(8, 3))
        got, want = twin.step(actions), envs.step(actions)
        for a, b in zip(got[:4], want[:4]):
            np.testing.assert_array_equal(a, b)
        assert_same_info(got[4], want[4])
    assert twin.np_random.integers(1 << 30) == envs.np_random.integers(1 << 30)
    envs.action_space.sample()
    twin = twin_of(envs)
    assert twin.action_space.sample().tolist() == envs.action_space.sample().tolist()
    assert twin.single_action_space.sample().tolist() == envs.single_action_space.sample().tolist()
    envs.close()
    with pytest.raises(ValueError, match="a closed EscapeRoomVectorEnv cannot be copied"):
        copy.deepcopy(envs)


# -- rollout ----------------------------------------------------------------------------------


def mid_episode_states(config: dict, num_worlds: int, seed: int) -> tuple[er.SimManager, np.ndarray]:
    """A manager whose worlds are at different points of different episodes (random resets on
    the way; DISABLED worlds frozen after their episode), and its states."""
    rng = np.random.default_rng(seed)
    sim = make(config, num_worlds=num_worlds, rand_seed=seed)
    drive(sim, *random_plan(rng, 113, sim, reset_p=0.03))
    return sim, sim.get_state()


def step_from(config: dict, states: np.ndarray, actions: np.ndarray):
    """What a manager stepped from ``states`` with ``actions`` [B, T, A, 3] shows after each step."""
    batch, steps = actions.shape[:2]
    ref = make(config, num_worlds=batch, rand_seed=1234)
    ref.set_state(states)
    obs, rew, done = (ref.tensor(n).to_numpy() for n in ("observation", "reward", "done"))
    act = ref.action_tensor().to_numpy()
    out = {"observation": [], "reward": [], "done": [], "states": []}
    for t in range(steps):
        act[:] = actions[:, t]
        ref.step()
        out["observation"].append(obs.copy())
        out["reward"].append(rew[..., 0].copy())
        out["done"].append(done[..., 0] != 0)
        out["states"].append(ref.get_state())
    return {k: np.stack(v, axis=1) for k, v in out.items()}


@pytest.mark.parametrize("mode", MODES)
def test_rollout_equals_stepping_a_manager_bit_for_bit(mode):
    config = {"autoreset_mode": mode, "episode_len": 50, "num_agents": 2}
    sim, states = mid_episode_states(config, 64, seed=21)
    assert len(set(states["steps_left"].tolist())) > 10  # worlds at many different points
    if mode == "disabled":
        assert (states["status"] != 0).any()  # some start frozen
    rng = np.random.default_rng(8)
    actions = rng.integers(0, er.action.NUM_CHOICES, size=(64, 200, 2, 3), dtype=np.int32)
    template_before = outputs(sim)

    result = er.rollout(sim, states, actions, num_threads=2, return_states=True)
    want = step_from(config, states, actions)
    assert result.observation.shape == (64, 200, 2, sim.obs_dim) and result.observation.dtype == np.float32
    assert result.reward.shape == (64, 200, 2) and result.done.shape == (64, 200, 2)
    assert result.done.dtype == np.bool_ and result.states.shape == (64, 200)
    assert result.observation.tobytes() == np.ascontiguousarray(want["observation"]).tobytes()
    assert result.reward.tobytes() == np.ascontiguousarray(want["reward"]).tobytes()
    np.testing.assert_array_equal(result.done, want["done"])
    assert as_bytes(result.states) == as_bytes(np.ascontiguousarray(want["states"]))
    assert as_bytes(result.final_state) == as_bytes(want["states"][:, -1])
    assert want["done"].sum(axis=1).min() >= 1  # every copy crossed an episode end (or froze)
    assert_same_outputs(outputs(sim), template_before)  # the template is not touched

    # Without every state (the steps before the last write their observations straight into
    # the result), on two threads and on one: the same values.
    for threads in (2, 1):
        lean = er.rollout(sim, states, actions.astype(np.int64), num_threads=threads)
        assert lean.states is None and as_bytes(lean.final_state) == as_bytes(result.final_state)
        assert lean.observation.tobytes() == np.ascontiguousarray(want["observation"]).tobytes()
        assert lean.reward.tobytes() == result.reward.tobytes()
        np.testing.assert_array_equal(lean.done, want["done"])

    # Without observations (the steps before the last skip them): the same rewards, dones and
    # states, the final states' observations included.
    for every in (False, True):
        blind = er.rollout(
            sim, states, actions, num_threads=2, return_states=every, return_observations=False
        )
        assert blind.observation is None
        assert blind.reward.tobytes() == result.reward.tobytes()
        np.testing.assert_array_equal(blind.done, result.done)
        assert as_bytes(blind.final_state) == as_bytes(result.final_state)
        assert (blind.states is None) if not every else as_bytes(blind.states) == as_bytes(result.states)


def test_rollout_pool_reuses_its_simulators_and_out_buffers():
    config = {"rooms": ["cube_button"], "episode_len": 40}
    sim, states = mid_episode_states(config, 16, seed=2)
    rng = np.random.default_rng(1)
    first = rng.integers(0, er.action.NUM_CHOICES, size=(16, 30, 1, 3))
    second = rng.integers(0, er.action.NUM_CHOICES, size=(16, 30, 1, 3))
    with er.Rollout(num_threads=1) as pool:
        a = pool.rollout(sim, states, first)
        kept = {name: getattr(a, name).copy() for name in ("observation", "reward", "done", "final_state")}
        b = pool.rollout(sim, states, second, out=a)  # fills a's arrays again
        for name in ("observation", "reward", "done", "final_state"):
            assert np.shares_memory(getattr(a, name), getattr(b, name)), name
        c = pool.rollout(sim, states, second)
        for name in ("observation", "reward", "done", "final_state"):
            assert as_bytes(getattr(b, name)) == as_bytes(getattr(c, name)), name
        d = pool.rollout(sim, states, first)
        for name, value in kept.items():
            assert as_bytes(getattr(d, name)) == as_bytes(value), name
        every = pool.rollout(sim, states, first, return_states=True)
        again = pool.rollout(sim, states, first, return_states=True, out=every)
        assert np.shares_memory(every.states, again.states)
        assert as_bytes(again.final_state) == as_bytes(kept["final_state"])
        with pytest.raises(ValueError, match="out does not fit this call"):
            pool.rollout(sim, states, first[:, :10], out=a)
        with pytest.raises(ValueError, match="out does not fit this call"):
            pool.rollout(sim, states, first, out=a, return_states=True)
        with pytest.raises(ValueError, match="out does not fit this call"):
            pool.rollout(sim, states, first, out=a, return_observations=False)
        # Without out=, a result's memory goes back to the pool once all its arrays are gone,
        # never while one of them is held, and the next call of that size reuses it.
        held = pool.rollout(sim, states, first)
        reward, want = held.reward, held.reward.copy()
        del held  # reward alone keeps the whole block
        later = [pool.rollout(sim, states, second) for _ in range(3)]
        names = ("observation", "reward", "done", "final_state")
        for result in later:
            assert not any(np.shares_memory(reward, getattr(result, n)) for n in names)
        assert reward.tobytes() == want.tobytes()
        address = pool.rollout(sim, states, first).observation.ctypes.data  # dropped at once
        assert pool.rollout(sim, states, first).observation.ctypes.data == address
        del later
        # Calls of ever fewer steps: the spare memory stays within twice the largest call's.
        for steps in range(30, 10, -1):
            pool.rollout(sim, states, first[:, :steps])
        blocks = pool._blocks
        assert 0 < sum(b.nbytes for b in blocks.spare + blocks.returned) <= blocks.budget
        blind = pool.rollout(sim, states, first, return_observations=False)
        again = pool.rollout(sim, states, second, return_observations=False, out=blind)
        assert again.observation is None and np.shares_memory(blind.reward, again.reward)
        assert as_bytes(again.final_state) == as_bytes(c.final_state)
        with pytest.raises(ValueError, match="out does not fit this call"):
            pool.rollout(sim, states, first, out=blind)
        with pytest.raises(TypeError, match="out must be the RolloutResult of an earlier call, got dict"):
            pool.rollout(sim, states, first, out={})
    with pytest.raises(er.EscapeRoomError, match="this Rollout is closed"):
        pool.rollout(sim, states, first)


def test_concurrent_rollouts_from_two_threads_equal_sequential_ones():
    config = {"num_agents": 2, "episode_len": 60}
    sims = [mid_episode_states(config, 24, seed=s) for s in (31, 32)]
    rng = np.random.default_rng(6)
    plans = [rng.integers(0, er.action.NUM_CHOICES, size=(24, 80, 2, 3)) for _ in range(4)]
    jobs = [(sims[i % 2][0], sims[i % 2][1], plans[i]) for i in range(4)]
    sequential = [er.rollout(s, st, p, num_threads=1) for s, st, p in jobs]

    shared = er.Rollout(num_threads=1)
    barrier = threading.Barrier(2)

    def worker(which: int) -> dict:
        barrier.wait()  # both threads in their rollouts at once
        mine = {}
        for i in range(which, 4, 2):
            s, st, p = jobs[i]
            mine["shared", i] = shared.rollout(s, st, p)
            mine["own", i] = er.rollout(s, st, p, num_threads=1)
        return mine

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(worker, k) for k in (0, 1)]
        results = {key: value for f in futures for key, value in f.result(timeout=120).items()}
    shared.close()
    assert len(results) == 8
    for (_, i), got in results.items():
        want = sequential[i]
        for name in ("observation", "reward", "done", "final_state"):
            assert as_bytes(getattr(got, name)) == as_bytes(getattr(want, name)), (i, name)
    assert as_bytes(sequential[0].final_state) != as_bytes(sequential[2].final_state)  # different plans


def _with(array: np.ndarray, index: tuple, value: int) -> np.ndarray:
    changed = array.copy()
    changed[index] = value
    return changed


OK = np.zeros((2, 4, 1, 3), np.int32)  # B = 2 copies, T = 4 steps, A = 1 agent
# id -> (sim, states, actions) -> the call's arguments, the error, what it says
BAD_ROLLOUTS = {
    "not a sim": (lambda m, s, a: ("sim", s, a), TypeError, r"sim must be a SimManager .*, got str"),
    "raw bytes": (
        lambda m, s, a: (m, s.view(np.uint8).reshape(2, -1), a),
        TypeError,
        r"initial_states must be records of the manager's state_dtype .*got \|u1",
    ),
    "2-d states": (
        lambda m, s, a: (m, s.reshape(2, 1), a),
        ValueError,
        r"initial_states must be a 1-d array of B >= 1 records, got shape \(2, 1\)",
    ),
    "no states": (lambda m, s, a: (m, s[:0], a), ValueError, r"initial_states must be a 1-d .*shape \(0,\)"),
    "float actions": (lambda m, s, a: (m, s, a.astype(np.float32)), TypeError, r"actions must be an integer"),
    "bool actions": (lambda m, s, a: (m, s, a.astype(bool)), TypeError, r"actions must be an integer .*bool"),
    "3-d actions": (lambda m, s, a: (m, s, a[..., 0]), ValueError, r"actions must have shape \(2, T, 1, 3\)"),
    "batch mismatch": (lambda m, s, a: (m, s, a[:1]), ValueError, r"\(2, T, 1, 3\) .*got \(1, 4, 1, 3\)"),
    "no steps": (lambda m, s, a: (m, s, a[:, :0]), ValueError, r"with T >= 1, got \(2, 0, 1, 3\)"),
    "agents mismatch": (
        lambda m, s, a: (m, s, np.zeros((2, 4, 2, 3), np.int32)),
        ValueError,
        r"actions must have shape \(2, T, 1, 3\)",
    ),
    "angle 8": (
        lambda m, s, a: (m, s, _with(a, (1, 2, 0, 1), 8)),
        ValueError,
        r"actions\[1, 2, 0, 1\] \(move_angle\) is 8, expected 0 <= move_angle < 8",
    ),
    "rotate -1": (
        lambda m, s, a: (m, s, _with(a, (0, 3, 0, 2), -1)),
        ValueError,
        r"actions\[0, 3, 0, 2\] \(rotate\) is -1, expected 0 <= rotate < 5",
    ),
    # int64 values are checked before they are narrowed: 2**32 + 1 would wrap to 1.
    "int64 amount 2**32 + 1": (
        lambda m, s, a: (m, s, _with(a.astype(np.int64), (1, 0, 0, 0), 2**32 + 1)),
        ValueError,
        r"actions\[1, 0, 0, 0\] \(move_amount\) is 4294967297, expected 0 <= move_amount < 4",
    ),
    # Several values out of range: the first of the first component that has one is named.
    "two bad values": (
        lambda m, s, a: (m, s, _with(_with(a, (0, 3, 0, 2), 7), (1, 1, 0, 1), -3)),
        ValueError,
        r"actions\[1, 1, 0, 1\] \(move_angle\) is -3",
    ),
}


@pytest.mark.parametrize("case", BAD_ROLLOUTS)
def test_rollout_arguments_are_checked_naming_the_argument(case):
    arguments, error, match = BAD_ROLLOUTS[case]
    sim = make({}, num_worlds=2)
    with pytest.raises(error, match=match):
        er.rollout(*arguments(sim, sim.get_state(), OK))


# -- named access -----------------------------------------------------------------------------


def test_named_access_reads_the_raw_arrays_and_the_state():
    sim = make({"num_agents": 3, "levels": FOUR_AGENT_LEVEL}, num_worlds=3)
    rng = np.random.default_rng(4)
    drive(sim, *random_plan(rng, 45, sim))
    state = sim.get_state()
    obs = sim.observation_tensor().to_numpy()
    for w in range(3):
        world = sim.world(w)
        assert (world.index, world.level, world.num_agents) == (w, 0, 3)
        assert (world.num_doors, world.num_buttons, world.num_cubes) == (2, 2, 1)
        assert (world.seed, world.episode, world.steps_left) == (
            int(state["seed"][w]),
            int(state["episode"][w]),
            int(state["steps_left"][w]),
        )
        for i in range(3):
            agent = world.agent(i)
            assert agent.position.tobytes() == state["agent_pos"][w][i].tobytes()
            assert agent.position.tobytes() == sim.host_array("agent_pos")[w, i].tobytes()
            assert agent.yaw == float(state["agent_yaw"][w][i])
            assert agent.progress == float(state["agent_max_y"][w][i])
            assert agent.progress == float(sim.progress_tensor().to_numpy()[w, i, 0])
            assert agent.escaped == bool(state["agent_escaped"][w][i])
            assert agent.observation.tobytes() == obs[w, i].tobytes()
        for k in range(2):
            door, button = world.door(k), world.button(k)
            assert door.is_open == bool(state["door_open"][w][k])
            assert door.position.tobytes() == sim.host_array("level_door_centre")[w, k].tobytes()
            assert door.group == int(sim.host_array("level_door_group")[w, k]) + 1
            assert button.position.tobytes() == sim.host_array("level_button_pos")[w, k].tobytes()
            assert button.group == int(sim.host_array("level_button_group")[w, k]) + 1
            assert button.pressed == bool(sim.pressed_buttons()[w] >> k & 1)
        assert sorted(world.door(k).group for k in range(2)) == [1, 2]  # 'a' opens 1, 'b' opens 2
        assert sorted(world.button(k).group for k in range(2)) == [1, 2]
        assert world.cube(0).position.tobytes() == state["cube_pos"][w][0].tobytes()
    assert repr(sim.world(2)) == "<World 2: 3 agent(s), 2 door(s), level 0>"
    generated = make({"rooms": ["cube_button"]}, num_worlds=1).world(0)
    assert (generated.level, generated.num_doors, generated.num_buttons, generated.num_cubes) == (
        None,
        1,
        1,
        1,
    )


def test_named_views_are_read_only_live_and_checked():
    sim = make({"rooms": ["cube_button"]}, num_worlds=2)
    world = sim.world(1)
    position = world.agent(0).position
    assert not position.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        position[0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        world.cube(0).position[:] = 0.0
    actions = sim.action_tensor().to_numpy()
    actions[:] = (er.action.move_amount.FAST, er.action.move_angle.FORWARD, er.action.rotate.NONE)
    start = position.copy()
    sim.step(nstep=3)
    assert position[1] > start[1]  # a live view of the simulation's memory
    assert position.tobytes() == sim.host_array("agent_pos")[1, 0].tobytes()
    with pytest.raises(IndexError, match=r"world 2 out of range for 2 worlds"):
        sim.world(2)
    with pytest.raises(IndexError, match=r"agent 1 out of range: this world has 1"):
        world.agent(1)
    with pytest.raises(IndexError, match=r"door 1 out of range: this world has 1"):
        world.door(1)
    with pytest.raises(IndexError, match=r"cube -1 out of range"):
        world.cube(-1)


def _pressed_by_rule(sim: er.SimManager) -> np.ndarray:
    """SPEC §2.4 in numpy: a button is pressed while an agent disc (radius 1) overlaps its square
    (half 0.65) or a cube (half 1.5) overlaps it."""
    from escape_room_env.reference import BUTTON_HALF, CUBE_HALF

    counts = sim.host_array("level_counts")
    buttons = sim.host_array("level_button_pos")
    agents, cubes = sim.host_array("agent_pos"), sim.host_array("cube_pos")
    masks = np.zeros(sim.num_worlds, np.uint16)
    for w in range(sim.num_worlds):
        for k in range(int(counts[w, 2])):
            b = buttons[w, k]
            dx = agents[w, :, 0] - np.clip(agents[w, :, 0], b[0] - BUTTON_HALF, b[0] + BUTTON_HALF)
            dy = agents[w, :, 1] - np.clip(agents[w, :, 1], b[1] - BUTTON_HALF, b[1] + BUTTON_HALF)
            on = (dx * dx + dy * dy < np.float32(1.0)).any()
            reach = CUBE_HALF + BUTTON_HALF
            c = cubes[w, : int(counts[w, 3])]
            on = on or ((np.abs(c[:, 0] - b[0]) < reach) & (np.abs(c[:, 1] - b[1]) < reach)).any()
            masks[w] |= np.uint16(on) << k
    return masks


def test_buttons_read_pressed_as_the_rule_says_and_doors_follow():
    sim = make({"rooms": ["button", "cube_button"], "num_agents": 2}, num_worlds=2)
    world = sim.world(0)
    assert [world.button(k).pressed for k in range(2)] == [False, False]
    state = sim.get_state()
    latch, moment = world.button(0).position.copy(), world.button(1).position.copy()
    state["agent_pos"][0][0] = latch  # agent 0 stands on room 0's button
    state["cube_pos"][0][0] = moment  # the cube sits on room 1's button
    sim.set_state(state)
    assert sim.pressed_buttons().tolist() == [0b11, 0] == _pressed_by_rule(sim).tolist()
    assert [world.button(k).pressed for k in range(2)] == [True, True]
    assert [world.door(k).is_open for k in range(2)] == [False, False]  # doors change at the step
    sim.step()  # all stopped: move_amount 0
    assert [world.door(k).is_open for k in range(2)] == [True, True]
    assert int(sim.doors_opened_tensor().to_numpy()[0, 0, 0]) == 2
    state = sim.get_state()
    state["agent_pos"][0][0] = latch - np.float32([3.0 * np.sign(latch[0]), 0.0])  # towards the middle
    state["cube_pos"][0][0] = moment - np.float32([4.0 * np.sign(moment[0]), 0.0])
    sim.set_state(state)
    sim.step()
    assert [world.button(k).pressed for k in range(2)] == [False, False]
    assert [world.door(k).is_open for k in range(2)] == [True, False]  # latching stays, momentary closes
    # Over random play too, the views follow the rule.
    rng = np.random.default_rng(2)
    for _ in range(60):
        sim.action_tensor().to_numpy()[:] = random_actions(rng, 2, 2)
        sim.step()
        masks = _pressed_by_rule(sim)
        assert sim.pressed_buttons().tolist() == masks.tolist()
        assert [[sim.world(w).button(k).pressed for k in range(2)] for w in range(2)] == [
            [bool(m >> k & 1) for k in range(2)] for m in masks
        ]


# -- replay seeking -----------------------------------------------------------------------------

TOTAL, TARGETS = 230, (0, 1, 37, 64, 100, 150, 229, 230)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A 230-step recording of 3 worlds x 2 agents with random actions, reset flags and one
    immediate reset; the recording manager's states and outputs at the target steps."""
    path = tmp_path_factory.mktemp("seek") / "seek.bin"
    rng = np.random.default_rng(17)
    sim = er.SimManager(num_worlds=3, num_agents=2, episode_len=40, rand_seed=5, num_threads=1)
    seen = {}
    with sim.recording(path, seed=11, checksum_interval=20):
        seen[0] = outputs(sim)
        for t in range(1, TOTAL + 1):
            if t == 90:
                sim.reset_worlds([True, False, True])
            sim.action_tensor().to_numpy()[:] = random_actions(rng, 3, 2)
            sim.reset_tensor().to_numpy()[:] = rng.random(3) < 0.02
            sim.step()
            if t in TARGETS:
                seen[t] = outputs(sim)
    return path, seen


def shown_by_replay(sim: er.SimManager) -> dict[str, bytes]:
    return {k: v for k, v in outputs(sim).items() if k not in INPUTS}


def test_seek_back_and_forth_equals_a_fresh_replay_at_that_step(recorded):
    path, seen = recorded
    fresh = er.SimManager.from_replay(path, num_threads=1)
    want = {0: shown_by_replay(fresh)}
    for t in range(1, TOTAL + 1):
        assert fresh.replay_step() == (t == TOTAL)
        if t in TARGETS:
            want[t] = shown_by_replay(fresh)
    for t in TARGETS:  # the replay shows what the recording showed
        assert_same_outputs(want[t], seen[t], skip=INPUTS)

    sim = er.SimManager.from_replay(path, num_threads=1)
    for step in (150, 37, 230, 0, 100, 1, 229, 64, 37, 37, 230, 150):
        sim.seek(step)
        assert sim.get_replay_step_count() == (step, TOTAL)
        assert_same_outputs(shown_by_replay(sim), want[step])
    sim.seek(64)  # and replaying on from a backwards seek verifies to the end
    for t in range(65, TOTAL + 1):
        sim.replay_step()
        if t in TARGETS:
            assert_same_outputs(shown_by_replay(sim), want[t])
    assert sim.get_replay_checkpoints_verified() > 0


def test_seek_out_of_range_raises_and_changes_nothing(recorded):
    path, _ = recorded
    sim = er.SimManager.from_replay(path, num_threads=1)
    sim.seek(50)
    before = as_bytes(sim.get_state())
    for step in (-1, TOTAL + 1):
        with pytest.raises(IndexError, match=rf"seek: step {step} is outside the recording \(0..{TOTAL}\)"):
            sim.seek(step)
    assert sim.get_replay_step_count() == (50, TOTAL) and as_bytes(sim.get_state()) == before
    with pytest.raises(er.EscapeRoomError, match="no replay loaded"):
        er.SimManager(num_worlds=1, num_threads=1).seek(0)


def _episodes_ended(path: Path, first: int) -> int:
    sim = er.SimManager.from_replay(path, num_threads=1)
    sim.seek(first)
    done, count = sim.done_tensor().to_numpy(), 0
    while sim.get_replay_step_count()[0] < TOTAL:
        sim.replay_step()
        count += int((done[:, 0, 0] == 1).sum())
    return count


def test_cli_replay_from_step(recorded, capsys):
    path, _ = recorded
    later = run_python("-m", "escape_room_env.cli", "replay", path, "--from-step", "100", "--verify")
    assert later.returncode == 0, later.stderr
    ended = _episodes_ended(path, 100)
    assert ended > 0
    assert f"replayed steps 101..{TOTAL} of 3 worlds: {ended} episodes ended" in later.stdout
    assert "verified: the state hashes of all 3 worlds match at" in later.stdout
    # In-process (the same entry point, without another interpreter start): the bounds.
    from escape_room_env.cli import main

    assert main(["replay", str(path), "--from-step", str(TOTAL)]) == 0
    assert f"replayed steps {TOTAL + 1}..{TOTAL} of 3 worlds: 0 episodes ended" in capsys.readouterr().out
    assert main(["replay", str(path), "--from-step", str(TOTAL + 1)]) == 2
    assert f"--from-step {TOTAL + 1} is outside the recording (0..{TOTAL})" in capsys.readouterr().err
    assert main(["replay", str(path), "--from-step", "-1"]) == 2


# -- the planner example ------------------------------------------------------------------------


def test_plan_with_rollout_example_runs_and_reports_both_policies():
    script = REPO / "examples" / "plan_with_rollout.py"
    quick = "--num-worlds 4 --steps 12 --candidates 4 --horizon 6 --threads 1"
    proc = run_python(script, *quick.split(), timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "random play:       4 episodes (4 unfinished episodes): mean return" in proc.stdout, proc.stdout
    assert "lookahead planner: 4 episodes (4 unfinished episodes): mean return" in proc.stdout
    assert "1,152 simulated world-steps" in proc.stdout  # 12 steps x 4 worlds x 4 sequences x 6 steps
    assert "real steps equal to the planned ones: True" in proc.stdout
