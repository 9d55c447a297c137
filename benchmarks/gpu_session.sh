#!/usr/bin/env bash
# The GPU check, in 8 minutes: the GPU and its versions, the CUDA build installed, a 10-second
# smoke test, the tests that need CUDA, then bench_gpu.py --save. Each phase runs under its own
# timeout and writes its log as it goes; summary.txt grows a line per phase, so a run cut short
# still says how far it got. It exits non-zero when no GPU is usable: it never passes vacuously.
#
#   bash benchmarks/gpu_session.sh --fetch-wheels  # prepare (CPU machine): gymnasium's wheels into wheels/
#   PYTHON=python3.12 bash benchmarks/gpu_session.sh --build-wheel  # prepare: the sm_90 CUDA wheel
#   bash benchmarks/gpu_session.sh --check         # prepare: fails unless wheels/ holds what is needed
#   bash benchmarks/gpu_session.sh --dry-run       # anywhere: the plan, the budget, whether a GPU is usable
#   bash benchmarks/gpu_session.sh [PHASE ...]     # on the GPU machine: every phase, or only smoke/tests/bench
#
# Environment: PYTHON (python3), ER_WHEELS (wheels/), ER_SITE (/tmp/er_site: where it installs,
# first on PYTHONPATH), ER_BUDGET (480 s in all), ER_BENCH_ARGS (for bench_gpu.py, e.g. --quick),
# OUT (where logs and results go; else a temporary folder and benchmarks/results/).
# benchmarks/README.md ("The GPU check") says more.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
WHEELS=${ER_WHEELS:-$REPO/wheels}
SITE=${ER_SITE:-/tmp/er_site}
TOTAL=${ER_BUDGET:-480}
export PYTHONUNBUFFERED=1 PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"

PHASES=(gpu install smoke tests bench)
declare -A BUDGET=([gpu]=20 [install]=120 [smoke]=60 [tests]=150 [bench]=130)
declare -A WHAT=(
    [gpu]="nvidia-smi, the driver's CUDA version, nvcc, compute-sanitizer"
    [install]="gymnasium from wheels/; escape_room_env from a wheel there that fits, else built (ESCAPE_ROOM_CUDA=ON); versions; is a GPU usable?"
    [smoke]="CPU and CUDA state hashes equal, 300 worlds x 50 steps (under compute-sanitizer when present)"
    [tests]="pytest tests/test_cuda.py tests/test_headless.py tests/test_vector_torch.py -k 'cuda or headless' --maxfail=3"
    [bench]="python benchmarks/bench_gpu.py --save ${ER_BENCH_ARGS:-}"
)

fetch_wheels() {  # gymnasium and farama-notifications (the versions installed here, else the newest)
    local specs=() name version
    for name in gymnasium farama-notifications; do
        version=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name" 2>/dev/null)
        specs+=("$name${version:+==$version}")
    done
    mkdir -p "$WHEELS"
    "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$WHEELS" "${specs[@]}"
}

build_wheel() {  # for $PYTHON's version (the GPU machine runs 3.12), sm_90 only
    mkdir -p "$WHEELS"
    ESCAPE_ROOM_CUDA=ON "$PY" -m pip wheel --no-deps -w "$WHEELS" \
        --config-settings=cmake.define.CMAKE_CUDA_ARCHITECTURES=90 "$REPO" || return
    { date -u; nvcc --version | tail -n 2; echo "CMAKE_CUDA_ARCHITECTURES=90"; } >"$WHEELS/escape_room_env-build.txt"
}

check_wheels() {  # 0 when wheels/ holds what the GPU machine lacks
    local rc=0 name
    for name in gymnasium farama_notifications escape_room_env; do
        if compgen -G "$WHEELS/$name-*.whl" >/dev/null; then
            echo "ok: $(cd "$WHEELS" && echo "$name"-*.whl)"
        elif [[ $name == escape_room_env ]]; then
            echo "note: no escape_room_env wheel in $WHEELS: the GPU machine will build it (--build-wheel saves that)"
        else
            echo "missing: the $name wheel in $WHEELS (run: bash benchmarks/gpu_session.sh --fetch-wheels)"
            rc=1
        fi
    done
    return $rc
}

