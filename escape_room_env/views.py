"""Named access to one world's entities, MuJoCo style: ``sim.world(w).agent(i).position``.

Views for reading and debugging. On the CPU, array attributes are read-only numpy views of the
simulation's own memory (they change as it steps); on CUDA they are copies of the moment they
are read. Indices are checked against the world's level (its doors, buttons and cubes).

>>> import escape_room_env as er
>>> sim = er.SimManager(num_worlds=2, rand_seed=4)
>>> world = sim.world(1)
>>> agent = world.agent(0)
>>> agent.position.shape, round(agent.yaw, 3) == round(float(sim.host_array("agent_yaw")[1, 0]), 3)
((2,), True)
>>> world.door(0).is_open, world.num_doors, world.level
(False, 3, None)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from escape_room_env.manager import SimManager

__all__ = ["Agent", "Button", "Cube", "Door", "World"]


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _check(kind: str, index: int, count: int) -> int:
    index = int(index)
    if not 0 <= index < count:
        raise IndexError(f"{kind} {index} out of range: this world has {count}")
    return index


class World:
    """World ``w`` of a simulator (``sim.world(w)``)."""

    def __init__(self, sim: SimManager, w: int):
        self._sim, self.index = sim, w

    def _get(self, name: str) -> np.ndarray:
        # [w, ...]: a 0-d view for per-world scalars (seed, episode, ...), not a numpy scalar
        return _read_only(self._sim.host_array(name)[self.index, ...])

    @property
    def _counts(self) -> np.ndarray:  # num_statics, num_doors, num_buttons, num_cubes, num_bands, num_exits
        return self._sim.host_array("level_counts")[self.index]

    @property
    def num_agents(self) -> int:
        return self._sim.num_agents

    @property
    def num_doors(self) -> int:
        return int(self._counts[1])

    @property
    def num_buttons(self) -> int:
        return int(self._counts[2])

    @property
    def num_cubes(self) -> int:
        return int(self._counts[3])

    @property
    def level(self) -> int | None:
        """Index into ``sim.levels`` of the custom level the world plays (None: generated)."""
        return self._sim.level_of_world(self.index)

    @property
    def seed(self) -> int:
        """s_w, the world's random stream (SPEC §2.6)."""
        return int(self._get("seed"))

    @property
    def episode(self) -> int:
        """e_w, the episode of the stream the world plays."""
        return int(self._get("episode"))

    @property
    def steps_left(self) -> int:
        return int(self._get("steps_left"))

    def agent(self, i: int) -> Agent:
        return Agent(self, _check("agent", i, self.num_agents))

    def door(self, k: int) -> Door:
        return Door(self, _check("door", k, self.num_doors))

    def button(self, k: int) -> Button:
        return Button(self, _check("button", k, self.num_buttons))

    def cube(self, k: int) -> Cube:
        return Cube(self, _check("cube", k, self.num_cubes))

    def __repr__(self) -> str:
        return (
            f"<World {self.index}: {self.num_agents} agent(s), {self.num_doors} door(s), level {self.level}>"
        )


class Agent:
    """Agent ``i`` of a world."""

    def __init__(self, world: World, i: int):
        self.world, self.index = world, i

    @property
    def position(self) -> np.ndarray:
        """(x, y) in metres."""
        return self.world._get("agent_pos")[self.index]

    @property
    def yaw(self) -> float:
        """Heading in radians, in (-pi, pi]; 0 faces +y."""
        return float(self.world._get("agent_yaw")[self.index])

    @property
    def progress(self) -> float:
        """The largest y reached this episode, metres."""
        return float(self.world._get("agent_max_y")[self.index])

    @property
    def escaped(self) -> bool:
        return bool(self.world._get("agent_escaped")[self.index])

    @property
    def observation(self) -> np.ndarray:
        """The agent's flat observation (SPEC §3)."""
        return self.world._get("observation")[self.index]


class Door:
    """Door ``k`` of a world's level."""

    def __init__(self, world: World, k: int):
        self.world, self.index = world, k

    @property
    def is_open(self) -> bool:
        return bool(self.world._get("door_open")[self.index])

    @property
    def position(self) -> np.ndarray:
        """The door's centre, metres."""
        return self.world._get("level_door_centre")[self.index]

    @property
    def group(self) -> int:
        """Its button group, 1 to 8 (as ASCII levels write it)."""
        return int(self.world._get("level_door_group")[self.index]) + 1


class Button:
    """Button ``k`` of a world's level."""

    def __init__(self, world: World, k: int):
        self.world, self.index = world, k

    @property
    def position(self) -> np.ndarray:
        """The centre of the button's square, metres."""
        return self.world._get("level_button_pos")[self.index]

    @property
    def pressed(self) -> bool:
        """Whether an agent or a cube is on it now (the core's rule, SPEC §2.4)."""
        return bool(self.world._sim.pressed_buttons()[self.world.index] >> self.index & 1)

    @property
    def group(self) -> int:
        """The door group it opens, 1 to 8."""
        return int(self.world._get("level_button_group")[self.index]) + 1


class Cube:
    """Cube ``k`` of a world."""

    def __init__(self, world: World, k: int):
        self.world, self.index = world, k

    @property
    def position(self) -> np.ndarray:
        """The cube's centre, metres."""
        return self.world._get("cube_pos")[self.index]
