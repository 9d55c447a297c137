"""Determinism (SPEC §2.6, §4): same seed, actions and resets give bit-identical tensors and
state hashes, whatever the thread count or the manager; different seeds give different worlds."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import ALL_TENSOR_NAMES, get, random_actions

import escape_room_env as er

TENSOR_NAMES = ALL_TENSOR_NAMES
MODES = ("same_step", "next_step", "disabled")


def snapshot(sim: er.SimManager, skip=()) -> dict[str, bytes]:
    out = {name: get(sim, name).to_numpy().tobytes() for name in TENSOR_NAMES if name not in skip}
    out["state_hashes"] = sim.state_hashes().tobytes()
    return out


def assert_same(a: dict[str, bytes], b: dict[str, bytes], where: str) -> None:
    assert a.keys() == b.keys()
    for name, value in a.items():
        assert value == b[name], f"{name} differs {where}"


def drive_lockstep(sims: list[er.SimManager], steps: int, seed: int) -> dict[str, int]:
    """Steps every manager with the same seeded random actions and resets, comparing every
    tensor and the state hashes of all of them after every step and reset.

    Returns counts of what happened, so callers can check the run was not trivial."""
    rng = np.random.default_rng(seed)
    W, A = sims[0].num_worlds, sims[0].num_agents
    stats = {"done": 0, "flag_resets": 0, "mask_resets": 0, "seeded_resets": 0}
    distinct_hashes = set()

    def check(where):
        ref = snapshot(sims[0])
        for k, sim in enumerate(sims[1:], 1):
            assert_same(ref, snapshot(sim), f"between manager 0 and {k} {where}")
        distinct_hashes.add(ref["state_hashes"])

    check("at construction")
    for step in range(steps):
        act = random_actions(rng, W, A)
        flags = None
        if step % 29 == 3:
            flags = (rng.random(W) < 0.2).astype(np.int32)
            stats["flag_resets"] += int(flags.sum())
        for sim in sims:
            sim.action_tensor().to_numpy()[:] = act
            if flags is not None:
                sim.reset_tensor().to_numpy()[:] = flags
        nstep = 3 if step % 41 == 40 else 1
        for sim in sims:
            sim.step(nstep=nstep)
        stats["done"] += int(sims[0].done_tensor().to_numpy().sum())
        check(f"after step {step}")
        if step % 37 == 5:
            mask = rng.random(W) < 0.3
            for sim in sims:
                sim.reset_worlds(mask)
            stats["mask_resets"] += int(mask.sum())
            check(f"after reset_worlds at step {step}")
        if step % 53 == 11:
            mask = rng.random(W) < 0.3
            seeds = rng.integers(0, 2**63, W, dtype=np.uint64)
            for sim in sims:
                sim.reset_worlds(mask, seeds=seeds)
            stats["seeded_resets"] += int(mask.sum())
            check(f"after seeded reset_worlds at step {step}")
    stats["distinct_hashes"] = len(distinct_hashes)
    return stats


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("num_agents", [1, 2, 3, 4])
def test_same_seed_and_actions_give_identical_tensors_across_threads_and_managers(num_agents, mode):
    W = 67  # not a multiple of the thread counts: uneven chunks
    kwargs = {
        "num_worlds": W,
        "num_agents": num_agents,
        "rand_seed": 1234,
        "episode_len": 45,
        "autoreset_mode": mode,
    }
    sims = [
        er.SimManager(num_threads=1, **kwargs),
        er.SimManager(num_threads=2, **kwargs),
        er.SimManager(num_threads=2, **kwargs),  # a second manager, same config
        er.SimManager(num_threads=3, **kwargs),
    ]
    try:
        stats = drive_lockstep(sims, steps=300, seed=num_agents * 10 + MODES.index(mode))
    finally:
        for sim in sims:
            sim.close()
    assert stats["done"] > 0 and stats["flag_resets"] > 0 and stats["seeded_resets"] > 0
    assert stats["distinct_hashes"] > 250


@pytest.mark.parametrize("num_agents", [1, 3])
def test_a_later_manager_replays_an_earlier_run_exactly(num_agents):
    """The same run twice in sequence (not side by side), with threads 1 then 2."""
    kwargs = {"num_worlds": 64, "num_agents": num_agents, "rand_seed": 555, "episode_len": 60}
    records = []
    for threads in (1, 2):
        rng = np.random.default_rng(99)
        with er.SimManager(num_threads=threads, **kwargs) as sim:
            rec = [snapshot(sim)]
            for step in range(300):
                sim.action_tensor().to_numpy()[:] = random_actions(rng, 64, num_agents)
                sim.step()
                if step % 50 == 7:
                    sim.reset_worlds(rng.random(64) < 0.5)
                rec.append(snapshot(sim))
            records.append(rec)
    for i, (a, b) in enumerate(zip(*records)):
        assert_same(a, b, f"at record {i}")


def test_different_seeds_give_different_worlds():
    with er.SimManager(num_worlds=64, rand_seed=1) as a, er.SimManager(num_worlds=64, rand_seed=1000) as b:
        assert np.all(a.state_hashes() != b.state_hashes())
        oa, ob = a.observation_tensor().to_numpy(), b.observation_tensor().to_numpy()
        assert np.all(np.any(oa != ob, axis=(1, 2))), "some world has the same observation under both seeds"
        sa, sb = a._state("agent_pos"), b._state("agent_pos")
        assert np.all(np.any(sa != sb, axis=(1, 2)))


def test_state_hashes_differ_between_worlds_with_different_seeds():
    with er.SimManager(num_worlds=512, num_agents=2, rand_seed=8) as sim:
        hashes = sim.state_hashes()
        assert hashes.dtype == np.uint64 and hashes.shape == (512,)
        assert len(np.unique(hashes)) == 512
        sim.step(nstep=20)
        assert len(np.unique(sim.state_hashes())) == 512


def test_state_hashes_follow_the_state():
    with er.SimManager(num_worlds=4, rand_seed=8) as a, er.SimManager(num_worlds=4, rand_seed=8) as b:
        np.testing.assert_array_equal(a.state_hashes(), b.state_hashes())
        h0 = a.state_hashes().copy()
        np.testing.assert_array_equal(a.state_hashes(), h0)  # reading does not change it
        a._state("agent_pos")[2, 0, 0] += 0.25  # a position is part of the hash
        h1 = a.state_hashes()
        assert h1[2] != h0[2]
        np.testing.assert_array_equal(np.delete(h1, 2), np.delete(h0, 2))
        a.action_tensor().to_numpy()[:] = (er.action.move_amount.FAST, 0, 2)
        a.step()
        assert np.all(a.state_hashes() != h1)


def test_world_w_draws_from_seed_rand_seed_plus_w():
    """SPEC §2.6: s_w = rand_seed + w, so world w + 1 of seed s is world w of seed s + 1."""
    rng = np.random.default_rng(17)
    with (
        er.SimManager(num_worlds=9, num_agents=2, rand_seed=500) as a,
        er.SimManager(num_worlds=8, num_agents=2, rand_seed=501) as b,
    ):
        for step in range(120):
            act = random_actions(rng, 9, 2)
            a.action_tensor().to_numpy()[:] = act
            b.action_tensor().to_numpy()[:] = act[1:]
            a.step()
            b.step()
            oa = a.observation_tensor().to_numpy()[1:]
            ob = b.observation_tensor().to_numpy()
            assert oa.tobytes() == ob.tobytes(), f"step {step}"
            assert a._state("level_statics")[1:].tobytes() == b._state("level_statics").tobytes()
            np.testing.assert_array_equal(a._state("seed")[1:], b._state("seed"))


@pytest.mark.parametrize("mode", MODES)
def test_reseed_reproduces_a_fresh_manager(mode):
    rng = np.random.default_rng(23)
    kwargs = {"num_worlds": 32, "num_agents": 2, "episode_len": 30, "autoreset_mode": mode}
    # final_* tensors are not written by a reset (SPEC §2.5), so they keep the old run's rows.
    skip = ("final_observation", "final_progress", "final_elapsed_steps", "final_doors_opened")
    with er.SimManager(rand_seed=3, **kwargs) as used, er.SimManager(rand_seed=777, **kwargs) as fresh:
        for _ in range(70):
            used.action_tensor().to_numpy()[:] = random_actions(rng, 32, 2)
            used.step()
        fresh_start = snapshot(fresh, skip)
        used.reseed(777)
        used.action_tensor().to_numpy()[:] = fresh.action_tensor().to_numpy()
        assert_same(fresh_start, snapshot(used, skip), "right after reseed")
        np.testing.assert_array_equal(used._state("seed"), 777 + np.arange(32, dtype=np.uint64))
        np.testing.assert_array_equal(used._state("episode"), 0)
        for step in range(100):
            act = random_actions(rng, 32, 2)
            used.action_tensor().to_numpy()[:] = act
            fresh.action_tensor().to_numpy()[:] = act
            used.step()
            fresh.step()
            assert_same(snapshot(fresh, skip), snapshot(used, skip), f"at step {step} after reseed")


def test_reset_worlds_with_a_seed_restarts_that_seeds_stream():
    """A world reset with seed s is the same world as world 0 of a manager with rand_seed s."""
    rng = np.random.default_rng(29)
    with er.SimManager(num_worlds=6, rand_seed=10) as sim, er.SimManager(num_worlds=1, rand_seed=4242) as ref:
        sim.step(nstep=25)
        mask = np.array([0, 0, 1, 0, 0, 0], dtype=bool)
        sim.reset_worlds(mask, seeds=np.full(6, 4242, dtype=np.uint64))
        obs, ref_obs = sim.observation_tensor().to_numpy(), ref.observation_tensor().to_numpy()
        assert obs[2].tobytes() == ref_obs[0].tobytes()
        assert sim.state_hashes()[2] == ref.state_hashes()[0]
        for _ in range(50):
            act = random_actions(rng, 6, 1)
            sim.action_tensor().to_numpy()[:] = act
            ref.action_tensor().to_numpy()[:] = act[2:3]
            sim.step()
            ref.step()
            assert obs[2].tobytes() == ref_obs[0].tobytes()
            assert sim.reward_tensor().to_numpy()[2].tobytes() == ref.reward_tensor().to_numpy()[0].tobytes()


def test_unseeded_reset_starts_the_next_episode_of_the_worlds_stream():
    with er.SimManager(num_worlds=16, rand_seed=5) as a, er.SimManager(num_worlds=16, rand_seed=5) as b:
        h0 = a.state_hashes().copy()
        statics0 = a._state("level_statics").copy()
        a.reset_worlds()
        b.reset_worlds()
        np.testing.assert_array_equal(a._state("episode"), 1)
        np.testing.assert_array_equal(a._state("seed"), 5 + np.arange(16, dtype=np.uint64))
        assert np.all(a.state_hashes() != h0)
        # A new level: the door positions differ in every world.
        assert np.all(np.any(a._state("level_statics") != statics0, axis=(1, 2)))
        # Deterministic nonetheless.
        assert_same(snapshot(a), snapshot(b), "after an unseeded reset")
        # A reset through the reset flag is the same kind of reset.
        c = er.SimManager(num_worlds=16, rand_seed=5)
        c.reset_tensor().to_numpy()[:] = 1
        c.action_tensor().to_numpy()[:] = 0
        a.action_tensor().to_numpy()[:] = 0
        c.step()
        assert a.observation_tensor().to_numpy().tobytes() == c.observation_tensor().to_numpy().tobytes()
        np.testing.assert_array_equal(a.state_hashes(), c.state_hashes())
        c.close()
