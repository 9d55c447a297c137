#!/usr/bin/env bash
# One command for a session on a GPU machine: build and install the CUDA backend, run the tests
# that exercise it, run benchmarks/bench_gpu.py, and print a summary. About 6 minutes on an H100
# (an estimate: it has not run on one yet).
#
#   bash benchmarks/gpu_session.sh                 # on the GPU machine, from anywhere
#   bash benchmarks/gpu_session.sh --fetch-wheels  # first, on a machine that reaches PyPI
#
# The GPU machine has nvcc, CMake, ninja, nanobind, scikit-build-core, PyTorch and pytest, but no
# network and no gymnasium, which escape_room_env imports. --fetch-wheels downloads the wheels of
# gymnasium and farama-notifications (the versions installed where it runs, else the newest) into
# wheels/ (git-ignored); take that folder along to the GPU machine (the device tool: carry
# ["wheels"]) and this script installs them when gymnasium is missing.
#
# Where things go: with $OUT set (the device tool collects what is written there) the logs
# (build.log, tests.log, bench.log, summary.txt) and the benchmark's results
# (<date>-<machine>-<gpu>-gpu.jsonl and .md) all go to $OUT; otherwise the results go to
# benchmarks/results/ and the logs to a new folder under ${TMPDIR:-/tmp}.
#
# Environment:
#   PYTHON         the interpreter (default: python3)
#   ER_SITE        where the package and the wheels are installed, put first on PYTHONPATH
#                  (default: /tmp/er_site; the system's site-packages stay untouched)
#   ER_CUDA_ARCHS  CMAKE_CUDA_ARCHITECTURES (default: this GPU's, from nvidia-smi, for a shorter
#                  build; "default": the project's own list, 80-real 90-real 90-virtual)
#   ER_TESTS       test files to run, relative to tests/ (default: the list below)
#   ER_BENCH_ARGS  extra arguments for bench_gpu.py (e.g. "--quick")
#   ER_TEST_TIMEOUT, ER_BENCH_TIMEOUT  seconds before the tests (default 420) or the benchmark
#                  (default 300) are stopped, so that a hung GPU cannot eat the whole session
#
# A failing build stops the script. A failing test does not stop the benchmark: both exit codes
# are recorded in the summary, and the script exits non-zero if either failed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

fetch_wheels() {
    local dir=$REPO/wheels
    mkdir -p "$dir"
    local specs=() name version
    for name in gymnasium farama-notifications; do
        version=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name" 2>/dev/null || true)
        specs+=("$name${version:+==$version}")
    done
    echo "== downloading ${specs[*]} for CPython 3.12 on x86-64 Linux into $dir"
    "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$dir" "${specs[@]}"
    ls -l "$dir"
    echo "== take wheels/ to the GPU machine (device tool: carry [\"wheels\"]) and run: bash benchmarks/gpu_session.sh"
}

if [[ ${1:-} == --fetch-wheels ]]; then
    fetch_wheels
    exit 0
elif [[ $# -gt 0 ]]; then
    echo "usage: bash benchmarks/gpu_session.sh [--fetch-wheels]" >&2
    exit 2
fi

DEFAULT_TESTS="test_cuda.py test_bench_gpu.py test_headless.py test_vector_torch.py test_determinism.py \
test_batch_renderer.py test_replay.py test_tensors.py"
read -r -a TESTS <<<"${ER_TESTS:-$DEFAULT_TESTS}"
SITE=${ER_SITE:-/tmp/er_site}
if [[ -n ${OUT:-} ]]; then
    LOGS=$OUT
    RESULTS=$OUT
else
    LOGS=$(mktemp -d)
    RESULTS=$REPO/benchmarks/results
fi
mkdir -p "$LOGS" "$RESULTS" "$SITE"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
# Python and pytest run from here, so that the source tree (no compiled _core) is not imported.
NEUTRAL=$(mktemp -d)

echo "== GPU"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi || true
    GPU_LINE=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1 || true)
    CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d ' .' || true)
else
    echo "nvidia-smi not found: no NVIDIA driver here; the GPU tests will skip and the benchmark measure nothing"
    GPU_LINE="none (no nvidia-smi)"
    CAP=""
fi
"$PY" --version
command -v nvcc >/dev/null && nvcc --version | tail -n 2

echo "== gymnasium"
if (cd "$NEUTRAL" && "$PY" -c "import gymnasium" 2>/dev/null); then
    echo "gymnasium is installed"
