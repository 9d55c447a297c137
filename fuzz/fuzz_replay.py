"""Fuzzes the replay reader and replays (SPEC §5.3, §8; format version 2) with atheris
(libFuzzer for Python).

    pip install atheris
    python fuzz/fuzz_replay.py -max_total_time=60 WORK_DIR fuzz/corpus/replay

(``.ci/fuzz`` runs it that way; new inputs go to WORK_DIR, the first directory.) Each input is
written to a file and used as a user would: ``SimManager.read_replay_metadata``, every record
decoded through ``ReplayFile``, then ``SimManager.from_replay`` and ``replay_step`` to the end
(level compiler included when the config holds custom levels).

Mutations (:func:`mutate`): libFuzzer's byte mutations, most of them followed by :func:`repair`
(sizes and CRCs made consistent again, so the mutant gets past the CRC checks), and
:func:`mutate_config`: the config block parsed, one value changed into another valid-JSON value
(numbers, strings, list entries, level cells, reward fields, rooms, world seeds, ...; a header
field that mirrors it now and then changed with it), re-serialised, and config_bytes, the config
CRC and the header CRC fixed, so the mutant reaches the config checks and the simulator.

The documented outcomes are ``ReplayFormatError`` when the file is read, ``ReplayDivergenceError``
while it is replayed, and warnings (``ReplayTruncatedWarning``); a file that replays to its end
must reproduce the recording: every input whose records (everything after the config block) are
those of a file replayed before (the seed corpus is replayed first, as the reference) must give
exactly the same per-step outputs (rewards, flags, observations, ...) as that file did. Anything
else is a finding: another exception (a ``ValueError`` included: the reader must refuse what the
simulator would), a broken invariant (the asserts below), a full replay with other results
(:class:`SilentReplayDifference`), a crash of the native core or a timeout. atheris prints it and
saves the input.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

from atheris_harness import byte_mutate, fuzz

import escape_room_env as er
from escape_room_env.config import ROOM_TYPES, RewardConfig
from escape_room_env.replay import (
    HEADER_FIELDS,
    EndRecord,
    HashRecord,
    ReplayFile,
    ResetRecord,
    StepRecord,
)

#: Inputs that would replay more world-steps than this are read and decoded but not simulated,
#: so that every execution stays in milliseconds.
MAX_WORLD_STEPS = 20_000
ACTION_LIMITS = tuple(er.action.NUM_CHOICES)
SEED_CORPUS = Path(__file__).resolve().parent / "corpus" / "replay"
#: The per-step outputs a replay must reproduce (the same ones the output digest covers).
OUTPUTS = (
    "reward", "done", "termination_reason", "terminated", "truncated", "steps_remaining", "progress",
    "elapsed_steps", "doors_opened", "observation",
)  # fmt: skip
#: Files replayed to the end, by their records: the outputs of every step (the seed corpus first).
REFERENCE_LIMIT = 4096
# In memory where possible (rewriting a file on ext4 waits for its writeback on every input);
# removed after each input.
PATH = os.path.join(
    "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir(), f"fuzz_replay_{os.getpid()}.bin"
)

HEADER_BYTES = 96
CONFIG_CRC_AT, HEADER_CRC_AT = 76, 80
# The header fields a config key mirrors: (offset, struct format).
MIRRORED = {
    name: HEADER_FIELDS[name]
    for name in (
        "rules_version", "num_worlds", "num_agents", "episode_len", "rand_seed", "autoreset_mode",
        "checksum_interval",
    )
}  # fmt: skip
AUTORESET_CODES = {"NEXT_STEP": 0, "SAME_STEP": 1, "DISABLED": 2}


class SilentReplayDifference(AssertionError):
    """A file replayed to its end, every checkpoint verified, with other per-step outputs than
    another file with the same records: an edit the replay's checks did not see."""


# -- mutations -------------------------------------------------------------------------------


