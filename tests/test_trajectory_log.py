"""Trajectory logging and debug sessions (SPEC §5.2): one line per step, in world units.

    step=12 world=0 agent=0 x=1.234 y=5.678 yaw_deg=12.50 progress=5.678 reward=0.0123 done=0 action=3,0,2

Every line is checked twice: against the regular expression of that format, and field by
field against the values read from the simulator right after the step.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import escape_room_env as er

LINE = re.compile(
    r"step=(?P<step>[1-9]\d*) world=(?P<world>\d+) agent=(?P<agent>\d+) "
    r"x=(?P<x>-?\d+\.\d{3}) y=(?P<y>-?\d+\.\d{3}) yaw_deg=(?P<yaw>-?\d+\.\d{2}) "
    r"progress=(?P<progress>-?\d+\.\d{3}) reward=(?P<reward>-?\d+\.\d{4}) done=(?P<done>[01]) "
    r"action=(?P<action>[0-3],[0-7],[0-4])"
)
ACTION_MAX = np.array([n - 1 for n in er.action.NUM_CHOICES])


def expected_line(sim: er.SimManager, world: int, agent: int, action) -> str:
    """The line for the step just taken, from the simulator's state and tensors."""
    x, y = (float(v) for v in sim._state("agent_pos")[world, agent])
    yaw_deg = math.degrees(float(sim._state("agent_yaw")[world, agent]))
    progress = float(sim.progress_tensor().to_numpy()[world, agent, 0])
    reward = float(sim.reward_tensor().to_numpy()[world, agent, 0])
    done = int(sim.done_tensor().to_numpy()[world, agent, 0])
    a = np.clip(action, 0, ACTION_MAX)
    return (
        f"step={sim.step_count} world={world} agent={agent} x={x:.3f} y={y:.3f} yaw_deg={yaw_deg:.2f} "
        f"progress={progress:.3f} reward={reward:.4f} done={done} action={a[0]},{a[1]},{a[2]}"
    )


def run_logged(sim: er.SimManager, world: int, agent: int, steps: int, seed: int) -> list[str]:
    """Steps with wild random actions (out-of-range too); returns the expected lines."""
    rng = np.random.default_rng(seed)
    actions = sim.action_tensor().to_numpy()
    lines = []
    for _ in range(steps):
        actions[:] = rng.integers(-3, 12, size=actions.shape)
        if sim.autoreset_mode is er.AutoresetMode.DISABLED:
            sim.reset_tensor().to_numpy()[:] = sim.done_tensor().to_numpy()[:, 0, 0] * (rng.random() < 0.5)
        sim.step()
        lines.append(expected_line(sim, world, agent, actions[world, agent].copy()))
    return lines


def check_lines(got: list[str], want: list[str]) -> None:
    assert len(got) == len(want)
    for i, (line, expected) in enumerate(zip(got, want)):
        assert LINE.fullmatch(line), f"line {i + 1} does not match the format: {line!r}"
        assert line == expected, f"line {i + 1}"


@pytest.mark.parametrize("mode", ["same_step", "next_step", "disabled"])
def test_lines_to_a_file_match_the_format_and_the_tensors(tmp_path, mode):
    path = tmp_path / "trajectory.txt"
    sim = er.SimManager(num_worlds=4, num_agents=3, rand_seed=2, autoreset_mode=mode, episode_len=12)
    sim.step(nstep=5)  # `step` counts from construction, not from enable
    sim.enable_trajectory_logging(2, 1, path)
    want = run_logged(sim, 2, 1, 60, seed=0)
    sim.disable_trajectory_logging()
    sim.close()
    got = path.read_text().splitlines()
    check_lines(got, want)
    assert got[0].startswith("step=6 world=2 agent=1 ")
    assert [int(LINE.fullmatch(line)["step"]) for line in got] == list(range(6, 66))
    dones = [LINE.fullmatch(line)["done"] for line in got]
    assert "1" in dones and "0" in dones  # the done step shows up
    actions = {LINE.fullmatch(line)["action"] for line in got}
    assert "3,7,4" in actions and any(a.startswith("0,") for a in actions)  # clamped at both ends


def test_lines_to_stdout_when_no_filename_is_given(capfd):
    sim = er.SimManager(num_worlds=2, num_agents=2, rand_seed=9, episode_len=8)
    capfd.readouterr()
    print("before", flush=True)
    with sim.trajectory_logging(1, 0):
        want = run_logged(sim, 1, 0, 20, seed=1)
    sim.step(nstep=3)  # after the context: no more lines
    print("after", flush=True)
    out = capfd.readouterr().out.splitlines()
    assert out[0] == "before" and out[-1] == "after"
    check_lines(out[1:-1], want)
    sim.close()


