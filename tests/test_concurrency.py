"""Threads (SPEC §4, §8): steps release the GIL, separate managers run in parallel with the same
results as one after the other, and a manager shared by threads without a lock either runs a
call or raises ``EscapeRoomError`` — it never corrupts its state.

"Never corrupts" is checked with the recorder: every call that runs is written to the file in
the order it ran (inside the manager's lock), so a replay of a file recorded while two threads
raced must reproduce the live manager bit for bit.

Every call that touches a manager's buffers takes its lock, trajectory-logging toggles and
``load_replay`` included (racing a step, those two once crashed the interpreter: a
use-after-free and a segfault). The sanitizer job (``.ci/sanitize``) runs this module too.
"""

from __future__ import annotations

import os
import re
import threading
import time
import warnings

import numpy as np
import pytest
from helpers import random_actions

import escape_room_env as er

BUSY = r"already running a call in another thread"
# ThreadSanitizer cannot follow a process that starts threads after a multi-threaded fork.
UNDER_TSAN = os.environ.get("ESCAPE_ROOM_SANITIZE") == "thread"


def run_threads(*targets, timeout: float = 120.0) -> None:
    """Runs the targets in threads started together; re-raises the first exception."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrap(fn):
        def run():
            try:
                barrier.wait()
                fn()
            except BaseException as e:  # noqa: BLE001 - re-raised below
                errors.append(e)

        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread hung"
    if errors:
        raise errors[0]


def scripted_run(cfg: dict, actions: list[np.ndarray], nstep: int) -> list[bytes]:
    """Steps a fresh manager through ``actions`` (nstep each); the state and outputs after each."""
    out = []
    with er.SimManager(**cfg) as sim:
        for act in actions:
            sim.action_tensor().to_numpy()[:] = act
            sim.step(nstep=nstep)
            out.append(
                sim.state_hashes().tobytes()
                + sim.observation_tensor().to_numpy().tobytes()
                + sim.reward_tensor().to_numpy().tobytes()
                + sim.done_tensor().to_numpy().tobytes()
            )
    return out


# -- the GIL -----------------------------------------------------------------------------------


def test_step_releases_the_gil_so_python_threads_run_meanwhile():
    sim = er.SimManager(num_worlds=256, num_threads=1, rand_seed=0)
    nstep = calibrated_nstep(sim, 0.4)
    ticks = 0
    finished = threading.Event()

    def stepper():
        sim.step(nstep=nstep)
        finished.set()

    t = threading.Thread(target=stepper)
    t.start()
    while not finished.is_set():  # Python work that needs the GIL while the step runs
        ticks += 1
        time.sleep(0)
    t.join()
    # Holding the GIL for the whole call would allow a handful of ticks at most.
    assert ticks > 200, ticks
    sim.close()


def test_vector_env_step_releases_the_gil():
    envs = er.EscapeRoomVectorEnv(4096, seed=0, num_threads=1)
    envs.reset(seed=0)
    actions = np.zeros((4096, 3), np.int64)
    ticks = []
    stop = threading.Event()

    def ticker():
        n = 0
        while not stop.is_set():
            n += 1
            time.sleep(0)
        ticks.append(n)

    t = threading.Thread(target=ticker)
    t.start()
    start = time.perf_counter()
    steps = 0
    while time.perf_counter() - start < 0.4:
        envs._step_actions(actions, False)  # the core call of envs.step, without Python around it
        steps += 1
    stop.set()
    t.join()
    assert steps > 0 and ticks[0] > 50, (steps, ticks)
    envs.close()


# -- separate managers in parallel -------------------------------------------------------------


@pytest.mark.parametrize("threads_per_manager", [1, 2])
def test_two_managers_stepped_concurrently_match_the_same_runs_one_after_the_other(threads_per_manager):
    rng = np.random.default_rng(11)
    cfgs = [
        {
            "num_worlds": 96,
            "num_agents": 2,
            "rand_seed": 1,
            "episode_len": 30,
            "num_threads": threads_per_manager,
        },
        {
            "num_worlds": 64,
            "num_agents": 1,
            "rand_seed": 2,
            "episode_len": 45,
            "num_threads": threads_per_manager,
            "autoreset_mode": "next_step",
        },
    ]
    acts = [[random_actions(rng, c["num_worlds"], c["num_agents"]) for _ in range(40)] for c in cfgs]
    sequential = [scripted_run(c, a, nstep=7) for c, a in zip(cfgs, acts)]
    concurrent: list = [None, None]

    def job(k):
        def run():
            concurrent[k] = scripted_run(cfgs[k], acts[k], nstep=7)

        return run

    run_threads(job(0), job(1))
    for k in range(2):
        assert len(concurrent[k]) == 40
        for i, (a, b) in enumerate(zip(sequential[k], concurrent[k])):
            assert a == b, f"manager {k} differs after call {i}"


def test_two_vector_envs_stepped_concurrently_match_one_after_the_other():
    rng = np.random.default_rng(12)
    acts = [rng.integers(0, er.action.NUM_CHOICES, (32, 3)) for _ in range(60)]

    def run(seed):
        envs = er.EscapeRoomVectorEnv(32, num_agents=2, seed=seed, num_threads=1)
        obs, _ = envs.reset(seed=seed)
        out = [obs]
        for a in acts:
            obs, rew, term, trunc, _ = envs.step(a)
            out.append(np.concatenate([obs.ravel(), rew, term, trunc]))
        envs.close()
        return out

    sequential = [run(5), run(6)]
    concurrent: list = [None, None]

    def job(k, seed):
        def go():
            concurrent[k] = run(seed)

        return go

    run_threads(job(0, 5), job(1, 6))
    for k in range(2):
        for i, (a, b) in enumerate(zip(sequential[k], concurrent[k])):
            np.testing.assert_array_equal(a, b, err_msg=f"env {k}, step {i}")


# -- one manager shared without a lock ---------------------------------------------------------


def test_shared_manager_stepped_from_two_threads_runs_each_call_or_raises():
    sim = er.SimManager(num_worlds=64, num_threads=2, rand_seed=3)
    sim.action_tensor().to_numpy()[:] = (2, 1, 3)
    ran = [0, 0]
    refused = [0, 0]

    def worker(k):
        def run():
            for _ in range(150):
                try:
                    sim.step(nstep=4)
                    ran[k] += 1
                except er.EscapeRoomError as e:
                    assert BUSY in str(e), str(e)
                    refused[k] += 1

        return run

    run_threads(worker(0), worker(1))
    assert sum(ran) > 0
    # Every call that ran stepped exactly nstep times, whatever the interleaving.
    assert sim.step_count == 4 * sum(ran)
    twin = er.SimManager(num_worlds=64, num_threads=1, rand_seed=3)
    twin.action_tensor().to_numpy()[:] = (2, 1, 3)
    twin.step(nstep=4 * sum(ran))
    np.testing.assert_array_equal(sim.state_hashes(), twin.state_hashes())
    np.testing.assert_array_equal(sim.observation_tensor().to_numpy(), twin.observation_tensor().to_numpy())
    sim.close()
    twin.close()


def test_shared_manager_raced_by_steps_and_resets_replays_exactly_from_its_recording(tmp_path):
    """Steps, seeded and unseeded resets and fused action+step calls from three threads: whatever
    ran is in the recording in the order it ran, and the replay ends in the live manager's state."""
    path = tmp_path / "raced.bin"
    W = 48
    sim = er.SimManager(num_worlds=W, num_threads=2, rand_seed=3, episode_len=40)
    sim.action_tensor().to_numpy()[:] = (3, 0, 2)
    sim.start_recording(path, seed=8, checksum_interval=5)
    ran = {"step": 0, "reset": 0, "fused": 0}
    refused = {"step": 0, "reset": 0, "fused": 0}

    def keep_calling(kind, make_call):
        """Calls until 40 calls ran (a refused call returns at once, so back off a little)."""
        for attempt in range(20_000):
            if ran[kind] == 40:
                return
            try:
                make_call(attempt)()
            except er.EscapeRoomError as e:
                assert BUSY in str(e), str(e)
                refused[kind] += 1
                time.sleep(0.0002)
            else:
                ran[kind] += 1
        raise AssertionError(f"{kind}: only {ran[kind]} of 40 calls ran")

    def stepper():
        keep_calling("step", lambda i: lambda: sim.step(nstep=3))

    def resetter():
        rng = np.random.default_rng(1)

        def make(i):
            mask = rng.random(W) < 0.3
            seeds = rng.integers(0, 2**63, W, dtype=np.uint64) if i % 2 else None
            return lambda: sim.reset_worlds(mask, seeds=seeds)

        keep_calling("reset", make)

    def fused():
        rng = np.random.default_rng(2)

        def make(i):
            acts = rng.integers(0, er.action.NUM_CHOICES, (W, 3))
            return lambda: sim._impl.step_actions(acts)

        keep_calling("fused", make)

    run_threads(stepper, resetter, fused)
    sim.step()  # the file ends with a step, so the replay reaches every recorded reset
    want = sim.state_hashes().copy()
    want_obs = sim.observation_tensor().to_numpy().copy()
    assert sim.stop_recording() == 3 * 40 + 40 + 1
    sim.close()
    with er.SimManager.from_replay(path, num_threads=1) as replay:
        while not replay.replay_step():
            pass
        np.testing.assert_array_equal(replay.state_hashes(), want)
        np.testing.assert_array_equal(replay.observation_tensor().to_numpy(), want_obs)


