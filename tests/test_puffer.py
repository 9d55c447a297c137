"""PufferLib (issue 18): ``escape_room_env.puffer.EscapeRoomPufferEnv`` passes PufferLib's own
checks, steps bit for bit like ``EscapeRoomVectorEnv`` (SAME_STEP, the reset semantics PufferLib's
native envs have) alone and under ``pufferlib.vector``'s Serial and Multiprocessing backends, and
reports episode statistics as PufferLib info dicts at a bounded rate.

Where the seeds meet: PufferLib seeds env i with ``seed + i``, and world w of an env reset with seed
s plays stream ``s * num_envs + w``; so K envs of W worlds reset with seed s are exactly one
vector env of K * W worlds reset with seed ``s * W``, which is what these tests compare against.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "pufferlib",
    reason="pufferlib-core is not installed: pip install --no-deps pufferlib-core && pip install psutil rich rich-argparse",
)

import pufferlib
import pufferlib.emulation
import pufferlib.vector
from gymnasium.vector import AutoresetMode
from helpers import run_python

import escape_room_env as er
from escape_room_env.puffer import INSTALL, STATS, EscapeRoomPufferEnv

REPO = Path(__file__).resolve().parent.parent
NVEC = np.array([4, 8, 5])
# An exit two cells ahead of the spawn: random actions escape it now and then, so runs over it
# end episodes by termination as well as by the time limit.
SHORT = "#####\n#EEE#\n#...#\n#.S.#\n#####"
LEVELS = [SHORT, "corridor"]


def make(num_envs=4, **kwargs):
    kwargs.setdefault("num_threads", 1)
    return EscapeRoomPufferEnv(num_envs, **kwargs)


def twin(num_worlds, seed, num_agents=1, **kwargs):
    """The vector env that ``num_worlds`` worlds seeded ``seed`` under PufferLib's mapping equal."""
    return er.EscapeRoomVectorEnv(
        num_worlds * num_agents,
        num_agents=num_agents,
        autoreset_mode=AutoresetMode.SAME_STEP,
        seed=seed,
        num_threads=1,
        **kwargs,
    )


def random_actions(rng, n, dtype=np.int64):
    return rng.integers(0, NVEC, size=(n, 3)).astype(dtype)


def assert_same_bits(ours, theirs, what, step):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, (what, step)
    assert ours.tobytes() == theirs.tobytes(), f"{what} differ at step {step}"


def assert_same_step(ours, theirs, step):
    for what, a, b in zip(("observations", "rewards", "terminals", "truncations"), ours[:4], theirs[:4]):
        assert_same_bits(a, b, what, step)


# -- PufferLib's own checks ---------------------------------------------------------------------


def test_native_env_passes_pufferlibs_own_checks():
    env = make(4, num_agents=2, seed=0)  # PufferEnv.__init__ checks the spaces and num_agents
    assert isinstance(env, pufferlib.PufferEnv) and env.emulated is False and env.done is False
    pufferlib.vector.check_envs([env], env)
    assert env.num_agents == 8 and env.agents_per_world == 2 and env.num_envs == 4
    gymnasium_twin = twin(4, 0, num_agents=2)
    assert env.single_observation_space == gymnasium_twin.single_observation_space
    gymnasium_twin.close()
    assert env.single_action_space == er.spaces.action_space()
    assert env.observation_space.shape == (8, 90) and env.action_space.shape == (8, 3)
    for name in ("observations", "rewards", "terminals", "truncations", "masks", "actions"):
        assert len(getattr(env, name)) == 8, name
    assert env.masks.all()

    # PufferLib's native "backend" is the env itself, driven by PufferEnv's own send/recv.
    vec = pufferlib.vector.make(
        EscapeRoomPufferEnv, env_kwargs={"num_envs": 4, "num_agents": 2, "num_threads": 1}
    )
    assert isinstance(vec, EscapeRoomPufferEnv)
    vec.async_reset(0)
    rng = np.random.default_rng(0)
    for step in range(100):
        obs, *_, infos, ids, masks = vec.recv()
        assert pufferlib.emulation.check_space(obs, vec.observation_space), step
        assert isinstance(infos, list) and ids.tolist() == list(range(8)) and masks.all()
        actions = vec.action_space.sample() if step == 0 else random_actions(rng, 8, np.int32)
        vec.send(actions)
    vec.close()
    env.close()


