"""The replay file reader (SPEC §5.3, §8): exact decoding, and every kind of bad file is a
ReplayFormatError with the byte offset (or a recovered prefix with a warning), never a crash.

The files are built by a small writer below, independent of the C++ recorder, to the byte layout
of format version 2 (SPEC §5.3 as amended by issue 14: the header stores the config block's CRC-32
at byte 76 and its own CRC at byte 80 over bytes [0, 80), then 12 reserved zero bytes; a HASH
payload is u64 step, u64[W] state hashes, u64[W] output digests). Set ESCAPE_ROOM_SLOW=1 to run the 50,000-mutation fuzz test as well.
"""

from __future__ import annotations

import dataclasses
import datetime
import doctest
import json
import os
import re
import struct
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import escape_room_env as er
from escape_room_env import replay as replay_module
from escape_room_env.errors import ReplayFormatError
from escape_room_env.replay import (
    HEADER_FIELDS,
    EndRecord,
    HashRecord,
    ReplayFile,
    ReplayMetadata,
    ReplayTruncatedWarning,
    ResetRecord,
    StepRecord,
    read_replay_metadata,
)

# -- a test-only writer ----------------------------------------------------------------------

UNFINISHED = 2**64 - 1
CREATED_NS = 1_763_700_000_123_456_789  # 2025-11-21T04:40:00.123456789Z
FORMAT_VERSION = 2
CONFIG_CRC_AT = 76  # u32 zlib.crc32 of the config block
HEADER_CRC_AT = 80  # u32 zlib.crc32 of header bytes [0, 80)
RESERVED_AT = 84  # 12 zero bytes up to 96
MODE_NAMES = {0: "NEXT_STEP", 1: "SAME_STEP", 2: "DISABLED"}


def pack_header(
    *,
    num_worlds: int,
    num_agents: int,
    config_bytes: int,
    num_steps: int,
    checksum_interval: int,
    config_crc32: int,
    episode_len: int = 200,
    rand_seed: int = 42,
    autoreset_mode: int = 0,
    flags: int = 0,
    created_unix_ns: int = CREATED_NS,
    rules_version: int = 1,
) -> bytes:
    head = struct.pack(
        "<8s6IQ2I3Q2I",
        b"ERREPLAY",
        FORMAT_VERSION,
        96,
        rules_version,
        num_worlds,
        num_agents,
        episode_len,
        rand_seed,
        autoreset_mode,
        flags,
        config_bytes,
        num_steps,
        created_unix_ns,
        checksum_interval,
        config_crc32,
    )
    assert len(head) == HEADER_CRC_AT
    return head + struct.pack("<I", zlib.crc32(head)) + bytes(12)


def frame(tag: bytes, payload: bytes) -> bytes:
    body = tag + struct.pack("<I", len(payload)) + payload
    return body + struct.pack("<I", zlib.crc32(body))


def bits(mask) -> bytes:
    return np.packbits(np.asarray(mask, dtype=bool), bitorder="little").tobytes()


def step_payload(reset, actions) -> bytes:
    return bits(reset) + np.asarray(actions, dtype=np.int8).tobytes()


def rset_payload(mask, seeds=None) -> bytes:
    mask = np.asarray(mask, dtype=bool)
    if seeds is None:
        return bits(mask) + b"\x00"
    return bits(mask) + b"\x01" + np.asarray(seeds, dtype="<u8")[mask].tobytes()


def hash_payload(step: int, hashes, outputs) -> bytes:
    return (
        struct.pack("<Q", step)
        + np.asarray(hashes, dtype="<u8").tobytes()
        + np.asarray(outputs, dtype="<u8").tobytes()
    )


def make_config(num_worlds: int, num_agents: int, checksum_interval: int, **overrides) -> dict:
    config = {
        "format_version": FORMAT_VERSION,
        "rules_version": 1,
        "num_worlds": num_worlds,
        "num_agents": num_agents,
        "episode_len": 200,
        "autoreset_mode": "NEXT_STEP",
        "rand_seed": 42,
        "rooms": ["button", "cube_blocking", "cube_button"],
        "reward": {"progress_scale": 0.05, "escape_bonus": 1.0},
        "checksum_interval": checksum_interval,
        "world_seeds": [42 + w for w in range(num_worlds)],
        "world_episodes": [0] * num_worlds,
        "start": "seed",
        "recorded_with": "tests",
    }
    config.update(overrides)
    return config


@dataclasses.dataclass
class Recording:
    """A replay file's bytes, the records it holds and where each record starts and ends."""

    data: bytes
    records: list  # the decoded records the reader must give back
    spans: list  # (start, end) byte range of each record
    records_start: int
    num_worlds: int
    num_agents: int

    def steps_before(self, end: int) -> int:
        """STEP records wholly inside data[:end]."""
        return sum(isinstance(r, StepRecord) for r, (_, stop) in zip(self.records, self.spans) if stop <= end)


def build(
    num_worlds: int = 3,
    num_agents: int = 2,
    num_steps: int = 20,
    checksum_interval: int = 5,
    *,
    seed: int = 0,
    finished: bool = True,
    with_end: bool = True,
    config: dict | None = None,
) -> Recording:
    """A valid recording with random actions, reset flags and RSETs (with and without seeds)."""
    rng = np.random.default_rng(seed)
    W, A = num_worlds, num_agents
    frames: list[bytes] = []
    records: list = []

    def add(tag, payload, record):
        frames.append(frame(tag, payload))
        records.append(record)

    def hashes():
        return rng.integers(0, 2**64, W, dtype=np.uint64)

    h, o = hashes(), hashes()
    add(b"HASH", hash_payload(0, h, o), HashRecord(0, h, o))
    for k in range(num_steps):
        if k % 7 == 3:  # an immediate reset, alternately with and without seeds
            mask = rng.random(W) < 0.5
            mask[rng.integers(W)] = True
            seeds = None
            if k % 2:
                seeds = np.where(mask, rng.integers(0, 2**64, W, dtype=np.uint64), 0).astype(np.uint64)
            add(b"RSET", rset_payload(mask, seeds), ResetRecord(mask, seeds))
        reset = rng.random(W) < 0.2
        actions = np.stack(
            [rng.integers(0, n, (W, A)) for n in (4, 8, 5)],
            axis=-1,
        ).astype(np.int8)
        add(b"STEP", step_payload(reset, actions), StepRecord(k, reset, actions))
        if (k + 1) % checksum_interval == 0 or k + 1 == num_steps:
            h, o = hashes(), hashes()
            add(b"HASH", hash_payload(k + 1, h, o), HashRecord(k + 1, h, o))
    if with_end:
        add(b"END ", struct.pack("<Q", num_steps), EndRecord(num_steps))
    config_bytes = json.dumps(config or make_config(W, A, checksum_interval)).encode()
    head = pack_header(
        num_worlds=W,
        num_agents=A,
        config_bytes=len(config_bytes),
        num_steps=num_steps if finished else UNFINISHED,
        checksum_interval=checksum_interval,
        config_crc32=zlib.crc32(config_bytes),
    )
    start = len(head) + len(config_bytes)
    spans, pos = [], start
    for f in frames:
        spans.append((pos, pos + len(f)))
        pos += len(f)
    return Recording(head + config_bytes + b"".join(frames), records, spans, start, W, A)


