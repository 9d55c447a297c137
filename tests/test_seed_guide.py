"""The seed guide's snippets, run as written (issue 15, seed-000 conformance).

`../shared/seeds/000_*` is the Madrona Escape Room "Python Bindings Guide"; the snippets below are
its text, copied verbatim (trailing blanks dropped), each quoted with its section. The only change
is the package name: `madrona_escape_room` becomes `escape_room_env` (:func:`as_written`). Names
a snippet takes from the guide's earlier ones (`sim`, `SimManager`, `madrona`, `ExecMode`,
`torch`) are given to it as the guide's imports would; files go to a temporary directory.
The one snippet that asks for CUDA runs as written where a GPU is usable, and on ExecMode.CPU
(its own comment's other choice) elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import escape_room_env as er
from escape_room_env import ExecMode, SimManager, madrona

# -- the guide's text -------------------------------------------------------------------------

# "API Reference > SimManager Class"
CREATE = """
import madrona_escape_room
from madrona_escape_room import SimManager

# Create manager
sim = SimManager(
    exec_mode=madrona_escape_room.madrona.ExecMode.CPU,  # or CUDA
    gpu_id=0,                    # GPU device ID (ignored for CPU mode)
    num_worlds=1024,             # Number of parallel simulation worlds
    rand_seed=42,                # Random seed
    auto_reset=True,             # Automatically reset episodes when done
    enable_batch_renderer=False  # Enable rendering (CPU mode only)
)
"""

# "API Reference > Core Methods > Simulation Control"
STEP = """
sim.step()                       # Advance simulation by one timestep
"""

# "Context Managers > Recording Context Manager"
RECORDING = """
# Record actions to a file
with sim.recording("demo.bin", seed=42):
    for step in range(1000):
        # Set actions
        actions = sim.action_tensor().to_torch()
        actions.fill_(0)  # Example: set all actions to zero

        # Step simulation
        sim.step()

# File "demo.bin" now contains recorded actions and seed
# Replay with viewer (automatically uses correct parameters):
# ./build/viewer --replay demo.bin
"""

# "Context Managers > Recording Context Manager > Understanding Seeds in Recording"
SEEDS = """
# The seed parameter determines the simulation's randomness
with sim.recording("demo.bin", seed=12345):
    # This recording will be deterministic with seed 12345
    for step in range(1000):
        sim.step()

# Different seeds create different recordings
with sim.recording("demo_different.bin", seed=67890):
    # This creates a completely different simulation sequence
    for step in range(1000):
        sim.step()

# If you omit the seed, a default is used (may not be deterministic)
with sim.recording("demo_default.bin"):  # Uses seed=0 by default
    for step in range(1000):
        sim.step()
"""

# "Context Managers > Recording Context Manager > Foolproof Replay with Factory Method"
FROM_REPLAY = """
# Only specify what you care about - everything else comes from replay file
sim = SimManager.from_replay(
    "demo.bin",                         # Path to replay file
    exec_mode=madrona.ExecMode.CUDA,    # Your choice: CPU or CUDA
    gpu_id=0,                           # Your choice: which GPU
    enable_batch_renderer=False         # Your choice: rendering on/off
)

# Manager is perfectly configured and ready to replay
print(f"Loaded replay with {sim._num_worlds} worlds")  # Automatically set
current, total = sim.get_replay_step_count()
print(f"Replay has {total} steps")

# Step through replay - guaranteed to work correctly
for step in range(total):
    finished = sim.replay_step()
    if finished:
        break

    # Access any tensors normally
    obs = sim.self_observation_tensor().to_torch()
    actions = sim.action_tensor().to_torch()
    rewards = sim.reward_tensor().to_torch()
"""

# "Context Managers > Trajectory Logging Context Manager"
TRAJECTORY = """
# Log trajectory to file
with sim.trajectory_logging(world_idx=0, agent_idx=0, filename="trajectory.txt"):
    for step in range(100):
        sim.step()

# File "trajectory.txt" now contains position data
# Or log to stdout by omitting filename:
with sim.trajectory_logging(world_idx=0, agent_idx=0):
    for step in range(100):
        sim.step()
"""

# "Context Managers > Debug Session Context Manager"
DEBUG_SESSION = """
# Complete debug session
with sim.debug_session("debug_run", enable_recording=True, enable_tracing=True, seed=42):
    for step in range(500):
        # Your simulation code here
        sim.step()

