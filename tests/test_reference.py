"""Differential tests: the native core (one world) against the plain-Python reference.

``escape_room_env.reference`` is written from SPEC §2 and §3 alone. Each configuration steps a
one-world ``SimManager`` and a ``ReferenceWorld`` with the same seed side by side for 2,000
random steps (a mix of uniform actions, out-of-range actions the core must clamp, and a
simple steering policy that presses buttons and walks through doors), with manual reset
flags, immediate resets with and without seeds, and compares every output at every step.
The core's internal state views are never used in the assertions.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import escape_room_env as er
import escape_room_env.reference as ref_mod
from escape_room_env.reference import ReferenceEscapeRoomEnv, ReferenceWorld

TOL = 1e-4
STEPS = 2000

# Per-agent float outputs (native tensor name, reference attribute) and exact outputs.
FLOAT_OUTPUTS = (("observation", "observation"), ("reward", "reward"), ("progress", "progress"))
EXACT_OUTPUTS = (
    "done",
    "termination_reason",
    "terminated",
    "truncated",
    "steps_remaining",
    "elapsed_steps",
    "doors_opened",
)
FINAL_OUTPUTS = (("final_observation", "final_observation"), ("final_progress", "final_progress"))
FINAL_EXACT = ("final_elapsed_steps", "final_doors_opened")


class Pair:
    """A one-world SimManager and a ReferenceWorld built from the same configuration."""

    def __init__(self, *, num_agents, rooms, mode, seed, reference_kwargs=None, native_kwargs=None):
        self.mode = mode
        self.sim = er.SimManager(
            num_worlds=1,
            rand_seed=seed,
            num_agents=num_agents,
            rooms=rooms,
            autoreset_mode=mode,
            num_threads=1,
            **(native_kwargs or {}),
        )
        kwargs = {"num_agents": num_agents, "rooms": rooms, "seed": seed, "autoreset_mode": mode}
        kwargs.update(reference_kwargs or {})
        self.ref = ReferenceWorld(**kwargs)
        self.num_agents = num_agents
        self.views = {
            name: getattr(self.sim, f"{name}_tensor")().to_numpy()
            for name in (
                "action",
                "reset",
                "observation",
                "reward",
                "progress",
                "final_observation",
                "final_progress",
                *EXACT_OUTPUTS,
                *FINAL_EXACT,
            )
        }
        self.max_diff = 0.0
        self.hash_checks = 0

    def step(self, actions):
        self.views["action"][0] = actions
        self.sim.step()
        self.ref.step(actions)

    def reset_flag(self):
        self.views["reset"][0] = 1
        self.ref.reset_flag = 1

    def reset_now(self, seed=None, reseed=False):
        if seed is None:
            self.sim.reset_worlds(np.array([True]))
        elif reseed:
            self.sim.reseed(seed)  # world 0 gets seed + 0
        else:
            self.sim.reset_worlds(np.array([True]), seeds=[seed])
        self.ref.reset_episode(seed)

    def check_hash(self):
        assert int(self.sim.state_hashes()[0]) == self.ref.state_hash(), "state hash"
        self.hash_checks += 1


def compare(pair: Pair, where: str = "") -> float:
    """Asserts the native world and the reference show the same outputs; returns the max
    absolute difference of the float outputs."""
    v, r, A = pair.views, pair.ref, pair.num_agents
    worst = 0.0
    for native_name, ref_name in FLOAT_OUTPUTS + FINAL_OUTPUTS:
        native = v[native_name][0].reshape(A, -1).astype(np.float64)
        mine = np.asarray(getattr(r, ref_name), dtype=np.float64).reshape(A, -1)
        diff = float(np.max(np.abs(native - mine)))
        if not diff <= TOL:
            agent, k = (int(i) for i in np.unravel_index(np.argmax(np.abs(native - mine)), native.shape))
            raise AssertionError(
                f"{where}: {native_name}[agent {agent}][{k}]: native {native[agent, k]:.9g}, "
                f"reference {mine[agent, k]:.9g} (|diff| {diff:.3g})"
            )
        worst = max(worst, diff)
    for name in EXACT_OUTPUTS + FINAL_EXACT:
        native = v[name][0].reshape(-1)
        mine = np.broadcast_to(np.asarray(getattr(r, name)), native.shape)
        if not np.array_equal(native.astype(np.int64), mine.astype(np.int64)):
            raise AssertionError(f"{where}: {name} native {native.tolist()} reference {mine.tolist()}")
    pair.max_diff = max(pair.max_diff, worst)
    return worst


def steer(obs_row: np.ndarray) -> list[int]:
    """A small hand-written policy from one agent's observation: to the nearest button
    while the band's door is closed, otherwise through the door (or to the exit)."""
    door_theta, door_open = obs_row[7], obs_row[8]
    entity_theta, entity_type = obs_row[10], obs_row[11]
    is_button = abs(entity_type - 1.0 / 6.0) < 1e-6
    theta = entity_theta if (door_open < 0.5 and is_button) else door_theta
    angle = int(np.rint(theta * 4.0)) % 8  # k·π/4 clockwise from forward
    rotate = 3 if theta > 0.15 else (1 if theta < -0.15 else 2)
    return [3, angle, rotate]