@pytest.mark.parametrize("k", [1, 5, 37])
def test_step_nstep_writes_k_lines_equal_to_k_single_steps(tmp_path, k):
    kwargs = {"num_worlds": 3, "rand_seed": 4, "episode_len": 10}
    actions = np.array([[[3, 0, 1]], [[9, -2, 7]], [[2, 5, 0]]], dtype=np.int32)
    with er.SimManager(**kwargs) as sim, sim.trajectory_logging(1, 0, tmp_path / "nstep.txt"):
        sim.action_tensor().to_numpy()[:] = actions
        sim.step(nstep=k)
        last = expected_line(sim, 1, 0, actions[1, 0])
    with er.SimManager(**kwargs) as sim, sim.trajectory_logging(1, 0, tmp_path / "single.txt"):
        sim.action_tensor().to_numpy()[:] = actions
        for _ in range(k):
            sim.step()
    got = (tmp_path / "nstep.txt").read_text().splitlines()
    assert len(got) == k
    assert got == (tmp_path / "single.txt").read_text().splitlines()
    assert [int(LINE.fullmatch(line)["step"]) for line in got] == list(range(1, k + 1))
    assert got[-1] == last
    assert all(line.endswith(" action=3,0,4") for line in got)


def test_disable_stops_the_lines_and_reenabling_starts_a_new_file(tmp_path):
    sim = er.SimManager(num_worlds=2, rand_seed=0)
    sim.enable_trajectory_logging(0, 0, tmp_path / "a.txt")
    sim.step(nstep=4)
    sim.disable_trajectory_logging()
    sim.step(nstep=3)
    sim.enable_trajectory_logging(1, 0, tmp_path / "b.txt")
    sim.step(nstep=2)
    sim.disable_trajectory_logging()
    a = (tmp_path / "a.txt").read_text().splitlines()
    b = (tmp_path / "b.txt").read_text().splitlines()
    assert [LINE.fullmatch(line)["step"] for line in a] == ["1", "2", "3", "4"]
    assert [LINE.fullmatch(line)["step"] for line in b] == ["8", "9"]
    assert all(" world=1 agent=0 " in line for line in b)
    sim.close()


def test_the_context_manager_disables_on_exit_even_after_an_error(tmp_path):
    sim = er.SimManager(num_worlds=1)
    with pytest.raises(KeyError), sim.trajectory_logging(0, 0, tmp_path / "t.txt"):
        sim.step()
        raise KeyError("x")
    sim.step(nstep=2)
    assert len((tmp_path / "t.txt").read_text().splitlines()) == 1
    sim.close()


@pytest.mark.parametrize(("world", "agent", "name"), [(3, 0, "world_idx"), (-1, 0, "world_idx"),
                                                      (0, 2, "agent_idx"), (0, -1, "agent_idx")])  # fmt: skip
def test_bad_world_or_agent_index_raises_value_error(tmp_path, world, agent, name):
    sim = er.SimManager(num_worlds=3, num_agents=2)
    with pytest.raises(ValueError, match=name):
        sim.enable_trajectory_logging(world, agent, tmp_path / "t.txt")
    sim.step()
    assert not (tmp_path / "t.txt").exists() or (tmp_path / "t.txt").read_text() == ""
    sim.close()


@pytest.mark.parametrize("where", ["missing_dir", "directory"])
def test_logging_to_an_unwritable_path_raises_escape_room_error(tmp_path, where):
    path = tmp_path / "no" / "such" / "t.txt" if where == "missing_dir" else tmp_path
    sim = er.SimManager(num_worlds=1)
    with pytest.raises(er.EscapeRoomError, match="trajectory"):
        sim.enable_trajectory_logging(0, 0, path)
    sim.step()  # still usable
    sim.close()


def test_debug_session_writes_a_replay_and_a_trajectory_with_the_seed_guides_names(tmp_path):
    base = tmp_path / "debug"
    sim = er.SimManager(num_worlds=3, num_agents=2, rand_seed=1, episode_len=15)
    with sim.debug_session(base, seed=5):
        assert sim.is_recording()
        want = run_logged(sim, 0, 0, 40, seed=2)
        hashes = sim.state_hashes().copy()
    assert not sim.is_recording()
    sim.step()  # logging stopped with the session
    sim.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["debug.bin", "debug_trajectory.txt"]
    check_lines((tmp_path / "debug_trajectory.txt").read_text().splitlines(), want)

    meta = er.SimManager.read_replay_metadata(tmp_path / "debug.bin")
    assert (meta.num_steps, meta.start, meta.world_seeds) == (40, "seed", (5, 6, 7))
    # The replay, logged the same way, writes the same lines.
    with er.SimManager.from_replay(tmp_path / "debug.bin") as replay:
        with replay.trajectory_logging(0, 0, tmp_path / "replayed.txt"):
            while not replay.replay_step():
                pass
        assert np.array_equal(replay.state_hashes(), hashes)
    assert (tmp_path / "replayed.txt").read_text() == (tmp_path / "debug_trajectory.txt").read_text()


@pytest.mark.parametrize(("recording", "tracing"), [(True, False), (False, True), (False, False)])
def test_debug_session_parts_can_be_switched_off(tmp_path, recording, tracing):
    base = tmp_path / "part"
    with er.SimManager(num_worlds=1) as sim, warnings.catch_warnings():
        warnings.simplefilter("error")
        with sim.debug_session(base, enable_recording=recording, enable_tracing=tracing):
            assert sim.is_recording() is recording
            sim.step(nstep=3)
    assert (tmp_path / "part.bin").exists() is recording
    assert (tmp_path / "part_trajectory.txt").exists() is tracing
    if tracing:
        assert len((tmp_path / "part_trajectory.txt").read_text().splitlines()) == 3
