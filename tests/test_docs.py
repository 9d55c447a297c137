"""The >>> examples in the public docstrings run and print what they say."""

import doctest
import importlib

import pytest

MODULES = [
    "escape_room_env",
    "escape_room_env.action",
    "escape_room_env.config",
    "escape_room_env.errors",
    "escape_room_env.madrona",
    "escape_room_env.manager",
    "escape_room_env.spaces",
    "escape_room_env.vector_env",
    "escape_room_env.env",
    "escape_room_env.registration",
    "escape_room_env.ppo",
    "escape_room_env.replay",
    "escape_room_env.wrappers",
]


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