# Creates:
# - debug_run.bin (action recording)
# - debug_run_trajectory.txt (position log)
"""

# "Context Managers > Manual Context Management"
MANUAL_CONTEXT = """
# Start recording
sim.start_recording("demo.bin", seed=42)

# Check if recording
if sim.is_recording():
    print("Recording active")

# Stop recording
sim.stop_recording()

# Trajectory logging
sim.enable_trajectory_logging(world_idx=0, agent_idx=0, filename="positions.txt")
sim.disable_trajectory_logging()
"""

# "Advanced Usage > Replay Functionality" (from_replay, then the manual-metadata alternative)
REPLAY_FUNCTIONALITY = """
# RECOMMENDED: Create manager automatically configured from replay file
sim = mer.SimManager.from_replay(
    "demo.bin",                           # Replay file path
    exec_mode=mer.madrona.ExecMode.CPU,   # Your execution preference
    gpu_id=0                              # Your GPU preference
)
# Manager is automatically configured with correct num_worlds, seed, auto_reset

# Alternative: Read metadata first, then create manually
metadata = mer.SimManager.read_replay_metadata("demo.bin")
print(f"Replay has {metadata['num_worlds']} worlds, seed {metadata['seed']}")

sim = mer.SimManager(
    exec_mode=mer.madrona.ExecMode.CPU,
    gpu_id=0,
    num_worlds=metadata['num_worlds'],    # From replay file
    rand_seed=metadata['seed'],           # From replay file
    auto_reset=True                       # Always true for replay
)
sim.load_replay("demo.bin")  # Will warn about using factory method instead

# Check if replay is loaded
if sim.has_replay():
    # Get step information
    current, total = sim.get_replay_step_count()
    print(f"Replay: step {current}/{total}")

    # Step through replay
    while True:
        finished = sim.replay_step()
        if finished:
            break

        # Access simulation state during replay
        observations = sim.self_observation_tensor().to_torch()
        # ... process observations ...
"""

# "Troubleshooting > Replay Issues" (four snippets)
FOOLPROOF = """
# FOOLPROOF - automatically configures everything correctly
sim = SimManager.from_replay("demo.bin", exec_mode=ExecMode.CPU)
"""
CONFIGURATION_MISMATCH = """
# Read metadata first to get correct configuration
metadata = SimManager.read_replay_metadata("demo.bin")
sim = SimManager(
    exec_mode=ExecMode.CPU,
    num_worlds=metadata['num_worlds'],    # Must match
    rand_seed=metadata['seed'],           # Must match
    auto_reset=True,                      # Always true for replay
)
sim.load_replay("demo.bin")  # Will still warn to use factory method
"""
FILE_CORRUPTION = """
# Check metadata first
try:
    metadata = SimManager.read_replay_metadata("demo.bin")
    print(f"Valid replay: {metadata['num_worlds']} worlds")
except Exception as e:
    print(f"Corrupt replay file: {e}")
"""
DETERMINISM = """
# Test replay determinism
sim1 = SimManager.from_replay("demo.bin", ExecMode.CPU)
sim1.replay_step()
obs1 = sim1.self_observation_tensor().to_torch().clone()

sim2 = SimManager.from_replay("demo.bin", ExecMode.CPU)
sim2.replay_step()
obs2 = sim2.self_observation_tensor().to_torch()

assert torch.equal(obs1, obs2), "Replay not deterministic!"
"""

WORLDS = 16  # the manager the context-manager snippets are given (the guide leaves its size open)


def as_written(snippet: str, **names) -> dict:
    """Runs a snippet of the guide with the package name changed, in a namespace holding the
    names the guide's earlier snippets define; returns the namespace."""
    code = snippet.replace("madrona_escape_room", "escape_room_env")
    namespace = {"__name__": "guide", "torch": torch, "mer": er, "SimManager": SimManager, **names}
    namespace.setdefault("madrona", madrona)
    namespace.setdefault("ExecMode", ExecMode)
    exec(compile(code, "<seed guide>", "exec"), namespace)  # noqa: S102 (the guide's own text)
    return namespace


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fresh_hashes(seed: int, steps: int) -> np.ndarray:
    """A new manager of the guide's kind with rand_seed ``seed``, after ``steps`` zero-action steps."""
    sim = SimManager(num_worlds=WORLDS, rand_seed=seed, num_threads=1)
    sim.step(nstep=steps)
    return sim.state_hashes()