def test_pufferlibs_first_action_check_and_ours_refuse_bad_actions():
    vec = pufferlib.vector.make(
        EscapeRoomPufferEnv, env_kwargs={"num_envs": 2, "num_threads": 1}, backend=pufferlib.vector.Serial
    )
    vec.reset(seed=0)
    with pytest.raises(pufferlib.APIUsageError, match="Actions do not match action space"):
        vec.step(np.array([[4, 0, 0], [0, 0, 0]]))
    vec.close()

    env = make(2, num_agents=2, seed=0)
    env.reset()
    actions = np.zeros((4, 3), dtype=np.int32)
    actions[3, 1] = 8
    message = "actions[3, 1] (move_angle of agent 3) is 8, expected 0 <= move_angle < 8"
    with pytest.raises(ValueError, match=re.escape(message)):
        env.step(actions)
    with pytest.raises(TypeError, match="int32/int64"):
        env.step(np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(TypeError, match=re.escape("shape (num_worlds * num_agents, 3)")):
        env.step(np.zeros((3, 3), dtype=np.int32))
    env.close()


def test_bad_options_raise_naming_them():
    with pytest.raises(ValueError, match=re.escape("num_envs (worlds) must be >= 1, got 0")):
        EscapeRoomPufferEnv(0)
    with pytest.raises(ValueError, match=re.escape("log_interval must be >= 1, got 0")):
        EscapeRoomPufferEnv(1, log_interval=0)
    with pytest.raises(
        ValueError, match=re.escape("seed must be in [0, 2**64 / num_envs) = [0, 4611686018427387904)")
    ):
        EscapeRoomPufferEnv(4, seed=2**62)
    env = make(2)
    with pytest.raises(ValueError, match="seed must be in"):
        env.reset(seed=-1)
    with pytest.raises(TypeError, match="seed must be an int, got float"):
        env.reset(seed=1.5)
    buf = {name: np.zeros(2) for name in ("observations", "rewards", "terminals", "truncations")}
    with pytest.raises(ValueError, match="buf lacks teacher_actions, masks, actions"):
        make(2, buf=buf)
    buf.update(
        teacher_actions=np.zeros((2, 3), np.int32), masks=np.ones(2, bool), actions=np.zeros((2, 3), np.int32)
    )
    with pytest.raises(
        ValueError, match=re.escape("buf['observations'] must be a numpy array of shape (2, 87)")
    ):
        make(2, buf=buf)


# -- the same numbers as EscapeRoomVectorEnv ----------------------------------------------------


@pytest.mark.parametrize(
    ("num_agents", "options"),
    [(1, {"levels": LEVELS, "episode_len": 30}), (2, {"episode_len": 40})],
)
def test_native_env_steps_bit_for_bit_like_the_vector_env_in_same_step_mode(num_agents, options):
    worlds, seed = 6, 3
    env = make(worlds, num_agents=num_agents, seed=seed, **options)
    vec = twin(worlds, seed * worlds, num_agents, **options)
    n, rng = worlds * num_agents, np.random.default_rng(1)
    assert_same_bits(env.reset(seed=seed)[0], vec.reset(seed=seed * worlds)[0], "observations", 0)
    ended = np.zeros(2, dtype=int)
    for step in range(1, 301):
        if step == 120:  # reseeded: world w restarts at 11 * worlds + w
            assert_same_bits(env.reset(seed=11)[0], vec.reset(seed=11 * worlds)[0], "observations", step)
        if step == 210:  # new episodes continuing each world's stream
            assert_same_bits(env.reset()[0], vec.reset()[0], "observations", step)
        actions = random_actions(rng, n, np.int32 if step % 2 else np.int64)
        ours, theirs = env.step(actions), vec.step(actions)
        assert_same_step(ours, theirs, step)
        ended += ours[2].sum(), ours[3].sum()
    assert ended[1] > 0 and (ended[0] > 0) == (num_agents == 1), ended  # both kinds of reset happened
    assert env.observations is ours[0] and env.rewards is ours[1]  # PufferLib's buffers, returned
    env.close()
    vec.close()


def test_buffers_are_the_simulators_own_without_buf_and_pufferlibs_with_it():
    env = make(2, seed=0)
    assert np.shares_memory(env.observations, env.sim.observation_tensor().to_numpy())
    assert np.shares_memory(env.rewards, env.sim.reward_tensor().to_numpy())
    assert np.shares_memory(env.terminals, env.sim.terminated_tensor().to_numpy())
    assert np.shares_memory(env.truncations, env.sim.truncated_tensor().to_numpy())

    vec = pufferlib.vector.make(
        EscapeRoomPufferEnv,
        env_kwargs={"num_envs": 2, "num_threads": 1},
        num_envs=2,
        backend=pufferlib.vector.Serial,
    )
    for i, inner in enumerate(vec.envs):
        assert np.shares_memory(inner.observations, vec.observations[2 * i : 2 * i + 2])
        assert not np.shares_memory(inner.observations, inner.sim.observation_tensor().to_numpy())
    vec.close()
    env.close()


def test_a_buffer_that_is_not_one_block_still_gets_every_observation():
    rng = np.random.default_rng(2)
    wide = np.zeros((4, 100), dtype=np.float32)
    buf = {
        "observations": wide[:, :87],  # rows 100 floats apart: not C-contiguous
        "rewards": np.zeros(4, np.float32),
        "terminals": np.zeros(4, bool),
        "truncations": np.zeros(4, bool),
        "teacher_actions": np.zeros((4, 3), np.int32),
        "masks": np.zeros(4, bool),
        "actions": np.zeros((4, 3), np.int32),
    }
    env, vec = make(4, buf=buf, seed=1, episode_len=7), twin(4, 4, episode_len=7)
    assert buf["masks"].all()
    assert_same_bits(env.reset(seed=1)[0], vec.reset(seed=4)[0], "observations", 0)
    for step in range(1, 30):
        actions = random_actions(rng, 4)
        assert_same_step(env.step(actions), vec.step(actions), step)
    assert np.shares_memory(env.observations, wide)
    env.close()
    vec.close()


@pytest.mark.parametrize("backend", ["Serial", "Multiprocessing"])
def test_vector_backends_step_bit_for_bit_like_one_vector_env_of_all_the_worlds(backend):
    envs, worlds, seed, steps = 2, 4, 5, 200  # even worlds: each env starts the levels list at world 0 too
    options = {"levels": LEVELS, "episode_len": 25}
    extra = {"num_workers": envs, "overwork": True} if backend == "Multiprocessing" else {}
    vec = pufferlib.vector.make(
        EscapeRoomPufferEnv,
        env_kwargs={"num_envs": worlds, "num_threads": 1, "log_interval": 50, **options},
        num_envs=envs,
        backend=getattr(pufferlib.vector, backend),
        seed=seed,
        **extra,
    )
    n = envs * worlds
    assert vec.num_agents == n and vec.single_action_space == er.spaces.action_space()
    one = twin(n, seed * worlds, **options)
    try:
        assert_same_bits(vec.reset(seed=seed)[0], one.reset(seed=seed * worlds)[0], "observations", 0)
        rng, reports = np.random.default_rng(3), []
        for step in range(1, steps + 1):
            actions = random_actions(rng, n)
            ours = vec.step(actions)
            assert_same_step(ours, one.step(actions), step)
            reports += ours[4]
        # Each env reports at most once every log_interval steps, with PufferLib's key set.
        assert 1 <= len(reports) <= envs * steps // 50
        assert all(tuple(r) == STATS and r["n"] >= 1 for r in reports)
    finally:
        vec.close()
        one.close()


# -- episode statistics ------------------------------------------------------------------------


def expected_reports(vec, actions, log_interval):
    """(step, episodes) of every report an env with ``log_interval`` must give over ``actions``:
    due once ``log_interval`` steps have passed since the last one and an episode has ended. The
    episodes come from the twin vector env: its rewards summed per env, and its SAME_STEP
    ``final_info`` (length, progress, doors) and ``terminated`` flag on the step each ended."""
    returns = np.zeros(vec.num_envs, dtype=np.float32)
    window, reports, since = [], [], 0
    for step, a in enumerate(actions, start=1):
        _, rewards, terminated, truncated, infos = vec.step(a)
        returns += rewards
        for i in np.flatnonzero(terminated | truncated):
            final = infos["final_info"]
            episode = (
                returns[i],
                final["elapsed_step"][i],
                terminated[i],
                final["progress"][i],
                final["doors_opened"][i],
            )
            window.append(episode)
            returns[i] = 0.0
        since += 1
        if since >= log_interval and window:
            reports.append((step, window))
            window, since = [], 0
    return reports


def test_episode_statistics_are_means_over_the_episodes_ended_since_the_last_report():
    worlds, seed, log_interval, steps = 4, 2, 25, 240
    options = {"levels": LEVELS, "episode_len": 30}
    env = make(worlds, seed=seed, log_interval=log_interval, **options)
    vec = twin(worlds, seed * worlds, **options)
    env.reset(seed=seed)
    vec.reset(seed=seed * worlds)
    rng = np.random.default_rng(4)
    actions = [random_actions(rng, worlds) for _ in range(steps)]
    expected = expected_reports(vec, actions, log_interval)
    got = []
    for step, a in enumerate(actions, start=1):
        infos = env.step(a)[4]
        assert isinstance(infos, list) and len(infos) <= 1
        if infos:
            got.append((step, infos[0]))
    assert [s for s, _ in got] == [s for s, _ in expected]
    assert len(got) >= 5 and any(r["escaped"] > 0 for _, r in got)  # escapes and time limits both
    for (step, report), (_, episodes) in zip(got, expected):
        ret, length, escaped, progress, doors = (np.array(col, dtype=np.float64) for col in zip(*episodes))
        assert list(report) == list(STATS), step
        assert report["n"] == len(episodes)
        assert report["episode_length"] == length.sum() / len(episodes)
        assert report["escaped"] == escaped.sum() / len(episodes)
        assert report["doors_opened"] == doors.sum() / len(episodes)
        assert report["episode_return"] == pytest.approx(ret.mean(), rel=1e-12, abs=1e-12)
        assert report["progress"] == pytest.approx(progress.mean(), rel=1e-12)
    env.close()
    vec.close()


def test_reset_clears_the_statistics_and_reports_nothing():
    env = make(2, seed=0, episode_len=3, log_interval=4)
    env.reset()
    for _ in range(3):
        assert env.step(np.zeros((2, 3), np.int32))[4] == []  # episodes ended at step 3; not due yet
    obs, infos = env.reset(seed=1)
    assert obs is env.observations and infos == []
    reports = [env.step(np.zeros((2, 3), np.int32))[4] for _ in range(4)]
    assert reports[:3] == [[], [], []]
    # Due at the 4th step since the reset, with the two episodes that ended after it only.
    assert reports[3][0]["n"] == 2 and reports[3][0]["episode_length"] == 3.0
    env.close()


# -- packaging ---------------------------------------------------------------------------------


def test_core_package_never_imports_pufferlib():
    code = (
        "import sys, gymnasium, escape_room_env\n"
        "gymnasium.make_vec('EscapeRoom-v0', num_envs=2)\n"
        "assert 'pufferlib' not in sys.modules, 'escape_room_env imported pufferlib'\n"
    )
    run_python("-c", code, timeout=60, check=True)


def test_without_pufferlib_the_module_imports_and_the_env_says_how_to_install_it():
    code = (
        "import sys\n"
        "sys.modules['pufferlib'] = None  # as if it were not installed\n"
        "import escape_room_env.puffer as puffer\n"
        "try:\n"
        "    from escape_room_env.puffer import EscapeRoomPufferEnv\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    proc = run_python("-c", code, timeout=60, check=True)
    assert proc.stdout.startswith("EscapeRoomPufferEnv needs PufferLib, which is not installed")
    assert proc.stdout.rstrip().endswith(f"without its torch==2.9.0 pin: {INSTALL}")
    assert INSTALL == "pip install --no-deps pufferlib-core && pip install psutil rich rich-argparse"


def readme_section(title):
    text = (REPO / "README.md").read_text()
    section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    return section


def test_readme_snippet_runs_as_written():
    section = readme_section("Using with PufferLib")
    assert INSTALL in section
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    proc = run_python("-c", code)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_puffer_train_example_runs_a_tiny_training():
    script = REPO / "examples" / "puffer_train.py"
    tiny = "--total-timesteps 4096 --num-envs 2 --worlds-per-env 32 --num-steps 32 --episode-len 20"
    proc = run_python(script, *tiny.split(), timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "episode_return" in proc.stdout and "SPS" in proc.stdout, proc.stdout
