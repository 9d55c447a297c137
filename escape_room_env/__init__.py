"""escape_room_env: batched escape-room worlds in a C++ core, with zero-copy tensors.

>>> import escape_room_env as er
>>> sim = er.SimManager(num_worlds=8, num_agents=2, autoreset_mode="next_step")
>>> sim.step(nstep=10)
>>> sim.observation_tensor().to_numpy().shape
(8, 2, 90)
"""

from escape_room_env import action, madrona, wrappers
from escape_room_env._core import RULES_VERSION
from escape_room_env.config import ROOM_TYPES, AutoresetMode, RewardConfig, default_rooms
from escape_room_env.env import EscapeRoomEnv
from escape_room_env.errors import (
    CudaUnavailableError,
    EscapeRoomError,
    ReplayDivergenceError,
    ReplayFormatError,
)
from escape_room_env.manager import ExecMode, SimManager, Tensor, cuda_available, cuda_unavailable_reason
from escape_room_env.registration import ENV_ID
from escape_room_env.registration import register as _register
from escape_room_env.replay import ReplayMetadata, ReplayTruncatedWarning
from escape_room_env.rollout import Rollout, RolloutResult, rollout
from escape_room_env.vector_env import EscapeRoomVectorEnv

_register()

__version__ = "0.1.0"

__all__ = [
    "ENV_ID",
    "ROOM_TYPES",
    "RULES_VERSION",
    "AutoresetMode",
    "CudaUnavailableError",
    "EscapeRoomEnv",
    "EscapeRoomError",
    "EscapeRoomVectorEnv",
    "ExecMode",
    "ReplayDivergenceError",
    "ReplayFormatError",
    "ReplayMetadata",
    "ReplayTruncatedWarning",
    "RewardConfig",
    "Rollout",
    "RolloutResult",
    "SimManager",
    "Tensor",
    "__version__",
    "action",
    "cuda_available",
    "cuda_unavailable_reason",
    "default_rooms",
    "madrona",
    "rollout",
    "wrappers",
]