def make_shared_env(kind: str):
    """An env of ``kind`` reset with seed 4, and a call that steps it once with fixed actions and
    returns what the step gave (observations, rewards) as bytes."""
    if kind == "single":
        env = er.EscapeRoomEnv(seed=4, episode_len=500)
        env.reset(seed=4)
        action = np.array([1, 2, 3], np.int64)

        def step():
            obs, reward, *_ = env.step(action)
            return obs.tobytes() + np.float32(reward).tobytes()

        return env, step
    if kind == "vector":
        env = er.EscapeRoomVectorEnv(16, seed=4, num_threads=2, autoreset_mode="same_step", episode_len=500)
    else:
        pytest.importorskip("pufferlib")
        from escape_room_env.puffer import EscapeRoomPufferEnv

        env = EscapeRoomPufferEnv(16, seed=4, num_threads=2, episode_len=500)
    env.reset(seed=4)
    actions = np.tile(np.array([1, 2, 3], np.int64), (16, 1))

    def step():
        obs, rewards, *_ = env.step(actions)
        return obs.tobytes() + rewards.tobytes()

    return env, step


@pytest.mark.parametrize("kind", ["single", "vector", "puffer"])
def test_shared_env_stepped_from_two_threads_returns_each_step_its_own_results(kind):
    """Every call runs or raises; a call that ran returns the results of its own step, copied
    before the other thread's next step could overwrite them (not a torn mix of two steps)."""
    env, step = make_shared_env(kind)
    seen: list[list[bytes]] = [[], []]

    def worker(k):
        def run():
            for _ in range(100):
                try:
                    seen[k].append(step())
                except er.EscapeRoomError as e:
                    assert BUSY in str(e), str(e)

        return run

    run_threads(worker(0), worker(1))
    ran = len(seen[0]) + len(seen[1])
    assert ran > 0
    twin, twin_step = make_shared_env(kind)
    want = [twin_step() for _ in range(ran)]
    # Each thread's results are steps of the sequential run, in order.
    for k in range(2):
        at = 0
        for i, got in enumerate(seen[k]):
            while at < ran and want[at] != got:
                at += 1
            assert at < ran, f"thread {k}, call {i}: results of no step of the sequential run"
            at += 1
    # Every call that ran stepped once: the shared env ends where the sequential run does.
    assert env.sim.step_count == twin.sim.step_count == ran
    np.testing.assert_array_equal(env.sim.state_hashes(), twin.sim.state_hashes())
    env.close()
    twin.close()