def patch(data: bytes, offset: int, fmt: str, value: int, *, fix_crc: bool = True) -> bytes:
    """``data`` with a header (or any) field overwritten, the header CRC recomputed if asked."""
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    if fix_crc:
        struct.pack_into("<I", out, HEADER_CRC_AT, zlib.crc32(bytes(out[:HEADER_CRC_AT])))
    return bytes(out)


def refresh_record_crc(data: bytes, start: int, end: int) -> bytes:
    """Recompute the CRC of the record in data[start:end] (after its contents were edited)."""
    out = bytearray(data)
    struct.pack_into("<I", out, end - 4, zlib.crc32(bytes(out[start : end - 4])))
    return bytes(out)


def with_record(rec: Recording, index: int, tag: bytes, payload: bytes) -> bytes:
    """The file with record ``index`` replaced by a well-framed (valid CRC) record."""
    start, end = rec.spans[index]
    return rec.data[:start] + frame(tag, payload) + rec.data[end:]


def index_of(rec: Recording, kind: type, nth: int = 0) -> int:
    return [i for i, r in enumerate(rec.records) if isinstance(r, kind)][nth]


@pytest.fixture
def write(tmp_path):
    counter = iter(range(10**9))

    def write(data: bytes, name: str | None = None) -> str:
        path = tmp_path / (name or f"replay{next(counter)}.bin")
        path.write_bytes(data)
        return str(path)

    return write


def expect_error(path: str, offset: int, reason: str) -> ReplayFormatError:
    with pytest.raises(ReplayFormatError) as info:
        ReplayFile(path)
    message = str(info.value)
    assert message.startswith(f"{path}: byte {offset}: "), message
    assert re.search(reason, message), message
    return info.value