def drive(pair: Pair, steps: int, seed: int) -> None:
    """Steps both sides with the same actions and resets, comparing after every call."""
    rng = np.random.default_rng(seed)
    compare(pair, "construction")
    pair.check_hash()
    steering = True
    for t in range(1, steps + 1):
        if rng.random() < 0.02:
            steering = not steering
        actions = np.stack(
            [
                rng.integers(0, 4, pair.num_agents),
                rng.integers(0, 8, pair.num_agents),
                rng.integers(0, 5, pair.num_agents),
            ],
            axis=1,
        ).astype(np.int32)
        obs = pair.views["observation"][0]
        for a in range(pair.num_agents):
            if steering and rng.random() < 0.8:
                actions[a] = steer(obs[a])
        if rng.random() < 0.02:  # out of range: the core clamps, so does the reference
            actions[rng.integers(pair.num_agents), rng.integers(3)] = rng.choice([-3, 9, 100])

        u = rng.random()
        frozen = pair.mode == "disabled" and bool(pair.views["done"][0, 0, 0])
        if u < 0.004 or (frozen and u < 0.15):
            pair.reset_flag()
        elif u < 0.006 or (frozen and u < 0.2):
            seeded = rng.random() < 0.5
            pair.reset_now(seed=int(rng.integers(0, 2**63)) if seeded else None, reseed=rng.random() < 0.5)
            compare(pair, f"reset_worlds before step {t}")
            pair.check_hash()
        pair.step(actions)
        compare(pair, f"step {t}")
        if t % 250 == 0 or pair.views["done"][0, 0, 0]:
            pair.check_hash()


CONFIGS = [
    # (num_agents, rooms, autoreset mode, seed)
    (1, ["button"], "same_step", 1),
    (1, ["cube_blocking"], "next_step", 2),
    (1, ["cube_button"], "disabled", 3),
    (1, None, "same_step", 4),
    (1, None, "next_step", 5),
    (2, ["double_button"], "same_step", 6),
    (2, ["button"], "next_step", 7),
    (2, ["cube_blocking"], "disabled", 8),
    (2, ["cube_button"], "same_step", 9),
    (2, None, "next_step", 10),
    (2, None, "disabled", 11),
]


@pytest.mark.parametrize(("num_agents", "rooms", "mode", "seed"), CONFIGS)
def test_native_core_matches_reference(num_agents, rooms, mode, seed):
    pair = Pair(num_agents=num_agents, rooms=rooms, mode=mode, seed=seed)
    drive(pair, STEPS, seed)
    # Shown with `pytest -rP`: the largest float difference seen (0 while the two agree bit for bit).
    print(
        f"A={num_agents} rooms={rooms} {mode}: max |diff| {pair.max_diff:.3g}, {pair.hash_checks} hashes equal"
    )


@pytest.mark.parametrize("num_agents", [3, 4])
def test_native_core_matches_reference_with_more_agents(num_agents):
    pair = Pair(
        num_agents=num_agents, rooms=["double_button", "cube_button"], mode="same_step", seed=20 + num_agents
    )
    drive(pair, 400, 20 + num_agents)


def test_random_steps_reach_every_event():
    """The driver exercises what it claims to: doors open, agents escape, episodes time out."""
    pair = Pair(num_agents=1, rooms=["button"], mode="same_step", seed=1)
    reasons, doors = set(), 0
    rng = np.random.default_rng(1)
    for _ in range(1000):
        pair.step(steer(pair.views["observation"][0, 0]) if rng.random() < 0.9 else [0, 0, 2])
        reasons.add(int(pair.ref.termination_reason))
        doors = max(doors, pair.ref.final_doors_opened, pair.ref.doors_opened)
    compare(pair)
    assert reasons >= {-1, 1} and doors == 1


