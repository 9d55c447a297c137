"""What the fuzz harnesses share: coverage instrumentation of the package, and the entry point.

atheris is imported only when fuzzing, so the harnesses' ``test_one_input`` also runs without it
(``tests/test_fuzz_corpus.py`` replays the seed corpora through them in the normal test suite).
Without atheris, :func:`fuzz` falls back to :func:`plain_fuzz`: the same harness and custom
mutator in a plain random loop (no coverage feedback), with libFuzzer's main options.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import random
import sys
import time
import traceback
import types
from collections.abc import Callable

PACKAGE = "escape_room_env"


def _functions(obj: object) -> list[types.FunctionType]:
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, property):
        return [f for f in (obj.fget, obj.fset, obj.fdel) if inspect.isfunction(f)]
    return [obj] if inspect.isfunction(obj) else []


def instrument_package(prefix: str = PACKAGE) -> int:
    """Adds coverage feedback to every Python function of the imported ``prefix`` modules.

    Done after import, function by function (nested functions come along with their parent's
    code): ``atheris.instrument_imports`` misses a package that an editable install's import
    finder loads, and ``atheris.instrument_all`` also instruments numpy and the standard
    library, which halves the executions per second. Returns the number of functions.
    """
    import atheris

    done: set[int] = set()
    for name, module in list(sys.modules.items()):
        if module is None or not (name == prefix or name.startswith(prefix + ".")):
            continue
        for value in list(vars(module).values()):
            candidates = _functions(value)
            if inspect.isclass(value) and value.__module__ == name:
                for attr in vars(value).values():
                    candidates += _functions(attr)
            for fn in candidates:
                if fn.__module__ == name and id(fn.__code__) not in done:
                    atheris.instrument_func(fn)
                    done.add(id(fn.__code__))
    return len(done)


def fuzz(test_one_input: Callable[[bytes], None], **setup) -> None:
    """Instruments the package and hands ``test_one_input`` to libFuzzer (options in sys.argv;
    ``setup``: atheris.Setup's keywords, e.g. ``custom_mutator``). Without atheris: :func:`plain_fuzz`."""
    try:
        import atheris
    except ImportError:
        atheris = None
    if atheris is None:
        print("INFO: atheris is not installed: plain random fuzzing, no coverage feedback", file=sys.stderr)
        sys.exit(plain_fuzz(test_one_input, sys.argv[1:], setup.get("custom_mutator")))

    count = instrument_package()
    print(f"INFO: instrumented {count} functions of {PACKAGE}", file=sys.stderr)
    atheris.Setup(sys.argv, test_one_input, **setup)
    atheris.Fuzz()


_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF)


def byte_mutate(data: bytes, max_size: int, seed: int | None = None) -> bytes:
    """libFuzzer's mutation (``atheris.Mutate``) when atheris is there; otherwise
    :func:`plain_mutate` with ``seed``."""
    try:
        import atheris
    except ImportError:
        return plain_mutate(data, max_size, random.Random(seed))
    return atheris.Mutate(data, max_size)


def plain_mutate(data: bytes, max_size: int, rng: random.Random) -> bytes:
    """A few mutations of the kinds libFuzzer makes: bits flipped, bytes set, inserted, erased or
    copied, an interesting integer written."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        n = len(out)
        if op == 0 and n:
            out[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            out[rng.randrange(n)] = rng.randrange(256)
        elif op == 2:
            k = rng.randrange(n + 1)
            out[k:k] = rng.randbytes(rng.randint(1, 16))
        elif op == 3 and n:
            k = rng.randrange(n)
            del out[k : k + rng.randint(1, 16)]
        elif op == 4 and n:
            a, b = rng.randrange(n), rng.randrange(n)
            out[b:b] = out[a : a + rng.randint(1, 32)]
        elif n >= 4:
            size = rng.choice([1, 2, 4, 8])
            k = rng.randrange(max(1, n - size + 1))
            value = rng.choice(_INTERESTING) & ((1 << 8 * size) - 1)
            out[k : k + size] = value.to_bytes(size, "little")[: n - k]
    return bytes(out[:max_size])


def _options(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    options, paths = {}, []
    for arg in argv:
        if arg.startswith("-") and "=" in arg:
            key, value = arg[1:].split("=", 1)
            options[key] = value
        elif not arg.startswith("-"):
            paths.append(arg)
    return options, paths


def plain_fuzz(
    test_one_input: Callable[[bytes], None],
    argv: list[str],
    mutator: Callable[[bytes, int, int], bytes] | None = None,
) -> int:
    """A stand-in for libFuzzer without atheris: runs every input in the given directories (or
    the given files, once: reproducing a finding), then random mutants of them (``mutator``,
    e.g. the harness's custom one, else :func:`plain_mutate`) until ``-max_total_time`` seconds
    or ``-runs`` inputs. Understands ``-max_total_time``, ``-runs``, ``-seed``, ``-max_len`` and
    ``-artifact_prefix``; ignores libFuzzer's other options. Returns the exit status: 1 after a
    finding (printed, and saved as ``<artifact_prefix>crash-<sha1>``), else 0."""
    options, paths = _options(argv)
    seed = int(options.get("seed", "0")) or random.randrange(1, 2**31)
    rng = random.Random(seed)
    seconds = float(options.get("max_total_time", "0"))  # 0: no limit, as in libFuzzer
    deadline = time.monotonic() + seconds if seconds > 0 else float("inf")
    max_runs = int(options.get("runs", "-1"))
    prefix = options.get("artifact_prefix", "./")
    inputs: list[bytes] = []
    files_only = bool(paths) and all(os.path.isfile(p) for p in paths)
    for path in paths:
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                if os.path.isfile(full):
                    with open(full, "rb") as f:
                        inputs.append(f.read())
        elif os.path.isfile(path):
            with open(path, "rb") as f:
                inputs.append(f.read())
    max_len = int(options.get("max_len", "0")) or max([4096, *map(len, inputs)])
    print(f"INFO: plain fuzzing, seed {seed}, {len(inputs)} inputs, max_len {max_len}", file=sys.stderr)
    start, runs = time.monotonic(), 0

    def run(data: bytes) -> bool:
        nonlocal runs
        runs += 1
        try:
            test_one_input(data)
        except Exception:  # noqa: BLE001 - any exception is a finding, reported and saved
            traceback.print_exc()
            name = f"{prefix}crash-{hashlib.sha1(data).hexdigest()}"
            with open(name, "wb") as f:
                f.write(data)
            print(f"==ERROR: the harness raised; the input is saved as {name}", file=sys.stderr)
            return False
        return True

    for data in inputs:
        if not run(data):
            return 1
    if files_only:
        print(f"Done {runs} runs in {time.monotonic() - start:.0f} second(s)", file=sys.stderr)
        return 0
    pool = list(inputs) or [b""]
    while time.monotonic() < deadline and (max_runs < 0 or runs < max_runs):
        parent = rng.choice(pool)
        if mutator is not None:
            mutant = mutator(parent, max_len, rng.getrandbits(32))
        else:
            mutant = plain_mutate(parent, max_len, rng)
        if not run(mutant):
            return 1
        if len(pool) < 1000 and rng.random() < 0.02:
            pool.append(mutant)
    elapsed = time.monotonic() - start
    print(f"#{runs}\tDONE   exec/s: {runs / max(elapsed, 1e-9):.0f}", file=sys.stderr)
    print(f"Done {runs} runs in {elapsed:.0f} second(s)", file=sys.stderr)
    return 0