def open_quietly(path: str) -> tuple[ReplayFile, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        replay = ReplayFile(path)
    return replay, caught


# -- round trip ------------------------------------------------------------------------------


def test_round_trip_decodes_every_record_exactly(write):
    rec = build(num_worlds=11, num_agents=3, num_steps=23, checksum_interval=4)
    path = write(rec.data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        replay = ReplayFile(path)
    with replay:
        decoded = list(replay.records())
        assert len(replay) == len(rec.records) == len(decoded)
        for i, (got, want) in enumerate(zip(decoded, rec.records)):
            assert got == want, f"record {i}: {got} != {want}"
            assert replay.record(i) == want
            assert replay.record_offset(i) == rec.spans[i][0]
        assert replay.record(-1) == EndRecord(23)
        assert replay.num_steps == 23
        step = replay.record(index_of(rec, StepRecord, 5))
        assert step.index == 5
        assert step.reset.dtype == np.bool_ and step.reset.shape == (11,)
        assert step.actions.dtype == np.int8 and step.actions.shape == (11, 3, 3)
        assert not step.actions.flags.writeable
        first = replay.record(0)
        assert first.hashes.dtype == first.outputs.dtype == np.uint64
        assert not first.hashes.flags.writeable and not first.outputs.flags.writeable
        assert not np.array_equal(first.hashes, first.outputs)  # two arrays, in the file's order
        resets = [r for r in decoded if isinstance(r, ResetRecord)]
        assert any(r.seeds is None for r in resets) and any(r.seeds is not None for r in resets)
        assert all(r.seeds is None or r.seeds.dtype == np.uint64 for r in resets)
        with pytest.raises(IndexError):
            replay.record(len(rec.records))
    assert replay.closed
    with pytest.raises(ValueError, match="closed"):
        replay.record(0)


def test_metadata_fields_and_mapping_access(write):
    rec = build(num_worlds=3, num_agents=2, num_steps=20, checksum_interval=5)
    path = write(rec.data)
    meta = read_replay_metadata(path)
    assert isinstance(meta, ReplayMetadata)
    assert (meta.num_worlds, meta.num_agents, meta.episode_len, meta.seed) == (3, 2, 200, 42)
    assert meta.num_steps == 20 and meta.complete
    assert meta.autoreset_mode is AutoresetMode.NEXT_STEP
    assert (meta.rules_version, meta.format_version, meta.checksum_interval) == (er.RULES_VERSION, 2, 5)
    assert meta.created == datetime.datetime(2025, 11, 21, 4, 40, 0, 123456, tzinfo=datetime.timezone.utc)
    assert meta.rooms == ("button", "cube_blocking", "cube_button")
    assert meta.reward == {"progress_scale": 0.05, "escape_bonus": 1.0}
    assert meta.world_seeds == (42, 43, 44) and meta.world_episodes == (0, 0, 0)
    assert meta.start == "seed" and meta.path == path
    assert meta.config["recorded_with"] == "tests"
    with pytest.raises(TypeError):
        meta.config["num_worlds"] = 4  # read-only
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.num_worlds = 4
    assert meta["num_worlds"] == 3 and meta["autoreset_mode"] is AutoresetMode.NEXT_STEP
    assert "seed" in meta and "bogus" not in meta
    with pytest.raises(KeyError):
        meta["bogus"]
    assert dict(meta)["num_steps"] == 20
    assert list(meta.keys())[:3] == ["num_worlds", "num_agents", "episode_len"]


@pytest.mark.parametrize(("code", "mode"), [(0, "NEXT_STEP"), (1, "SAME_STEP"), (2, "DISABLED")])
def test_autoreset_mode_is_read_from_the_header(write, code, mode):
    rec = build(config=make_config(3, 2, 5, autoreset_mode=mode))
    meta = read_replay_metadata(write(patch(rec.data, 40, "<I", code)))
    assert meta.autoreset_mode is AutoresetMode[mode]


def test_zero_step_recording(write):
    rec = build(num_worlds=1, num_agents=1, num_steps=0)
    with ReplayFile(write(rec.data)) as replay:
        assert replay.num_steps == 0 and len(replay) == 2 and replay.metadata.complete
        assert list(replay.records()) == rec.records


def test_step_batches_larger_than_one_check_pass_are_checked(write):
    # 4096 worlds x 4 agents: ~49 KiB a STEP, so 100 steps span two range-check batches.
    rec = build(num_worlds=4096, num_agents=4, num_steps=100, checksum_interval=50)
    replay = ReplayFile(write(rec.data))
    assert replay.num_steps == 100 and replay.record(-2) == rec.records[-2]
    replay.close()
    i = index_of(rec, StepRecord, 95)
    start, end = rec.spans[i]
    bad = bytearray(rec.data)
    bad[start + 8 + 512 + 3 * 1000 + 2] = 5  # world 250, agent 0, rotate = 5
    expect_error(
        write(refresh_record_crc(bytes(bad), start, end)),
        start,
        "STEP record 95: world 250 agent 0 rotate is 5",
    )


def test_docstring_examples_run():
    result = doctest.testmod(replay_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 5 and result.failed == 0


# -- missing files ---------------------------------------------------------------------------


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        ReplayFile(tmp_path / "nope.bin")
    assert "nope.bin" in str(info.value)
    with pytest.raises(FileNotFoundError):
        read_replay_metadata(tmp_path / "nope.bin")


def test_directory_raises_is_a_directory(tmp_path):
    with pytest.raises(IsADirectoryError):
        ReplayFile(tmp_path)


# -- header ----------------------------------------------------------------------------------

GOOD = build()


def _field(name: str, value: int, fix_crc: bool = True):
    offset, fmt = HEADER_FIELDS[name]
    return lambda data: patch(data, offset, fmt, value, fix_crc=fix_crc)


HEADER_CASES = {
    "bad magic": (lambda d: b"ERREPLAZ" + d[8:], 0, "bad magic"),
    "not a replay at all": (lambda d: b"PK\x03\x04" + d[4:], 0, "bad magic"),
    "format_version 1": (
        _field("format_version", 1),
        8,
        r"unsupported format_version 1, this reader reads version 2$",
    ),
    "format_version 3": (_field("format_version", 3), 8, "unsupported format_version 3"),
    "format_version 0": (_field("format_version", 0), 8, "format_version 0"),
    "header_bytes 128": (_field("header_bytes", 128), 12, "header_bytes is 128"),
    "header CRC (field edited)": (_field("episode_len", 300, fix_crc=False), 80, "header CRC mismatch"),
    "header CRC (CRC edited)": (lambda d: d[:80] + bytes([d[80] ^ 1]) + d[81:], 80, "header CRC mismatch"),
    # the header CRC covers the config CRC too
    "header CRC (config CRC edited)": (
        lambda d: d[:76] + bytes([d[76] ^ 1]) + d[77:],
        80,
        r"header CRC mismatch: stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}$",
    ),
    "config CRC edited, header CRC fixed": (
        _field("config_crc32", 0),
        76,
        r"config block CRC mismatch: stored 0x00000000, computed 0x[0-9a-f]{8} \(the config block was changed\)$",
    ),
    "reserved bytes (first)": (
        lambda d: patch(d[:84] + b"\x01" + d[85:], 0, "<8s", b"ERREPLAY"),
        84,
        "reserved",
    ),
    "reserved bytes (middle)": (
        lambda d: patch(d[:90] + b"\x80" + d[91:], 0, "<8s", b"ERREPLAY"),
        84,
        "reserved",
    ),
    "reserved bytes (last)": (
        lambda d: patch(d[:95] + b"\x01" + d[96:], 0, "<8s", b"ERREPLAY"),
        84,
        "reserved header bytes are not zero",
    ),
    "rules_version 0": (_field("rules_version", 0), 16, "rules_version is 0"),
    "num_worlds 0": (_field("num_worlds", 0), 20, "num_worlds is 0"),
    "num_worlds 2**32-1": (_field("num_worlds", 2**32 - 1), 20, "does not fit"),
    "num_agents 0": (_field("num_agents", 0), 24, r"num_agents is 0, expected 1\.\.4"),
    "num_agents 5": (_field("num_agents", 5), 24, r"num_agents is 5, expected 1\.\.4"),
    "episode_len 0": (_field("episode_len", 0), 28, "episode_len is 0"),
    "autoreset_mode 3": (_field("autoreset_mode", 3), 40, "autoreset_mode is 3"),
    "flags bit 0": (_field("flags", 1), 44, "unknown flags"),
    "flags bit 31": (_field("flags", 2**31), 44, "unknown flags"),
    "checksum_interval 0": (_field("checksum_interval", 0), 72, "checksum_interval is 0"),
    "config_bytes past the end": (_field("config_bytes", len(GOOD.data)), 48, "runs past the end"),
    "config_bytes 2**63": (_field("config_bytes", 2**63), 48, "runs past the end"),
    "config_bytes 2**64-1": (_field("config_bytes", 2**64 - 1), 48, "runs past the end"),
    "truncated header": (lambda d: d[:50], 50, "truncated header"),
    "truncated config": (lambda d: d[:200], 48, "truncated config block"),
    "empty file": (lambda d: b"", 0, "truncated header"),
}


@pytest.mark.parametrize("case", list(HEADER_CASES))
def test_header_corruption_is_a_format_error_at_its_offset(write, case):
    corrupt, offset, reason = HEADER_CASES[case]
    expect_error(write(corrupt(GOOD.data)), offset, reason)


def test_header_claiming_huge_sizes_allocates_nothing(write):
    data = GOOD.data + bytes(1 << 16)  # trailing garbage; never reached
    cases = [
        patch(data, 48, "<Q", 2**63),
        patch(data, 48, "<Q", 2**64 - 1),
        # 300M worlds is a valid header; the config (3 seeds) disagrees, before anything W-sized.
        patch(data, 20, "<I", 300_000_000),
        # a STEP record claiming a 4 GiB payload
        data[: GOOD.spans[1][0] + 4] + b"\xff\xff\xff\xff" + data[GOOD.spans[1][0] + 8 :],
        # an RSET cut short by the end of the file, its payload_len the largest allowed
        GOOD.data[: GOOD.spans[1][0]] + b"RSET" + struct.pack("<I", 1 + 1 + 8 * 3) + b"\x07\x01",
    ]
    paths = [write(c) for c in cases]
    tracemalloc.start()
    try:
        for path in paths:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    ReplayFile(path).close()
                except ReplayFormatError:
                    pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20, f"peak {peak} bytes"


# -- config ----------------------------------------------------------------------------------


def with_config(config_bytes: bytes, rec: Recording = GOOD, *, fix_config_crc: bool = True) -> bytes:
    """``rec`` with another config block: config_bytes and the header CRC fixed, and the config
    CRC too unless asked not to (the block then reads as edited)."""
    head = patch(rec.data[:96], 48, "<Q", len(config_bytes), fix_crc=False)
    if fix_config_crc:
        head = patch(head, CONFIG_CRC_AT, "<I", zlib.crc32(config_bytes), fix_crc=False)
    return (
        patch(head, HEADER_CRC_AT, "<I", zlib.crc32(head[:HEADER_CRC_AT]))
        + config_bytes
        + rec.data[rec.records_start :]
    )


def test_config_invalid_utf8_names_the_byte(write):
    text = json.dumps(make_config(3, 2, 5)).encode()
    k = text.index(b"cube_button") + 2
    bad = text[:k] + b"\xff" + text[k + 1 :]
    expect_error(write(with_config(bad)), 96 + k, "not valid UTF-8")


def test_config_invalid_json_names_the_byte(write):
    text = json.dumps(make_config(3, 2, 5)).encode()
    k = text.index(b'"rooms"')
    bad = text[:k] + b"," + text[k:]  # a doubled comma
    expect_error(write(with_config(bad)), 96 + k, r"not valid JSON \(Expecting property name")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b"null",
        b"42",
        b'"text"',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a": 1e999999}',
        b"\xef\xbb\xbf{}",
    ],
    ids=["empty", "list", "null", "number", "string", "deeply nested", "huge float", "BOM"],
)
def test_config_that_is_not_a_json_object(write, raw):
    expect_error(write(with_config(raw)), 96, "config block")


@pytest.mark.parametrize(
    "key",
    [
        "format_version",
        "rules_version",
        "num_worlds",
        "num_agents",
        "episode_len",
        "autoreset_mode",
        "rand_seed",
        "rooms",
        "reward",
        "checksum_interval",
        "world_seeds",
        "world_episodes",
        "start",
    ],
)
def test_config_missing_key(write, key):
    config = make_config(3, 2, 5)
    del config[key]
    expect_error(write(with_config(json.dumps(config).encode())), 96, f"missing key '{key}'")


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"num_worlds": 4}, "num_worlds is 4, the header says 3"),
        ({"num_agents": 1}, "num_agents is 1, the header says 2"),
        ({"num_agents": 2.0}, "num_agents is 2.0"),
        ({"num_agents": True}, "num_agents is True"),
        ({"episode_len": 100}, "episode_len is 100"),
        ({"rand_seed": 43}, "rand_seed is 43"),
        ({"checksum_interval": 50}, "checksum_interval is 50"),
        ({"format_version": 1}, "format_version is 1, the header says 2"),
        ({"format_version": 3}, "format_version is 3, the header says 2"),
        ({"rules_version": 2}, "rules_version is 2"),
        ({"autoreset_mode": "SAME_STEP"}, "autoreset_mode is 'SAME_STEP'"),
        ({"autoreset_mode": 0}, "autoreset_mode is 0"),
        ({"rooms": ["button", "lava"]}, "rooms must list"),
        ({"rooms": []}, "rooms must list"),
        ({"rooms": "button"}, "rooms must list"),
        ({"reward": {"bonus": 1.0}}, "unknown field 'bonus'"),
        ({"reward": {"escape_bonus": "1"}}, "must be a number"),
        ({"reward": [1.0]}, "reward must be an object"),
        ({"world_seeds": [1, 2]}, "world_seeds must list num_worlds \\(3\\) integers, got 2 entries"),
        ({"world_seeds": [1, 2, -3]}, r"world_seeds\[2\] is -3"),
        ({"world_seeds": [1, 2, 2**64]}, r"world_seeds\[2\]"),
        ({"world_episodes": [0, 0, 2**32]}, r"world_episodes\[2\]"),
        ({"world_episodes": {"0": 1}}, "world_episodes must list"),
        ({"start": "resume"}, "start is 'resume'"),
    ],
)
def test_config_disagreeing_with_the_header_or_out_of_range(write, override, reason):
    config = {**make_config(3, 2, 5), **override}
    expect_error(write(with_config(json.dumps(config).encode())), 96, reason)


