"""Reading replay files (SPEC §5.3): the file-level reader behind ``SimManager.from_replay``.

A replay file is a 96-byte header, a UTF-8 JSON config block and a stream of records, each
``u32 tag, u32 payload_len, payload, u32 crc32(tag + len + payload)``, little-endian:

- ``STEP``: the reset-flag bitset (``ceil(W/8)`` bytes, world w is bit w % 8 of byte w // 8),
  then the clamped actions as int8 ``[W, A, 3]``.
- ``RSET``: an immediate reset: the world mask, u8 has_seeds, then one u64 seed per masked world.
- ``HASH``: u64 step (STEP records before it), then u64 ``[W]`` state hashes, then u64 ``[W]``
  output digests (of every exported output: rewards, flags, observations).

Format version 2 (this one) stores the config block's CRC-32 in the header (byte 76), so the
configuration is protected like the records, and its checkpoints cover the outputs too: a file
whose rewards or level geometry were edited never replays as verified.
- ``END ``: u64 num_steps; nothing follows it.

``ReplayFile`` validates everything once when opened (framing, CRCs, sizes, value ranges and
where HASH records must be) and keeps only an index of record offsets; payloads are read back
on demand. Every size read from the file is checked against the file size and the size the
format expects before anything is read or allocated. A bad file raises ``ReplayFormatError``
naming the byte offset and the reason; a file that ends inside a record (a killed writer) keeps
the complete records before it and warns with ``ReplayTruncatedWarning``.

The smallest complete file, one world and no steps, written by hand:

>>> import json, os, struct, tempfile, zlib
>>> config = json.dumps({
...     "format_version": 2, "rules_version": 1, "num_worlds": 1, "num_agents": 1,
...     "episode_len": 200, "autoreset_mode": "NEXT_STEP", "rand_seed": 5,
...     "rooms": ["button", "cube_blocking", "cube_button"], "reward": {},
...     "checksum_interval": 50, "world_seeds": [5], "world_episodes": [0], "start": "seed",
... }).encode()
>>> head = struct.pack("<8s6IQ2I3QII", b"ERREPLAY", 2, 96, 1, 1, 1, 200, 5, 0, 0, len(config), 0, 0, 50,
...                    zlib.crc32(config))
>>> head += struct.pack("<I12x", zlib.crc32(head))
>>> def rec(tag, payload):
...     framed = tag + struct.pack("<I", len(payload)) + payload
...     return framed + struct.pack("<I", zlib.crc32(framed))
>>> body = rec(b"HASH", struct.pack("<QQQ", 0, 1234, 5678)) + rec(b"END ", struct.pack("<Q", 0))
>>> path = os.path.join(tempfile.mkdtemp(), "tiny.bin")
>>> with open(path, "wb") as f:
...     _ = f.write(head + config + body)
>>> with ReplayFile(path) as replay:
...     print(replay.metadata.num_worlds, replay.num_steps, replay.metadata.complete, len(replay))
...     print(replay.record(0))
1 0 True 2
HashRecord(step=0, hashes=array([1234], dtype=uint64), outputs=array([5678], dtype=uint64))
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import stat
import struct
import types
import warnings
import zlib
from array import array
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Union

import numpy as np
from gymnasium.vector import AutoresetMode
from typing_extensions import Self

from escape_room_env import _core
from escape_room_env.action import NUM_CHOICES
from escape_room_env.config import AUTORESET_FROM_CODE, ROOM_TYPES, RewardConfig, core_reward
from escape_room_env.errors import EscapeRoomError, ReplayDivergenceError, ReplayFormatError
from escape_room_env.levels import Level, LevelWarning, compile_level

fcntl: types.ModuleType | None
try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

__all__ = [
    "EndRecord",
    "HashRecord",
    "ReplayFile",
    "ReplayMetadata",
    "ReplayPlayer",
    "ReplayTruncatedWarning",
    "ResetRecord",
    "StepRecord",
    "read_replay_metadata",
]

MAGIC = b"ERREPLAY"
FORMAT_VERSION = 2
HEADER_BYTES = 96
#: The header's num_steps while the recording is unfinished (patched on close).
UNFINISHED = 0xFFFF_FFFF_FFFF_FFFF

#: The header's fields between the 8-byte magic and the 12 reserved zero bytes, in order:
#: name -> (byte offset, struct format).
HEADER_FIELDS = {
    "format_version": (8, "<I"),
    "header_bytes": (12, "<I"),
    "rules_version": (16, "<I"),
    "num_worlds": (20, "<I"),
    "num_agents": (24, "<I"),
    "episode_len": (28, "<I"),
    "rand_seed": (32, "<Q"),
    "autoreset_mode": (40, "<I"),
    "flags": (44, "<I"),
    "config_bytes": (48, "<Q"),
    "num_steps": (56, "<Q"),
    "created_unix_ns": (64, "<Q"),
    "checksum_interval": (72, "<I"),
    "config_crc32": (76, "<I"),
    "header_crc32": (80, "<I"),
}
_HEADER = struct.Struct("<8s" + "".join(fmt[1:] for _, fmt in HEADER_FIELDS.values()) + "12s")
assert _HEADER.size == HEADER_BYTES
assert [at for at, _ in HEADER_FIELDS.values()] == [
    struct.calcsize(_HEADER.format[:k]) for k in range(3, 3 + len(HEADER_FIELDS))
]
_CONFIG_CRC_AT = HEADER_FIELDS["config_crc32"][0]
_CRC_END = HEADER_FIELDS["header_crc32"][0]  # the header CRC covers the bytes before it
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_FRAME = struct.Struct("<4sI")  # tag, payload_len
_MAX_PAYLOAD = 0xFFFF_FFFF

_STEP, _RSET, _HASH, _END = 0, 1, 2, 3
_KINDS = {b"STEP": _STEP, b"RSET": _RSET, b"HASH": _HASH, b"END ": _END}
_TAG_NAMES = {kind: tag.decode().strip() for tag, kind in _KINDS.items()}
_ACTION_NAMES = ("move_amount", "move_angle", "rotate")
_ACTION_MAX = np.array([n - 1 for n in NUM_CHOICES], dtype=np.uint8)
_STARTS = ("seed", "fresh", "reset")
# STEP payloads are range-checked in batches of about this many bytes (one numpy pass each).
_CHECK_BATCH_BYTES = 4 << 20
_READ_BUFFER = 1 << 18

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


class ReplayTruncatedWarning(UserWarning):
    """The replay file ends before its END record; the complete records before that are kept.

    >>> issubclass(ReplayTruncatedWarning, UserWarning)
    True
    """


# -- records ---------------------------------------------------------------------------------


def _frozen_array(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _array_fields_equal(a, b) -> bool:
    if type(a) is not type(b):
        return NotImplemented
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if x is None or y is None or x.dtype != y.dtype or not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


@dataclasses.dataclass(frozen=True, eq=False)
class StepRecord:
    """One recorded ``step()``: the manual reset flags and the clamped actions it used.

    >>> import numpy as np
    >>> rec = StepRecord(0, np.zeros(2, bool), np.zeros((2, 1, 3), np.int8))
    >>> rec.index, rec.actions.shape
    (0, (2, 1, 3))
    """

    index: int
    """0-based number of this step: the STEP records before it."""
    reset: np.ndarray
    """bool [W]: the reset flags the step consumed."""
    actions: np.ndarray
    """int8 [W, A, 3]: move_amount, move_angle, rotate, already clamped to their ranges."""

    __eq__ = _array_fields_equal
    __hash__ = None  # type: ignore[assignment]  # unhashable: holds arrays (object's is a method)


@dataclasses.dataclass(frozen=True, eq=False)
class ResetRecord:
    """An immediate reset of the masked worlds, with the seeds they were given (or None).

    >>> import numpy as np
    >>> int(ResetRecord(np.array([True, False]), None).mask.sum())
    1
    """

    mask: np.ndarray
    """bool [W]: the worlds reset."""
    seeds: np.ndarray | None
    """uint64 [W], the seed of each masked world (0 elsewhere), or None: no reseed."""

    __eq__ = _array_fields_equal
    __hash__ = None  # type: ignore[assignment]  # unhashable: holds arrays


@dataclasses.dataclass(frozen=True, eq=False)
class HashRecord:
    """Every world's state hash and output digest after ``step`` steps, which a replay verifies.

    >>> import numpy as np
    >>> HashRecord(0, np.array([7], np.uint64), np.array([9], np.uint64)).step
    0
    """

    step: int
    """The STEP records before this one."""
    hashes: np.ndarray
    """uint64 [W]: the state hash of each world (``SimManager.state_hashes()``)."""
    outputs: np.ndarray
    """uint64 [W]: the digest of each world's exported outputs (rewards, flags, observations)."""

    __eq__ = _array_fields_equal
    __hash__ = None  # type: ignore[assignment]  # unhashable: holds arrays


