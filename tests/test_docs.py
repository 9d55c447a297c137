"""The >>> examples in the public docstrings run and print what they say."""

import doctest
import importlib
import pkgutil

import pytest


def _modules() -> list[str]:
    """Every module of the package (the compiled core has no docstring examples)."""
    import escape_room_env

    names = ["escape_room_env"]
    for info in pkgutil.walk_packages(escape_room_env.__path__, "escape_room_env."):
        if not info.name.startswith("escape_room_env._"):
            names.append(info.name)
    return names


MODULES = _modules()


def test_the_examples_cover_the_modules_that_have_them():
    assert {"escape_room_env.levels", "escape_room_env.render", "escape_room_env.bench"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_tensor_docstring_example_runs():
    import escape_room_env as er

    parser = doctest.DocTestParser()
    test = parser.get_doctest(er.Tensor.__doc__, {}, "Tensor", None, 0)
    assert test.examples, "Tensor's docstring lost its example"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0