def test_config_extra_keys_are_kept(write):
    config = make_config(3, 2, 5, notes=[{"name": "x", "text": "####"}])
    meta = read_replay_metadata(write(with_config(json.dumps(config).encode())))
    assert meta.config["notes"][0]["name"] == "x"


# -- config integrity (format version 2) -----------------------------------------------------

LEVEL_SPEC = {
    "name": "box",
    "ascii": ["#####", "#EEE#", "#...#", "#S.S#", "#####"],
    "momentary": [],
    "cell_size": 2.0,
}


def level_config(num_worlds: int = 3, num_agents: int = 2) -> dict:
    return make_config(
        num_worlds,
        num_agents,
        5,
        rooms=[],
        levels=[dict(LEVEL_SPEC)],
        world_levels=[0] * num_worlds,
    )


LEVELS = build(config=level_config())  # 3 worlds, 2 agents, one custom level
ONE_AGENT = build(num_worlds=3, num_agents=1)


def config_block(data: bytes) -> bytes:
    (size,) = struct.unpack_from("<Q", data, 48)
    return data[96 : 96 + size]


def edit_config(rec: Recording, *edits: tuple[str, str], fix_config_crc: bool = True, header=()) -> bytes:
    """``rec`` with its config block's text edited (each ``old`` must occur once), config_bytes
    and the header CRC fixed, the config CRC fixed unless asked not to, and header fields set."""
    text = config_block(rec.data).decode()
    for old, new in edits:
        assert text.count(old) == 1, (old, text)
        text = text.replace(old, new)
    data = with_config(text.encode(), rec, fix_config_crc=fix_config_crc)
    for name, value in header:
        offset, fmt = HEADER_FIELDS[name]
        data = patch(data, offset, fmt, value)
    return data


def crc_mismatch(stored_for: bytes, block: bytes) -> str:
    """The exact reason the reader gives for a config block whose CRC was not updated."""
    return (
        re.escape(
            f"config block CRC mismatch: stored {zlib.crc32(stored_for):#010x}, computed "
            f"{zlib.crc32(block):#010x} (the config block was changed)"
        )
        + "$"
    )


CONFIG_EDITS = {  # an edit of the config block (and header fields to match), its CRC left as recorded
    "a reward constant": (GOOD, '"progress_scale": 0.05', '"progress_scale": 0.07', ()),
    "a reward constant, same value spelled differently": (
        GOOD,
        '"escape_bonus": 1.0',
        '"escape_bonus": 1.00',
        (),
    ),
    "a level cell": (LEVELS, '"#...#"', '"#.#.#"', ()),
    "a level's cell_size": (LEVELS, '"cell_size": 2.0', '"cell_size": 2.5', ()),
    "a room": (GOOD, '"cube_blocking"', '"button"', ()),
    "a world seed": (GOOD, '"world_seeds": [42,', '"world_seeds": [41,', ()),
    "episode_len (header and config)": (
        GOOD,
        '"episode_len": 200',
        '"episode_len": 100',
        [("episode_len", 100)],
    ),
    "whitespace only": (GOOD, '"rooms": [', '"rooms":  [', ()),
    "a note only": (GOOD, '"recorded_with": "tests"', '"recorded_with": "tests!"', ()),
}


@pytest.mark.parametrize("case", list(CONFIG_EDITS))
def test_config_edited_without_its_crc_is_refused_at_byte_76(write, case):
    rec, old, new, header = CONFIG_EDITS[case]
    # config_bytes and the header CRC fixed, the config CRC as recorded
    data = edit_config(rec, (old, new), fix_config_crc=False, header=header)
    reason = crc_mismatch(config_block(rec.data), config_block(data))
    path = write(data)
    expect_error(path, 76, reason)
    with pytest.raises(ReplayFormatError, match=re.escape(f"{path}: byte 76: ") + reason):
        read_replay_metadata(path)
    with pytest.raises(ReplayFormatError, match=re.escape(f"{path}: byte 76: ") + reason):
        er.SimManager.from_replay(path)
    # The same edit with the CRC updated reads: the refusal above is the CRC's.
    meta = read_replay_metadata(write(edit_config(rec, (old, new), header=header)))
    assert meta.config == json.loads(config_block(data))