# A deliberate rule change in the reference (a patched constant or rule function) or in the
# native core (a changed reward setting; the core's rules are compiled) must make the
# differential comparison fail.
RULE_CHANGES = [
    ("agent radius 1.0 -> 1.02", {"AGENT_RADIUS": np.float32(1.02)}, {}, {}),
    ("cube half-extent 1.5 -> 1.49", {"CUBE_HALF": np.float32(1.49)}, {}, {}),
    ("slack penalty 0.005 -> 0.006", {}, {"reward": {"slack_penalty": 0.006}}, {}),
    (
        "latching door becomes momentary",
        {"door_is_momentary": lambda kind: kind in ("cube_button", "button")},
        {},
        {},
    ),
    ("native: progress scale 0.05 -> 0.051", {}, {}, {"reward": {"progress_scale": 0.051}}),
    ("native: episode length 200 -> 199", {}, {}, {"episode_len": 199}),
]


@pytest.mark.parametrize(
    ("name", "constants", "reference_kwargs", "native_kwargs"), RULE_CHANGES, ids=[c[0] for c in RULE_CHANGES]
)
def test_deliberate_rule_change_is_caught(name, constants, reference_kwargs, native_kwargs, monkeypatch):
    for constant, value in constants.items():
        monkeypatch.setattr(ref_mod, constant, value)
    pair = Pair(
        num_agents=1,
        rooms=["button", "cube_blocking"],
        mode="same_step",
        seed=1,
        reference_kwargs=reference_kwargs,
        native_kwargs=native_kwargs,
    )
    with pytest.raises(AssertionError) as caught:
        drive(pair, STEPS, 1)
    print(f"{name}: {caught.value}")


def test_gymnasium_env_matches_native_env():
    """ReferenceEscapeRoomEnv and EscapeRoomEnv: same spaces, resets (seeded and not) and steps."""
    native = er.EscapeRoomEnv(seed=7, rooms=["button", "cube_button"])
    mine = ReferenceEscapeRoomEnv(seed=7, rooms=["button", "cube_button"])
    assert mine.observation_space == native.observation_space
    assert mine.action_space == native.action_space
    rng = np.random.default_rng(0)
    for episode in range(3):
        seed = 11 if episode == 1 else None
        (o1, i1), (o2, i2) = native.reset(seed=seed), mine.reset(seed=seed)
        np.testing.assert_allclose(o2, o1, atol=TOL)
        assert i1 == i2
        for _ in range(120):
            action = np.array(
                steer(o1) if rng.random() < 0.7 else native.action_space.sample(), dtype=np.int64
            )
            o1, r1, te1, tr1, i1 = native.step(action)
            o2, r2, te2, tr2, i2 = mine.step(action)
            np.testing.assert_allclose(o2, o1, atol=TOL)
            assert abs(r1 - r2) <= TOL and (te1, tr1) == (te2, tr2)
            assert i1.keys() == i2.keys() and all(abs(i1[k] - i2[k]) <= TOL for k in i1)
            assert type(r2) is float and type(te2) is bool
    native.close()


def test_reference_env_passes_gymnasium_check_env():
    check_env(ReferenceEscapeRoomEnv(seed=0), skip_render_check=True)


def test_multi_agent_env_shapes():
    env = ReferenceEscapeRoomEnv(num_agents=2, seed=0, autoreset_mode="next_step")
    obs, info = env.reset(seed=0)
    assert obs.shape == (2, 90) and env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert reward.shape == (2,) and info["progress"].shape == (2,)
    assert type(terminated) is bool and type(truncated) is bool
    assert env.action_space.shape == (2, 3)


def test_state_roundtrip_and_writes():
    world = ReferenceWorld(num_agents=2, seed=3)
    state, obs, h = world.get_state(), world.observation.copy(), world.state_hash()
    world.set_state(**{k: v for k, v in state.items() if k not in ("seed", "episode")})
    np.testing.assert_array_equal(world.observation, obs)
    assert world.state_hash() == h
    # Open the first door by hand: its observation slot shows it, and the agents walk through.
    world.set_state(door_open=[True, False, False])
    assert world.observation[0, 8] == 1.0 and world.doors_opened == 1
    assert world.state_hash() != h


def test_reference_docstring_examples_run():
    result = doctest.testmod(ref_mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_double_button_needs_two_agents():
    with pytest.raises(ValueError, match="double_button"):
        ReferenceWorld(num_agents=1, rooms=["double_button"])