@dataclasses.dataclass(frozen=True)
class EndRecord:
    """The last record of a finished file.

    >>> EndRecord(20)
    EndRecord(num_steps=20)
    """

    num_steps: int
    """The STEP records in the file."""


Record = Union[StepRecord, ResetRecord, HashRecord, EndRecord]


# -- metadata --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReplayMetadata:
    """What a replay file says about its recording; ``metadata["num_worlds"]`` works too.

    >>> [f.name for f in dataclasses.fields(ReplayMetadata)][:6]
    ['num_worlds', 'num_agents', 'episode_len', 'seed', 'num_steps', 'autoreset_mode']
    """

    num_worlds: int
    """Worlds simulated (W)."""
    num_agents: int
    """Agents per world (A), 1 to 4."""
    episode_len: int
    """Steps per episode before truncation."""
    seed: int
    """The seed the recording reseeded the worlds with (world w: seed + w), or the manager's
    ``rand_seed`` for a recording with ``continue_episodes=True``."""
    num_steps: int
    """STEP records readable (all of them in a complete file)."""
    autoreset_mode: AutoresetMode
    """The recording's reset mode."""
    rules_version: int
    """The game rules the recording ran (``escape_room_env.RULES_VERSION`` when recorded)."""
    format_version: int
    """The file format version (1)."""
    created: datetime.datetime
    """When the recording started, in UTC."""
    checksum_interval: int
    """A HASH record follows every STEP whose 1-based index is a multiple of this."""
    complete: bool
    """True when the file has its END record and its header was finished on close."""
    rooms: tuple[str, ...]
    """Room types of the generated level, in order (() with custom levels)."""
    levels: tuple[Level, ...] = dataclasses.field(repr=False)
    """The custom levels (() for the generated level)."""
    world_levels: tuple[int, ...] = dataclasses.field(repr=False)
    """Index into ``levels`` of each world's level (world w: w mod len(levels)); () when generated."""
    reward: dict[str, float]
    """The RewardConfig fields the recording used."""
    world_seeds: tuple[int, ...] = dataclasses.field(repr=False)
    """Each world's seed s_w at the first record."""
    world_episodes: tuple[int, ...] = dataclasses.field(repr=False)
    """Each world's episode counter e_w at the first record."""
    start: str
    """How the recording started: "seed" (reseeded), "fresh" (worlds at episode start) or "reset"."""
    config: Mapping[str, Any] = dataclasses.field(repr=False)
    """The whole config block (read-only; extra keys such as "levels" included)."""
    path: str
    """The file read."""

    def __getitem__(self, key: str) -> Any:
        if isinstance(key, str) and key in self.__dataclass_fields__:
            return getattr(self, key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self.__dataclass_fields__

    def keys(self) -> tuple[str, ...]:
        """The field names, so ``dict(metadata)`` works."""
        return tuple(self.__dataclass_fields__)


# -- the reader ------------------------------------------------------------------------------


class _Format(Exception):
    """Internal: a format error at ``offset``, turned into ReplayFormatError with the path."""

    def __init__(self, offset: int, reason: str):
        super().__init__(offset, reason)
        self.offset = offset
        self.reason = reason


class ReplayFile:
    """A validated replay file, its records decoded on demand.

    Opening reads the whole file once to check it (truncated tails are kept with a
    ``ReplayTruncatedWarning``); afterwards only the records asked for are read. Errors in the
    file raise ``ReplayFormatError`` ("<path>: byte <offset>: <reason>"); a missing file or a
    directory raise ``FileNotFoundError`` / ``IsADirectoryError``.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.bin")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"hello, world")
    >>> try:
    ...     ReplayFile(path)
    ... except ReplayFormatError as e:
    ...     print(str(e).split(": ", 1)[1])
    byte 0: bad magic b'hello, w', expected b'ERREPLAY' (not a replay file)
    """

    def __init__(self, path: PathLike):
        self.path = os.fsdecode(path)
        try:  # before open(): opening a FIFO would block until a writer appears
            mode = os.stat(path).st_mode
            special = not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))  # open() names a directory itself
        except (OSError, ValueError):
            special = False  # let open() raise its own error
        if special:
            raise ReplayFormatError(f"{self.path}: byte 0: not a regular file")
        self._file = open(path, "rb", buffering=_READ_BUFFER)  # noqa: SIM115 - closed in close()
        try:
            _lock_shared(self._file)
            self._open()
        except _Format as e:
            self._file.close()
            raise ReplayFormatError(f"{self.path}: byte {e.offset}: {e.reason}") from None
        except BaseException:
            self._file.close()
            raise

    # ---- validation

    def _open(self) -> None:
        f = self._file
        try:
            st = os.fstat(f.fileno())
        except OSError as e:  # pragma: no cover - fstat on an open file does not fail in practice
            raise _Format(0, f"cannot stat the file ({e})") from None
        if not stat.S_ISREG(st.st_mode):
            raise _Format(0, "not a regular file")
        size = st.st_size
        try:
            self._read_header(size)
            self._read_config(size)
            self._scan_records(size)
        except OSError as e:
            raise _Format(_tell(f), f"read failed ({e})") from None
        except MemoryError:
            raise _Format(_tell(f), "out of memory while reading the file") from None

    def _read_exact(self, n: int, offset: int, what: str) -> bytes:
        data = self._file.read(n)
        if len(data) != n:  # the file shrank while we read it
            raise _Format(offset + len(data), f"file ends inside {what} (was it truncated while reading?)")
        return data

    def _read_header(self, size: int) -> None:
        head = self._file.read(min(size, HEADER_BYTES))
        if head[:8] != MAGIC[: len(head[:8])]:
            raise _Format(0, f"bad magic {head[:8]!r}, expected {MAGIC!r} (not a replay file)")
        if len(head) >= 12:
            (version,) = _U32.unpack_from(head, 8)
            if version != FORMAT_VERSION:
                raise _Format(
                    8, f"unsupported format_version {version}, this reader reads version {FORMAT_VERSION}"
                )
        if len(head) >= 16:
            (header_bytes,) = _U32.unpack_from(head, 12)
            if header_bytes != HEADER_BYTES:
                raise _Format(12, f"header_bytes is {header_bytes}, expected {HEADER_BYTES}")
        if len(head) < HEADER_BYTES:
            raise _Format(len(head), f"truncated header: the file is {size} bytes, the header {HEADER_BYTES}")
        (
            _magic,
            _version,
            _header_bytes,
            rules_version,
            num_worlds,
            num_agents,
            episode_len,
            rand_seed,
            autoreset,
            flags,
            config_bytes,
            num_steps,
            created_ns,
            checksum_interval,
            config_crc,
            header_crc,
            reserved,
        ) = _HEADER.unpack(head)
        crc = zlib.crc32(head[:_CRC_END])
        if crc != header_crc:
            raise _Format(_CRC_END, f"header CRC mismatch: stored {header_crc:#010x}, computed {crc:#010x}")
        if reserved != bytes(12):
            raise _Format(84, "reserved header bytes are not zero")
        if rules_version < 1:
            raise _Format(16, f"rules_version is {rules_version}, expected >= 1")
        if num_worlds < 1:
            raise _Format(20, f"num_worlds is {num_worlds}, expected >= 1")
        if not 1 <= num_agents <= 4:
            raise _Format(24, f"num_agents is {num_agents}, expected 1..4")
        bitset = (num_worlds + 7) // 8
        if 8 + 16 * num_worlds > _MAX_PAYLOAD or bitset + 3 * num_worlds * num_agents > _MAX_PAYLOAD:
            raise _Format(
                20, f"num_worlds {num_worlds} with {num_agents} agents does not fit a record's u32 payload"
            )
        if not 1 <= episode_len <= 2**31 - 1:
            raise _Format(28, f"episode_len is {episode_len}, expected 1..{2**31 - 1}")
        if autoreset not in AUTORESET_FROM_CODE:
            raise _Format(
                40, f"autoreset_mode is {autoreset}, expected 0 (NEXT_STEP), 1 (SAME_STEP) or 2 (DISABLED)"
            )
        if flags != 0:
            raise _Format(44, f"unknown flags {flags:#010x}")
        if checksum_interval < 1:
            raise _Format(72, f"checksum_interval is {checksum_interval}, expected >= 1")
        if config_bytes > size - HEADER_BYTES:
            raise _Format(
                48,
                f"config_bytes {config_bytes} runs past the end of the file "
                f"({size - HEADER_BYTES} bytes follow the header): truncated config block or bad size",
            )
        self._h = types.SimpleNamespace(
            format_version=FORMAT_VERSION,
            rules_version=rules_version,
            num_worlds=num_worlds,
            num_agents=num_agents,
            episode_len=episode_len,
            rand_seed=rand_seed,
            autoreset=autoreset,
            config_bytes=config_bytes,
            num_steps=num_steps,
            created_ns=created_ns,
            checksum_interval=checksum_interval,
            config_crc=config_crc,
        )

    def _read_config(self, size: int) -> None:
        h = self._h
        raw = self._read_exact(h.config_bytes, HEADER_BYTES, "the config block")
        crc = zlib.crc32(raw)
        if crc != h.config_crc:
            raise _Format(
                _CONFIG_CRC_AT,
                f"config block CRC mismatch: stored {h.config_crc:#010x}, computed {crc:#010x} "
                "(the config block was changed)",
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _Format(HEADER_BYTES + e.start, f"config block is not valid UTF-8 ({e.reason})") from None
        try:
            config = json.loads(text)
        except json.JSONDecodeError as e:
            where = HEADER_BYTES + len(text[: e.pos].encode("utf-8"))
            raise _Format(
                where, f"config block is not valid JSON ({e.msg}, line {e.lineno} column {e.colno})"
            ) from None
        except (ValueError, RecursionError) as e:
            raise _Format(HEADER_BYTES, f"config block is not valid JSON ({e})") from None
        self._config = _check_config(config, h)

    def _scan_records(self, size: int) -> None:
        h = self._h
        W, A = h.num_worlds, h.num_agents
        bitset = (W + 7) // 8
        expected = {_STEP: bitset + 3 * W * A, _HASH: 8 + 16 * W, _END: 8}
        rset_min, rset_max = bitset + 1, bitset + 1 + 8 * W
        finished = h.num_steps != UNFINISHED
        interval = h.checksum_interval

        offsets, lengths, kinds, steps = array("q"), array("q"), array("b"), array("q")
        pending: list[tuple[int, bytes]] = []  # (offset, STEP payload) awaiting the range check
        pending_bytes = 0
        num_steps = 0
        hash_due = False  # the record after a STEP at the checksum interval must be its HASH
        last_hash = -1  # `step` of the latest HASH record
        end_at = -1
        truncated = ""
        pos = HEADER_BYTES + h.config_bytes
        f = self._file
        error: _Format | None = None
        try:
            while pos < size:
                if end_at >= 0:
                    raise _Format(pos, f"{size - pos} bytes of data after the END record at byte {end_at}")
                left = size - pos
                if left < _FRAME.size:
                    tag = f.read(min(left, 4))
                    if len(tag) == 4 and tag not in _KINDS:
                        raise _Format(pos, f"unknown record tag {tag!r}")
                    truncated = f"the file ends inside a record header ({left} of 8 bytes)"
                    break
                tag, length = _FRAME.unpack(self._read_exact(_FRAME.size, pos, "a record header"))
                kind = _KINDS.get(tag)
                if kind is None:
                    raise _Format(pos, f"unknown record tag {tag!r}")
                name = _TAG_NAMES[kind]
                if kind == _RSET:
                    if not rset_min <= length <= rset_max:
                        raise _Format(
                            pos,
                            f"RSET record payload_len {length}, expected {rset_min}..{rset_max} for {W} worlds",
                        )
                elif length != expected[kind]:
                    raise _Format(
                        pos, f"{name} record payload_len {length}, expected {expected[kind]} for W={W}, A={A}"
                    )
                if left < 12 + length:
                    truncated = f"the file ends inside a {name} record ({left} of {12 + length} bytes)"
                    break
                body = self._read_exact(length + 4, pos + 8, f"a {name} record")
                payload = body[:length]
                (stored,) = _U32.unpack_from(body, length)
                crc = zlib.crc32(payload, zlib.crc32(tag + _U32.pack(length)))
                if crc != stored:
                    raise _Format(
                        pos, f"{name} record CRC mismatch: stored {stored:#010x}, computed {crc:#010x}"
                    )

                if not offsets and kind != _HASH:
                    raise _Format(pos, f"the first record is {name}, expected the HASH record of step 0")
                if hash_due and kind != _HASH:
                    raise _Format(
                        pos,
                        f"{name} record where the HASH record of step {num_steps} belongs "
                        f"(checksum_interval {interval})",
                    )
                step_before = num_steps
                if kind == _STEP:
                    if finished and num_steps >= h.num_steps:
                        raise _Format(pos, f"more STEP records than the header's num_steps {h.num_steps}")
                    pending.append((pos, payload))
                    pending_bytes += length
                    if pending_bytes >= _CHECK_BATCH_BYTES:
                        self._check_steps(pending, steps_before=num_steps + 1 - len(pending))
                        pending, pending_bytes = [], 0
                    num_steps += 1
                    hash_due = num_steps % interval == 0
                elif kind == _RSET:
                    _check_rset(pos, payload, W)
                elif kind == _HASH:
                    (step,) = _U64.unpack_from(payload)
                    if step != num_steps:
                        raise _Format(pos, f"HASH record for step {step} after {num_steps} STEP records")
                    last_hash = step
                    hash_due = False
                else:
                    (value,) = _U64.unpack_from(payload)
                    if value != num_steps:
                        raise _Format(
                            pos, f"END record says {value} steps, the file has {num_steps} STEP records"
                        )
                    if last_hash != num_steps:
                        raise _Format(
                            pos, f"END record without a HASH record after the last step ({num_steps})"
                        )
                    if finished and h.num_steps != num_steps:
                        raise _Format(
                            56, f"header num_steps {h.num_steps} disagrees with the END record ({num_steps})"
                        )
                    end_at = pos
                offsets.append(pos)
                lengths.append(length)
                kinds.append(kind)
                steps.append(step_before)
                pos += 12 + length
        except _Format as e:
            error = e
        # Report the first error in file order: a pending STEP may hold an earlier one.
        if pending:
            self._check_steps(pending, steps_before=num_steps - len(pending))
        if error is not None:
            raise error

        self._offsets = np.frombuffer(offsets, dtype=np.int64) if offsets else np.zeros(0, np.int64)
        self._lengths = np.frombuffer(lengths, dtype=np.int64) if lengths else np.zeros(0, np.int64)
        self._kinds = np.frombuffer(kinds, dtype=np.int8) if kinds else np.zeros(0, np.int8)
        self._steps = np.frombuffer(steps, dtype=np.int64) if steps else np.zeros(0, np.int64)
        self._num_steps = num_steps
        complete = end_at >= 0 and finished
        if truncated:
            _warn(
                f"{self.path}: byte {pos}: {truncated}; keeping the {len(offsets)} complete records "
                f"before it ({num_steps} steps)"
            )
        elif end_at < 0:
            _warn(
                f"{self.path}: byte {pos}: no END record (the recording was not closed); keeping "
                f"{len(offsets)} records ({num_steps} steps)"
            )
        elif not finished:
            _warn(
                f"{self.path}: byte 56: the header's num_steps was never patched; the END record "
                f"says {num_steps} steps"
            )
        self.metadata = _metadata(self._h, self._config, num_steps, complete, self.path)

    def _check_steps(self, pending: list[tuple[int, bytes]], steps_before: int) -> None:
        """Range-check a batch of STEP payloads in one numpy pass; raise at the first bad one."""
        W, A = self._h.num_worlds, self._h.num_agents
        bitset = (W + 7) // 8
        n = len(pending)
        rows = np.frombuffer(b"".join(p for _, p in pending), dtype=np.uint8).reshape(n, -1)
        bad_rows = []
        if W % 8:
            padding = np.flatnonzero(rows[:, bitset - 1] >> (W % 8))
            if padding.size:
                bad_rows.append(int(padding[0]))
        actions = rows[:, bitset:].reshape(n, W * A, 3)
        # Negative int8 values read as uint8 are >= 128, so one upper bound checks both ends.
        # Fast path: the largest value of each component (strided maxima are cheap).
        flat = rows[:, bitset:]
        if any(int(flat[:, c::3].max()) > _ACTION_MAX[c] for c in range(3)):
            out_of_range = actions > _ACTION_MAX
            bad_rows.append(int(np.flatnonzero(out_of_range.any(axis=(1, 2)))[0]))
        if not bad_rows:
            return
        row = min(bad_rows)
        offset = pending[row][0]
        where = f"STEP record {steps_before + row}"
        if W % 8 and rows[row, bitset - 1] >> (W % 8):
            raise _Format(offset, f"{where}: reset bitset has bits set beyond world {W - 1}")
        slot, component = (int(i) for i in np.argwhere(actions[row] > _ACTION_MAX)[0])
        value = int(actions[row, slot, component].astype(np.int8))
        raise _Format(
            offset,
            f"{where}: world {slot // A} agent {slot % A} {_ACTION_NAMES[component]} is {value}, "
            f"expected 0..{int(_ACTION_MAX[component])}",
        )

    # ---- access

    @property
    def num_steps(self) -> int:
        """STEP records in the file (the readable ones, if it was truncated)."""
        return self._num_steps

    @property
    def closed(self) -> bool:
        """True after ``close()``."""
        return self._file.closed

    def __len__(self) -> int:
        """Records in the file, every kind counted (END included)."""
        return len(self._offsets)

    def record_offset(self, i: int) -> int:
        """The byte offset of record ``i`` in the file (for messages)."""
        return int(self._offsets[self._index(i)])

    def _index(self, i: int) -> int:
        n = len(self._offsets)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"record index out of range (the file has {n} records)")
        return i

    def record(self, i: int) -> Record:
        """Decode record ``i`` (negative counts from the end)."""
        i = self._index(i)
        if self._file.closed:
            raise ValueError(f"{self.path}: the replay file is closed")
        offset = int(self._offsets[i])
        kind = int(self._kinds[i])
        W, A = self._h.num_worlds, self._h.num_agents
        bitset = (W + 7) // 8
        length = int(self._lengths[i])
        data = self._pread(offset, 12 + length)
        if (
            len(data) != 12 + length
            or _U32.unpack_from(data, 4)[0] != length
            or zlib.crc32(data[:-4]) != _U32.unpack_from(data, 8 + length)[0]
        ):
            raise ReplayFormatError(f"{self.path}: byte {offset}: record changed since the file was opened")
        payload = data[8 : 8 + length]
        if kind == _STEP:
            reset = _unpack_mask(payload[:bitset], W)
            actions = np.frombuffer(payload, dtype=np.int8, offset=bitset).reshape(W, A, 3).copy()
            return StepRecord(int(self._steps[i]), _frozen_array(reset), _frozen_array(actions))
        if kind == _RSET:
            mask = _unpack_mask(payload[:bitset], W)
            seeds = None
            if payload[bitset]:
                seeds = np.zeros(W, dtype=np.uint64)
                seeds[mask] = np.frombuffer(payload, dtype="<u8", offset=bitset + 1)
                _frozen_array(seeds)
            return ResetRecord(_frozen_array(mask), seeds)
        if kind == _HASH:
            (step,) = _U64.unpack_from(payload)
            values = np.frombuffer(payload, dtype="<u8", offset=8).astype(np.uint64)
            return HashRecord(int(step), _frozen_array(values[:W]), _frozen_array(values[W:]))
        return EndRecord(int(_U64.unpack_from(payload)[0]))

    def checkpoint_steps(self) -> np.ndarray:
        """The ``step`` of every HASH record, in file order: the steps after which a replay verifies
        the state hashes and output digests (0, every ``checksum_interval`` steps, and the end).

        >>> import os, tempfile, escape_room_env as er
        >>> path = os.path.join(tempfile.mkdtemp(), "checkpoints.bin")
        >>> with er.SimManager(num_worlds=1) as sim, sim.recording(path, seed=0, checksum_interval=2):
        ...     sim.step(nstep=5)
        >>> with ReplayFile(path) as replay:
        ...     replay.checkpoint_steps().tolist()
        [0, 2, 4, 5]
        """
        return self._steps[self._kinds == _HASH].copy()

    def records(self) -> Iterator[Record]:
        """Every record, decoded, in file order."""
        for i in range(len(self._offsets)):
            yield self.record(i)

    def __iter__(self) -> Iterator[Record]:
        return self.records()

    def _pread(self, offset: int, n: int) -> bytes:
        fd = self._file.fileno()
        chunks = []
        while n > 0:
            if hasattr(os, "pread"):
                chunk = os.pread(fd, n, offset)
            else:  # pragma: no cover - Windows
                os.lseek(fd, offset, os.SEEK_SET)
                chunk = os.read(fd, n)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        """Close the file; ``metadata`` stays readable, records do not."""
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        if not hasattr(self, "_num_steps"):  # the constructor failed
            return f"<ReplayFile {getattr(self, 'path', '?')!r} (unread)>"
        state = "closed" if self.closed else f"{len(self)} records"
        return f"<ReplayFile {self.path!r} ({state}, {self._num_steps} steps)>"


