"""The fuzz harnesses' seed corpora (``fuzz/corpus/``) pass through their harnesses without a
finding: a regression run of every input that ever found something, without atheris."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
HARNESSES = sorted(p.stem[len("fuzz_") :] for p in FUZZ.glob("fuzz_*.py"))


@pytest.fixture(scope="module")
def harnesses():
    sys.path.insert(0, str(FUZZ))
    try:
        yield {name: importlib.import_module(f"fuzz_{name}") for name in HARNESSES}
    finally:
        sys.path.remove(str(FUZZ))
        for module in ["atheris_harness", *(f"fuzz_{name}" for name in HARNESSES)]:
            sys.modules.pop(module, None)


def test_every_harness_has_a_seed_corpus():
    assert set(HARNESSES) >= {"replay", "level"}
    for name in HARNESSES:
        assert len(list((FUZZ / "corpus" / name).iterdir())) >= 5, name


@pytest.mark.parametrize("name", HARNESSES)
def test_seed_corpus_gives_no_finding(harnesses, name):
    for path in sorted((FUZZ / "corpus" / name).iterdir()):
        try:
            harnesses[name].test_one_input(path.read_bytes())
        except Exception as e:
            raise AssertionError(f"fuzz/corpus/{name}/{path.name}: {type(e).__name__}: {e}") from e
