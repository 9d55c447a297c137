"""The fuzz harnesses' seed corpora (``fuzz/corpus/``) pass through their harnesses without a
finding: a regression run of every input that ever found something, without atheris. The replay
harness's config mutations (issue 14, acceptance 4) run here too, a fixed number per seed file."""

from __future__ import annotations

import importlib
import random
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest

import escape_room_env as er
from escape_room_env.replay import ReplayTruncatedWarning

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
HARNESSES = sorted(p.stem[len("fuzz_") :] for p in FUZZ.glob("fuzz_*.py"))
REPLAY_SEEDS = sorted((FUZZ / "corpus" / "replay").glob("*.bin"))
CONFIG_MUTANTS_PER_SEED = 60


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


def test_replay_seeds_are_current_and_replay_to_their_end(harnesses):
    """Every replay seed is a file this build reads and replays exactly (a seed corpus in an old
    format would only exercise the version check; regenerate it with fuzz/make_corpus.py)."""
    harness = harnesses["replay"]
    harness.seed_references()
    assert len(REPLAY_SEEDS) >= 9
    for path in REPLAY_SEEDS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ReplayTruncatedWarning)  # truncated_tail, unfinished
            assert er.SimManager.read_replay_metadata(path).format_version == 2, path.name
        assert harness.replay_input(path.read_bytes()) == "same", path.name


@pytest.fixture(scope="module")
def config_mutants(harnesses):
    """Each replay seed's config mutants (fixed seeds) through the replay harness: (seed file,
    mutant number, outcome or the exception raised)."""
    harness = harnesses["replay"]
    harness.seed_references()
    results = []
    for path in REPLAY_SEEDS:
        data = path.read_bytes()
        for k in range(CONFIG_MUTANTS_PER_SEED):
            mutant = harness.mutate_config(data, random.Random(f"{path.name}/{k}"))
            assert mutant is not None, (path.name, k)  # (now and then the same config: a no-op edit)
            try:
                outcome = harness.replay_input(mutant)
            except Exception as e:  # noqa: BLE001 - sorted by the tests below
                outcome = e
            results.append((path.name, k, outcome))
    return results


def _findings(results, kind, *, but=()) -> list[str]:
    """The exceptions of type ``kind`` (not of ``but``) among the results, described."""
    return [
        f"{name} config mutant {k}: {type(o).__name__}: {o}"[:400]
        for name, k, o in results
        if isinstance(o, kind) and not isinstance(o, but)
    ]


def test_config_mutants_are_refused_diverge_or_replay_the_same(harnesses, config_mutants):
    """Acceptance 4: a config block changed into other valid JSON (every CRC fixed) is refused
    when read (ReplayFormatError), diverges while replayed (ReplayDivergenceError), or replays with
    exactly the original's outputs; no crash or other exception. (Full replays with other outputs
    are the next test's.)"""
    other = _findings(config_mutants, BaseException, but=harnesses["replay"].SilentReplayDifference)
    assert not other, "\n".join(other)
    outcomes = Counter(o if isinstance(o, str) else type(o).__name__ for _, _, o in config_mutants)
    # The mutations reach every layer: the reader's checks, the checkpoints, and full replays.
    assert outcomes["format"] > 100 and outcomes["divergence"] > 50 and outcomes["same"] > 20, outcomes


def test_no_config_mutant_replays_silently_with_other_results(config_mutants, harnesses):
    silent = _findings(config_mutants, harnesses["replay"].SilentReplayDifference)
    assert not silent, f"{len(silent)} mutants:\n" + "\n".join(silent[:20])


def test_config_mutator_never_fails(harnesses):
    """Mutants of mutants (chains of up to 6 edits) of every seed: the mutator itself always
    returns a file (or None when the config block no longer parses), never raises."""
    harness = harnesses["replay"]
    seeds = [path.read_bytes() for path in REPLAY_SEEDS]
    rng = random.Random(2024)
    made = 0
    for _ in range(1500):
        data = rng.choice(seeds)
        for _ in range(rng.randint(1, 6)):
            mutant = harness.mutate_config(data, random.Random(rng.getrandbits(32)))
            if mutant is None:
                break
            assert harness.split(mutant) is not None
            data, made = mutant, made + 1
    assert made > 4000


def test_plain_fuzzing_without_atheris_runs_the_harness(harnesses, tmp_path, capsys):
    """The fallback loop (no atheris): the corpus, then mutants (the config mutator and plain byte
    mutations), bounded by -runs; a finding exits 1 and saves the input."""
    import atheris_harness

    harness = harnesses["replay"]

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            return harness.mutate_config(data, rng) or data
        return harness.repair(atheris_harness.plain_mutate(data, max_size, rng))

    corpus = str(FUZZ / "corpus" / "replay")
    argv = ["-runs=120", "-seed=5", f"-artifact_prefix={tmp_path}/", "-timeout=30", corpus]
    assert atheris_harness.plain_fuzz(harness.test_one_input, argv, mutator) == 0
    assert "Done 120 runs" in capsys.readouterr().err

    def broken(data: bytes) -> None:
        if len(data) % 7 == 3:
            raise RuntimeError("found")

    assert (
        atheris_harness.plain_fuzz(broken, ["-runs=500", "-seed=5", f"-artifact_prefix={tmp_path}/", corpus])
        == 1
    )
    (crash,) = tmp_path.glob("crash-*")
    assert len(crash.read_bytes()) % 7 == 3
    # a file given alone is run once (reproducing a finding)
    assert atheris_harness.plain_fuzz(broken, [f"-artifact_prefix={tmp_path}/", str(crash)]) == 1
    assert atheris_harness.plain_fuzz(broken, [f"-artifact_prefix={tmp_path}/", str(REPLAY_SEEDS[0])]) == (
        len(REPLAY_SEEDS[0].read_bytes()) % 7 == 3
    )