def calibrated_nstep(sim: er.SimManager, seconds: float) -> int:
    """About how many steps of ``sim`` take ``seconds``."""
    sim.step(nstep=5)
    start = time.perf_counter()
    sim.step(nstep=50)
    return max(50, int(seconds / ((time.perf_counter() - start) / 50)))


def test_close_while_another_thread_steps_raises_and_leaves_the_manager_usable():
    sim = er.SimManager(num_worlds=256, num_threads=1, rand_seed=0)
    nstep = calibrated_nstep(sim, 0.5)
    before = sim.step_count
    stepping = threading.Event()
    refusals = []

    def stepper():
        stepping.set()
        sim.step(nstep=nstep)

    def closer():
        stepping.wait()
        time.sleep(0.02)
        for _ in range(20):  # well within the step's half second
            try:
                sim.close()
            except er.EscapeRoomError as e:
                refusals.append(str(e))
                time.sleep(0.002)
            else:
                return

    run_threads(stepper, closer)
    assert refusals, "close() never overlapped the step"
    assert all("cannot close a SimManager while another thread is stepping it" in r for r in refusals)
    assert not sim.closed
    assert sim.step_count == before + nstep  # the step finished unharmed
    sim.step()
    sim.close()
    assert sim.closed


def step_until(stop: threading.Event, sim: er.SimManager, nstep: int) -> int:
    """Steps ``sim`` until ``stop`` is set; refused calls are fine. Returns the calls that ran."""
    ran = 0
    while not stop.is_set():
        try:
            sim.step(nstep=nstep)
            ran += 1
        except er.EscapeRoomError as e:
            assert BUSY in str(e), str(e)
        time.sleep(0.001)  # a gap for the other thread's calls
    return ran


