"""elapsed_steps, doors_opened and the final_* tensors of a SAME_STEP done step."""

import numpy as np

import escape_room_env as er


def test_elapsed_steps_counts_the_steps_of_the_shown_episode():
    sim = er.SimManager(num_worlds=2, rand_seed=3, autoreset_mode="next_step", episode_len=5)
    elapsed = sim.elapsed_steps_tensor().to_numpy()
    assert elapsed.shape == (2, 1, 1) and elapsed.dtype == np.int32
    seen = []
    for _ in range(7):
        sim.step()
        seen.append(int(elapsed[0, 0, 0]))
    assert seen == [1, 2, 3, 4, 5, 0, 1]  # 5 steps, the NEXT_STEP reset step, then the new episode


def test_doors_opened_counts_open_doors_and_final_values_describe_the_finished_episode():
    sim = er.SimManager(num_worlds=2, rand_seed=4, autoreset_mode="same_step", episode_len=3)
    # Put world 0's agent on its first button: the latching door opens on the next step.
    sim._state("agent_pos")[0, 0] = sim._state("level_button_pos")[0, 0]
    sim.step()
    doors = sim.doors_opened_tensor().to_numpy()
    assert doors[:, 0, 0].tolist() == [1, 0]
    progress_before = sim.progress_tensor().to_numpy()[:, 0, 0].copy()
    final_progress = sim.final_progress_tensor().to_numpy()
    final_doors = sim.final_doors_opened_tensor().to_numpy()
    final_elapsed = sim.final_elapsed_steps_tensor().to_numpy()
    sim.step(nstep=2)  # the episodes end at the time limit and restart in the same step
    assert sim.done_tensor().to_numpy()[:, 0, 0].tolist() == [1, 1]
    assert final_elapsed[:, 0, 0].tolist() == [3, 3]
    assert final_doors[:, 0, 0].tolist() == [1, 0]
    assert (final_progress[:, 0, 0] >= progress_before).all()
    # The shown episode is the new one.
    assert doors[:, 0, 0].tolist() == [0, 0]
    assert sim.elapsed_steps_tensor().to_numpy()[:, 0, 0].tolist() == [0, 0]
    np.testing.assert_allclose(
        final_progress[:, 0, 0], sim.final_observation_tensor().to_numpy()[:, 0, 3] * 40.0, rtol=1e-6
    )
