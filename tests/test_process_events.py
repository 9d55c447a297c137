"""What the process does around a manager: interpreter exit while a thread steps, worker threads
the system refuses, fork() with live managers (issue 14, items 1-3).

Each scenario runs in a subprocess, since a failure here is a crash or a hang of the process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import escape_room_env as er

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork, /proc and rlimits as on Linux")
# ThreadSanitizer cannot follow a process that starts threads after a multi-threaded fork.
no_fork_under_tsan = pytest.mark.skipif(
    os.environ.get("ESCAPE_ROOM_SANITIZE") == "thread",
    reason="ThreadSanitizer does not support fork with threads",
)

TIMEOUT = 120


def run_python(code: str, *, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(er.__file__))),
    )


def assert_no_abort(proc: subprocess.CompletedProcess) -> None:
    for sign in ("terminate called", "Aborted", "Fatal Python error", "Segmentation fault", "leaked"):
        assert sign not in proc.stderr, proc.stderr


def replay_to_the_end(path) -> int:
    """Replays a file to its last step, verifying every checkpoint; returns the steps."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", er.ReplayTruncatedWarning)
        sim = er.SimManager.from_replay(path, num_threads=1)
    with sim:
        total = sim.get_replay_step_count()[1]
        for _ in range(total):
            sim.replay_step()
        return total


# -- 1. interpreter exit while another thread is inside a call -------------------------------

STEPPERS = {
    "step_nstep": "sim.step(nstep=40)",
    "step_one": "sim.step()",
    "reset_worlds": "sim.reset_worlds(None)",
    "state_hashes": "sim.state_hashes()",
}

EXITS = {
    "falls_off": ("pass", 0),
    "sys_exit_3": ("sys.exit(3)", 3),
    "exception": ("raise RuntimeError('boom')", 1),
}


@pytest.mark.parametrize("exit_kind", list(EXITS))
@pytest.mark.parametrize("stepper", list(STEPPERS))
def test_exit_while_a_daemon_thread_steps_a_recording_manager_is_clean_and_finishes_the_file(
    tmp_path, stepper, exit_kind
):
    path = tmp_path / "exit.bin"
    log = tmp_path / "exit.txt"
    statement, code = EXITS[exit_kind]
    proc = run_python(
        f"""
        import sys, threading, time
        import escape_room_env as er
        sim = er.SimManager(num_worlds=96, num_threads=2)
        sim.action_tensor().to_numpy()[:] = (3, 0, 1)
        sim.start_recording({str(path)!r}, seed=4, checksum_interval=7)
        sim.enable_trajectory_logging(1, 0, {str(log)!r})
        started = threading.Event()
        def loop():
            while True:
                {STEPPERS[stepper]}
                started.set()
        threading.Thread(target=loop, daemon=True).start()
        started.wait()
        time.sleep(0.2)
        {statement}
        """
    )
    assert proc.returncode == code, proc.stderr
    assert_no_abort(proc)
    meta = er.SimManager.read_replay_metadata(path)  # finished at exit: END record, header patched
    assert meta.complete
    assert replay_to_the_end(path) == meta.num_steps
    lines = log.read_text().splitlines()
    assert len(lines) == meta.num_steps and all(line.startswith("step=") for line in lines)


def test_exit_while_a_daemon_thread_steps_a_vector_env_is_clean(tmp_path):
    path = tmp_path / "env.bin"
    proc = run_python(
        f"""
        import threading, time, sys
        import numpy as np
        import escape_room_env as er
        from escape_room_env.wrappers import RecordActions
        envs = RecordActions(er.EscapeRoomVectorEnv(num_envs=64, num_threads=2), {str(path)!r})
        envs.reset(seed=1)
        actions = np.zeros((64, 3), np.int64)
        started = threading.Event()
        def loop():
            while True:
                envs.step(actions)
                started.set()
        threading.Thread(target=loop, daemon=True).start()
        started.wait()
        time.sleep(0.2)
        sys.exit(5)
        """
    )
    assert proc.returncode == 5, proc.stderr
    assert_no_abort(proc)
    meta = er.SimManager.read_replay_metadata(path)
    assert meta.num_steps > 0
    assert replay_to_the_end(path) == meta.num_steps