def call_until(stop: threading.Event, ran: int, call, refusal=BUSY) -> dict[str, int]:
    """Calls ``call(i)`` until ``ran`` calls ran (refused ones back off), then sets ``stop``."""
    counts = {"ran": 0, "refused": 0}
    try:
        for i in range(20_000):
            if counts["ran"] == ran:
                break
            try:
                call(i)
                counts["ran"] += 1
            except er.EscapeRoomError as e:
                assert re.search(refusal, str(e)), str(e)
                counts["refused"] += 1
                time.sleep(0.0003)
    finally:
        stop.set()
    return counts


def test_trajectory_logging_toggled_while_another_thread_steps_runs_or_raises(tmp_path):
    log = tmp_path / "traj.txt"
    sim = er.SimManager(num_worlds=1, num_threads=1)
    stop = threading.Event()
    counts = {}

    def toggle(i):
        if i % 2 == 0:
            sim.enable_trajectory_logging(0, 0, log)
        else:
            sim.disable_trajectory_logging()

    def toggler():
        counts.update(call_until(stop, 400, toggle))

    run_threads(lambda: step_until(stop, sim, 50), toggler)
    sim.disable_trajectory_logging()
    assert counts["ran"] == 400, counts
    # What the last file holds are whole lines of consecutive steps.
    lines = log.read_text().splitlines()
    assert all(line.startswith("step=") and line.count("=") == 10 for line in lines)
    steps = [int(line.split()[0][len("step=") :]) for line in lines]
    assert steps == list(range(steps[0], steps[0] + len(steps))) if steps else True
    sim.close()


def test_load_replay_while_another_thread_steps_runs_or_raises(tmp_path):
    path = tmp_path / "r.bin"
    with er.SimManager(num_worlds=64, num_threads=1) as src:
        src.start_recording(path, seed=1, checksum_interval=2)
        src.action_tensor().to_numpy()[:] = (3, 0, 2)
        src.step(nstep=6)
        src.stop_recording()
        want = src.state_hashes().copy()
    sim = er.SimManager(num_worlds=64, num_threads=2)
    stop = threading.Event()
    counts = {}

    # load_replay is several core calls (start the episodes, then check the step-0 hashes): a step
    # of the other thread between them is refused as a divergence at step 0.
    refusal = rf"{BUSY}|diverged at step 0: world\(s\) 0, 1, 2"

    def loader():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            counts.update(call_until(stop, 30, lambda i: sim.load_replay(path), refusal))

    run_threads(lambda: step_until(stop, sim, 20), loader)
    assert counts["ran"] == 30, counts
    # The manager still replays the file exactly (its hash checkpoints are verified on the way).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sim.load_replay(path)
    while not sim.replay_step():
        pass
    np.testing.assert_array_equal(sim.state_hashes(), want)
    sim.close()


# -- recordings exact under racing threads (issue 14, items 8-10) -------------------------------