def fix_header(head: bytearray, block: bytes | None = None) -> bytearray:
    """The header with config_bytes and config_crc32 set for ``block`` (if given) and its own
    CRC recomputed."""
    if block is not None:
        struct.pack_into("<Q", head, 48, len(block))
        struct.pack_into("<I", head, CONFIG_CRC_AT, zlib.crc32(block))
    struct.pack_into("<I", head, HEADER_CRC_AT, zlib.crc32(bytes(head[:HEADER_CRC_AT])))
    return head


def repair(data: bytes) -> bytes:
    """``data`` with its sizes and checksums made consistent again, where the framing allows:
    config_bytes pointed at the first record (the HASH of step 0), the config CRC, the header
    CRC, and each record's CRC. Mutations then reach the checks behind the CRCs and the
    simulator."""
    out = bytearray(data)
    if len(out) < HEADER_BYTES:
        return bytes(out)
    first = out.find(b"HASH", HEADER_BYTES)
    if first >= 0:
        struct.pack_into("<Q", out, 48, first - HEADER_BYTES)
    size = struct.unpack_from("<Q", out, 48)[0]
    if HEADER_BYTES + size <= len(out):
        struct.pack_into("<I", out, CONFIG_CRC_AT, zlib.crc32(bytes(out[HEADER_BYTES : HEADER_BYTES + size])))
    struct.pack_into("<I", out, HEADER_CRC_AT, zlib.crc32(bytes(out[:HEADER_CRC_AT])))
    pos = HEADER_BYTES + size
    while pos + 12 <= len(out):
        (length,) = struct.unpack_from("<I", out, pos + 4)
        end = pos + 8 + length
        if end + 4 > len(out):
            break
        struct.pack_into("<I", out, end, zlib.crc32(bytes(out[pos:end])))
        pos = end + 4
    return bytes(out)


def split(data: bytes) -> tuple[bytearray, dict, bytes] | None:
    """(header, parsed config, records) of a file whose config block is a JSON object; else None."""
    if len(data) < HEADER_BYTES or data[:8] != b"ERREPLAY":
        return None
    (size,) = struct.unpack_from("<Q", data, 48)
    if HEADER_BYTES + size > len(data):
        return None
    try:
        config = json.loads(data[HEADER_BYTES : HEADER_BYTES + size])
    except (ValueError, RecursionError):
        return None
    if not isinstance(config, dict):
        return None
    return bytearray(data[:HEADER_BYTES]), config, data[HEADER_BYTES + size :]


def _paths(node, path=()):
    """Every (path, value) in a parsed JSON document, containers included (the root excluded)."""
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return
    for key, value in items:
        yield (*path, key), value
        yield from _paths(value, (*path, key))


def _weight(path: tuple) -> float:
    """Prefer what the simulation depends on: rewards, levels, rooms, seeds, the mirrored fields."""
    top = path[0]
    if top in ("reward", "levels", "rooms", "world_seeds", "world_episodes"):
        return 4.0
    if top in MIRRORED or top in ("autoreset_mode", "start", "world_levels"):
        return 2.0
    return 1.0


_INTS = (0, 1, 2, 3, 4, 5, 7, 8, 255, 256, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63, 2**64 - 1, 2**64)
_FLOATS = (0.0, -0.0, 0.5, 1.0, 2.0, 2.5, 1e6, 1e6 + 1, 3e38, 1e300, 1e-400, 1e400, -1e400, math.nan)
_CELLS = "#. SCEab12345678ix\t\u00e9"


