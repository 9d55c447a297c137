"""Names under ``escape_room_env.madrona``, as the Madrona escape room's bindings had them.

>>> from escape_room_env import madrona
>>> madrona.ExecMode.CPU
ExecMode.CPU
"""

from escape_room_env._core import ExecMode
from escape_room_env.tensor import Tensor

__all__ = ["ExecMode", "Tensor"]