def replay_hashes(path) -> np.ndarray:
    """Replays a file to its end (every checkpoint verified); the final state hashes."""
    with er.SimManager.from_replay(path, num_threads=1) as replay:
        for _ in range(replay.get_replay_step_count()[1]):
            replay.replay_step()
        return replay.state_hashes().copy()


def test_inputs_written_by_another_thread_during_a_recorded_long_step_are_recorded_as_simulated(tmp_path):
    """A writer thread scribbles actions and reset flags into the tensors while step(nstep) runs:
    whatever each step took is what the file holds, so the replay ends where the manager did."""
    path = tmp_path / "scribbled.bin"
    W = 64
    sim = er.SimManager(num_worlds=W, num_threads=2, episode_len=30, autoreset_mode="next_step")
    actions = sim.action_tensor().to_numpy()
    resets = sim.reset_tensor().to_numpy()
    sim.start_recording(path, seed=11, checksum_interval=3)
    stop = threading.Event()

    def scribble():
        rng = np.random.default_rng(5)
        while not stop.is_set():
            actions[:] = rng.integers(0, er.action.NUM_CHOICES, (W, 1, 3))
            resets[rng.integers(W)] = int(rng.integers(-3, 3))

    def step():
        try:
            for _ in range(20):
                sim.step(nstep=50)
        finally:
            stop.set()

    run_threads(scribble, step)
    want = sim.state_hashes().copy()
    assert sim.stop_recording() == 1000
    sim.close()
    np.testing.assert_array_equal(replay_hashes(path), want)


def test_recordings_started_with_a_seed_while_another_thread_steps_replay_exactly(tmp_path):
    """start_recording(seed=) reseeds and starts in one call: a step from another thread runs
    before or after it, never between the reseed and the file's first record."""
    sim = er.SimManager(num_worlds=32, num_threads=2, episode_len=25)
    sim.action_tensor().to_numpy()[:] = (3, 0, 1)
    stop = threading.Event()
    finished = []

    def stepper():
        while not stop.is_set():
            try:
                sim.step(nstep=2)
            except er.EscapeRoomError as e:
                assert BUSY in str(e), str(e)

    def recorder():
        try:
            for k in range(12):
                path = tmp_path / f"r{k}.bin"
                while True:
                    try:
                        sim.start_recording(path, seed=100 + k, checksum_interval=2)
                        break
                    except er.EscapeRoomError as e:
                        assert BUSY in str(e), str(e)
                time.sleep(0.002)
                while True:
                    try:
                        hashes = sim.state_hashes().copy()
                        steps = sim.stop_recording()
                        break
                    except er.EscapeRoomError as e:
                        assert BUSY in str(e), str(e)
                finished.append((path, steps, hashes))
        finally:
            stop.set()

    run_threads(stepper, recorder)
    sim.close()
    assert len(finished) == 12
    for path, steps, _ in finished:
        meta = er.SimManager.read_replay_metadata(path)
        assert meta.complete and meta.num_steps == steps and meta.start == "seed"
        replay_hashes(path)  # every checkpoint verified, step 0 included


def test_two_managers_recording_to_one_path_refuse_the_second_and_keep_the_first(tmp_path):
    path = tmp_path / "shared.bin"
    first = er.SimManager(num_worlds=4, num_threads=1)
    second = er.SimManager(num_worlds=4, num_threads=1)
    first.start_recording(path, seed=1)
    first.step(nstep=70)  # past a flush: the file already holds records
    hashes = second.state_hashes().copy()
    with pytest.raises(er.EscapeRoomError, match=r"the file is in use: another recording"):
        second.start_recording(path, seed=2)
    assert not second.is_recording()
    np.testing.assert_array_equal(second.state_hashes(), hashes)  # nothing changed
    with pytest.raises(er.EscapeRoomError, match=r"in use"):
        second.enable_trajectory_logging(0, 0, path)  # a log over it is refused too
    first.step(nstep=5)
    want = first.state_hashes().copy()
    assert first.stop_recording() == 75
    np.testing.assert_array_equal(replay_hashes(path), want)
    second.start_recording(path, seed=2)  # free again
    second.stop_recording()


