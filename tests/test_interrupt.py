"""Ctrl-C during a long step(nstep) stops after a whole step, with every tensor consistent."""

import signal

import numpy as np
import pytest
from helpers import as_bytes, sigint_after

import escape_room_env as er


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs POSIX signals")
def test_keyboard_interrupt_stops_a_long_step_after_a_whole_step():
    sim = er.SimManager(num_worlds=64, rand_seed=5, num_threads=2, autoreset_mode="same_step")
    sim.action_tensor().to_numpy()[:] = (1, 0, 2)
    with sigint_after(0.2), pytest.raises(KeyboardInterrupt):
        sim.step(nstep=10**9)
    # The manager is usable and consistent: a fresh manager stepped the same number of whole
    # steps matches bit for bit.
    steps_done = int(sim._state("episode")[0]) * 200 + (200 - int(sim._state("steps_left")[0]))
    assert steps_done > 0
    twin = er.SimManager(num_worlds=64, rand_seed=5, num_threads=1, autoreset_mode="same_step")
    twin.action_tensor().to_numpy()[:] = (1, 0, 2)
    twin.step(nstep=steps_done)
    assert np.array_equal(sim.state_hashes(), twin.state_hashes())
    assert np.array_equal(sim.observation_tensor().to_numpy(), twin.observation_tensor().to_numpy())
    sim.step()  # still usable


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs POSIX signals")
def test_keyboard_interrupt_stops_a_long_rollout_and_the_pool_stays_usable():
    sim = er.SimManager(num_worlds=4, rand_seed=5)
    # ~10 M world-steps: seconds on 2 threads, so the signal lands inside the call.
    plan = np.random.default_rng(3).integers(
        0, er.action.NUM_CHOICES, size=(256, 40_000, 1, 3), dtype=np.int32
    )
    states = np.repeat(sim.get_state(), 64)
    with er.Rollout(num_threads=2) as pool:
        with sigint_after(0.2), pytest.raises(KeyboardInterrupt):
            pool.rollout(sim, states, plan, return_observations=False)
        (idle,) = pool._idle.values()
        assert len(idle) == 1  # the interrupted simulator went back to the pool
        # Its tensors show the state it stopped at, observations included: a manager that
        # traces them afresh from that state (an edited key) shows the same.
        stopped = idle[0]
        edited = stopped.get_state()
        edited["observation_key"] ^= 1
        twin = er.SimManager(num_worlds=256, rand_seed=9)
        twin.set_state(edited)
        assert (
            stopped.observation_tensor().to_numpy().tobytes()
            == twin.observation_tensor().to_numpy().tobytes()
        )
        # A later call equals a fresh pool's.
        short = plan[:, :50]
        again = pool.rollout(sim, states, short, return_states=True)
    fresh = er.rollout(sim, states, short, num_threads=1, return_states=True)
    for name in ("observation", "reward", "done", "states"):
        assert as_bytes(getattr(again, name)) == as_bytes(getattr(fresh, name)), name


def test_to_jax_returns_a_copy_of_the_current_values():
    jnp = pytest.importorskip("jax.numpy", reason="jax is an optional dependency")
    sim = er.SimManager(num_worlds=3, rand_seed=1)
    lidar = sim.lidar_tensor()
    copy = lidar.to_jax()
    assert isinstance(copy, jnp.ndarray) and copy.shape == (3, 1, 30, 2) and copy.dtype == jnp.float32
    assert np.array_equal(np.asarray(copy), lidar.to_numpy())
    before = np.asarray(copy).copy()
    sim.action_tensor().to_numpy()[:] = (3, 0, 4)
    sim.step(nstep=3)
    assert np.array_equal(np.asarray(copy), before)  # a copy: later steps do not change it
    assert not np.array_equal(lidar.to_numpy(), before)
