"""Plumbing shared by the gymnasium env, the vector env and the SB3 adapter (internal): the
options every env takes and the simulator they build, devices, the info tensors, observation
views, top-down frames and the call lock."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

import numpy as np
from gymnasium.vector import AutoresetMode
from typing_extensions import TypedDict

from escape_room_env import _core, spaces
from escape_room_env.config import RewardConfig, as_int
from escape_room_env.errors import EscapeRoomError
from escape_room_env.manager import ExecMode, SimManager

if TYPE_CHECKING:
    import torch
    from gymnasium.spaces import Box

    from escape_room_env.tensor import Tensor

    #: What the envs return: numpy arrays, or torch tensors with ``device="cuda"``.
    Array = np.ndarray | torch.Tensor
    #: An (rgb, depth) pair of views, both numpy or both torch.
    ImagePair = tuple[np.ndarray, np.ndarray] | tuple[torch.Tensor, torch.Tensor]
    #: Numpy or torch, the same for every argument and the result.
    _A = TypeVar("_A", np.ndarray, torch.Tensor)

_F = TypeVar("_F", bound=Callable[..., Any])


class SimOptions(TypedDict, total=False):
    """The simulator options every env takes (the vector env documents them; the single env and
    the SB3 adapter forward them)."""

    num_agents: int
    rooms: Sequence[str] | None
    levels: Any
    seed: int | None
    num_threads: int | None
    episode_len: int | None
    max_episode_steps: int | None
    reward: RewardConfig | Mapping[str, float] | None
    render_width: int
    render_height: int


def make_sim(
    num_worlds: int,
    *,
    autoreset_mode: AutoresetMode,
    device: Any = "cpu",
    obs_mode: str = "vector",
    num_agents: int = 1,
    rooms: Sequence[str] | None = None,
    levels: Any = None,
    seed: int | None = None,
    num_threads: int | None = None,
    episode_len: int | None = None,
    max_episode_steps: int | None = None,
    reward: RewardConfig | Mapping[str, float] | None = None,
    render_width: int = 64,
    render_height: int = 64,
) -> SimManager:
    """The simulator of an env: ``num_worlds`` worlds with the env options (SPEC §7)."""
    check_obs_mode(obs_mode, autoreset_mode)
    exec_mode, gpu_id = parse_device(device)
    return SimManager(
        exec_mode,
        gpu_id,
        num_worlds,
        fresh_seed() if seed is None else as_int("seed", seed),
        num_agents=num_agents,
        autoreset_mode=autoreset_mode,
        num_threads=num_threads,
        rooms=rooms,
        levels=levels,
        episode_len=resolve_episode_len(episode_len, max_episode_steps),
        reward=reward,
        enable_batch_renderer=obs_mode != "vector",
        render_width=render_width,
        render_height=render_height,
    )


def observation_space(sim: SimManager, obs_mode: str) -> Box:
    """One agent's observation space: the bounded flat vector, or the renderer's images."""
    if obs_mode == "vector":
        return spaces.observation_space(sim.num_agents, sim.observation_radius)
    return spaces.pixel_space(obs_mode, *render_size(sim))


def render_size(sim: SimManager) -> tuple[int, int]:
    """(height, width) of the images of a pixel ``obs_mode`` (make_sim turned the renderer on)."""
    size = sim.render_size
    assert size is not None, "a pixel obs_mode needs the batch renderer"
    return size


# Numeric infos: name -> (tensor shown at the step, tensor of the finished episode in SAME_STEP).
INFOS = {
    "progress": ("progress", "final_progress"),
    "termination_reason": ("termination_reason", "termination_reason"),
    "elapsed_step": ("elapsed_steps", "final_elapsed_steps"),
    "doors_opened": ("doors_opened", "final_doors_opened"),
}


def resolve_episode_len(episode_len: int | None, max_episode_steps: int | None) -> int:
    """``max_episode_steps`` is an alias of ``episode_len``; both given must agree."""
    if episode_len is not None and max_episode_steps is not None and episode_len != max_episode_steps:
        raise ValueError(
            f"episode_len={episode_len} and max_episode_steps={max_episode_steps} disagree; "
            "they are the same setting, give one"
        )
    value = episode_len if episode_len is not None else max_episode_steps
    return _core.DEFAULT_EPISODE_LEN if value is None else value


def parse_device(device: Any) -> tuple[ExecMode, int]:
    """``"cpu"``, ``"cuda"``, ``"cuda:k"`` or a ``torch.device`` to (ExecMode, gpu_id)."""
    name = str(device)
    if name == "cpu":
        return ExecMode.CPU, 0
    if name == "cuda" or name.startswith("cuda:"):
        index = name.partition(":")[2]
        if index and not index.isdigit():
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:<index>', got {device!r}")
        return ExecMode.CUDA, int(index or 0)
    raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:<index>', got {device!r}")


def exclusive(method: _F) -> _F:
    """Runs ``method`` holding the env's call lock, or raises at once while another thread holds
    it (as the simulator refuses a second call): a step's results are copied out of the
    simulator's buffers before any other call can overwrite them."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._busy.acquire(blocking=False):
            raise EscapeRoomError(f"this {type(self).__name__} is already running a call in another thread")
        try:
            return method(self, *args, **kwargs)
        finally:
            self._busy.release()

    return cast(_F, call)