def test_recording_over_the_file_being_replayed_is_refused(tmp_path):
    path = tmp_path / "replayed.bin"
    with er.SimManager(num_worlds=3, num_threads=1) as sim, sim.recording(path, seed=4):
        sim.step(nstep=20)
    replay = er.SimManager.from_replay(path, num_threads=1)
    for _ in range(5):
        replay.replay_step()
    other = er.SimManager(num_worlds=3, num_threads=1)
    for manager in (replay, other):
        with pytest.raises(er.EscapeRoomError, match=r"a replay is reading it"):
            manager.start_recording(path, seed=1)
    while not replay.replay_step():  # the file is intact: the replay goes on to its end
        pass
    replay.close()
    other.start_recording(path, seed=1)  # once the replay closed it, the path is free
    other.stop_recording()
    other.close()


# -- a bounded stress test: random interleavings from several threads, plus a fork ---------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_interleavings_never_crash_or_hang_and_every_finished_recording_replays(tmp_path, seed):
    """Four threads call random operations on two shared managers for a bounded time: steps,
    fused action steps, resets, recording and trajectory-log toggles, hashes, tensor writes,
    a fork whose child steps and exits, and finally close. Every call runs or raises one of the
    documented errors; every recording that finished replays exactly."""
    sims = [
        er.SimManager(num_worlds=24, num_threads=2, episode_len=20, autoreset_mode=mode)
        for mode in ("same_step", "next_step")
    ]
    lock = threading.Lock()
    counter = iter(range(10**6))
    deadline = time.monotonic() + 6.0
    allowed = (BUSY, "not recording", "already recording", "this SimManager is closed", "cannot close")

    def operation(sim: er.SimManager, rng: np.random.Generator) -> None:
        kind = int(rng.integers(10))
        if kind == 0:
            sim.step(nstep=int(rng.integers(1, 30)))
        elif kind == 1:
            sim._impl.step_actions(rng.integers(0, er.action.NUM_CHOICES, (24, 3)))
        elif kind == 2:
            sim.reset_worlds(
                rng.random(24) < 0.3, seeds=int(rng.integers(2**32)) if rng.random() < 0.5 else None
            )
        elif kind == 3:
            with lock:
                path = tmp_path / f"s{next(counter)}.bin"
            sim.start_recording(
                path,
                seed=int(rng.integers(2**32)) if rng.random() < 0.7 else None,
                checksum_interval=int(rng.integers(1, 9)),
            )
        elif kind == 4:
            sim.stop_recording()
        elif kind == 5:
            if sim._impl.is_trajectory_logging:
                sim.disable_trajectory_logging()
            else:
                with lock:
                    log = tmp_path / f"t{next(counter)}.txt"
                sim.enable_trajectory_logging(int(rng.integers(24)), 0, log)
        elif kind == 6:
            sim.state_hashes()
        elif kind == 7:
            sim.action_tensor().to_numpy()[:] = rng.integers(-2, 9, (24, 1, 3))
            sim.reset_tensor().to_numpy()[rng.integers(24)] = 1
        elif kind == 8 and rng.random() < 0.05 and not UNDER_TSAN:
            pid = os.fork()
            if pid == 0:  # the child: steps its copy or gets a clear error, and always exits
                code = 0
                try:
                    sim.step(nstep=3)
                except er.EscapeRoomError as e:
                    code = 0 if "forked" in str(e) or "closed" in str(e) else 3
                except BaseException:  # noqa: BLE001 - any other outcome is a failure
                    code = 4
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
        elif kind == 9:
            sim.observation_tensor().to_numpy().sum()

    def worker(index: int) -> None:
        rng = np.random.default_rng(seed * 100 + index)
        while time.monotonic() < deadline:
            which = int(rng.integers(2))
            sim = sims[which]
            try:
                operation(sim, rng)
            except er.EscapeRoomError as e:
                assert any(a in str(e) for a in allowed), str(e)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # start_recording mid-episode warns that it resets
        run_threads(*(lambda i=i: worker(i) for i in range(4)), timeout=60)
    for sim in sims:
        sim.close()  # finishes a recording still running
    checked = 0
    for path in sorted(tmp_path.glob("*.bin")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", er.ReplayTruncatedWarning)
            meta = er.SimManager.read_replay_metadata(path)
        assert meta.complete, path
        replay_hashes(path)  # raises ReplayDivergenceError if anything recorded differs
        checked += 1
    assert checked > 0
