"""Fuzzes the replay reader (SPEC §5.3, §8) with atheris (libFuzzer for Python).

    pip install atheris
    python fuzz/fuzz_replay.py -max_total_time=60 WORK_DIR fuzz/corpus/replay

(``.ci/fuzz`` runs it that way; new inputs go to WORK_DIR, the first directory.) Each input is
written to a file and used as a user would: ``SimManager.read_replay_metadata``, every record
decoded through ``ReplayFile``, then ``SimManager.from_replay`` and ``replay_step`` to the end
(level compiler included when the config holds custom levels).

The documented outcomes are ``ReplayFormatError``, ``ReplayDivergenceError``, ``ValueError``
(a config the simulator refuses, a bad custom level) and warnings (``ReplayTruncatedWarning``,
``LevelWarning``). Anything else is a finding: another exception, a broken invariant (the asserts
below), a crash of the native core or a timeout. atheris prints it and saves the input.
"""

from __future__ import annotations

import os
import random
import struct
import tempfile
import warnings
import zlib

from atheris_harness import fuzz

import escape_room_env as er
from escape_room_env.replay import EndRecord, HashRecord, ReplayFile, ResetRecord, StepRecord

#: Inputs that would replay more world-steps than this are read and decoded but not simulated,
#: so that every execution stays in milliseconds.
MAX_WORLD_STEPS = 20_000
ACTION_LIMITS = tuple(er.action.NUM_CHOICES)
DOCUMENTED = (er.ReplayFormatError, er.ReplayDivergenceError, ValueError)
# In memory where possible (rewriting a file on ext4 waits for its writeback on every input);
# removed after each input.
PATH = os.path.join(
    "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir(), f"fuzz_replay_{os.getpid()}.bin"
)


def repair(data: bytes) -> bytes:
    """``data`` with its sizes and checksums made consistent again, where the framing allows:
    config_bytes pointed at the first record (the HASH of step 0), the header CRC, and each
    record's CRC. Mutations then reach the checks behind the CRCs and the simulator."""
    out = bytearray(data)
    if len(out) < 96:
        return bytes(out)
    first = out.find(b"HASH", 96)
    if first >= 0:
        struct.pack_into("<Q", out, 48, first - 96)
    struct.pack_into("<I", out, 76, zlib.crc32(bytes(out[:76])))
    pos = 96 + struct.unpack_from("<Q", out, 48)[0]
    while pos + 12 <= len(out):
        (length,) = struct.unpack_from("<I", out, pos + 4)
        end = pos + 8 + length
        if end + 4 > len(out):
            break
        struct.pack_into("<I", out, end, zlib.crc32(bytes(out[pos:end])))
        pos = end + 4
    return bytes(out)


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer's mutation, then, two times in three, :func:`repair` (without it almost every
    mutant stops at a CRC check: 0.6 % of inputs opened, 0.4 % reached the simulator)."""
    import atheris

    mutant = atheris.Mutate(data, max_size)
    return repair(mutant)[:max_size] if random.Random(seed).random() < 2 / 3 else mutant


def check_records(replay: ReplayFile) -> None:
    """What a file that opened promises about its records."""
    meta = replay.metadata
    W, A = meta.num_worlds, meta.num_agents
    steps = 0
    records = list(replay.records())
    for record in records:
        if isinstance(record, StepRecord):
            assert record.index == steps, (record.index, steps)
            assert record.reset.shape == (W,) and record.actions.shape == (W, A, 3)
            assert record.actions.min(initial=0) >= 0
            assert all(int(record.actions[..., c].max(initial=0)) < ACTION_LIMITS[c] for c in range(3))
            steps += 1
        elif isinstance(record, ResetRecord):
            assert record.mask.shape == (W,) and record.mask.any()
            assert record.seeds is None or record.seeds.shape == (W,)
        elif isinstance(record, HashRecord):
            assert record.hashes.shape == (W,) and record.step <= steps
        else:
            assert isinstance(record, EndRecord) and record.num_steps == steps
            assert record is records[-1]
    assert steps == replay.num_steps == meta.num_steps, (steps, replay.num_steps, meta.num_steps)


def test_one_input(data: bytes) -> None:
    with open(PATH, "wb") as f:
        f.write(data)
    try:
        replay_file(data)
    finally:
        os.unlink(PATH)


def replay_file(data: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            meta = er.SimManager.read_replay_metadata(PATH)
        except DOCUMENTED:
            return
        with ReplayFile(PATH) as replay:
            check_records(replay)
        if meta.num_worlds * max(meta.num_steps, 1) > MAX_WORLD_STEPS:
            return
        try:
            sim = er.SimManager.from_replay(PATH, num_threads=1)
        except DOCUMENTED:
            return
        with sim:
            assert sim.get_replay_step_count() == (0, meta.num_steps)
            try:
                for i in range(meta.num_steps):
                    last = sim.replay_step()
                    assert last is (i == meta.num_steps - 1)
            except DOCUMENTED:
                return
            assert sim.get_replay_step_count() == (meta.num_steps, meta.num_steps)


if __name__ == "__main__":
    fuzz(test_one_input, custom_mutator=mutate)