def read_replay_metadata(path: PathLike) -> ReplayMetadata:
    """Validate a replay file and return its metadata (``SimManager.read_replay_metadata``).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "empty.bin")
    >>> open(path, "wb").close()
    >>> try:
    ...     read_replay_metadata(path)
    ... except ReplayFormatError as e:
    ...     print(str(e).split(": ", 1)[1])
    byte 0: truncated header: the file is 0 bytes, the header 96
    """
    with ReplayFile(path) as replay:
        return replay.metadata


# -- playback ----------------------------------------------------------------------------------


class ReplayPlayer:
    """Plays a :class:`ReplayFile` on a simulator (``SimManager.from_replay`` makes one): resets
    and steps are applied as recorded, and every checkpoint is verified (state hashes and output
    chains), raising ``ReplayDivergenceError`` naming the step and the worlds on a mismatch.

    ``core`` is the simulator's native manager (``_core.Manager``), configured like the file.

    >>> import os, tempfile, escape_room_env as er
    >>> path = os.path.join(tempfile.mkdtemp(), "play.bin")
    >>> with er.SimManager(num_worlds=2) as sim, sim.recording(path, seed=1):
    ...     sim.step(nstep=3)
    >>> replay = er.SimManager.from_replay(path)
    >>> [replay.replay_step() for _ in range(3)], replay.get_replay_step_count()
    ([False, False, True], (3, 3))
    """

    #: Memory the seek snapshots may take (bytes, all snapshots together).
    SNAPSHOT_BUDGET = 256 << 20
    #: Most snapshots kept: a seek replays at most ``total / MAX_SNAPSHOTS`` steps.
    MAX_SNAPSHOTS = 64

    def __init__(self, core: _core.Manager, replay: ReplayFile):
        version = replay.metadata.rules_version
        if version != _core.RULES_VERSION:
            raise ReplayFormatError(
                f"{replay.metadata.path}: recorded with rules version {version}, but this build simulates "
                f"rules version {_core.RULES_VERSION}; replay it with a matching escape_room_env"
            )
        self.core = core
        self.replay = replay
        self.total = replay.num_steps
        self.current = 0
        self.verified = 0  # checkpoints that matched
        self._i = 0  # the next record to read
        self._count = len(replay)
        meta = replay.metadata
        core.start_episodes(
            np.asarray(meta.world_seeds, dtype=np.uint64), np.asarray(meta.world_episodes, dtype=np.uint32)
        )
        core.host_write("reset", np.zeros(meta.num_worlds, np.int32))
        core.chain_outputs_for_replay(True)  # from this first state on, as the recording did
        while isinstance(self._peek(), HashRecord) and self._peek().step == 0:  # type: ignore[union-attr]
            self._verify(self._take())
        # Snapshots for seek(): the state after step k (k a multiple of `_every`), taken on the way.
        record_bytes = core.state_fields()[1] * meta.num_worlds + 8 * meta.num_worlds
        kept = max(2, min(self.MAX_SNAPSHOTS, self.SNAPSHOT_BUDGET // max(record_bytes, 1)))
        self._every = max(1, -(-self.total // kept))
        self._snapshots: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
        self._snapshot()

    def _peek(self) -> Record | None:
        return self.replay.record(self._i) if self._i < self._count else None

    def _take(self) -> Record | None:
        record = self._peek()
        self._i += record is not None
        return record

    def _snapshot(self) -> None:
        if self.current % self._every == 0 and self.current not in self._snapshots:
            states = self.core.get_state(np.arange(self.replay.metadata.num_worlds, dtype=np.int32))
            chains = self.core.output_digests(replay=True)
            self._snapshots[self.current] = (self._i, states, chains)

    def advance(self) -> bool:
        """Applies the next recorded step (and the resets before it); True after the last one."""
        if self.current >= self.total:
            raise EscapeRoomError(f"the replay is finished: all {self.total} recorded steps were replayed")
        while not isinstance(self._peek(), StepRecord):
            self._apply(self._take())
        record = self._take()
        assert isinstance(record, StepRecord)
        self.core.host_write("reset", record.reset.astype(np.int32))
        self.core.host_write("action", record.actions.astype(np.int32))
        self.core.step(1, 0)
        self.current += 1
        last = self.current == self.total
        # The checkpoints of this step; after the last step, also the resets recorded before the end.
        while (nxt := self._peek()) is not None and (
            isinstance(nxt, HashRecord) or (last and isinstance(nxt, ResetRecord))
        ):
            self._apply(self._take())
        self._snapshot()
        return last

    def seek(self, step: int) -> None:
        """Positions the replay after recorded step ``step`` (0: before the first step), forwards
        or backwards: it restores the nearest snapshot at or before ``step`` (taken every
        ``total / 64`` steps on the way) and replays from there, verifying checkpoints as
        :meth:`advance` does. The outputs and the state are those the recording had at that step.
        """
        if not 0 <= step <= self.total:
            raise IndexError(f"seek: step {step} is outside the recording (0..{self.total})")
        if step < self.current or step - self.current > self._every:
            base = max((k for k in self._snapshots if k <= step), default=0)
            if base > self.current or step < self.current:
                index, states, chains = self._snapshots[base]
                self.core.set_replay_state(states, chains)
                self.core.host_write("reset", np.zeros(self.replay.metadata.num_worlds, np.int32))
                self._i, self.current = index, base
        while self.current < step:
            self.advance()

    def _apply(self, record: Record | None) -> None:
        if isinstance(record, ResetRecord):
            seeds = None if record.seeds is None else np.ascontiguousarray(record.seeds, dtype=np.uint64)
            self.core.reset_worlds(record.mask.astype(np.uint8), seeds)
        elif isinstance(record, HashRecord):
            self._verify(record)

    def _verify(self, record: Record | None) -> None:
        assert isinstance(record, HashRecord)
        state = self.core.state_hashes() != record.hashes
        outputs = self.core.output_digests(replay=True) != record.outputs
        bad = np.flatnonzero(state | outputs)
        self.verified += bad.size == 0
        if bad.size:
            shown = ", ".join(str(w) for w in bad[:10]) + (", ..." if bad.size > 10 else "")
            what = "state" if state.any() else "outputs (rewards, flags or observations), their state equal"
            raise ReplayDivergenceError(
                f"replay of {self.replay.metadata.path} diverged at step {record.step}: "
                f"world(s) {shown} ({bad.size} of {state.size}) differ from the recording in their {what}"
            )

    def close(self) -> None:
        """Stops verifying (the simulator keeps its state) and closes the file."""
        if not self.core.closed:
            self.core.chain_outputs_for_replay(False)
        self.replay.close()


# -- helpers ---------------------------------------------------------------------------------


def _warn(message: str) -> None:
    # _warn <- _scan_records <- _open <- ReplayFile.__init__ <- the caller
    warnings.warn(message, ReplayTruncatedWarning, stacklevel=5)


def _lock_shared(f) -> None:
    """A shared lock while the file is open: a recording to this path is refused meanwhile
    (a recording being written is still readable: its prefix)."""
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)


def _tell(f) -> int:
    try:
        return f.tell()
    except (OSError, ValueError):
        return 0


def _unpack_mask(bits: bytes, num_worlds: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bits, dtype=np.uint8), bitorder="little")[:num_worlds].astype(bool)


def _check_rset(pos: int, payload: bytes, num_worlds: int) -> None:
    bitset = (num_worlds + 7) // 8
    mask = np.frombuffer(payload, dtype=np.uint8, count=bitset)
    if num_worlds % 8 and mask[-1] >> (num_worlds % 8):
        raise _Format(pos, f"RSET record: mask has bits set beyond world {num_worlds - 1}")
    count = int(np.unpackbits(mask).sum())
    if count == 0:
        raise _Format(pos, "RSET record: empty mask (resets no world)")
    has_seeds = payload[bitset]
    if has_seeds > 1:
        raise _Format(pos, f"RSET record: has_seeds is {has_seeds}, expected 0 or 1")
    want = bitset + 1 + 8 * count * has_seeds
    if len(payload) != want:
        raise _Format(
            pos,
            f"RSET record payload_len {len(payload)}, expected {want} "
            f"({count} worlds, has_seeds {has_seeds})",
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_config(config: object, h: types.SimpleNamespace) -> dict:
    """The parsed config block, checked against the header; a _Format error at byte 96 otherwise."""

    def bad(reason: str) -> _Format:
        return _Format(HEADER_BYTES, f"config block: {reason}")

    if not isinstance(config, dict):
        raise bad(f"expected a JSON object, got {type(config).__name__}")
    required = (
        "format_version", "rules_version", "num_worlds", "num_agents", "episode_len", "autoreset_mode",
        "rand_seed", "rooms", "reward", "checksum_interval", "world_seeds", "world_episodes", "start",
    )  # fmt: skip
    missing = [key for key in required if key not in config]
    if missing:
        raise bad(f"missing key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
    for key in ("format_version", "rules_version", "num_worlds", "num_agents", "episode_len", "rand_seed",
                "checksum_interval"):  # fmt: skip
        value = config[key]
        if not _is_int(value) or value != getattr(h, key):
            raise bad(f"{key} is {value!r}, the header says {getattr(h, key)}")
    mode = AUTORESET_FROM_CODE[h.autoreset].name
    if config["autoreset_mode"] != mode:
        raise bad(f"autoreset_mode is {config['autoreset_mode']!r}, the header says {mode!r}")
    rooms = config["rooms"]
    levels = _config_levels(config, h.num_worlds, h.num_agents, bad)
    if levels and rooms != []:
        raise bad(f"rooms must be [] when the file holds levels, got {rooms!r}"[:300])
    if not levels and (
        not isinstance(rooms, list)
        or not 1 <= len(rooms) <= 4
        or not all(isinstance(room, str) and room in ROOM_TYPES for room in rooms)
    ):
        raise bad(f"rooms must list 1 to 4 room types ({', '.join(ROOM_TYPES)}), got {rooms!r}"[:300])
    reward = config["reward"]
    names = {field.name for field in dataclasses.fields(RewardConfig)}
    if not isinstance(reward, dict):
        raise bad(f"reward must be an object of RewardConfig fields, got {type(reward).__name__}")
    for key, value in reward.items():
        if key not in names:
            raise bad(f"reward has unknown field {key!r}; expected {', '.join(sorted(names))}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad(f"reward.{key} must be a number, got {value!r}")
    # s_w is a u64 seed, e_w the core's u32 episode counter.
    for key, top in (("world_seeds", 2**64 - 1), ("world_episodes", 2**32 - 1)):
        values = config[key]
        if not isinstance(values, list) or len(values) != h.num_worlds:
            got = f"{len(values)} entries" if isinstance(values, list) else type(values).__name__
            raise bad(f"{key} must list num_worlds ({h.num_worlds}) integers, got {got}")
        for w, value in enumerate(values):
            if not _is_int(value) or not 0 <= value <= top:
                raise bad(f"{key}[{w}] is {value!r}, expected an integer in 0..{top}"[:300])
    if config["start"] not in _STARTS:
        raise bad(f"start is {config['start']!r}, expected one of {', '.join(map(repr, _STARTS))}"[:300])
    # Everything a simulator would refuse (a room the agents cannot solve, a reward that would
    # overflow, ...), by the core's own checks.
    cfg = _core.Config()
    cfg.num_worlds, cfg.num_agents, cfg.episode_len = h.num_worlds, h.num_agents, h.episode_len
    cfg.autoreset_mode = h.autoreset
    cfg.rooms = None if levels else [ROOM_TYPES.index(room) for room in rooms]
    try:
        cfg.reward = core_reward(RewardConfig(**reward))
        _core.validate_config(cfg)
    except (TypeError, ValueError, OverflowError) as e:
        raise bad(str(e)[:300]) from None
    return config


def _config_levels(
    config: dict, num_worlds: int, num_agents: int, bad: Callable[[str], _Format]
) -> tuple[Level, ...]:
    """The config block's custom levels, compiled to check them, with their world assignment;
    () if none."""
    if "levels" not in config and "world_levels" not in config:
        return ()
    specs, assignment = config.get("levels"), config.get("world_levels")
    if not isinstance(specs, list) or not 1 <= len(specs) <= 1024:
        raise bad(f"levels must list 1 to 1024 levels, got {type(specs).__name__}")
    levels = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise bad(f"levels[{i}] must be a level's dict form, got {type(spec).__name__}")
        try:
            levels.append(Level.from_dict(spec, name=f"levels[{i}]"))
            with warnings.catch_warnings():  # the recording warned already
                warnings.simplefilter("ignore", LevelWarning)
                compile_level(levels[-1], num_agents)
        except (TypeError, ValueError, OverflowError) as e:
            raise bad(f"levels[{i}]: {e}"[:300]) from None
    expected = [w % len(levels) for w in range(num_worlds)]
    if assignment != expected:
        raise bad("world_levels must give world w the level w mod len(levels)")
    return tuple(levels)


def _metadata(
    h: types.SimpleNamespace, config: dict, num_steps: int, complete: bool, path: str
) -> ReplayMetadata:
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return ReplayMetadata(
        num_worlds=h.num_worlds,
        num_agents=h.num_agents,
        episode_len=h.episode_len,
        seed=h.rand_seed,
        num_steps=num_steps,
        autoreset_mode=AUTORESET_FROM_CODE[h.autoreset],
        rules_version=h.rules_version,
        format_version=h.format_version,
        created=epoch + datetime.timedelta(microseconds=h.created_ns // 1000),
        checksum_interval=h.checksum_interval,
        complete=complete,
        rooms=tuple(config["rooms"]),
        levels=_config_levels(
            config, h.num_worlds, h.num_agents, lambda reason: _Format(HEADER_BYTES, reason)
        ),
        world_levels=tuple(config.get("world_levels", ())),
        reward=dict(config["reward"]),
        world_seeds=tuple(config["world_seeds"]),
        world_episodes=tuple(config["world_episodes"]),
        start=config["start"],
        config=types.MappingProxyType(config),
        path=path,
    )
