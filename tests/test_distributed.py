"""Training on torch.distributed (issue 17): two local ranks on gloo, tiny sizes, each test a few
seconds. The ranks are started as torchrun starts them (its environment variables), by torchrun
itself for the CLI test and directly elsewhere, so that a test can kill or stop one of them.
Nothing here times anything: the timeouts only keep a broken test from hanging."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the trainer needs torch")
if not torch.distributed.is_available():
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

import escape_room_env as er
from escape_room_env.distributed import Ranks

#: 8 agents (4 worlds a rank), 4 updates of 64 steps: every world ends an episode (200 steps).
TINY = ["--num-envs", "8", "--num-steps", "64", "--total-timesteps", "2048", "--hidden", "16"]
TINY += ["--num-threads", "1"]
QUIET = ["--no-progress-bar", "--log-every", "0"]
#: A run that lasts until a test ends it (max-minutes only keeps a failing test from running on).
LONG = ["--num-envs", "8", "--num-steps", "16", "--total-timesteps", "100000000", "--hidden", "16"]
LONG += ["--num-threads", "1", "--max-minutes", "2"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_environment(rank: int, world_size: int, port: int) -> dict[str, str]:
    """What torchrun gives rank ``rank`` of one node (one torch thread each: 2 cores here)."""
    ranks = {"RANK": rank, "WORLD_SIZE": world_size, "LOCAL_RANK": rank, "LOCAL_WORLD_SIZE": world_size}
    env = {**os.environ, **{k: str(v) for k, v in ranks.items()}, "OMP_NUM_THREADS": "1"}
    return {**env, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}


def start(cwd: Path, args: list[str], ranks=(0, 1), world_size: int = 2) -> list[subprocess.Popen]:
    """``python <args>`` as the given ranks of a run of ``world_size``."""
    port = free_port()
    return [
        subprocess.Popen(
            [sys.executable, *args],
            cwd=cwd,
            env=rank_environment(rank, world_size, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in ranks
    ]


def finish(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int, str, str]]:
    """(exit status, stdout, stderr) of each process; kills them all if one outlives ``timeout``."""
    deadline, results = time.monotonic() + timeout, []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            results.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return results


def error_line(stderr: str) -> str:
    """The CLI's one-line error, the last line of stderr (torch's own log lines may come first)."""
    return stderr.strip().splitlines()[-1] if stderr.strip() else ""


def train(cwd: Path, *flags: str, **start_options) -> list[subprocess.Popen]:
    return start(cwd, ["-m", "escape_room_env", "train", *flags], **start_options)


def wait_for_updates(progress_csv: Path, updates: int, procs: list[subprocess.Popen], timeout: float = 120):
    """Waits until rank 0 has written ``updates`` rows of progress.csv (every rank is then past
    the rendezvous and inside the training loop)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if progress_csv.exists() and len(progress_csv.read_text().splitlines()) > updates:
            return
        if any(p.poll() is not None for p in procs):
            raise AssertionError(f"a rank ended early: {finish(procs, 10)}")
        time.sleep(0.05)
    raise AssertionError(f"no {updates} updates within {timeout} s")


def replayed_episodes(path: Path) -> tuple[int, int, int]:
    """(seed, world-steps, finished episodes) of a recording, replayed (every hash verified)."""
    meta = er.SimManager.read_replay_metadata(str(path))
    sim = er.SimManager.from_replay(str(path))
    done, episodes, steps = sim.done_tensor().to_numpy(), 0, 0
    finished = meta["num_steps"] == 0
    while not finished:
        finished = sim.replay_step()
        steps += 1
        episodes += int(done.sum())
    sim.close()
    return meta["seed"], steps * meta["num_worlds"], episodes


# -- the command line under torchrun -------------------------------------------------------------


