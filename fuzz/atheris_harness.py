"""What the fuzz harnesses share: coverage instrumentation of the package, and the entry point.

atheris is imported only when fuzzing, so the harnesses' ``test_one_input`` also runs without it
(``tests/test_fuzz_corpus.py`` replays the seed corpora through them in the normal test suite).
"""

from __future__ import annotations

import inspect
import sys
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
    ``setup``: atheris.Setup's keywords, e.g. ``custom_mutator``)."""
    import atheris

    count = instrument_package()
    print(f"INFO: instrumented {count} functions of {PACKAGE}", file=sys.stderr)
    atheris.Setup(sys.argv, test_one_input, **setup)
    atheris.Fuzz()