def _new_value(value, key, rng: random.Random):
    """Another valid-JSON value for ``value``: mostly one of its own kind, nearby or extreme,
    now and then one of another kind."""
    if rng.random() < 0.08:  # another type altogether
        return rng.choice([None, True, False, 0, 1.5, "", "x", [], {}, [value], {"v": value}])
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return rng.choice(
            [value + 1, value - 1, value * 2, -value, float(value), rng.choice(_INTS), rng.getrandbits(64)]
        )
    if isinstance(value, float):
        return rng.choice(
            [value * rng.choice([0.5, 2.0, -1.0, 1.0000001]), value + rng.choice([-0.01, 0.01, 1.0]),
             round(value) if math.isfinite(value) else 0, rng.choice(_FLOATS), rng.uniform(-10, 10)]
        )  # fmt: skip
    if isinstance(value, str):
        if key == "autoreset_mode":
            return rng.choice([*AUTORESET_CODES, "next_step", "RESET"])
        if key == "start":
            return rng.choice(["seed", "fresh", "reset", "resume"])
        if value in ROOM_TYPES:
            return rng.choice([*ROOM_TYPES, "lava"])
        if value and rng.random() < 0.8:  # a level row, or any string: one character changed
            i = rng.randrange(len(value))
            op = rng.random()
            if op < 0.7:
                return value[:i] + rng.choice(_CELLS) + value[i + 1 :]
            if op < 0.85:
                return value[:i] + value[i + 1 :]
            return value[:i] + rng.choice(_CELLS) + value[i:]
        return rng.choice(["", value * 2, value.upper(), value + "\n" + value])
    if isinstance(value, list):
        out = list(value)
        op = rng.randrange(6)
        if op == 0 and out:
            del out[rng.randrange(len(out))]
        elif op == 1 and out:
            out.insert(rng.randrange(len(out) + 1), copy.deepcopy(rng.choice(out)))
        elif op == 2:
            out.reverse()
        elif op == 3 and len(out) > 1:
            i, j = rng.sample(range(len(out)), 2)
            out[i], out[j] = out[j], out[i]
        elif op == 4:
            out = []
        else:
            out.append(copy.deepcopy(rng.choice(out)) if out else 0)
        return out
    if isinstance(value, dict):
        out = dict(value)
        if out and rng.random() < 0.5:
            del out[rng.choice(list(out))]
        else:
            names = [f.name for f in RewardConfig.__dataclass_fields__.values()]
            out[rng.choice([*names, "ascii", "cell_size", "momentary", "name", "description", "extra"])] = (
                rng.choice([0, 1.5, "x", [], None])
            )
        return out
    return rng.choice([0, "", [], {}])  # null


def mutate_config(data: bytes, rng: random.Random) -> bytes | None:
    """``data`` with one value of its config block changed into another valid-JSON value (a header
    field mirroring it changed with it, two times in three), re-serialised, config_bytes and both
    CRCs fixed; None if the config block does not parse."""
    parts = split(data)
    if parts is None:
        return None
    head, config, records = parts
    for _ in range(1 + (rng.random() < 0.2)):  # now and then two edits
        paths = list(_paths(config))
        if not paths:
            config[rng.choice(["reward", "levels", "extra"])] = rng.choice([{}, [], 0])
            continue
        path, value = rng.choices(paths, weights=[_weight(p) for p, _ in paths])[0]
        new = _new_value(value, path[-1], rng)
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = new
        if len(path) == 1 and path[0] in MIRRORED and rng.random() < 2 / 3:
            offset, fmt = MIRRORED[path[0]]
            code = new
            if path[0] == "autoreset_mode":
                code = AUTORESET_CODES.get(new) if isinstance(new, str) else None
            bits = 8 * struct.calcsize(fmt)
            if isinstance(code, int) and not isinstance(code, bool) and 0 <= code < 2**bits:
                struct.pack_into(fmt, head, offset, code)
    style = rng.random()
    try:
        if style < 0.6:
            text = json.dumps(config)
        elif style < 0.8:
            text = json.dumps(config, indent=rng.choice([None, 1, 2]), separators=(",", ":"))
        else:
            text = json.dumps(config, indent=1, sort_keys=True)
    except (TypeError, ValueError, RecursionError):  # keys of mixed types, an int of 4300+ digits, ...
        return None
    if "Infinity" in text and rng.random() < 0.5:  # also the spelling that overflows when parsed
        text = text.replace("-Infinity", "-1e400").replace("Infinity", "1e400")
    block = text.encode("utf-8", "surrogatepass")
    return bytes(fix_header(head, block)) + block + records


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """One input in four a config mutation (:func:`mutate_config`); otherwise libFuzzer's
    mutation, then, two times in three, :func:`repair` (without it almost every mutant stops at
    a CRC check: 0.6 % of inputs opened, 0.4 % reached the simulator)."""
    rng = random.Random(seed)
    if rng.random() < 0.25:
        mutant = mutate_config(data, rng)
        if mutant is not None and len(mutant) <= max_size:
            return mutant
    mutant = byte_mutate(data, max_size, rng.getrandbits(32))
    return repair(mutant)[:max_size] if rng.random() < 2 / 3 else mutant