def test_config_crc_is_checked_before_the_block_is_parsed(write):
    block = config_block(GOOD.data)
    k = block.index(b'"rooms"')
    # Bytes edited in place: neither config_bytes nor the header changed.
    flipped = bytearray(GOOD.data)
    flipped[96 + k + 1] ^= 0x20  # "rooms" -> "Rooms"
    expect_error(write(bytes(flipped)), 76, crc_mismatch(block, bytes(flipped[96 : GOOD.records_start])))
    # Invalid UTF-8 or JSON behind a stale CRC is reported as the CRC mismatch, not as a parse error.
    for bad in (block[:k] + b"\xff" + block[k + 1 :], block[:k] + b"," + block[k:]):
        expect_error(write(with_config(bad, fix_config_crc=False)), 76, crc_mismatch(block, bad))
    # config_bytes one short (header CRC fixed): the block read is a prefix, its CRC differs.
    short = patch(GOOD.data, 48, "<Q", len(block) - 1)
    expect_error(write(short), 76, crc_mismatch(block, block[:-1]))
    # An empty config block with its CRC (0) in place is a JSON error, at byte 96.
    expect_error(write(with_config(b"")), 96, "config block is not valid JSON")


_CELL = '"cell_size": 2.0'
_REWARD = '"escape_bonus": 1.0'
CRAFTED_CONFIGS = {  # name: (base, text edits, header fields set, offset, reason); every CRC fixed
    "cell_size 1e400": (LEVELS, [(_CELL, '"cell_size": 1e400')], (), 96, r"levels\[0\]: .*cell_size.* inf$"),
    "cell_size -1e400": (
        LEVELS,
        [(_CELL, '"cell_size": -1e400')],
        (),
        96,
        r"levels\[0\]: .*cell_size.* -inf$",
    ),
    "cell_size NaN": (LEVELS, [(_CELL, '"cell_size": NaN')], (), 96, r"levels\[0\]: .*cell_size.* nan$"),
    "cell_size Infinity": (
        LEVELS,
        [(_CELL, '"cell_size": Infinity')],
        (),
        96,
        r"levels\[0\]: .*cell_size.* inf$",
    ),
    "cell_size 1e-400 (0.0)": (LEVELS, [(_CELL, '"cell_size": 1e-400')], (), 96, r"levels\[0\]: .*cell_size"),
    "cell_size 3e38": (LEVELS, [(_CELL, '"cell_size": 3e38')], (), 96, r"levels\[0\]: .*cell_size"),
    "cell_size 1e300": (LEVELS, [(_CELL, '"cell_size": 1e300')], (), 96, r"levels\[0\]: .*cell_size"),
    "cell_size 10**5000": (LEVELS, [(_CELL, '"cell_size": 1' + "0" * 5000)], (), 96, "not valid JSON"),
    "cell_size a string": (LEVELS, [(_CELL, '"cell_size": "2"')], (), 96, r"levels\[0\]: .*cell_size"),
    "cell_size true": (LEVELS, [(_CELL, '"cell_size": true')], (), 96, r"levels\[0\]: .*cell_size"),
    "cell_size null": (LEVELS, [(_CELL, '"cell_size": null')], (), 96, r"levels\[0\]: .*cell_size"),
    "duplicate key, the last 1e400": (
        LEVELS,
        [(_CELL, '"cell_size": 2.0, "cell_size": 1e400')],
        (),
        96,
        r"levels\[0\]: .*cell_size.* inf$",
    ),
    "momentary group 1e400": (LEVELS, [('"momentary": []', '"momentary": [1e400]')], (), 96, "momentary"),
    "momentary group 99": (LEVELS, [('"momentary": []', '"momentary": [99]')], (), 96, "momentary|group 99"),
    "momentary group true": (LEVELS, [('"momentary": []', '"momentary": [true]')], (), 96, "momentary"),
    "level without S": (LEVELS, [('"#S.S#"', '"#...#"')], (), 96, r"levels\[0\]: .*'S'"),
    "level row of 5000 cells": (LEVELS, [('"#S.S#"', '"#S.S' + "." * 5000 + '#"')], (), 96, r"levels\[0\]: "),
    "level of 5000 rows": (
        LEVELS,
        [('"#S.S#"', '"#S.S#", ' + ", ".join(['"#...#"'] * 5000))],
        (),
        96,
        r"levels\[0\]: ",
    ),
    "level NUL cell": (LEVELS, [('"#S.S#"', '"#S\\u0000S#"')], (), 96, r"levels\[0\]: .*0x00"),
    "level ascii a number": (LEVELS, [('"ascii": [', '"ascii": 5, "_": [')], (), 96, r"levels\[0\]: "),
    "level rows of numbers": (
        LEVELS,
        [('["#####", "#EEE#", "#...#", "#S.S#", "#####"]', "[1, 2, 3]")],
        (),
        96,
        r"levels\[0\]: .*'ascii'",
    ),
    "level name a number": (LEVELS, [('"name": "box"', '"name": 5')], (), 96, r"levels\[0\]: .*'name'"),
    "level a string": (
        LEVELS,
        [(json.dumps(LEVEL_SPEC), json.dumps("\n".join(LEVEL_SPEC["ascii"])))],
        (),
        96,
        r"levels\[0\] must be a level's dict form",
    ),
    "levels empty": (LEVELS, [(json.dumps([LEVEL_SPEC]), "[]")], (), 96, "levels must list 1 to 1024"),
    "levels 2000": (
        LEVELS,
        [(json.dumps([LEVEL_SPEC]), json.dumps([LEVEL_SPEC] * 2000))],
        (),
        96,
        "levels must list 1 to 1024",
    ),
    "world_levels wrong": (
        LEVELS,
        [('"world_levels": [0, 0, 0]', '"world_levels": [0, 0, 1]')],
        (),
        96,
        "world_levels",
    ),
    "levels and rooms": (LEVELS, [('"rooms": []', '"rooms": ["button"]')], (), 96, "rooms must be \\[\\]"),
    "reward 1e400": (GOOD, [(_REWARD, '"escape_bonus": 1e400')], (), 96, r"reward\.escape_bonus is inf$"),
    "reward -1e400": (GOOD, [(_REWARD, '"escape_bonus": -1e400')], (), 96, r"reward\.escape_bonus is -inf$"),
    "reward NaN": (GOOD, [(_REWARD, '"escape_bonus": NaN')], (), 96, r"reward\.escape_bonus is nan$"),
    "reward 3e38": (GOOD, [(_REWARD, '"escape_bonus": 3e38')], (), 96, r"reward\.escape_bonus is 3"),
    "progress_scale 3e38": (
        GOOD,
        [('"progress_scale": 0.05', '"progress_scale": 3e38')],
        (),
        96,
        r"reward\.progress_scale is 3",
    ),
    "reward 1e300 (float32 inf)": (
        GOOD,
        [(_REWARD, '"escape_bonus": 1e300')],
        (),
        96,
        r"reward\.escape_bonus",
    ),
    "reward 1000001": (GOOD, [(_REWARD, '"escape_bonus": 1000001')], (), 96, r"reward\.escape_bonus"),
    "reward 10**400": (GOOD, [(_REWARD, '"escape_bonus": 1' + "0" * 400)], (), 96, "config block: "),
    "reward a string": (GOOD, [(_REWARD, '"escape_bonus": "1"')], (), 96, "must be a number"),
    "reward true": (GOOD, [(_REWARD, '"escape_bonus": true')], (), 96, "must be a number"),
    "double_button with one agent": (
        ONE_AGENT,
        [('"rooms": ["button",', '"rooms": ["double_button",')],
        (),
        96,
        r"double_button.*num_agents",
    ),
    "five rooms": (
        GOOD,
        [('"rooms": ["button",', '"rooms": ["button", "button", "button", "button",')],
        (),
        96,
        "rooms must list 1 to 4",
    ),
    "room a number": (GOOD, [('"rooms": ["button",', '"rooms": [1,')], (), 96, "rooms must list"),
    "room null": (GOOD, [('"rooms": ["button",', '"rooms": [null,')], (), 96, "rooms must list"),
    "episode_len 2**31 (header and config)": (
        GOOD,
        [('"episode_len": 200', '"episode_len": 2147483648')],
        [("episode_len", 2**31)],
        28,
        r"episode_len is 2147483648, expected 1\.\.2147483647$",
    ),
    "episode_len 2**32-1 (header and config)": (
        GOOD,
        [('"episode_len": 200', '"episode_len": 4294967295')],
        [("episode_len", 2**32 - 1)],
        28,
        "episode_len is 4294967295",
    ),
    "episode_len 2**31 (config only)": (
        GOOD,
        [('"episode_len": 200', '"episode_len": 2147483648')],
        (),
        96,
        "episode_len is 2147483648, the header says 200",
    ),
    "episode_len 1e400": (
        GOOD,
        [('"episode_len": 200', '"episode_len": 1e400')],
        (),
        96,
        "episode_len is inf",
    ),
    "num_worlds in the header only": (
        GOOD,
        [],
        [("num_worlds", 4)],
        96,
        "num_worlds is 3, the header says 4",
    ),
    "num_worlds in the config only": (
        GOOD,
        [('"num_worlds": 3', '"num_worlds": 1099511627776')],
        (),
        96,
        "num_worlds is 1099511627776, the header says 3",
    ),
    "num_worlds 4 in header and config, 3 seeds": (
        GOOD,
        [('"num_worlds": 3', '"num_worlds": 4')],
        [("num_worlds", 4)],
        96,
        r"world_seeds must list num_worlds \(4\) integers, got 3 entries",
    ),
    "num_agents 3 in header and config, a level for 2": (
        LEVELS,
        [('"num_agents": 2', '"num_agents": 3')],
        [("num_agents", 3)],
        96,
        r"levels\[0\]: .*'S'",
    ),
    "rand_seed 1e400": (GOOD, [('"rand_seed": 42', '"rand_seed": 1e400')], (), 96, "rand_seed is inf"),
    "rand_seed 2**64 (header 2**64-1)": (
        GOOD,
        [('"rand_seed": 42', '"rand_seed": 18446744073709551616')],
        [("rand_seed", 2**64 - 1)],
        96,
        "rand_seed is 18446744073709551616",
    ),
    "world seed 1e400": (
        GOOD,
        [('"world_seeds": [42,', '"world_seeds": [1e400,')],
        (),
        96,
        r"world_seeds\[0\] is inf",
    ),
    "world episode -1": (
        GOOD,
        [('"world_episodes": [0,', '"world_episodes": [-1,')],
        (),
        96,
        r"world_episodes\[0\]",
    ),
    "checksum_interval 0 (config only)": (
        GOOD,
        [('"checksum_interval": 5', '"checksum_interval": 0')],
        (),
        96,
        "checksum_interval is 0",
    ),
    "deeply nested reward": (
        GOOD,
        [(_REWARD, '"escape_bonus": ' + "[" * 50_000 + "]" * 50_000)],
        (),
        96,
        "config block",
    ),
}