probe() {  # versions, and exit 1 with the reason when no GPU is usable
    (cd "$NEUTRAL" && "$PY" - "$REPO/benchmarks" <<'EOF'
import sys

sys.path.insert(0, sys.argv[1])
try:
    import escape_room_env as er
    import escape_room_env._core as core
    from bench_gpu import why_no_gpu
except ImportError as e:
    sys.exit(f"GPU usable: no: escape_room_env is not importable ({e})")
print("escape_room_env:", er.__file__, {k: getattr(core, k) for k in dir(core) if k.isupper()})
try:
    import torch

    print(f"torch {torch.__version__}: CUDA runtime {torch.version.cuda}, sees a GPU: {torch.cuda.is_available()}")
except ImportError:
    print("torch: not installed")
reason = why_no_gpu()
print("GPU usable:", "yes" if reason is None else f"no: {reason}")
sys.exit(reason is not None)
EOF
    )
}

phase_gpu() {
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi
        nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
    else
        echo "nvidia-smi: not found (no NVIDIA driver here)"
    fi
    if command -v nvcc >/dev/null; then nvcc --version | tail -n 2; else echo "nvcc: not found"; fi
    echo "compute-sanitizer: $(command -v compute-sanitizer || echo not found)"
    cat "$WHEELS/escape_room_env-build.txt" 2>/dev/null
    "$PY" --version
}

phase_install() {
    if ! (cd "$NEUTRAL" && "$PY" -c "import gymnasium" 2>/dev/null); then
        check_wheels || return 2
        "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" \
            "$WHEELS"/gymnasium-*.whl "$WHEELS"/farama_notifications-*.whl || return
    fi
    if compgen -G "$WHEELS/escape_room_env-*.whl" >/dev/null && (cd "$NEUTRAL" && "$PY" -m pip install -q \
        --no-index --no-deps --upgrade --target "$SITE" --find-links "$WHEELS" escape_room_env); then
        echo "installed the carried wheel"
    else
        local cap
        cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
        echo "building (ESCAPE_ROOM_CUDA=ON, CMAKE_CUDA_ARCHITECTURES=${cap:-the project default})"
        (cd "$NEUTRAL" && ESCAPE_ROOM_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) timeout -k 10 "$(left)" \
            "$PY" -m pip install --no-build-isolation --no-deps --no-index --upgrade --target "$SITE" \
            ${cap:+--config-settings=cmake.define.CMAKE_CUDA_ARCHITECTURES=$cap} "$REPO") || return
    fi
    probe
}

SMOKE='
import sys
import numpy as np, torch
import escape_room_env as er
from escape_room_env.bench import action_pool

W, STEPS = 300, 50
sims = [er.SimManager(er.ExecMode.CPU, 0, W, 7, num_threads=2), er.SimManager(er.ExecMode.CUDA, 0, W, 7)]
actions = [sim.action_tensor().to_torch() for sim in sims]
for step, a in enumerate(action_pool(W, STEPS, seed=1), 1):
    for t in actions:
        t.copy_(torch.from_numpy(a.reshape(t.shape)))
    torch.cuda.synchronize()
    for sim in sims:
        sim.step()
    cpu, gpu = (sim.state_hashes() for sim in sims)
    if not np.array_equal(cpu, gpu):
        bad = np.flatnonzero(cpu != gpu)
        sys.exit(f"smoke: CPU and CUDA differ after step {step} in {bad.size} of {W} worlds, first {bad[:8].tolist()}")
print(f"smoke: CPU and CUDA state hashes equal, {W} worlds x {STEPS} steps")
'

phase_smoke() {
    local rc=0
    if command -v compute-sanitizer >/dev/null; then
        (cd "$NEUTRAL" && timeout -k 10 "$(left)" compute-sanitizer --tool memcheck --error-exitcode 97 \
            --print-limit 10 "$PY" -c "$SMOKE") && return
        rc=$?
        echo "== under compute-sanitizer: exit $rc; again without it, to tell the tool from the code"
    fi
    (cd "$NEUTRAL" && timeout -k 10 "$(left)" "$PY" -c "$SMOKE") && return $rc
}