def check_render_mode(render_mode: str | None) -> None:
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")


def check_obs_mode(obs_mode: str, autoreset: AutoresetMode) -> None:
    if obs_mode not in spaces.OBS_MODES:
        raise ValueError(
            f"obs_mode must be one of {', '.join(map(repr, spaces.OBS_MODES))}, got {obs_mode!r}"
        )
    if obs_mode != "vector" and autoreset is AutoresetMode.SAME_STEP:
        raise ValueError(
            f"obs_mode={obs_mode!r} needs NEXT_STEP or DISABLED autoreset: the renderer draws the new "
            "episode's first frame, so a SAME_STEP env would have no final image to return"
        )


def import_torch():
    """The ``torch`` module, or an ImportError saying why it is needed."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError(
            "device='cuda' returns torch tensors and needs PyTorch: pip install torch (pick your build)"
        ) from exc
    return torch


@overload
def export(tensor: Tensor, torch_outputs: Literal[False] = False) -> np.ndarray: ...
@overload
def export(tensor: Tensor, torch_outputs: bool) -> Array: ...
def export(tensor: Tensor, torch_outputs: bool = False) -> Array:
    """A zero-copy view of a simulator tensor: numpy, or torch (on the simulator's device)."""
    return tensor.to_torch() if torch_outputs else tensor.to_numpy()


@overload
def observation_views(
    sim: SimManager, obs_mode: str
) -> tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray] | None]: ...
@overload
def observation_views(
    sim: SimManager, obs_mode: str, torch_outputs: bool
) -> tuple[Array | None, ImagePair | None]: ...
def observation_views(
    sim: SimManager, obs_mode: str, torch_outputs: bool = False
) -> tuple[Array | None, tuple[Array, Array] | None]:
    """Zero-copy views of the simulator's observations, one row per env: the flat vector, the
    RGB or the depth images; for ``"rgbd"`` (None, (rgb, depth)) to be joined at each call.
    numpy arrays, or torch tensors with ``torch_outputs``."""
    n = sim.num_worlds * sim.num_agents
    if obs_mode == "vector":
        return export(sim.observation_tensor(), torch_outputs).reshape(n, -1), None
    height, width = render_size(sim)
    rgb = export(sim.rgb_tensor(), torch_outputs).reshape(n, height, width, 3)
    depth = export(sim.depth_tensor(), torch_outputs).reshape(n, height, width, 1)
    if obs_mode == "rgb":
        return rgb, None
    if obs_mode == "depth":
        return depth, None
    return None, (rgb, depth)


def join_rgbd(rgb: _A, depth: _A) -> _A:
    """(..., H, W, 4) float32: RGB as 0..255, then depth in metres (numpy, or torch on the
    images' device)."""
    shape = (*rgb.shape[:-1], 4)
    out = np.empty(shape, dtype=np.float32) if isinstance(depth, np.ndarray) else depth.new_empty(shape)
    out[..., :3] = rgb
    out[..., 3:] = depth
    return out


class TopDownFrames(Sequence):
    """The top-down frame of every env (agents of one world share their world's frame), drawn
    on first access and kept; a snapshot of the moment it is read, not of :meth:`render`'s call."""

    def __init__(self, sim: SimManager, num_agents: int):
        self._sim, self._num_agents = sim, num_agents
        self._frames: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self._sim.num_worlds * self._num_agents

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"env index {index} out of range for {n} envs")
        world = (index % n) // self._num_agents
        if world not in self._frames:
            from escape_room_env.render import Scene, picture

            self._frames[world] = picture(Scene.from_world(self._sim, world))
        return self._frames[world]


def fresh_seed() -> int:
    """A random 63-bit seed from the OS, for ``seed=None`` at construction."""
    return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