def test_torchrun_runs_the_cli_unchanged_and_rank_0_alone_reports_and_saves(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "escape_room_env", "train", *TINY, "--no-progress-bar", "--log-every", "1"]
    cmd += ["--save-dir", "runs", "--run-name", "two"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("done: 2,048 steps") == 1  # one report, from rank 0
    assert proc.stdout.count("step       2,048  sps") == 1
    assert os.listdir(tmp_path / "runs") == ["two"]
    run = tmp_path / "runs" / "two"
    assert sorted(os.listdir(run)) == ["args.json", "policy.pt", "progress.csv", "summary.json"]
    assert json.loads((run / "args.json").read_text())["world_size"] == 2
    rows = (run / "progress.csv").read_text().splitlines()
    assert [int(row.split(",")[0]) for row in rows[1:]] == [512, 1024, 1536, 2048]  # global steps
    assert json.loads((run / "summary.json").read_text())["global_step"] == 2048


def test_args_json_of_a_run_without_torchrun_records_world_size_1(tmp_path):
    from escape_room_env.ppo import Args
    from escape_room_env.ppo import train as train_here

    args = Args(num_envs=4, num_steps=4, total_timesteps=16, hidden=8, progress_bar=False, log_every=0)
    result = train_here(dataclasses.replace(args, save_dir=str(tmp_path), run_name="one"))
    assert (result.rank, result.world_size) == (0, 1)
    assert json.loads((tmp_path / "one" / "args.json").read_text())["world_size"] == 1
    assert not torch.distributed.is_initialized()  # no process group without torchrun


# -- what the ranks add up to --------------------------------------------------------------------


def test_global_step_and_episode_counts_are_the_sums_over_the_ranks_and_each_recording_replays(tmp_path):
    flags = [*TINY, *QUIET, "--seed", "7", "--save-dir", "runs", "--run-name", "r", "--record", "run.bin"]
    results = finish(train(tmp_path, *flags), timeout=180)
    assert all(rc == 0 for rc, _, _ in results), results
    assert [out.count("done:") for _, out, _ in results] == [1, 0]  # rank 0 alone reports
    summary = json.loads((tmp_path / "runs" / "r" / "summary.json").read_text())
    per_rank = [replayed_episodes(tmp_path / f"run.rank{rank}.bin") for rank in (0, 1)]
    assert not (tmp_path / "run.bin").exists()
    # World w of the run has seed 7 + w: rank 1's 4 worlds continue after rank 0's.
    assert [seed for seed, _, _ in per_rank] == [7, 7 + 4]
    assert summary["global_step"] == sum(steps for _, steps, _ in per_rank) == 2048
    assert summary["episodes"] == sum(episodes for _, _, episodes in per_rank)
    assert all(episodes >= 4 for _, _, episodes in per_rank)  # every world ended an episode


def test_the_time_budget_stops_every_rank_after_the_same_update(tmp_path):
    flags = [*LONG[:-2], "--max-minutes", "0.002", *QUIET, "--save-dir", "runs", "--run-name", "t"]
    results = finish(train(tmp_path, *flags), timeout=120)
    assert all(rc == 0 for rc, _, _ in results), results  # a rank left waiting would fail
    assert [out.count("stopping after") for _, out, _ in results] == [1, 0]
    run = tmp_path / "runs" / "t"
    updates = len((run / "progress.csv").read_text().splitlines()) - 1
    assert json.loads((run / "summary.json").read_text())["global_step"] == 8 * 16 * updates


# -- identical parameters on every rank ----------------------------------------------------------

#: A rank that trains through the Python API and writes, after every optimiser step, a checksum of
#: its parameters, and before every gradient average one of its own gradients.
WORKER = """
import hashlib, json
from torch.optim.optimizer import register_optimizer_step_post_hook
from escape_room_env.distributed import Ranks
from escape_room_env.ppo import Args, train

def digest(tensors):
    return hashlib.sha256(b"".join(t.detach().contiguous().numpy().tobytes() for t in tensors)).hexdigest()

params, grads = [], []
register_optimizer_step_post_hook(
    lambda opt, *_: params.append(digest(p for g in opt.param_groups for p in g["params"])))
average = Ranks.average_gradients
def local_then_average(self, parameters):
    parameters = list(parameters)
    grads.append(digest(p.grad for p in parameters))
    average(self, parameters)
Ranks.average_gradients = local_then_average
result = train(Args(num_envs=8, num_steps=16, total_timesteps=8 * 16 * 3, hidden=16, num_threads=1,
                    num_minibatches=2, update_epochs=2, progress_bar=False, log_every=0, save_dir=None))
final = digest(result.agent.state_dict().values())
with open(f"checksums{result.rank}.json", "w") as f:
    json.dump({"params": params, "grads": grads, "final": final}, f)
"""


def checksum_run(where: Path) -> list[dict]:
    where.mkdir()
    (where / "worker.py").write_text(WORKER)
    results = finish(start(where, ["worker.py"]), timeout=180)
    assert all(rc == 0 for rc, _, _ in results), results
    return [json.loads((where / f"checksums{rank}.json").read_text()) for rank in (0, 1)]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> list[list[dict]]:
    """Two identical 2-rank runs, each rank's checksums."""
    return [checksum_run(tmp_path_factory.mktemp("runs") / name) for name in ("first", "second")]


def test_every_rank_holds_the_same_parameters_after_every_update(two_runs):
    rank0, rank1 = two_runs[0]
    steps = 3 * 2 * 2  # updates x epochs x minibatches
    assert len(rank0["params"]) == len(rank1["params"]) == steps
    assert rank0["params"] == rank1["params"]
    assert len(set(rank0["params"])) == steps  # every step changed them
    # ...although each rank computed other gradients from its own worlds before the average.
    assert all(g0 != g1 for g0, g1 in zip(rank0["grads"], rank1["grads"]))
    assert rank0["final"] == rank1["final"]


def test_two_identical_two_rank_runs_give_identical_final_parameters(two_runs):
    first, second = two_runs
    assert [r["final"] for r in first] == [r["final"] for r in second]
    assert first[0]["params"] == second[0]["params"]


# -- failures end in an error, never a hang ------------------------------------------------------


@pytest.mark.parametrize("killed", [1, 0])
def test_a_killed_rank_makes_the_other_exit_non_zero_within_the_timeout(tmp_path, killed):
    timeout = 30
    procs = train(
        tmp_path, *LONG, *QUIET, "--save-dir", "runs", "--run-name", "k", "--dist-timeout", str(timeout)
    )
    wait_for_updates(tmp_path / "runs" / "k" / "progress.csv", 2, procs)
    procs[killed].kill()
    survivor = 1 - killed
    ((rc, _, err),) = finish([procs[survivor]], timeout=timeout + 15)
    procs[killed].wait()
    assert rc == 1, err[-2000:]
    line = error_line(err)
    assert line.startswith(f"escape-room: error: DistributedError: rank {survivor} of 2: "), err[-2000:]
    assert "failed: another rank died or did not answer within --dist-timeout 30 s" in line
    assert "Traceback" not in err


def test_a_stalled_rank_makes_the_other_fail_at_the_timeout(tmp_path):
    procs = train(tmp_path, *LONG, *QUIET, "--save-dir", "runs", "--run-name", "s", "--dist-timeout", "5")
    try:
        wait_for_updates(tmp_path / "runs" / "s" / "progress.csv", 2, procs)
        procs[1].send_signal(signal.SIGSTOP)
        ((rc, _, err),) = finish([procs[0]], timeout=60)
    finally:
        procs[1].kill()
        procs[1].communicate()
    assert rc == 1, err[-2000:]
    line = error_line(err)
    assert line.startswith("escape-room: error: DistributedError: rank 0 of 2: "), err[-2000:]
    assert "did not answer within --dist-timeout 5 s" in line


@pytest.mark.parametrize("alone", [0, 1])
def test_a_rendezvous_that_never_completes_is_an_error_not_a_hang(tmp_path, alone):
    procs = train(tmp_path, *TINY, *QUIET, "--save-dir", "", "--dist-timeout", "3", ranks=(alone,))
    ((rc, _, err),) = finish(procs, timeout=90)
    assert rc == 1, err[-2000:]
    line = error_line(err)
    assert line.startswith(
        f"escape-room: error: DistributedError: rank {alone} of 2: the rendezvous at 127.0.0.1:"
    )
    assert "did not complete within --dist-timeout 3 s (did every rank start?)" in line


def test_num_envs_that_do_not_split_into_whole_worlds_are_refused_before_the_rendezvous(tmp_path):
    flags = ["--num-envs", "6", "--num-agents", "2", "--save-dir", "", "--dist-timeout", "300"]
    ((rc, _, err),) = finish(train(tmp_path, *flags, ranks=(0,)), timeout=90)
    message = "num_envs=6 must split into whole worlds among 2 ranks: a multiple of 2 x num_agents=2"
    assert (rc, err) == (2, f"escape-room: error: {message}\n")


# -- the ranks' environment ------------------------------------------------------------------------


def test_ranks_come_from_torchruns_variables_and_malformed_ones_are_refused():
    assert Ranks.from_environment({"WORLD_SIZE": "1", "RANK": "0"}).distributed is False
    ranks = Ranks.from_environment(
        {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}
    )
    assert (ranks.rank, ranks.world_size, ranks.local_rank, ranks.local_world_size) == (5, 8, 1, 4)
    assert ranks.file_name("a/b.bin") == "a/b.rank5.bin" and ranks.simulator_threads(3) == 3
    cases = {
        "WORLD_SIZE=2 but RANK is not set": {"WORLD_SIZE": "2"},
        "RANK must be in [0, WORLD_SIZE=2), got 2": {"WORLD_SIZE": "2", "RANK": "2"},
        "the environment variable RANK must be an integer, got 'x'": {"WORLD_SIZE": "2", "RANK": "x"},
        "LOCAL_RANK must be in [0, LOCAL_WORLD_SIZE=1), got 1": {
            "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "1",
        },
    }  # fmt: skip
    for message, env in cases.items():
        with pytest.raises(
            ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
        ):
            Ranks.from_environment(env)


@pytest.mark.skipif(not er.cuda_available(), reason="needs a CUDA GPU")
def test_two_ranks_sharing_one_gpu_train_with_identical_parameters(tmp_path):
    flags = [
        *TINY,
        *QUIET,
        "--device",
        "cuda:0",
        "--save-dir",
        "runs",
        "--run-name",
        "g",
        "--record",
        "g.bin",
    ]
    results = finish(train(tmp_path, *flags), timeout=240)
    assert all(rc == 0 for rc, _, _ in results), results
    assert json.loads((tmp_path / "runs" / "g" / "summary.json").read_text())["global_step"] == 2048
    assert [replayed_episodes(tmp_path / f"g.rank{rank}.bin")[0] for rank in (0, 1)] == [1, 5]


def test_without_a_gpu_for_each_rank_cuda_is_refused_naming_the_way_out():
    ranks = Ranks(rank=1, world_size=2, local_rank=1, local_world_size=2)
    if torch.cuda.is_available() and torch.cuda.device_count() >= 2:
        assert ranks.device(torch.device("cuda")) == torch.device("cuda", 1)
        return
    with pytest.raises(
        ValueError, match=r"start at most one rank per GPU .* or pass --device cuda:0 to share one"
    ):
        ranks.device(torch.device("cuda"))
    assert ranks.device(torch.device("cuda", 0)) == torch.device("cuda", 0)  # shared, as asked


def test_the_slurm_example_passes_only_flags_that_torchrun_and_the_trainer_have(tmp_path):
    script = Path(__file__).resolve().parent.parent / "examples" / "slurm_train.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    launcher, trainer = script.read_text().rsplit("torchrun", 1)[1].split("-m escape_room_env train")
    helps = [
        subprocess.run(
            # From tmp_path: run from the repository, ``-m escape_room_env`` would import the source tree.
            [sys.executable, *cmd, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True
        ).stdout
        for cmd in (["-m", "torch.distributed.run"], ["-m", "escape_room_env", "train"])
    ]
    for flags, text in zip((launcher, trainer), helps):
        found = re.findall(r"(--[a-z_-]+)[= ]", flags)
        assert found and all(flag in text for flag in found), (found, text)
