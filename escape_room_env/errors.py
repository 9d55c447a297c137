"""Exception classes (SPEC §8).

``EscapeRoomError`` (a ``RuntimeError``) is the base of everything the core raises besides
``ValueError`` / ``TypeError`` for invalid arguments.

>>> import escape_room_env as er
>>> issubclass(er.CudaUnavailableError, er.EscapeRoomError), issubclass(er.EscapeRoomError, RuntimeError)
(True, True)
"""

from escape_room_env._core import (
    CudaUnavailableError,
    EscapeRoomError,
    ReplayDivergenceError,
    ReplayFormatError,
)

__all__ = ["CudaUnavailableError", "EscapeRoomError", "ReplayDivergenceError", "ReplayFormatError"]
