"""``EscapeRoomPufferEnv``: the simulator as a native PufferLib environment (``pufferlib.PufferEnv``).

This is the only module of the package that imports PufferLib. Its ``pufferlib-core`` wheel pins
``torch==2.9.0``; install it without its dependencies so that your own torch build stays, then add
its small pure-Python ones (with theirs: ``--no-deps`` on them would leave ``rich`` without its own)::

    pip install --no-deps pufferlib-core && pip install psutil rich rich-argparse

Without PufferLib this module still imports (so that tools walking the package work), and asking
for :class:`EscapeRoomPufferEnv` raises an ``ImportError`` with that line.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from typing_extensions import Unpack

from escape_room_env import spaces
from escape_room_env._env_common import SimOptions, exclusive, export, make_sim, observation_space
from escape_room_env.config import as_int

__all__ = ["INSTALL", "EscapeRoomPufferEnv"]

#: How to install PufferLib next to an existing torch (its wheel pins torch==2.9.0).
INSTALL = "pip install --no-deps pufferlib-core && pip install psutil rich rich-argparse"

#: The keys of the episode statistics dict (each a mean over the episodes that ended since the last one).
STATS = ("episode_return", "episode_length", "escaped", "progress", "doors_opened", "n")

_ACTION_NAMES = ("move_amount", "move_angle", "rotate")
_BUFFERS = ("observations", "rewards", "terminals", "truncations", "teacher_actions", "masks", "actions")

try:
    import pufferlib
except ImportError as _missing:  # pufferlib-core is optional: see INSTALL
    _IMPORT_ERROR: ImportError | None = _missing
else:
    _IMPORT_ERROR = None


if _IMPORT_ERROR is not None:

    def __getattr__(name: str) -> Any:
        if name == "EscapeRoomPufferEnv":
            raise ImportError(
                f"EscapeRoomPufferEnv needs PufferLib, which is not installed ({_IMPORT_ERROR}). Install it "
                f"without its torch==2.9.0 pin: {INSTALL}"
            ) from _IMPORT_ERROR
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

else:

    class EscapeRoomPufferEnv(pufferlib.PufferEnv):
        """``num_envs`` escape-room worlds as one native PufferLib env: every agent of every world is
        one of its ``num_agents`` rows, stepped by one native call with no per-agent Python.

        PufferLib's conventions, which differ from :class:`~escape_room_env.EscapeRoomVectorEnv`'s:

        - ``num_envs`` counts **worlds** (as in PufferLib's Ocean envs); ``num_agents`` (the
          attribute) is every agent of every world, ``num_envs * agents_per_world``. The
          ``num_agents`` *option* is the simulator's agents per world, as for every env of this
          package; :attr:`agents_per_world` keeps it. Row i is agent ``i % agents_per_world`` of
          world ``i // agents_per_world``.
        - Resets are internal and same-step (the simulator's ``SAME_STEP`` mode, which is what
          PufferLib's native envs do): on the step an episode ends, ``terminals`` (every agent
          escaped) or ``truncations`` (the time limit) is True, the reward is the episode's last,
          and the observation is already the next episode's first.
        - Buffers: without ``buf``, ``observations``, ``rewards``, ``terminals`` and
          ``truncations`` *are* the simulator's own arrays (zero copies per step). With ``buf``
          (PufferLib's vectorization passes slices of its shared memory), the simulator's worker
          threads write each world's new observations straight into ``buf["observations"]`` as
          they finish it, and the rewards and flags (6 bytes an agent) are copied after.
        - ``reset(seed=s)`` gives world w the seed ``s * num_envs + w``, so the consecutive seeds
          ``seed + i`` that ``pufferlib.vector`` hands its envs never give two worlds the same
          random stream. ``reset()`` starts new episodes continuing each world's stream. The
          constructor's ``seed`` is the same mapping (None: a random seed).
        - Episode statistics leave through PufferLib's info list, at most once every
          ``log_interval`` steps: ``[{"episode_return": …, "episode_length": …, "escaped": …,
          "progress": …, "doors_opened": …, "n": …}]``, means over the ``n`` agent-episodes that
          ended since the last report (``escaped``: the fraction ended by escaping; ``progress``:
          the furthest y reached, metres); an empty list otherwise.

        Actions are ``(num_agents, 3)`` int32 or int64 (``single_action_space`` is
        ``MultiDiscrete([4, 8, 5])``: move_amount, move_angle, rotate); the core validates them (a
        wrong dtype or shape raises ``TypeError``, a value out of range ``ValueError`` naming the
        agent and the component).

        Args:
            num_envs: worlds in this env.
            buf: PufferLib's buffers (from ``pufferlib.vector``); None to use the simulator's own.
            seed: construction seed, as for ``reset(seed)`` (None: a random one).
            log_interval: steps between two episode-statistics reports (at least 1).
            num_agents: agents per world, 1 to 4.
            rooms, levels, num_threads, episode_len, max_episode_steps, reward, render_width,
                render_height: the simulator options of :class:`~escape_room_env.EscapeRoomVectorEnv`.

        >>> import numpy as np
        >>> from escape_room_env.puffer import EscapeRoomPufferEnv
        >>> env = EscapeRoomPufferEnv(num_envs=4, num_agents=2, episode_len=3, log_interval=1, num_threads=1)
        >>> env.num_agents, env.single_observation_space.shape, env.single_action_space
        (8, (90,), MultiDiscrete([4 8 5]))
        >>> obs, infos = env.reset(seed=0)
        >>> obs is env.observations, infos
        (True, [])
        >>> for _ in range(3):
        ...     obs, rewards, terminals, truncations, infos = env.step(np.zeros((8, 3), dtype=np.int32))
        >>> truncations.tolist() == [True] * 8, infos[0]["n"], infos[0]["episode_length"]
        (True, 8, 3.0)
        >>> list(infos[0])
        ['episode_return', 'episode_length', 'escaped', 'progress', 'doors_opened', 'n']
        >>> env.close()
        """

        def __init__(
            self,
            num_envs: int = 1,
            *,
            buf: Mapping[str, np.ndarray] | None = None,
            log_interval: int = 128,
            **options: Unpack[SimOptions],
        ):
            num_worlds = as_int("num_envs", num_envs)
            if num_worlds < 1:
                raise ValueError(f"num_envs (worlds) must be >= 1, got {num_worlds}")
            self.log_interval = as_int("log_interval", log_interval)
            if self.log_interval < 1:
                raise ValueError(f"log_interval must be >= 1, got {self.log_interval}")
            seed = options.get("seed")
            if seed is not None:  # world w of reset(seed=s) starts stream s * num_envs + w
                options["seed"] = self._first_world_seed(seed, num_worlds)
            sim = make_sim(num_worlds, autoreset_mode=AutoresetMode.SAME_STEP, **options)
            self.sim = sim
            self._busy = threading.Lock()  # see _env_common.exclusive
            self.num_envs = num_worlds
            self.agents_per_world = sim.num_agents
            self.num_agents = n = num_worlds * sim.num_agents
            self.single_observation_space = observation_space(sim, "vector")
            self.single_action_space = spaces.action_space()

            # The simulator's outputs, one row per agent (views: no copies).
            self._sim_obs = export(sim.observation_tensor()).reshape(n, sim.obs_dim)
            self._sim_rewards = export(sim.reward_tensor()).reshape(n)
            self._sim_terminals = export(sim.terminated_tensor()).reshape(n)
            self._sim_truncations = export(sim.truncated_tensor()).reshape(n)
            self._sim_done = export(sim.done_tensor()).reshape(n)  # terminated | truncated, as int32
            self._final_length = export(sim.final_elapsed_steps_tensor()).reshape(n)
            self._final_progress = export(sim.final_progress_tensor()).reshape(n)
            self._final_doors = export(sim.final_doors_opened_tensor()).reshape(n)

            self._own_buffers = buf is None
            if buf is None:
                buf = {
                    "observations": self._sim_obs,
                    "rewards": self._sim_rewards,
                    "terminals": self._sim_terminals,
                    "truncations": self._sim_truncations,
                    "teacher_actions": np.zeros((n, 3), dtype=np.int32),
                    "masks": np.ones(n, dtype=np.bool_),
                    "actions": np.zeros((n, 3), dtype=np.int32),
                }
            else:
                self._check_buffers(buf, n, sim.obs_dim)
            super().__init__(buf)
            self.masks[:] = True
            # The core writes observations into PufferLib's buffer itself when it is one C-contiguous
            # float32 block (every pufferlib.vector backend's is); otherwise they are copied after.
            self._obs_out = (
                self.observations if not self._own_buffers and self.observations.flags.c_contiguous else None
            )
            self._copy_obs = not self._own_buffers and self._obs_out is None

            self._step_actions = sim.step_actions
            # float32 like the rewards: a mixed-dtype += costs several times more per step.
            self._returns = np.zeros(n, dtype=np.float32)
            self._stats = np.zeros(5, dtype=np.float64)  # return, length, escaped, progress, doors
            self._episodes = 0
            self._steps_since_report = 0

        @staticmethod
        def _first_world_seed(seed: Any, num_worlds: int) -> int:
            """World 0's seed for PufferLib seed ``seed`` (world w gets this + w)."""
            seed = as_int("seed", seed)
            if seed < 0 or (seed + 1) * num_worlds > 2**64:
                raise ValueError(
                    f"seed must be in [0, 2**64 / num_envs) = [0, {2**64 // num_worlds}), got {seed} "
                    f"(world w of an env reset with seed s gets s * num_envs + w)"
                )
            return seed * num_worlds

        @staticmethod
        def _check_buffers(buf: Mapping[str, np.ndarray], n: int, obs_dim: int) -> None:
            missing = [key for key in _BUFFERS if key not in buf]
            if missing:
                raise ValueError(
                    f"buf lacks {', '.join(missing)}; PufferLib's buffers are {', '.join(_BUFFERS)}"
                )
            expected = {
                "observations": ((n, obs_dim), np.float32),
                "rewards": ((n,), np.float32),
                "terminals": ((n,), np.bool_),
                "truncations": ((n,), np.bool_),
                "masks": ((n,), np.bool_),
            }
            for key, (shape, dtype) in expected.items():
                array = buf[key]
                if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype != dtype:
                    got = (
                        f"{array.shape} {array.dtype}"
                        if isinstance(array, np.ndarray)
                        else type(array).__name__
                    )
                    raise ValueError(
                        f"buf[{key!r}] must be a numpy array of shape {shape} and dtype "
                        f"{np.dtype(dtype)}, got {got}"
                    )

        # -- PufferLib API ------------------------------------------------------------------

        @exclusive
        def reset(self, seed: int | None = None) -> tuple[np.ndarray, list[dict[str, float]]]:
            """Starts a new episode in every world (``seed`` s: world w restarts its stream at
            ``s * num_envs + w``; None: each world continues its stream)."""
            if seed is None:
                self.sim.reset_worlds()
            else:
                self.sim.reset_worlds(seeds=self._first_world_seed(seed, self.num_envs))
            if not self._own_buffers:
                np.copyto(self.observations, self._sim_obs)
                self._copy_outputs()
            self._returns[:] = 0.0
            self._stats[:] = 0.0
            self._episodes = self._steps_since_report = 0
            return self.observations, []

        @exclusive
        def step(
            self, actions: np.ndarray
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict[str, float]]]:
            """Steps every world once with ``(num_agents, 3)`` int32/int64 actions; returns
            PufferLib's buffers (observations, rewards, terminals, truncations) and the info list."""
            actions = np.asarray(actions)
            code = self._step_actions(actions, False, self._obs_out)
            if code != -1:
                agent, component = divmod(code, 3)
                limit = self.single_action_space.nvec[component]
                raise ValueError(
                    f"actions[{agent}, {component}] ({_ACTION_NAMES[component]} of agent {agent}) is "
                    f"{int(actions[agent, component])}, expected 0 <= {_ACTION_NAMES[component]} < {limit}"
                )
            if not self._own_buffers:
                if self._copy_obs:
                    np.copyto(self.observations, self._sim_obs)
                self._copy_outputs()
            return self.observations, self.rewards, self.terminals, self.truncations, self._episode_stats()

        def close(self) -> None:
            """Frees the simulator; the buffers stay readable."""
            self.sim.close()

        # -- helpers ------------------------------------------------------------------------

        def _copy_outputs(self) -> None:
            np.copyto(self.rewards, self._sim_rewards)
            np.copyto(self.terminals, self._sim_terminals)
            np.copyto(self.truncations, self._sim_truncations)

        def _episode_stats(self) -> list[dict[str, float]]:
            """Adds the episodes that ended at this step to the running sums (vectorised: no
            per-agent Python); every ``log_interval`` steps, reports their means if any ended."""
            np.add(self._returns, self._sim_rewards, out=self._returns)
            if np.count_nonzero(self._sim_done):
                ended = np.flatnonzero(self._sim_done)
                self._episodes += ended.size
                self._stats += (
                    self._returns[ended].sum(dtype=np.float64),
                    self._final_length[ended].sum(),
                    np.count_nonzero(self._sim_terminals[ended]),
                    self._final_progress[ended].sum(dtype=np.float64),
                    self._final_doors[ended].sum(),
                )
                self._returns[ended] = 0.0
            self._steps_since_report += 1
            if self._steps_since_report < self.log_interval or not self._episodes:
                return []
            means = self._stats / self._episodes
            report = dict(zip(STATS[:-1], means.tolist()))
            report["n"] = self._episodes
            self._stats[:] = 0.0
            self._episodes = self._steps_since_report = 0
            return [report]