def recorded_demo(seed_of_the_manager: int = 7) -> SimManager:
    """Runs "Recording Context Manager" on a manager of another construction seed; returns it."""
    sim = SimManager(num_worlds=WORLDS, rand_seed=seed_of_the_manager, num_threads=1)
    as_written(RECORDING, sim=sim)
    return sim


# -- the tests ----------------------------------------------------------------------------------


def test_api_reference_creates_the_manager_as_written():  # "API Reference > SimManager Class"
    ns = as_written(CREATE)
    sim = ns["sim"]
    assert (sim.num_worlds, sim._num_worlds, sim.rand_seed) == (1024, 1024, 42)
    assert sim.exec_mode is er.ExecMode.CPU and sim.autoreset_mode is er.AutoresetMode.SAME_STEP
    assert not sim.batch_renderer_enabled
    as_written(STEP, sim=sim)  # "Core Methods > Simulation Control"
    assert sim.steps_remaining_tensor().to_numpy()[:, 0, 0].tolist() == [199] * 1024


def test_recording_context_manager_records_its_seed(in_tmp):  # "Recording Context Manager"
    sim = recorded_demo()
    meta = SimManager.read_replay_metadata("demo.bin")
    assert (meta["seed"], meta["num_worlds"], meta["num_steps"], meta.complete) == (42, WORLDS, 1000, True)
    assert list(meta.world_seeds) == [42 + w for w in range(WORLDS)]
    # "The same random levels are generated during replay": a fresh rand_seed=42 run is this file.
    assert sim.state_hashes().tolist() == fresh_hashes(42, 1000).tolist()
    replay = SimManager.from_replay("demo.bin", num_threads=1)
    while not replay.replay_step():
        pass
    assert replay.state_hashes().tolist() == sim.state_hashes().tolist()


def test_understanding_seeds_records_each_seed_and_zero_by_default(in_tmp):
    # "Recording Context Manager > Understanding Seeds in Recording"
    sim = SimManager(num_worlds=WORLDS, rand_seed=7, num_threads=1)
    as_written(SEEDS, sim=sim)
    seeds = {
        name: SimManager.read_replay_metadata(name)["seed"] for name in ("demo.bin", "demo_different.bin")
    }
    assert seeds == {"demo.bin": 12345, "demo_different.bin": 67890}
    default = SimManager.read_replay_metadata("demo_default.bin")
    assert default["seed"] == 0 and list(default.world_seeds) == list(
        range(WORLDS)
    )  # "Uses seed=0 by default"
    assert sim.state_hashes().tolist() == fresh_hashes(0, 1000).tolist()  # and the run is seed 0's
    finals = {}
    for name in ("demo.bin", "demo_different.bin", "demo_default.bin"):
        replay = SimManager.from_replay(name, num_threads=1)
        while not replay.replay_step():
            pass
        finals[name] = replay.state_hashes().tolist()
    assert finals["demo.bin"] == fresh_hashes(12345, 1000).tolist()
    assert finals["demo.bin"] != finals["demo_different.bin"]  # "a completely different simulation sequence"
    assert finals["demo_default.bin"] == sim.state_hashes().tolist()


def test_recording_without_a_seed_continues_episodes_only_when_asked(in_tmp):
    sim = SimManager(num_worlds=WORLDS, rand_seed=9, num_threads=1)
    with sim.recording("kept.bin", continue_episodes=True):  # the old behaviour, by name
        sim.step(nstep=10)
    assert SimManager.read_replay_metadata("kept.bin")["seed"] == 9
    assert sim.state_hashes().tolist() == fresh_hashes(9, 10).tolist()  # not reseeded
    with pytest.raises(ValueError, match="pass seed= or continue_episodes=True, not both"):
        sim.start_recording("both.bin", 5, continue_episodes=True)
    assert not sim.is_recording()