@pytest.mark.parametrize("case", list(CRAFTED_CONFIGS))
def test_crafted_config_values_are_format_errors(write, case):
    """Huge, impossible or ill-typed values behind correct CRCs: a ReplayFormatError naming the
    byte (the header field, or the config block at 96) from every entry point, never another
    exception (ValueError, OverflowError, TypeError, RecursionError)."""
    rec, edits, header, offset, reason = CRAFTED_CONFIGS[case]
    path = write(edit_config(rec, *edits, header=header))
    expect_error(path, offset, reason)
    for entry in (read_replay_metadata, er.SimManager.read_replay_metadata, er.SimManager.from_replay):
        with pytest.raises(ReplayFormatError) as info:
            entry(path)
        assert type(info.value) is ReplayFormatError
        assert str(info.value).startswith(f"{path}: byte {offset}: "), str(info.value)
        assert re.search(reason, str(info.value)), str(info.value)


# -- records ---------------------------------------------------------------------------------


def test_unknown_tag(write):
    i = index_of(GOOD, StepRecord, 2)
    start, end = GOOD.spans[i]
    data = GOOD.data[:start] + b"STEQ" + GOOD.data[start + 4 :]
    expect_error(write(refresh_record_crc(data, start, end)), start, r"unknown record tag b'STEQ'")


@pytest.mark.parametrize(
    ("kind", "payload", "reason"),
    [
        (StepRecord, bytes(1 + 18 + 1), "STEP record payload_len 20, expected 19"),
        (StepRecord, bytes(1 + 18 - 1), "STEP record payload_len 18, expected 19"),
        (HashRecord, bytes(8 + 8 * 3 - 8), "HASH record payload_len 24, expected 56"),
        (HashRecord, bytes(8 + 8 * 3), "HASH record payload_len 32, expected 56"),  # a version 1 HASH
        (HashRecord, bytes(8 + 16 * 3 + 8), "HASH record payload_len 64, expected 56"),
        (EndRecord, bytes(4), "END record payload_len 4, expected 8"),
        (ResetRecord, b"\x01", r"RSET record payload_len 1, expected 2\.\.26"),
        (ResetRecord, b"\x01\x01", r"RSET record payload_len 2, expected 10 \(1 worlds, has_seeds 1\)"),
        (
            ResetRecord,
            b"\x03\x00" + bytes(8),
            r"RSET record payload_len 10, expected 2 \(2 worlds, has_seeds 0\)",
        ),
        (ResetRecord, b"\x03\x01" + bytes(8), r"RSET record payload_len 10, expected 18"),
    ],
)
def test_payload_len_mismatch(write, kind, payload, reason):
    i = index_of(GOOD, kind, 1 if kind is HashRecord else 0)
    tag = {StepRecord: b"STEP", HashRecord: b"HASH", EndRecord: b"END ", ResetRecord: b"RSET"}[kind]
    expect_error(write(with_record(GOOD, i, tag, payload)), GOOD.spans[i][0], reason)