elif compgen -G "$REPO/wheels/*.whl" >/dev/null; then
    echo "installing from wheels/: $(cd "$REPO/wheels" && echo *.whl)"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "$REPO"/wheels/*.whl
else
    echo "gymnasium is not installed and wheels/ holds no wheels: run 'bash benchmarks/gpu_session.sh" \
        "--fetch-wheels' on a machine that reaches PyPI and take wheels/ along" >&2
    exit 2
fi

echo "== build and install (ESCAPE_ROOM_CUDA=ON), log: $LOGS/build.log"
ARCHS=${ER_CUDA_ARCHS:-${CAP:+${CAP}-real}}
BUILD_ARGS=()
if [[ -n $ARCHS && $ARCHS != default ]]; then
    BUILD_ARGS+=("--config-settings=cmake.define.CMAKE_CUDA_ARCHITECTURES=$ARCHS")
fi
echo "CMAKE_CUDA_ARCHITECTURES: ${ARCHS:-the project default}"
build_start=$SECONDS
build_rc=0
ESCAPE_ROOM_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$PY" -m pip install -v --no-build-isolation --no-deps --no-index --no-cache-dir --upgrade \
    --target "$SITE" "${BUILD_ARGS[@]}" "$REPO" >"$LOGS/build.log" 2>&1 || build_rc=$?
build_s=$((SECONDS - build_start))
if [[ $build_rc -ne 0 ]]; then
    tail -n 60 "$LOGS/build.log"
    echo "== the build failed (exit $build_rc after ${build_s} s); see $LOGS/build.log" >&2
    exit "$build_rc"
fi
# The tests and the benchmark must import this build, not another install (an editable one's
# import hook would win over PYTHONPATH).
(cd "$NEUTRAL" && "$PY" -c "
import os, sys, escape_room_env as er, escape_room_env._core as core
print('built in ${build_s} s:', er.__file__)
print('CUDA backend built:', core.CUDA_BUILT, '| cuda_available():', er.cuda_available(),
      '| devices:', core.cuda_device_count())
if not os.path.realpath(er.__file__).startswith(os.path.realpath('$SITE') + os.sep):
    sys.exit('another escape_room_env is imported instead of the one just built in $SITE; uninstall it first')
if not core.CUDA_BUILT:
    sys.exit('the build has no CUDA backend')
")

echo "== tests: ${TESTS[*]}"
test_paths=()
for t in "${TESTS[@]}"; do test_paths+=("$REPO/tests/$t"); done
tests_start=$SECONDS
test_rc=0
(cd "$NEUTRAL" && timeout "${ER_TEST_TIMEOUT:-420}" "$PY" -m pytest "${test_paths[@]}" -p no:cacheprovider -q -rfEs \
    --durations=15) 2>&1 |
    tee "$LOGS/tests.log" || test_rc=$?
tests_s=$((SECONDS - tests_start))

echo "== benchmark: bench_gpu.py --save --results-dir $RESULTS ${ER_BENCH_ARGS:-}"
bench_start=$SECONDS
bench_rc=0
read -r -a BENCH_ARGS <<<"${ER_BENCH_ARGS:-}"
(cd "$NEUTRAL" && timeout "${ER_BENCH_TIMEOUT:-300}" "$PY" "$REPO/benchmarks/bench_gpu.py" --save \
    --results-dir "$RESULTS" "${BENCH_ARGS[@]}") 2>&1 |
    tee "$LOGS/bench.log" || bench_rc=$?
bench_s=$((SECONDS - bench_start))

{
    echo "GPU: $GPU_LINE"
    echo "build: ok in ${build_s} s (CMAKE_CUDA_ARCHITECTURES ${ARCHS:-default})"
    echo "tests: exit $test_rc in ${tests_s} s: $(grep -E '(passed|failed|error)' "$LOGS/tests.log" | tail -n 1)"
    echo "benchmark: exit $bench_rc in ${bench_s} s"
    grep -E '^\[(PASS|FAIL)\]|reported by Madrona|not measured at|^CPU backend peer|^saved ' "$LOGS/bench.log" || true
    echo "logs: $LOGS; results: $RESULTS"
} | tee "$LOGS/summary.txt"
rm -rf "$NEUTRAL"
if [[ $test_rc -ne 0 ]]; then exit "$test_rc"; fi
exit "$bench_rc"
