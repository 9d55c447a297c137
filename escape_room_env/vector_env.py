"""``EscapeRoomVectorEnv``: the native simulator as a gymnasium ``VectorEnv`` (SPEC §7).

Agents are flattened into envs: env i is agent ``i % num_agents`` of world ``i // num_agents``,
so a parameter-shared policy sees one row per agent.

Two output backends share one code path: numpy arrays (``device="cpu"``) and torch tensors
(``device="cuda"``, which keeps everything on the GPU). The torch backend also runs on a CPU
simulator (``torch_outputs=True``), so that machines without a GPU test every
line of it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from escape_room_env import _core, spaces
from escape_room_env._env_common import (
    INFOS,
    TopDownFrames,
    check_render_mode,
    exclusive,
    export,
    import_torch,
    join_rgbd,
    make_sim,
    observation_space,
    observation_views,
    parse_device,
)
from escape_room_env.config import RewardConfig, as_int, parse_autoreset
from escape_room_env.manager import ExecMode, SimManager

if TYPE_CHECKING:
    import torch
    from gymnasium.spaces import Box, Discrete, MultiDiscrete

    from escape_room_env._env_common import Array

__all__ = ["EscapeRoomVectorEnv"]

_ACTION_NAMES = ("move_amount", "move_angle", "rotate")


class EscapeRoomVectorEnv(VectorEnv):
    """``num_envs`` escape-room agents stepped together by the native core.

    Args:
        num_envs: number of agents in total (``num_envs / num_agents`` worlds).
        num_agents: agents per world, 1 to 4 (a multiple-agent world shares done flags).
        rooms: room types of the generated level (default: the sequence for num_agents).
        levels: custom levels instead (SPEC §2.7): one or a list, world w plays level w mod n.
        device: ``"cpu"`` (numpy arrays) or ``"cuda"`` / ``"cuda:k"`` (the simulation on that
            GPU, results as torch tensors there; needs the CUDA backend and PyTorch).
        copy: return fresh arrays (default) or the simulator's own buffers (zero-copy).
        autoreset_mode: ``AutoresetMode.NEXT_STEP`` (default), ``SAME_STEP`` or ``DISABLED``.
        seed: construction seed: world w starts stream ``seed + w`` (None: a random seed).
        num_threads: CPU threads (default: all cores of this process).
        episode_len / max_episode_steps: steps before truncation (aliases; default 200).
        reward: a :class:`~escape_room_env.RewardConfig` or a dict of its fields.
        obs_mode: ``"vector"`` (the flat observation, default), or the batch renderer's
            first-person ``"rgb"``, ``"depth"`` or ``"rgbd"`` images (NEXT_STEP or DISABLED).
        render_width / render_height: image size for the pixel ``obs_mode`` (default 64 x 64).
        render_mode: None or ``"rgb_array"``: :meth:`render` returns a lazy sequence of each
            env's top-down frame (rendered on access), as gymnasium's vector ``RecordVideo`` needs.
        action_mode: ``"multi_discrete"`` (default: ``MultiDiscrete([4, 8, 5])``, actions
            (num_envs, 3)) or ``"discrete"`` (``Discrete(160)``, actions (num_envs,): one index
            per env, ``(move_amount * 8 + move_angle) * 5 + rotate``, decoded by the core's step;
            ``EscapeRoomDiscrete-v0``), for clients that only handle Discrete actions.
        torch_outputs: return torch tensors (on the simulation's device) instead of numpy
            arrays; implied by ``device="cuda"``. On the CPU it gives a torch training loop the
            same zero-copy views without conversions, and runs the GPU path's code everywhere.

    >>> import numpy as np, escape_room_env as er
    >>> envs = er.EscapeRoomVectorEnv(num_envs=4, seed=0)
    >>> obs, infos = envs.reset(seed=1)
    >>> obs.shape, obs.dtype, sorted(k for k in infos if not k.startswith("_"))
    ((4, 87), dtype('float32'), ['doors_opened', 'elapsed_step', 'progress', 'termination_reason'])
    >>> obs, rewards, terminated, truncated, infos = envs.step(np.zeros((4, 3), dtype=np.int64))
    >>> rewards.dtype, terminated.dtype, infos["elapsed_step"].tolist()
    (dtype('float32'), dtype('bool'), [1, 1, 1, 1])
    >>> envs.close()

    With ``device="cuda"`` every result is a torch tensor on the simulation's GPU, with the
    numpy results' shapes and dtypes (obs float32, rewards float32, flags bool, infos and their
    ``_key`` masks as tensors, the same keys); ``copy=True`` gives clones, ``copy=False`` the
    simulator's own buffers as tensors. Actions go to the core as they are when they are an
    int32/int64 tensor on that GPU (no copy, no host round trip); numpy actions are moved there
    first; a tensor on another device raises ``ValueError``. ``options["reset_mask"]`` may be a
    numpy array or a bool tensor. In SAME_STEP mode, ``infos["final_obs"]`` is one (N, D)
    float32 tensor instead of gymnasium's object array: rows of the envs that finished hold
    their terminal observations, the other rows are zero, and ``infos["_final_obs"]`` marks
    which is which (``final_info`` holds tensors the same way); as on numpy, both keys appear
    only on steps where some env finished.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": ["rgb_array"], "render_fps": 10}
    single_observation_space: Box
    single_action_space: MultiDiscrete | Discrete

    def __init__(
        self,
        num_envs: int = 1024,
        *,
        num_agents: int = 1,
        rooms: Sequence[str] | None = None,
        levels: Any = None,
        device: Any = "cpu",
        copy: bool = True,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        seed: int | None = None,
        num_threads: int | None = None,
        episode_len: int | None = None,
        max_episode_steps: int | None = None,
        reward: RewardConfig | Mapping[str, float] | None = None,
        obs_mode: str = "vector",
        render_width: int = 64,
        render_height: int = 64,
        render_mode: str | None = None,
        torch_outputs: bool = False,
        action_mode: str = "multi_discrete",
    ):
        options = {name: value for name, value in locals().items() if name not in ("self", "__class__")}
        num_envs = as_int("num_envs", num_envs)
        num_agents = as_int("num_agents", num_agents)
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        valid_agents = 1 <= num_agents <= _core.MAX_AGENTS  # else the core names the bad value
        if valid_agents and num_envs % num_agents:
            raise ValueError(
                f"num_envs={num_envs} must be a multiple of num_agents={num_agents} "
                "(env i is agent i % num_agents of world i // num_agents)"
            )
        check_render_mode(render_mode)
        spaces.action_space(action_mode)  # a bad action_mode raises before any allocation
        exec_mode, _ = parse_device(device)
        torch_outputs = bool(torch_outputs) or exec_mode is ExecMode.CUDA
        if torch_outputs:
            import_torch()  # before any allocation on the GPU
        sim = make_sim(
            num_envs // num_agents if valid_agents else num_envs,
            autoreset_mode=parse_autoreset(autoreset_mode, True),
            device=device,
            obs_mode=obs_mode,
            num_agents=num_agents,
            rooms=rooms,
            levels=levels,
            seed=seed,
            num_threads=num_threads,
            episode_len=episode_len,
            max_episode_steps=max_episode_steps,
            reward=reward,
            render_width=render_width,
            render_height=render_height,
        )
        self._bind(
            sim,
            copy=copy,
            device=device,
            obs_mode=obs_mode,
            render_mode=render_mode,
            torch_outputs=torch_outputs,
            action_mode=action_mode,
        )
        self._options = options

    def _bind(
        self,
        sim: SimManager,
        *,
        copy: bool,
        device: Any,
        obs_mode: str = "vector",
        render_mode: str | None = None,
        torch_outputs: bool = False,
        action_mode: str = "multi_discrete",
    ) -> None:
        """Takes ``sim`` as this env's simulator: spaces, metadata and zero-copy views (numpy
        arrays, or torch tensors on the simulator's device with ``torch_outputs``)."""
        num_envs = sim.num_worlds * sim.num_agents
        mode = sim.autoreset_mode
        self.sim = sim
        self._busy = threading.Lock()  # see _env_common.exclusive
        self.num_envs = num_envs
        self.num_agents = sim.num_agents
        self.num_worlds = sim.num_worlds
        self.copy = bool(copy)
        self.device = str(device)
        self.render_mode = render_mode
        self.obs_mode = obs_mode
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.single_observation_space = observation_space(sim, obs_mode)
        self.action_mode = action_mode
        self.single_action_space = spaces.action_space(action_mode)
        self._flat = action_mode == "discrete"
        self._action_shape = (num_envs,) if self._flat else (num_envs, 3)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

        # Views of the simulator's buffers, flattened to one row per env (no copies).
        self._torch = import_torch() if torch_outputs else None
        self._obs, self._rgbd = observation_views(sim, obs_mode, torch_outputs)
        self._rewards = export(sim.reward_tensor(), torch_outputs).reshape(num_envs)
        self._terminated = export(sim.terminated_tensor(), torch_outputs).reshape(num_envs)
        self._truncated = export(sim.truncated_tensor(), torch_outputs).reshape(num_envs)
        self._final_obs = export(sim.final_observation_tensor(), torch_outputs).reshape(num_envs, -1)
        self._info_views = {
            k: export(sim.tensor(now), torch_outputs).reshape(num_envs) for k, (now, _) in INFOS.items()
        }
        self._final_views = {
            k: export(sim.tensor(end), torch_outputs).reshape(num_envs) for k, (_, end) in INFOS.items()
        }
        obs_rows = (num_envs, sim.obs_dim)
        if self._torch is None:
            self._all_envs = _read_only(np.ones(num_envs, dtype=np.bool_))
            self._running = _read_only(np.full(num_envs, -1, dtype=np.int32))
            self._action_type, self._action_dtypes = np.ndarray, (np.int64, np.int32)
            # Every view is numpy here (torch below): the copier only ever sees numpy arrays.
            self._fresh = cast("Callable[[Array], Array]", np.ndarray.copy)
            self._new_obs: Callable[[], Array] = functools.partial(np.empty, obs_rows, np.float32)
        else:
            torch = self._torch
            self._torch_device = dev = self._rewards.device
            # Shared by every step's infos as numpy's read-only constants are; torch tensors
            # cannot be made read-only, so with copy=True the masks are cloned per call.
            self._all_envs = torch.ones(num_envs, dtype=torch.bool, device=dev)
            self._running = torch.full((num_envs,), -1, dtype=torch.int32, device=dev)
            self._action_type, self._action_dtypes = torch.Tensor, (torch.int64, torch.int32)
            self._fresh = torch.Tensor.clone
            self._new_obs = functools.partial(torch.empty, obs_rows, dtype=torch.float32, device=dev)
        self._share_masks = self._torch is None or not self.copy
        # The core takes numpy or torch (any DLPack) arrays; nanobind's generated _core.pyi types
        # every ndarray parameter as a numpy NDArray, hence the cast.
        self._step_actions = cast("Callable[[Array, bool, Array | None, bool], int]", sim.step_actions)
        if sim.exec_mode is ExecMode.CUDA:
            # The core reads the actions on the simulator's stream: first let the work queued on
            # the caller's current stream (the policy that wrote them) finish. The step itself
            # returns finished, so its results are complete on every stream.
            current_stream, core_step = import_torch().cuda.current_stream, self._step_actions
            gpu = self._rewards.device

            def step_after_callers_stream(
                actions: Array, refuse_done: bool, obs_out: Array | None, flat: bool
            ) -> int:
                current_stream(gpu).synchronize()
                return core_step(actions, refuse_done, obs_out, flat)

            self._step_actions = step_after_callers_stream
        self._refuse_done = mode is AutoresetMode.DISABLED
        self._same_step = mode is AutoresetMode.SAME_STEP
        self._copy_vector_obs = self.copy and obs_mode == "vector"
        self._zero_copy_views: tuple[Array, Array, Array, Array] | None = None
        if not self.copy and not self._same_step and self._obs is not None:  # (None with "rgbd")
            self._zero_copy_views = (self._obs, self._rewards, self._terminated, self._truncated)
            self._zero_copy_infos = self._infos(self._all_envs)

    @property
    def autoreset_mode(self) -> AutoresetMode:
        return self.metadata["autoreset_mode"]

    @property
    def torch_outputs(self) -> bool:
        """True when steps return torch tensors (``torch_outputs=True``, or any CUDA env)."""
        return self._torch is not None

    def __reduce__(self) -> tuple:
        """Pickles and copies (``copy.deepcopy``) through the simulator's state: an independent
        twin whose continuation equals this env's (gymnasium's ``np_random`` included)."""
        if self.closed:
            raise ValueError("a closed EscapeRoomVectorEnv cannot be copied")
        return (_rebuild, (type(self), self._options, self.sim.snapshot(), _random_state(self)))

    # -- gymnasium API ----------------------------------------------------------------------

    @exclusive
    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Array, dict[str, Any]]:
        """Starts new episodes in every world, or in the worlds of ``options["reset_mask"]``.

        ``seed``: an int s gives world w the seed ``s + w``; a list of num_envs entries gives
        world w entry ``w * num_agents`` (None: continue the world's stream); None never reseeds.
        """
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(f"options must be a dict (or None), got {type(options).__name__}")
        if not (
            seed is None
            or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool))
            or (isinstance(seed, Sequence) and not isinstance(seed, (str, bytes)))
        ):
            raise TypeError(
                f"seed must be None, an int, or a list of num_envs={self.num_envs} entries (ints or None); "
                f"got {type(seed).__name__}"
            )
        env_mask = None
        if options is not None and "reset_mask" in options:
            env_mask = self._check_reset_mask(options["reset_mask"])
        world_mask = (
            np.ones(self.num_worlds, dtype=np.bool_) if env_mask is None else env_mask[:: self.num_agents]
        )
        if seed is None:
            self.sim.reset_worlds(world_mask)
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            self.sim.reset_worlds(world_mask, seeds=int(seed))  # first: a bad seed changes nothing
            super().reset(seed=int(seed))
        elif isinstance(seed, Sequence):  # the only other kind the check above lets through
            self._reset_with_seed_list(seed, world_mask)
        if env_mask is None:
            infos = self._infos(self._all_envs)
        elif self._torch is None:
            infos = self._infos(env_mask)
        else:
            infos = self._infos(self._torch.as_tensor(env_mask, device=self._torch_device))
        return self._observation(), infos

    @exclusive
    def step(self, actions) -> tuple[Array, Array, Array, Array, dict[str, Any]]:
        """Steps every world once; actions are (num_envs, 3) int32/int64 (``action_mode="discrete"``:
        (num_envs,) indices): numpy or CPU torch, or with ``device="cuda"`` a tensor on the env's
        GPU (numpy is moved there)."""
        if type(actions) is not self._action_type:
            actions = self._as_array(actions)
        if self._zero_copy_views is None:
            if self._copy_vector_obs:
                # A fresh observation array, filled by the worker threads right after each
                # world's step (cache-hot, in parallel) instead of copied here afterwards.
                obs = self._new_obs()
                self._call_core(actions, obs)
                return self._outputs(obs)
            self._call_core(actions)
            return self._outputs()
        # copy=False without SAME_STEP: the results are the simulator's own buffers and a fresh
        # dict of info views, all made before the step; the step leaves the caches cold, so what
        # runs after it costs more than the same work before it.
        infos = self._zero_copy_infos.copy()
        obs, rewards, terminated, truncated = self._zero_copy_views
        self._call_core(actions)
        return obs, rewards, terminated, truncated, infos

    def _call_core(self, actions: Array, obs_out: Array | None = None) -> None:
        """Validates the actions and steps, in one core call (dtype and shape checked there too);
        with ``obs_out``, the core also copies the new observations into it."""
        try:
            code = self._step_actions(actions, self._refuse_done, obs_out, self._flat)
        except (TypeError, ValueError, RuntimeError):
            self._check_actions_array(actions)  # the same failure, told in this env's terms
            raise
        if code != -1:
            raise self._action_error(code, actions)

    def _check_actions_array(self, actions: Array) -> None:
        if self._torch is not None:
            self._check_dense(actions)
        if actions.dtype not in self._action_dtypes:
            raise TypeError(self._dtype_message(actions.dtype))
        if tuple(actions.shape) != self._action_shape:
            raise ValueError(f"actions must have shape {self._action_shape}, got {tuple(actions.shape)}")
        if self._torch is not None and actions.device != self._torch_device:
            raise ValueError(f"actions are on {actions.device}, but this env runs on {self._torch_device}")

    def _dtype_message(self, dtype: Any) -> str:
        return f"actions must be an int32 or int64 array of shape {self._action_shape}, got dtype {dtype}"

    def _outputs(self, obs: Array | None = None) -> tuple[Array, Array, Array, Array, dict[str, Any]]:
        """The step's results from the simulator's buffers (fresh arrays when ``copy``)."""
        if obs is None:
            obs = self._observation()
        if self.copy:
            fresh = self._fresh
            rewards, terminated, truncated = (
                fresh(self._rewards),
                fresh(self._terminated),
                fresh(self._truncated),
            )
        else:
            rewards, terminated, truncated = self._rewards, self._terminated, self._truncated
        infos = self._infos(self._all_envs)
        if self._same_step:
            done = terminated | truncated
            if isinstance(done, np.ndarray):
                self._add_final_infos(infos, done)
            else:
                self._add_final_tensors(infos, done)
        return obs, rewards, terminated, truncated, infos

    def _observation(self) -> Array:
        """The observations now: the simulator's buffer (a fresh copy when ``copy``), or for
        ``"rgbd"`` always a new array joining the RGB and depth images."""
        obs = self._obs
        if obs is None:
            assert self._rgbd is not None  # observation_views sets one of the two
            return join_rgbd(*self._rgbd)
        return self._fresh(obs) if self.copy else obs

    # A lazy Sequence of frames rather than VectorEnv's tuple: RecordVideo only indexes it.
    def render(self) -> Sequence[np.ndarray] | None:  # type: ignore[override]
        """``render_mode="rgb_array"``: each env's top-down frame (its world's), rendered when
        read; None otherwise."""
        if self.render_mode != "rgb_array":
            return None
        return TopDownFrames(self.sim, self.num_agents)

    def close_extras(self, **kwargs: Any) -> None:
        self.sim.close()

    # -- helpers ----------------------------------------------------------------------------

    def _infos(self, mask: Array) -> dict[str, Any]:
        infos: dict[str, Any] = {}
        masks = mask if mask is self._all_envs and self._share_masks else self._fresh(mask)
        for key, view in self._info_views.items():
            if key == "termination_reason" and self._same_step:
                view = self._running  # a SAME_STEP step always shows a running episode
            infos[key] = self._fresh(view) if self.copy else view
            infos["_" + key] = masks
        return infos

    def _add_final_infos(self, infos: dict[str, Any], done: np.ndarray) -> None:
        """SAME_STEP: gymnasium's ``final_obs`` / ``final_info`` for the envs that finished."""
        if not done.any():
            return
        index = np.flatnonzero(done)
        final_obs = np.full(self.num_envs, None, dtype=object)
        rows = self._final_obs
        assert isinstance(rows, np.ndarray)  # numpy outputs: every view is numpy
        for i in index:
            final_obs[i] = rows[i].copy()
        final_info: dict[str, Any] = {}
        for key, view in self._final_views.items():
            assert isinstance(view, np.ndarray)
            values = np.zeros(self.num_envs, dtype=view.dtype)
            values[index] = view[index]
            final_info[key], final_info["_" + key] = values, done.copy()
        infos["final_obs"], infos["_final_obs"] = final_obs, done.copy()
        infos["final_info"], infos["_final_info"] = final_info, done.copy()

    def _add_final_tensors(self, infos: dict[str, Any], done: torch.Tensor) -> None:
        """SAME_STEP with torch outputs: ``final_obs`` as one (N, D) tensor (zero rows for the
        envs that did not finish) and ``final_info`` as tensors, zero where not finished."""
        if not done.any():
            return
        torch = self._torch
        assert torch is not None
        final_info: dict[str, Any] = {}
        for key, view in self._final_views.items():
            final_info[key], final_info["_" + key] = torch.where(done, view, 0), done.clone()
        infos["final_obs"] = torch.where(done[:, None], self._final_obs, 0.0)
        infos["_final_obs"] = done.clone()
        infos["final_info"], infos["_final_info"] = final_info, done.clone()

    def _as_array(self, actions) -> Array:
        if self._torch is not None:
            return self._as_tensor(actions)
        if hasattr(actions, "detach") and hasattr(actions, "device"):  # a torch tensor
            self._check_dense(actions)
            if actions.device.type != "cpu":
                raise ValueError(f"actions are on {actions.device}, but this env runs on {self.device}")
            return actions.detach().numpy()
        return np.asarray(actions)

    def _check_dense(self, actions: Any) -> None:
        """A torch tensor of actions must be dense: sparse and nested ones have no strided data."""
        layout = str(getattr(actions, "layout", "torch.strided"))
        if getattr(actions, "is_nested", False) or layout != "torch.strided":
            kind = "nested" if getattr(actions, "is_nested", False) else layout.replace("torch.", "")
            raise TypeError(
                f"actions must be a dense int32 or int64 tensor of shape {self._action_shape}, got a {kind} "
                "tensor (use .to_dense())"
            )

    def _as_tensor(self, actions) -> Array:
        """Torch outputs: a tensor goes to the core as it is (the core checks its device, dtype
        and shape); anything else becomes a tensor on the env's device."""
        torch = self._torch
        assert torch is not None
        if isinstance(actions, torch.Tensor):
            return actions
        array = np.asarray(actions)
        if array.dtype != np.int64 and array.dtype != np.int32:
            raise TypeError(self._dtype_message(array.dtype))
        return torch.as_tensor(array, device=self._torch_device)

    def _action_error(self, code: int, actions: Array) -> ValueError:
        if code <= -2:
            world = -2 - code
            env = world * self.num_agents
            return ValueError(
                f"env {env} (world {world}) is done and autoreset_mode is DISABLED: reset it first "
                "with reset(options={'reset_mask': mask})"
            )
        if self._flat:
            return ValueError(
                f"actions[{code}] (the Discrete action of env {code}) is {int(actions[code])}, expected "
                f"0 <= action < {spaces.NUM_DISCRETE_ACTIONS}"
            )
        env, component = divmod(code, 3)
        limit = spaces.action_space().nvec[component]
        return ValueError(
            f"actions[{env}, {component}] ({_ACTION_NAMES[component]} of env {env}) is "
            f"{int(actions[env, component])}, expected 0 <= {_ACTION_NAMES[component]} < {limit}"
        )

    def _check_reset_mask(self, reset_mask: Any) -> np.ndarray:
        # gymnasium's own messages (SyncVectorEnv.reset), then ours for multi-agent worlds.
        if self._torch is not None and isinstance(reset_mask, self._torch.Tensor):
            # Torch outputs: a bool tensor (say, this step's done flags) is a mask too.
            reset_mask = reset_mask.detach().cpu().numpy()
        if not isinstance(reset_mask, np.ndarray):
            raise TypeError(f"`options['reset_mask']` must be a numpy array, got {type(reset_mask)}")
        if reset_mask.shape != (self.num_envs,):
            raise ValueError(
                f"`options['reset_mask']` must have shape `({self.num_envs},)`, got {reset_mask.shape}"
            )
        if reset_mask.dtype != np.bool_:
            raise TypeError(f"`options['reset_mask']` must have `dtype=np.bool_`, got {reset_mask.dtype}")
        if not np.any(reset_mask):
            raise ValueError(
                "`options['reset_mask']` must contain a boolean array with at least one True value, "
                f"got reset_mask={reset_mask}"
            )
        per_world = reset_mask.reshape(self.num_worlds, self.num_agents)
        uneven = np.flatnonzero(per_world.any(axis=1) != per_world.all(axis=1))
        if uneven.size:
            w = int(uneven[0])
            raise ValueError(
                f"`options['reset_mask']` must be equal for all agents of a world; world {w} "
                f"(envs {w * self.num_agents}..{(w + 1) * self.num_agents - 1}) has {per_world[w].tolist()}"
            )
        return reset_mask

    def _reset_with_seed_list(self, seed: Sequence[int | None], world_mask: np.ndarray) -> None:
        seed = list(seed)
        if len(seed) != self.num_envs:
            raise ValueError(
                f"If seeds are passed as a list the length must match num_envs={self.num_envs} "
                f"but got length={len(seed)}."
            )
        seeded = np.zeros(self.num_worlds, dtype=np.bool_)
        values = np.zeros(self.num_worlds, dtype=np.uint64)
        for w in range(self.num_worlds):
            entries = seed[w * self.num_agents : (w + 1) * self.num_agents]
            first = entries[0]
            if any(e is not None and e != first for e in entries[1:]):
                raise ValueError(
                    f"seed list entries {w * self.num_agents}..{(w + 1) * self.num_agents - 1} belong to world {w} "
                    f"and must be None or equal to entry {w * self.num_agents}, got {entries}"
                )
            if first is not None and world_mask[w]:
                first = as_int(f"seed[{w * self.num_agents}]", first)
                if not 0 <= first < 2**64:
                    raise ValueError(f"seed[{w * self.num_agents}] must be in [0, 2**64), got {first}")
                seeded[w], values[w] = True, first
        if seeded.any():
            self.sim.reset_worlds(seeded, seeds=values)
        unseeded = world_mask & ~seeded
        if unseeded.any():
            self.sim.reset_worlds(unseeded)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


_SPACES = ("action_space", "observation_space", "single_action_space", "single_observation_space")


def _random_state(env: Any) -> dict[str, Any]:
    """An env's random generators: gymnasium's ``np_random`` and its spaces' (``sample()``)."""
    spaces = {name: getattr(env, name) for name in _SPACES if hasattr(env, name)}
    return {"np_random": env.np_random.bit_generator.state, "spaces": spaces}


def _rebuild(
    cls: type, options: dict[str, Any], snapshot: dict[str, np.ndarray], random: dict[str, Any]
) -> Any:
    """Unpickles an env (see ``EscapeRoomVectorEnv.__reduce__`` and ``EscapeRoomEnv.__reduce__``)."""
    env = cls(**options)
    env.sim.restore(snapshot)
    env.np_random.bit_generator.state = random["np_random"]
    for name, space in random["spaces"].items():
        setattr(env, name, space)
    return env