def test_foolproof_replay_with_factory_method(in_tmp, capsys):
    # "Recording Context Manager > Foolproof Replay with Factory Method"
    recorder = recorded_demo()
    capsys.readouterr()
    snippet = FROM_REPLAY if er.cuda_available() else FROM_REPLAY.replace("ExecMode.CUDA", "ExecMode.CPU")
    sim = as_written(snippet)["sim"]
    assert capsys.readouterr().out == f"Loaded replay with {WORLDS} worlds\nReplay has 1000 steps\n"
    assert sim.get_replay_step_count() == (1000, 1000)
    assert sim.get_replay_checkpoints_verified() == 21  # step 0, then every 50 steps to 1000 (the end)
    assert sim.state_hashes().tolist() == recorder.state_hashes().tolist()
    np.testing.assert_array_equal(
        sim.self_observation_tensor().to_numpy(), recorder.self_observation_tensor().to_numpy()
    )


@pytest.mark.skipif(er.cuda_available(), reason="a GPU is usable here: the snippet runs as written above")
def test_foolproof_replay_as_written_without_a_gpu_says_why(in_tmp):
    recorded_demo()
    with pytest.raises(er.CudaUnavailableError, match=r"ExecMode.CUDA needs an NVIDIA GPU.*use ExecMode.CPU"):
        as_written(FROM_REPLAY)


def test_replay_functionality_with_metadata_read_first(in_tmp, capsys):
    # "Advanced Usage > Replay Functionality": from_replay, then the manual-metadata alternative
    recorder = recorded_demo()
    capsys.readouterr()
    with pytest.warns(DeprecationWarning, match=r"load_replay\(\) is deprecated; use SimManager.from_replay"):
        sim = as_written(REPLAY_FUNCTIONALITY)["sim"]
    assert capsys.readouterr().out == f"Replay has {WORLDS} worlds, seed 42\nReplay: step 0/1000\n"
    assert sim.rand_seed == 42 and sim.get_replay_step_count() == (1000, 1000)
    assert sim.state_hashes().tolist() == recorder.state_hashes().tolist()


def test_troubleshooting_replay_snippets(in_tmp, capsys):  # "Troubleshooting > Replay Issues"
    recorded_demo()
    capsys.readouterr()
    assert as_written(FOOLPROOF)["sim"].get_replay_step_count() == (0, 1000)
    with pytest.warns(DeprecationWarning, match="load_replay"):
        sim = as_written(CONFIGURATION_MISMATCH)["sim"]
    assert (sim.num_worlds, sim.rand_seed, sim.get_replay_step_count()) == (WORLDS, 42, (0, 1000))
    as_written(FILE_CORRUPTION)
    assert capsys.readouterr().out == f"Valid replay: {WORLDS} worlds\n"
    as_written(DETERMINISM)  # asserts itself
    (in_tmp / "demo.bin").write_bytes(b"not a replay")
    as_written(FILE_CORRUPTION)
    assert capsys.readouterr().out.startswith("Corrupt replay file: ")


def test_manual_context_management(in_tmp, capsys):  # "Context Managers > Manual Context Management"
    sim = SimManager(num_worlds=WORLDS, num_threads=1)
    as_written(MANUAL_CONTEXT, sim=sim)
    assert capsys.readouterr().out == "Recording active\n"
    meta = SimManager.read_replay_metadata("demo.bin")
    assert (meta["seed"], meta["num_steps"], sim.is_recording()) == (42, 0, False)
    assert (in_tmp / "positions.txt").read_text() == ""


def test_trajectory_logging_and_debug_session(in_tmp, capfd):
    # "Context Managers > Trajectory Logging Context Manager" and "> Debug Session Context Manager"
    sim = SimManager(num_worlds=WORLDS, num_threads=1)
    as_written(TRAJECTORY, sim=sim)
    to_file = (in_tmp / "trajectory.txt").read_text().splitlines()
    to_stdout = [line for line in capfd.readouterr().out.splitlines() if line.startswith("step=")]
    assert len(to_file) == len(to_stdout) == 100
    assert to_file[0].startswith("step=1 world=0 agent=0 x=") and to_stdout[-1].startswith("step=200 world=0")
    as_written(DEBUG_SESSION, sim=sim)
    meta = SimManager.read_replay_metadata("debug_run.bin")
    assert (meta["seed"], meta["num_steps"]) == (42, 500)
    assert len((in_tmp / "debug_run_trajectory.txt").read_text().splitlines()) == 500