@pytest.mark.parametrize("which", ["first", "middle", "last"])
def test_bad_crc_names_the_record(write, which):
    i = {"first": 0, "middle": len(GOOD.spans) // 2, "last": len(GOOD.spans) - 1}[which]
    start, end = GOOD.spans[i]
    data = bytearray(GOOD.data)
    data[start + 8 + (end - start - 12) // 2] ^= 0x10  # the middle of the payload
    expect_error(write(bytes(data)), start, "CRC mismatch")


@pytest.mark.parametrize(
    ("component", "value", "name"),
    [
        (0, 4, "move_amount"),
        (1, 8, "move_angle"),
        (2, 5, "rotate"),
        (0, -1, "move_amount"),
        (2, -128, "rotate"),
    ],
)
def test_out_of_range_action(write, component, value, name):
    i = index_of(GOOD, StepRecord, 7)
    actions = GOOD.records[i].actions.copy()
    actions[2, 1, component] = value
    payload = step_payload(GOOD.records[i].reset, actions)
    expect_error(
        write(with_record(GOOD, i, b"STEP", payload)),
        GOOD.spans[i][0],
        rf"STEP record 7: world 2 agent 1 {name} is {value}, expected 0\.\.",
    )


def test_step_bitset_padding_bits(write):
    i = index_of(GOOD, StepRecord, 4)
    payload = bytes([0b1000_0000]) + GOOD.records[i].actions.tobytes()
    expect_error(write(with_record(GOOD, i, b"STEP", payload)), GOOD.spans[i][0], "bits set beyond world 2")


def test_rset_padding_bits_empty_mask_and_has_seeds(write):
    i = index_of(GOOD, ResetRecord)
    start = GOOD.spans[i][0]
    expect_error(write(with_record(GOOD, i, b"RSET", b"\x09\x00")), start, "mask has bits set beyond world 2")
    expect_error(write(with_record(GOOD, i, b"RSET", b"\x00\x00")), start, "empty mask")
    expect_error(write(with_record(GOOD, i, b"RSET", b"\x01\x02" + bytes(8))), start, "has_seeds is 2")


def test_data_after_end(write):
    end = len(GOOD.data)
    expect_error(write(GOOD.data + b"\x00"), end, "1 bytes of data after the END record")
    record = frame(b"HASH", hash_payload(20, [1, 2, 3], [4, 5, 6]))
    expect_error(write(GOOD.data + record), end, "data after the END record")


def test_record_order_rules(write):
    # the first record must be HASH 0
    data = GOOD.data[: GOOD.records_start] + GOOD.data[GOOD.spans[1][0] :]
    expect_error(write(data), GOOD.records_start, "the first record is")
    # a HASH's step must count the STEP records before it
    i = index_of(GOOD, HashRecord, 1)
    start = GOOD.spans[i][0]
    expect_error(
        write(with_record(GOOD, i, b"HASH", hash_payload(4, [0, 0, 0], [0, 0, 0]))),
        start,
        "HASH record for step 4 after 5",
    )
    # the HASH after STEP 5 (checksum_interval 5) is missing
    data = GOOD.data[: GOOD.spans[i][0]] + GOOD.data[GOOD.spans[i][1] :]
    expect_error(write(data), start, "where the HASH record of step 5 belongs")
    # END must count the steps, follow a HASH of the last step and agree with the header
    j = len(GOOD.spans) - 1
    end_start = GOOD.spans[j][0]
    expect_error(
        write(with_record(GOOD, j, b"END ", struct.pack("<Q", 19))), end_start, "END record says 19 steps"
    )
    rec = build(num_steps=21)  # 21 % 5 != 0: the final HASH is the only one after step 21
    no_final_hash = rec.data[: rec.spans[-2][0]] + rec.data[rec.spans[-1][0] :]
    expect_error(write(no_final_hash), rec.spans[-2][0], "without a HASH record after the last step")
    expect_error(write(patch(GOOD.data, 56, "<Q", 21)), 56, "header num_steps 21 disagrees")
    expect_error(
        write(patch(GOOD.data, 56, "<Q", 19)),
        GOOD.spans[index_of(GOOD, StepRecord, 19)][0],
        "more STEP records than the header's num_steps 19",
    )


def test_first_error_in_file_order_is_reported(write):
    # a bad action in STEP 3 (checked in a batch) and a bad CRC in a later record
    i = index_of(GOOD, StepRecord, 3)
    actions = GOOD.records[i].actions.copy()
    actions[0, 0, 0] = 9
    data = bytearray(with_record(GOOD, i, b"STEP", step_payload(GOOD.records[i].reset, actions)))
    later = GOOD.spans[-3][0] + 9
    data[later] ^= 1
    expect_error(write(bytes(data)), GOOD.spans[i][0], "STEP record 3")


# -- unfinished and truncated files ----------------------------------------------------------


def test_unfinished_recording_without_end(write):
    rec = build(finished=False, with_end=False)
    with pytest.warns(ReplayTruncatedWarning, match=f"byte {len(rec.data)}: no END record"):
        replay = ReplayFile(write(rec.data))
    assert replay.num_steps == 20 and not replay.metadata.complete
    assert list(replay.records()) == rec.records


def test_end_record_with_unpatched_header_is_incomplete(write):
    rec = build(finished=False)
    with pytest.warns(ReplayTruncatedWarning, match="never patched"):
        meta = read_replay_metadata(write(rec.data))
    assert meta.num_steps == 20 and not meta.complete


def test_truncation_at_every_byte_offset(write):
    rec = build(num_worlds=3, num_agents=2, num_steps=20, checksum_interval=5)
    assert len(rec.data) > 1000
    path = write(b"", "cut.bin")
    boundaries = {end for _, end in rec.spans}
    for cut in range(len(rec.data)):
        with open(path, "wb") as f:
            f.write(rec.data[:cut])
        if cut < rec.records_start:
            header_or_config = cut < 96
            with pytest.raises(
                ReplayFormatError, match="truncated header" if header_or_config else "truncated config"
            ):
                ReplayFile(path)
            continue
        replay, caught = open_quietly(path)
        with replay:
            assert [w.category for w in caught] == [ReplayTruncatedWarning], cut
            message = str(caught[0].message)
            if cut in boundaries or cut == rec.records_start:
                assert f"byte {cut}: no END record" in message, (cut, message)
            else:
                start = max(s for s, _ in rec.spans if s <= cut)
                assert f"byte {start}: the file ends inside" in message, (cut, message)
            assert replay.num_steps == rec.steps_before(cut), cut
            assert replay.metadata.num_steps == replay.num_steps
            assert not replay.metadata.complete
            kept = list(replay.records())
            assert kept == rec.records[: len(kept)]
            assert len(kept) == sum(end <= cut for _, end in rec.spans)
    replay = ReplayFile(write(rec.data))
    assert replay.metadata.complete


# -- fuzzing ---------------------------------------------------------------------------------


def mutate(rec: Recording, rng: np.random.Generator) -> bytes:
    data = bytearray(rec.data)
    n = len(data)
    op = int(rng.integers(10))
    if op == 9:  # the config block: one value changed to another valid-JSON value, every CRC fixed
        return with_config(mutate_config_value(config_block(rec.data), rng), rec)
    if op == 0:  # flip bits
        for _ in range(int(rng.integers(1, 5))):
            data[int(rng.integers(n))] ^= 1 << int(rng.integers(8))
    elif op == 1:  # insert bytes
        k = int(rng.integers(n + 1))
        data[k:k] = rng.integers(0, 256, int(rng.integers(1, 32)), dtype=np.uint8).tobytes()
    elif op == 2:  # delete a range
        k = int(rng.integers(n))
        del data[k : k + int(rng.integers(1, 64))]
    elif op == 3:  # truncate
        del data[int(rng.integers(n)) :]
    elif op in (4, 5):  # a header field overwritten with a boundary or random value, CRC fixed or not
        name = list(HEADER_FIELDS)[int(rng.integers(len(HEADER_FIELDS)))]
        offset, fmt = HEADER_FIELDS[name]
        bits_ = 8 * struct.calcsize(fmt)
        value = int(rng.choice([0, 1, 2, 3, 5, 2**bits_ - 1, 2 ** (bits_ - 1), int(rng.integers(2**31))]))
        return patch(bytes(data), offset, fmt, value % 2**bits_, fix_crc=op == 4)
    elif op == 6:  # a record's tag, length or payload word overwritten (framing fuzz)
        start, end = rec.spans[int(rng.integers(len(rec.spans)))]
        k = start + int(rng.integers(0, max(1, end - start - 3)))
        fmt = "<I" if rng.random() < 0.7 else "<Q"
        if k + struct.calcsize(fmt) <= n:
            value = int(rng.choice([0, 1, 7, 2**32 - 1, int(rng.integers(2**32))]))
            struct.pack_into(fmt, data, k, value)
    else:  # a record's payload edited with its CRC recomputed: content validation fuzz
        index = int(rng.integers(len(rec.spans)))
        start, end = rec.spans[index]
        for _ in range(int(rng.integers(1, 4))):
            k = start + 8 + int(rng.integers(max(1, end - start - 12)))
            data[k] = int(rng.integers(256)) if rng.random() < 0.5 else data[k] ^ (1 << int(rng.integers(8)))
        if op == 8 and rng.random() < 0.5:  # and sometimes its length too
            struct.pack_into("<I", data, start + 4, int(rng.integers(0, end - start)))
        return refresh_record_crc(bytes(data), start, end)
    return bytes(data)


CONFIG_VALUES = (
    None, True, 0, 1, -1, 2, 5, 2**31, 2**32, 2**64, 0.5, 1e6, 3e38, float("inf"), float("nan"), "",
    "button", "double_button", "SAME_STEP", "fresh", [], [0], ["button"], {}, {"escape_bonus": 2.0},
)  # fmt: skip


def mutate_config_value(block: bytes, rng: np.random.Generator) -> bytes:
    """The config block with one value (a top-level key's, a reward field's or a list entry's)
    replaced by another valid-JSON value, or a key removed or added; re-serialised."""
    config = json.loads(block)
    slots = [(config, key) for key in config]
    slots += [
        (config["reward"], key) for key in config.get("reward", {}) if isinstance(config["reward"], dict)
    ]
    slots += [
        (config[key], i)
        for key in ("world_seeds", "world_episodes", "rooms")
        for i in range(len(config[key]))
    ]
    target, key = slots[int(rng.integers(len(slots)))]
    roll = rng.random()
    if roll < 0.1 and isinstance(target, dict):
        del target[key]
    elif roll < 0.2 and isinstance(target, dict):
        target["progress_scale" if target is not config else "extra"] = 1.5
    else:
        target[key] = CONFIG_VALUES[int(rng.integers(len(CONFIG_VALUES)))]
    return json.dumps(config).encode()


def check_mutant(path: str) -> str:
    """Open and fully decode a mutated file; any outcome but these fails the test."""
    try:
        replay, caught = open_quietly(path)
    except ReplayFormatError as e:
        assert re.match(re.escape(path) + r": byte \d+: ", str(e)), str(e)
        return "error"
    with replay:
        assert all(issubclass(w.category, ReplayTruncatedWarning) for w in caught), [
            str(w.message) for w in caught
        ]
        records = list(replay.records())
        steps = [r for r in records if isinstance(r, StepRecord)]
        assert len(steps) == replay.num_steps == replay.metadata.num_steps
        assert [s.index for s in steps] == list(range(len(steps)))
        meta = replay.metadata
        for r in records:
            if isinstance(r, StepRecord):
                assert r.actions.shape == (meta.num_worlds, meta.num_agents, 3)
                assert r.actions.min() >= 0 and (r.actions.max(axis=(0, 1)) < [4, 8, 5]).all()
            elif isinstance(r, HashRecord):
                assert r.hashes.shape == r.outputs.shape == (meta.num_worlds,)
        if meta.complete:
            assert isinstance(records[-1], EndRecord) and not caught
        return "warned" if caught else "ok"


def run_fuzz(tmp_path, count: int, seed: int) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    bases = [
        build(num_worlds=3, num_agents=2, num_steps=20, seed=seed),
        build(num_worlds=9, num_agents=1, num_steps=12, checksum_interval=3, seed=seed + 1),
    ]
    path = str(tmp_path / "fuzz.bin")
    outcomes = {"error": 0, "warned": 0, "ok": 0}
    for i in range(count):
        rec = bases[i % len(bases)]
        data = mutate(rec, rng)
        with open(path, "wb") as f:
            f.write(data)
        try:
            outcomes[check_mutant(path)] += 1
        except Exception as e:  # report the mutation that broke the reader
            (tmp_path / f"crash{i}.bin").write_bytes(data)
            raise AssertionError(f"mutation {i} (seed {seed}): {type(e).__name__}: {e}") from e
    return outcomes


def test_fuzz_mutations_give_only_format_errors_or_valid_prefixes(tmp_path):
    outcomes = run_fuzz(tmp_path, 2500, seed=1234)
    # the mutations reach every outcome (and so every layer of the reader)
    assert outcomes["error"] > 1000 and outcomes["warned"] > 50 and outcomes["ok"] > 10, outcomes


@pytest.mark.skipif(os.environ.get("ESCAPE_ROOM_SLOW") != "1", reason="slow fuzz; set ESCAPE_ROOM_SLOW=1")
def test_fuzz_slow_50k_mutations(tmp_path):
    outcomes = run_fuzz(tmp_path, 50_000, seed=98765)
    assert outcomes["error"] > 20_000, outcomes
