"""torch.distributed for ``escape-room train``: which rank this process is, and the few
collectives PPO needs, with errors that say which rank lost the others.

A process started by ``torchrun`` (or by any launcher that sets torch's variables ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``) with
``WORLD_SIZE`` > 1 is one rank of a distributed run. Anything else is a run of one rank: every
collective below then returns its input untouched and no process group is created, so a plain
run computes exactly what it computed before this module existed.

Failures end in :class:`DistributedError`, never a hang: a rendezvous that does not complete
within the timeout, and a collective that a dead rank (gloo sees the closed connection at once)
or a stalled one (after the timeout) never completes. On CUDA with NCCL, torch's watchdog ends
the process after the timeout instead.

>>> ranks = Ranks.from_environment({})  # not under torchrun
>>> ranks.rank, ranks.world_size, ranks.distributed, ranks.file_name("run.bin")
(0, 1, False, 'run.bin')
>>> ranks.max(2.5)  # a run of one rank: the input itself
2.5
>>> import torch
>>> torchrun = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
>>> ranks = Ranks.from_environment(torchrun)
>>> str(ranks), ranks.local_rank, ranks.file_name("out/run.bin"), ranks.device(torch.device("cpu"))
('rank 3 of 4', 1, 'out/run.rank3.bin', device(type='cpu'))
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import os
import re
from collections.abc import Iterable, Iterator, Mapping

import torch

__all__ = ["DistributedError", "Ranks"]


#: The work handles of the last collectives. gloo's worker thread drops its own reference to a
#: collective's work (and a barrier's to the works before it) a little after the call returns;
#: were that the last reference, that thread would free the work's tensors, whose Python objects
#: need the GIL, and during interpreter exit that aborts the process ("terminate called without
#: an active exception"). Held here until the interpreter's own teardown, the works are freed by
#: the main thread instead. (Module-level: a ``Ranks`` dies when ``train`` returns, right after
#: its last collective.)
_RECENT_WORKS: collections.deque = collections.deque(maxlen=16)


class DistributedError(RuntimeError):
    """This rank lost the others: a rendezvous or a collective failed or timed out."""


class Ranks:
    """This process's place in a run: rank ``rank`` of ``world_size``, ``local_rank`` of the
    ``local_world_size`` ranks on its node, and the collectives of the trainer.

    >>> count, rows = Ranks().gather_rows(3, torch.zeros(2, 5))  # one rank: its own
    >>> count, rows.shape
    (3, torch.Size([2, 5]))
    """

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0, local_world_size: int = 1):
        if not (world_size >= 1 and 0 <= rank < world_size):
            raise ValueError(f"RANK must be in [0, WORLD_SIZE={world_size}), got {rank}")
        if not (local_world_size >= 1 and 0 <= local_rank < local_world_size):
            raise ValueError(
                f"LOCAL_RANK must be in [0, LOCAL_WORLD_SIZE={local_world_size}), got {local_rank}"
            )
        self.rank, self.world_size = rank, world_size
        self.local_rank, self.local_world_size = local_rank, local_world_size
        self.timeout_s = 0.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Ranks:
        """The ranks torchrun describes in ``environ`` (default ``os.environ``), or those of a
        process group the caller has already initialised; one rank when ``WORLD_SIZE`` is unset
        or 1. Malformed variables raise ``ValueError``."""
        env = os.environ if environ is None else environ
        if environ is None and _group_initialised():
            import torch.distributed as dist

            rank, world = dist.get_rank(), dist.get_world_size()
            return cls(
                rank, world, _int_var(env, "LOCAL_RANK", rank), _int_var(env, "LOCAL_WORLD_SIZE", world)
            )
        world = _int_var(env, "WORLD_SIZE", 1)
        if world <= 1:
            return cls()
        if "RANK" not in env:
            raise ValueError(f"WORLD_SIZE={world} but RANK is not set: start the ranks with torchrun")
        rank = _int_var(env, "RANK", 0)
        local_rank = _int_var(env, "LOCAL_RANK", rank)
        return cls(rank, world, local_rank, _int_var(env, "LOCAL_WORLD_SIZE", world))

    @property
    def distributed(self) -> bool:
        """True for a run of several ranks."""
        return self.world_size > 1

    def __str__(self) -> str:
        return f"rank {self.rank} of {self.world_size}"

    def device(self, device: torch.device) -> torch.device:
        """Where this rank runs: ``cuda`` (no index) is ``cuda:LOCAL_RANK`` in a distributed run,
        so each rank of a node has its own GPU; ``cuda:K`` pins every rank to GPU K (ranks then
        share it); anything else as given."""
        if not (self.distributed and device.type == "cuda" and device.index is None):
            return device
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if self.local_rank >= count:
            raise ValueError(
                f"{self} is local rank {self.local_rank} of its node, which has {count} usable GPU(s): "
                "start at most one rank per GPU (torchrun --nproc_per_node), or pass --device cuda:0 "
                "to share one"
            )
        return torch.device("cuda", self.local_rank)

    def simulator_threads(self, num_threads: int) -> int | None:
        """Threads of this rank's simulator: ``num_threads``, or for 0 all cores (``None``) in a
        run of one rank and the node's cores shared evenly among its ranks otherwise.

        >>> Ranks().simulator_threads(0), Ranks().simulator_threads(3), Ranks(0, 2, 0, 2).simulator_threads(3)
        (None, 3, 3)
        """
        if num_threads or not self.distributed:
            return num_threads or None
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, cores // self.local_world_size)

    def file_name(self, path: str) -> str:
        """``path`` in a run of one rank; ``<stem>.rank<r><suffix>`` beside it in a distributed run."""
        if not self.distributed:
            return path
        head, tail = os.path.split(path)
        stem, suffix = os.path.splitext(tail)
        return os.path.join(head, f"{stem}.rank{self.rank}{suffix}")

    @contextlib.contextmanager
    def connected(self, requested: torch.device, timeout_s: float) -> Iterator[Ranks]:
        """Joins the other ranks (a distributed run only) for the ``with`` block. ``requested`` is
        the device as given on the command line, the same on every rank: ``cuda`` (a GPU per rank)
        all-reduces with NCCL, everything else with gloo (the CPU, and ranks sharing ``cuda:K``,
        which NCCL refuses). On leaving, the ranks wait for each other (so that none ends before
        rank 0 has written its files) and the process group is destroyed; an error inside the block
        skips the wait."""
        if not self.distributed or _group_initialised():  # one rank, or the caller's own group
            yield self
            return
        import torch.distributed as dist

        self.timeout_s = float(timeout_s)
        own_gpu = requested.type == "cuda" and requested.index is None
        backend = "cpu:gloo,cuda:nccl" if own_gpu else "gloo"
        if requested.type == "cuda":
            torch.cuda.set_device(self.device(requested))
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        try:
            dist.init_process_group(
                backend,
                rank=self.rank,
                world_size=self.world_size,
                timeout=datetime.timedelta(seconds=self.timeout_s),
            )
        except (RuntimeError, ValueError) as exc:  # DistStoreError, DistNetworkError, missing variables
            raise DistributedError(
                f"{self}: the rendezvous at {where} did not complete within --dist-timeout "
                f"{self.timeout_s:g} s (did every rank start?): {_reason(exc)}"
            ) from None
        try:
            yield self
            self._collective("the final barrier", dist.barrier)
        finally:
            with contextlib.suppress(Exception):  # after a failure there may be nobody to say goodbye to
                dist.destroy_process_group()

    # -- collectives: each the identity in a run of one rank ------------------------------------

    def max(self, value: float) -> float:
        """The largest ``value`` of all ranks (e.g. the elapsed time: the slowest rank's)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64)
        self._collective("a maximum", dist.all_reduce, tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the ranks, in place (every rank gets the same bits)."""
        if not self.distributed:
            return tensor
        import torch.distributed as dist

        self._collective("a sum", dist.all_reduce, tensor)
        return tensor

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Replaces every gradient by its mean over the ranks: one all-reduce of one flat buffer
        (as DDP's buckets and CleanRL's ``ppo_atari_multigpu`` do). Every rank gets the same bits,
        so the same optimiser step keeps the parameters identical."""
        if not self.distributed:
            return
        import torch.distributed as dist

        grads = [p.grad for p in parameters if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        self._collective("the gradient all-reduce", dist.all_reduce, flat)
        flat /= self.world_size
        for grad, part in zip(grads, flat.split([g.numel() for g in grads])):
            grad.copy_(part.view_as(grad))

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (the start of a run)."""
        if not self.distributed:
            return
        import torch.distributed as dist

        for tensor in [*module.parameters(), *module.buffers()]:
            self._collective("the parameter broadcast", dist.broadcast, tensor.data, src=0)

    def gather_rows(self, count: int, rows: torch.Tensor) -> tuple[int, torch.Tensor]:
        """The sum of ``count`` over the ranks, and every rank's ``rows`` (a CPU [k, c] tensor; k
        may differ between ranks) concatenated in rank order, on every rank."""
        if not self.distributed:
            return count, rows
        import torch.distributed as dist

        header = torch.tensor([count, rows.shape[0]], dtype=torch.int64)
        headers = [torch.empty_like(header) for _ in range(self.world_size)]
        self._collective("gathering the episode statistics", dist.all_gather, headers, header)
        sizes = [int(h[1]) for h in headers]
        padded = rows.new_zeros((max(max(sizes), 1), rows.shape[1]))
        padded[: rows.shape[0]] = rows
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        self._collective("gathering the episode statistics", dist.all_gather, parts, padded)
        table = torch.cat([part[:size] for part, size in zip(parts, sizes)])
        return sum(int(h[0]) for h in headers), table

    def _collective(self, what: str, function, *args, **kwargs) -> None:
        try:
            work = function(*args, async_op=True, **kwargs)
            _RECENT_WORKS.append(work)  # see _RECENT_WORKS
            work.wait()
        except RuntimeError as exc:  # gloo's errors are RuntimeErrors, torch's DistError too
            limit = (
                f"--dist-timeout {self.timeout_s:g} s" if self.timeout_s else "the process group's timeout"
            )
            raise DistributedError(
                f"{self}: {what} failed: another rank died or did not answer within {limit}: {_reason(exc)}"
            ) from None


def _group_initialised() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def _int_var(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"the environment variable {name} must be an integer, got {value!r}") from None


def _reason(exc: BaseException) -> str:
    """torch's message in one line, without gloo's source location (``[.../pair.cc:537] ``) or
    its sign-off."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    text = re.sub(r"^\[[^\]]*\.(?:cc|cpp|h):\d+\]\s*", "", text)
    return text.split(" This is typically caused by")[0]