phase_tests() {
    cd "$NEUTRAL" && timeout -k 10 "$(left)" "$PY" -m pytest -p no:cacheprovider -q -rfEs --maxfail=3 \
        "$REPO/tests/test_cuda.py" "$REPO/tests/test_headless.py" "$REPO/tests/test_vector_torch.py" \
        -k "cuda or headless"
}

phase_bench() {
    local extra
    read -r -a extra <<<"${ER_BENCH_ARGS:-}"
    cd "$NEUTRAL" && timeout -k 10 "$(left)" "$PY" "$REPO/benchmarks/bench_gpu.py" --save \
        --results-dir "$RESULTS" "${extra[@]}"
}

left() { echo $((PHASE_END - SECONDS)); }

note() { echo "$*" | tee -a "$LOGS/summary.txt"; }

run_phase() {  # run_phase NAME: phase_NAME within its budget and the session's; a line in the summary
    local name=$1 budget=${BUDGET[$1]} start=$SECONDS rc
    ((budget > DEADLINE - SECONDS)) && budget=$((DEADLINE - SECONDS))
    if ((budget < 5)); then
        note "$name: not run, the ${TOTAL} s are spent"
        return 1
    fi
    PHASE_END=$((SECONDS + budget))
    echo "== $name (up to $budget s): ${WHAT[$name]}"
    "phase_$name" 2>&1 | tee "$LOGS/$name.log"
    rc=${PIPESTATUS[0]}
    local how="exit $rc"
    ((rc == 124 || rc == 137)) && how="timed out"
    note "$name: $how after $((SECONDS - start)) s (budget $budget s): $(grep -v '^\s*$' "$LOGS/$name.log" | tail -n 1)"
    return "$rc"
}

plan() {
    echo "plan (${TOTAL} s in all; a phase gets its budget or what is left):"
    for name in "${PHASES[@]}"; do printf '  %-8s %4s s  %s\n' "$name" "${BUDGET[$name]}" "${WHAT[$name]}"; done
}

NEUTRAL=$(mktemp -d)  # Python runs from here, so that the source tree (no compiled _core) is not imported
trap 'rm -rf "$NEUTRAL"' EXIT
case ${1:-} in
    --fetch-wheels) fetch_wheels && check_wheels; exit ;;
    --build-wheel) build_wheel && check_wheels; exit ;;
    --check) check_wheels; exit ;;
    --dry-run)
        plan
        echo "== wheels ($WHEELS)"
        check_wheels
        wheels=$?
        echo "== gpu"
        phase_gpu
        echo "== is a GPU usable? (this machine's escape_room_env; a real run installs first)"
        probe && exit "$wheels"
        echo "dry run: no usable GPU here, so a real run would stop after install" >&2
        exit 1
        ;;
    -*) sed -n '7,11p' "$0" >&2; exit 2 ;;
esac

SELECTED=("${@:-smoke tests bench}")
read -r -a SELECTED <<<"${SELECTED[*]}"
for name in "${SELECTED[@]}"; do
    [[ $name =~ ^(smoke|tests|bench)$ ]] || { echo "unknown phase '$name' (smoke, tests, bench)" >&2; exit 2; }
done
if [[ -n ${OUT:-} ]]; then LOGS=$OUT RESULTS=$OUT; else LOGS=$(mktemp -d) RESULTS=$REPO/benchmarks/results; fi
mkdir -p "$LOGS" "$RESULTS" "$SITE"
: >"$LOGS/summary.txt"
DEADLINE=$((SECONDS + TOTAL))
plan
run_phase gpu
if ! run_phase install; then
    note "stopped: nothing after install could test anything (no usable GPU, or no install); logs: $LOGS"
    exit 1
fi
status=0
for name in "${SELECTED[@]}"; do
    run_phase "$name" || { rc=$?; ((status == 0)) && status=$rc; }
done
note "logs: $LOGS; results: $RESULTS"
exit "$status"
