"""No reachable state holds a NaN or an infinity (issue 22 item 9).

The CPU and CUDA backends produce the same bits for finite values only (a NaN's payload bits
differ between them), so bit-identity across backends rests on every state being finite. Random
play, biased towards walking forward fast so that bodies collide, doors open and episodes end,
over every room type, agent count and reset mode, and the shipped custom levels.
"""

import numpy as np
import pytest
from helpers import one_thread_manager

import escape_room_env as er

WORLDS, STEPS = 48, 360
FLOAT_TENSORS = ("observation", "final_observation", "reward", "progress", "final_progress")
FLOAT_STATE = ("agent_pos", "agent_yaw", "agent_max_y", "cube_pos")


def level_sets(agents: int):
    first = "double_button" if agents >= 2 else "button"
    yield "rooms", {"rooms": [first, "cube_blocking", "cube_button"]}
    yield "rooms-reversed", {"rooms": ["cube_button", "cube_blocking", first, "cube_button"]}
    yield (
        "levels",
        {"levels": ["cooperation"] if agents == 2 else (["corridor", "maze"] if agents == 1 else None)},
    )


def configs():
    for agents in (1, 2, 3, 4):
        for mode in ("NEXT_STEP", "SAME_STEP", "DISABLED"):
            for name, kwargs in level_sets(agents):
                if kwargs.get("levels", "") is None:
                    continue
                yield pytest.param(agents, mode, kwargs, id=f"{agents}agents-{mode}-{name}")


def assert_finite(sim: er.SimManager, step: int) -> None:
    for name in FLOAT_TENSORS:
        values = getattr(sim, f"{name}_tensor")().to_numpy()
        assert np.isfinite(values).all(), f"{name} holds a non-finite value after step {step}"
    for name in FLOAT_STATE:
        assert np.isfinite(sim._state(name)).all(), f"state {name} holds a non-finite value after step {step}"


@pytest.mark.parametrize(("agents", "mode", "kwargs"), configs())
def test_random_play_never_produces_a_nan_or_an_infinity(agents, mode, kwargs):
    rng = np.random.default_rng(agents * 100 + len(mode))
    with one_thread_manager(mode, WORLDS, 7, agents, episode_len=90, **kwargs) as sim:
        actions = sim.action_tensor().to_numpy()
        done = sim.done_tensor().to_numpy()
        assert_finite(sim, 0)
        step = 0
        while step < STEPS:
            a = rng.integers(0, er.action.NUM_CHOICES, size=actions.shape)
            forward = rng.random(actions.shape[:2]) < 0.6
            a[forward, 0], a[forward, 1] = 3, 0
            actions[:] = a
            nstep = 5 if step % 7 == 3 else 1  # steps inside step(nstep) skip their observations
            sim.step(nstep)
            step += nstep
            assert_finite(sim, step)
            if mode == "DISABLED" and done[:, 0, 0].any():
                sim.reset_worlds(done[:, 0, 0] != 0)
                assert_finite(sim, step)
