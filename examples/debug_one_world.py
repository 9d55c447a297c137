"""Inspect one world step by step: observations, lidar and the state hash.

Run: python examples/debug_one_world.py
"""

import numpy as np

import escape_room_env as er

sim = er.SimManager(num_worlds=1, rand_seed=3, autoreset_mode="next_step")
act = sim.action_tensor().to_numpy()
act[0, 0] = (er.action.move_amount.FAST, er.action.move_angle.FORWARD, er.action.rotate.NONE)

for step in range(1, 16):
    sim.step()
    x, y, _, max_y, yaw = sim.self_observation_tensor().to_numpy()[0, 0]
    door_r, door_theta, door_open = sim.door_observation_tensor().to_numpy()[0, 0]
    lidar = sim.lidar_tensor().to_numpy()[0, 0]
    print(
        f"step {step:2d}: pos=({x:.3f}, {y:.3f}) (over L) yaw/pi={yaw:+.3f} "
        f"door r={door_r:.3f} theta={door_theta:+.3f} open={int(door_open)} "
        f"lidar ahead={lidar[0, 0] * 40:.2f} m type={round(lidar[0, 1] * 6)} "
        f"reward={sim.reward_tensor().to_numpy()[0, 0, 0]:+.4f} hash={sim.state_hashes()[0]:016x}"
    )
print("entities in this room (r, theta, type/6):")
print(np.round(sim.room_entity_observations_tensor().to_numpy()[0, 0], 3))