# -- checks ----------------------------------------------------------------------------------


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
            assert record.hashes.shape == record.outputs.shape == (W,) and record.step <= steps
        else:
            assert isinstance(record, EndRecord) and record.num_steps == steps
            assert record is records[-1]
    assert steps == replay.num_steps == meta.num_steps, (steps, replay.num_steps, meta.num_steps)


def step_digest(sim: er.SimManager) -> bytes:
    """A digest of every output of the step just taken."""
    h = hashlib.blake2b(digest_size=16)
    for name in OUTPUTS:
        h.update(getattr(sim, f"{name}_tensor")().to_numpy().tobytes())
    return h.digest()


_references: dict[bytes, tuple[bytes, ...]] = {}
_seeded = False


def records_key(data: bytes, config_bytes: int) -> bytes:
    return hashlib.blake2b(data[HEADER_BYTES + config_bytes :], digest_size=16).digest()


def seed_references() -> None:
    """The reference outputs of the seed corpus's files (once): replayed as recorded, each must
    replay to its end (a seed that does not is itself a finding)."""
    global _seeded
    if _seeded:
        return
    _seeded = True
    for path in sorted(SEED_CORPUS.glob("*.bin")):
        replay_input(path.read_bytes())


def replay_input(data: bytes) -> str:
    """Runs one input; returns the outcome ("format", "divergence", "large", "same", "new") or
    raises the finding."""
    with open(PATH, "wb") as f:
        f.write(data)
    try:
        return replay_file(data)
    finally:
        os.unlink(PATH)


def test_one_input(data: bytes) -> None:
    seed_references()
    replay_input(data)


def replay_file(data: bytes) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            meta = er.SimManager.read_replay_metadata(PATH)
        except er.ReplayFormatError:
            return "format"
        with ReplayFile(PATH) as replay:
            check_records(replay)
            # The steps a replay verifies: up to the last checkpoint (the end's, in a whole file).
            # A truncated file's steps after it are replayed unverified, and the reader warns so.
            verified = int(replay.checkpoint_steps().max(initial=0))
        if meta.num_worlds * max(meta.num_steps, 1) > MAX_WORLD_STEPS:
            return "large"
        try:
            sim = er.SimManager.from_replay(PATH, num_threads=1)
        except er.ReplayFormatError:
            return "format"  # a rules version this build does not simulate
        except er.ReplayDivergenceError:
            return "divergence"  # at step 0
        digests = []
        with sim:
            assert sim.get_replay_step_count() == (0, meta.num_steps)
            try:
                for i in range(meta.num_steps):
                    last = sim.replay_step()
                    assert last is (i == meta.num_steps - 1)
                    digests.append(step_digest(sim))
            except er.ReplayDivergenceError:
                return "divergence"
            assert sim.get_replay_step_count() == (meta.num_steps, meta.num_steps)
    key = records_key(data, struct.unpack_from("<Q", data, 48)[0])
    reference = _references.get(key)
    if reference is None:
        if len(_references) < REFERENCE_LIMIT:
            _references[key] = tuple(digests)
        return "new"
    if tuple(digests[:verified]) != reference[:verified]:
        differ = [i for i, (a, b) in enumerate(zip(digests[:verified], reference)) if a != b]
        step = (differ[0] if differ else min(verified, len(reference))) + 1
        raise SilentReplayDifference(
            f"replayed {verified} steps as verified, but step {step}'s outputs differ from "
            "those of a file with the same records (the config block changed what the simulation "
            "computes and no checkpoint saw it)"
        )
    return "same"


if __name__ == "__main__":
    fuzz(test_one_input, custom_mutator=mutate)
