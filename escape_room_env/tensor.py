"""``Tensor``: the seed's ``madrona.Tensor``, a zero-copy view of one simulation array.

The core exports each array once (``_core.Array``: DLPack, with the simulation's storage as its
owner, so the memory outlives the manager); this class gives it the seed's interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from escape_room_env import _core
from escape_room_env.errors import EscapeRoomError

if TYPE_CHECKING:
    import torch

__all__ = ["Tensor"]


class Tensor:
    """A zero-copy view of one simulation array (the seed's ``madrona.Tensor``).

    ``to_numpy()`` and ``to_torch()`` share memory with the simulation (writes to ``action`` and
    ``reset`` are seen by the next step); ``torch.from_dlpack(tensor)`` works too, and on CUDA makes
    the consumer's stream wait for the last step.

    >>> import escape_room_env as er
    >>> t = er.SimManager(num_worlds=2).action_tensor()
    >>> t.shape, t.dtype, t.isOnGPU()
    ((2, 1, 3), dtype('int32'), False)
    """

    __slots__ = ("_array", "_device")

    def __init__(self, array: _core.Array):
        self._array = array
        self._device = array.__dlpack_device__()

    @property
    def shape(self) -> tuple[int, ...]:
        return self._array.shape

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._array.dtype)

    @property
    def ndim(self) -> int:
        return len(self._array.shape)

    def is_on_gpu(self) -> bool:
        return self._device[0] == 2  # DLPack's kDLCUDA

    def gpu_id(self) -> int:
        """The CUDA device, or -1 on the CPU."""
        return self._device[1] if self.is_on_gpu() else -1

    isOnGPU = is_on_gpu  # the seed's names
    gpuID = gpu_id

    def data_ptr(self) -> int:
        """Address of the first element (it never changes for the manager's lifetime)."""
        return self._array.data_ptr

    def to_numpy(self) -> np.ndarray:
        """A numpy array sharing memory with the simulation (CPU only)."""
        if self.is_on_gpu():
            raise EscapeRoomError("to_numpy() needs a CPU tensor; this one is on the GPU (use to_torch())")
        return self._array.numpy()

    def to_torch(self) -> torch.Tensor:
        """A torch tensor sharing memory with the simulation, on the simulation's device."""
        return self._array.torch()

    def to_jax(self) -> Any:
        """A JAX array holding a copy of the tensor's current values (JAX arrays are immutable and
        reject strided views)."""
        if self.is_on_gpu():
            raise EscapeRoomError("to_jax() of a GPU tensor is not supported by this version; use to_torch()")
        import jax.numpy as jnp

        return jnp.array(self.to_numpy(), copy=True)

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._device

    def __repr__(self) -> str:
        device = f"cuda:{self.gpu_id()}" if self.is_on_gpu() else "cpu"
        return f"Tensor(shape={self.shape}, dtype={self.dtype}, device={device})"