def test_exit_while_several_threads_step_several_managers_is_clean():
    proc = run_python(
        """
        import threading, time
        import escape_room_env as er
        sims = [er.SimManager(num_worlds=64, num_threads=2) for _ in range(3)]
        def loop(sim):
            while True:
                try:
                    sim.step(nstep=25)
                except er.EscapeRoomError:
                    pass  # another thread is stepping it: expected
        for sim in sims + sims[:1]:
            threading.Thread(target=loop, args=(sim,), daemon=True).start()
        time.sleep(0.3)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert_no_abort(proc)


# -- 2. worker threads the system refuses --------------------------------------------------------


@pytest.mark.skipif(
    os.environ.get("ESCAPE_ROOM_SANITIZE") in ("address", "thread"),
    reason="a sanitizer's shadow memory changes what an address-space limit leaves",
)
def test_worker_threads_refused_by_the_system_raise_naming_num_threads_and_leak_nothing():
    proc = run_python(
        """
        import os, resource
        import escape_room_env as er

        def tasks():
            return len(os.listdir("/proc/self/task"))

        def address_space():
            for line in open("/proc/self/status"):
                if line.startswith("VmSize"):
                    return int(line.split()[1]) * 1024

        tasks0, fds0 = tasks(), len(os.listdir("/proc/self/fd"))
        # Room for the manager's state and a few threads' stacks, not for 300 of them.
        resource.setrlimit(resource.RLIMIT_AS, (address_space() + (256 << 20), resource.RLIM_INFINITY))
        for _ in range(3):
            try:
                er.SimManager(num_worlds=64, num_threads=300)
            except er.EscapeRoomError as e:
                assert "num_threads=300" in str(e) and "pass a smaller num_threads" in str(e), e
            else:
                raise AssertionError("no error")
        assert tasks() == tasks0, (tasks(), tasks0)
        assert len(os.listdir("/proc/self/fd")) == fds0
        sim = er.SimManager(num_worlds=64, num_threads=2)  # the process stays usable
        sim.step(nstep=3)
        assert tasks() == tasks0 + 1
        print("ok")
        """
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert_no_abort(proc)


# -- 3. fork() with live managers ----------------------------------------------------------------


@no_fork_under_tsan
def test_a_forked_child_steps_its_copy_exactly_and_leaves_the_parents_recording_alone(tmp_path):
    path = tmp_path / "parent.bin"
    proc = run_python(
        f"""
        import os
        import numpy as np
        import escape_room_env as er
        sim = er.SimManager(num_worlds=200, num_threads=2)
        twin = er.SimManager(num_worlds=200, num_threads=1)
        sim.start_recording({str(path)!r}, seed=3)
        twin.reseed(3)
        for m in (sim, twin):
            m.action_tensor().to_numpy()[:] = (2, 1, 3)
            m.step(nstep=10)
        pid = os.fork()
        if pid == 0:  # the child: its copy steps on fresh worker threads, without the recording
            assert not sim.is_recording()
            sim.step(nstep=30)
            twin.step(nstep=30)
            assert (sim.state_hashes() == twin.state_hashes()).all()
            sim.start_recording({str(tmp_path / "child.bin")!r}, seed=9)  # a file of its own works
            sim.step(nstep=4)
            sim.close()
            raise SystemExit(7)  # a normal exit: finalisation, destructors
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 7
        sim.step(nstep=5)
        assert sim.stop_recording() == 15
        print("ok")
        """
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert_no_abort(proc)
    assert replay_to_the_end(path) == 15  # only the parent's steps, intact
    assert replay_to_the_end(tmp_path / "child.bin") == 4


@no_fork_under_tsan
def test_a_child_forked_while_another_thread_steps_raises_on_use_and_exits(tmp_path):
    proc = run_python(
        """
        import os, threading
        import escape_room_env as er
        sim = er.SimManager(num_worlds=2000, num_threads=2)
        def loop():
            sim.step(nstep=10**12)  # one call that never ends: the manager is in use at the fork
        threading.Thread(target=loop, daemon=True).start()
        while sim.step_count == 0:
            pass
        pid = os.fork()
        if pid == 0:
            try:
                sim.step()
            except er.EscapeRoomError as e:
                assert "in use by another thread when the process forked" in str(e), e
            else:
                os._exit(2)
            other = er.SimManager(num_worlds=8, num_threads=2)  # new managers work
            other.step(nstep=3)
            raise SystemExit(0)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        """
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "0", proc.stderr
    assert_no_abort(proc)


@no_fork_under_tsan
def test_multiprocessing_fork_workers_use_an_inherited_env_and_the_parent_is_unaffected():
    proc = run_python(
        """
        import multiprocessing as mp
        import numpy as np
        import escape_room_env as er

        envs = er.EscapeRoomVectorEnv(num_envs=32, num_threads=2)
        envs.reset(seed=0)
        actions = np.ones((32, 3), np.int64)

        def work(k):  # a worker may run several tasks on its copy: each starts from a reset
            envs.reset(seed=0)
            for _ in range(k):
                obs, *_ = envs.step(actions)
            return float(obs.sum())

        with mp.get_context("fork").Pool(2) as pool:
            got = pool.map(work, [5, 5, 9])
        twin = er.EscapeRoomVectorEnv(num_envs=32, num_threads=1)
        want = []
        for k in (5, 9):
            twin.reset(seed=0)
            for _ in range(k):
                obs, *_ = twin.step(actions)
            want.append(float(obs.sum()))
        assert got == [want[0], want[0], want[1]], (got, want)
        envs.step(actions)  # the parent's env is untouched and works
        print("ok")
        """
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert_no_abort(proc)


@pytest.mark.skipif(not er.cuda_available(), reason="needs a CUDA GPU")
def test_a_cuda_manager_in_a_forked_child_raises_a_clear_error():  # pragma: no cover - GPU only
    proc = run_python(
        """
        import os
        import escape_room_env as er
        sim = er.SimManager(exec_mode=er.ExecMode.CUDA, num_worlds=64)
        pid = os.fork()
        if pid == 0:
            try:
                sim.step()
            except er.EscapeRoomError as e:
                os._exit(0 if "CUDA does not survive fork()" in str(e) else 3)
            os._exit(4)
        _, status = os.waitpid(pid, 0)
        sim.step()
        print(os.waitstatus_to_exitcode(status))
        """
    )
    assert proc.stdout.strip() == "0", proc.stderr


@no_fork_under_tsan
def test_fork_twice_in_a_row_and_step_in_the_grandchild():
    proc = run_python(
        """
        import os
        import escape_room_env as er
        sim = er.SimManager(num_worlds=100, num_threads=2)
        twin = er.SimManager(num_worlds=100, num_threads=1)
        def fork_and_check(depth):
            pid = os.fork()
            if pid == 0:
                sim.step(nstep=3)
                twin.step(nstep=3)
                ok = (sim.state_hashes() == twin.state_hashes()).all()
                if ok and depth > 0:
                    ok = fork_and_check(depth - 1) == 0
                os._exit(0 if ok else 1)
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)
        print(fork_and_check(2))
        """
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "0", proc.stderr


def test_an_exclusive_block_makes_several_calls_one_operation():
    sim = er.SimManager(num_worlds=4, num_threads=1)
    with sim._impl.exclusive():
        sim.step()
        sim.reset_worlds(np.array([True, False, True, False]))
        import threading

        errors = []
        thread = threading.Thread(target=lambda: errors.append(_try(sim.step)))
        thread.start()
        thread.join()
        assert errors and "already running a call in another thread" in errors[0]
    sim.step()  # released


def _try(call) -> str:
    try:
        call()
    except er.EscapeRoomError as e:
        return str(e)
    return ""
