#!/usr/bin/env bash
# Real-GPU check, for a machine with an NVIDIA GPU and the packages of gpusom's GPU and test
# extras (pip install -e '.[test,cuda12]' or '.[test,cuda13]'; an image that already has numba,
# numba-cuda, cupy, pytest and hypothesis needs no install: the script runs gpusom from this
# checkout). Finishes in under 10 minutes:
#
#   1. what backend="auto" picks on this machine, and its warning when that is not the GPU,
#   2. the first call's seconds with an empty and a warm kernel cache,
#   3. the tests of the CUDA engine on the device (GPUSOM_TEST_CUDASIM=0: no simulator; every
#      test whose name says cuda, gpu or device), or with --all-tests the whole suite,
#   4. a tiny training under compute-sanitizer, memcheck and racecheck,
#   5. registers and resident threads of the kernels (benchmarks/kernel_resources.py),
#   6. GPU against CPU per-step times (benchmarks/gpu_bench.py, rectangular, hexagonal and
#      cosine), next to the bandwidth floor,
#   7. CPU against GPU per-step times over map sizes (where backend="auto" should switch).
#
# Usage: ci/gpu-check.sh [--steps N] [--tests PATH] [--all-tests] [--out FILE]
#   --steps N   steps on the 1000x1000x64 maps (default 50000)
#   --tests PATH  where the tests are (default tests)
#   --all-tests every test, not only the CUDA engine's: 1,200 tests no longer fit the stage's
#               190 s (466 took 90 s on an H200), so this allows 450 s and the script may pass
#               10 minutes; or run them alone: GPUSOM_TEST_CUDASIM=0 python -m pytest -q tests
#   --out FILE  also write the benchmark table (markdown) to FILE
# Environment: PYTHON (default python3), COMPUTE_SANITIZER (path of compute-sanitizer).
# Exit status: non-zero when a stage failed. The last thing printed is the benchmark table.
set -uo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# This checkout's gpusom, also for the tests' subprocesses, installed or not.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
STEPS=50000
TESTS=tests
SELECT=(-k "cuda or gpu or device")
TEST_SECONDS=190
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --steps) STEPS=$2; shift 2 ;;
        --tests) TESTS=$2; shift 2 ;;
        --all-tests) SELECT=(); TEST_SECONDS=450; shift ;;
        --out) OUT=$2; shift 2 ;;
        -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

LOGS=${GPUSOM_CHECK_LOGS:-$(mktemp -d)}
SUMMARY=()
FAILED=0

# Time limits per stage (30 + 40 + 20 + 190 + 2 x 45 + 40 + 120 + 50 s) keep the script under
# 10 minutes, the device tool's limit per command.
# stage NAME SECONDS COMMAND...: run with a time limit, log to $LOGS/NAME.log, record the outcome.
stage() {
    local name=$1 limit=$2 start status
    shift 2
    echo "== $name: $*"
    start=$(date +%s)
    if timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1; then
        status=pass
    else
        status="FAIL (exit $?)"
        FAILED=1
        tail -n 40 "$LOGS/$name.log"
    fi
    SUMMARY+=("$(printf '%-12s %-14s %4ss' "$name" "$status" $(($(date +%s) - start)))")
}

echo "== $(nvidia-smi -L 2>/dev/null | head -n 1)"
"$PYTHON" -c 'import sys, numpy, numba; from numba import cuda
print("python", sys.version.split()[0], "numpy", numpy.__version__, "numba", numba.__version__,
      "numba.cuda", cuda.implementation, cuda.get_current_device().compute_capability)'

# What backend="auto" does with this machine's packages: the GPU, or the CPU and why.
stage auto 30 "$PYTHON" benchmarks/gpu_bench.py --auto
cat "$LOGS/auto.log"

# The first call in a fresh process: compiling into an empty cache, then loading from it.
CACHE=$(mktemp -d)
stage first-call 40 env NUMBA_CACHE_DIR="$CACHE" "$PYTHON" benchmarks/gpu_bench.py --first-call
stage warm-call 20 env NUMBA_CACHE_DIR="$CACHE" "$PYTHON" benchmarks/gpu_bench.py --first-call
cat "$LOGS/first-call.log" "$LOGS/warm-call.log"

# The test suite on the device; the simulator tests then run on real hardware. The lint gate
# needs ruff, which a GPU image may lack; it checks no GPU behaviour.
LINT=()
"$PYTHON" -c 'import ruff' 2>/dev/null || LINT=(--deselect tests/test_hygiene.py::test_ruff_is_clean)
stage tests "$TEST_SECONDS" env GPUSOM_TEST_CUDASIM=0 "$PYTHON" -m pytest -q -p no:cacheprovider \
    ${LINT[@]+"${LINT[@]}"} ${SELECT[@]+"${SELECT[@]}"} "$TESTS"
tail -n 3 "$LOGS/tests.log"

# compute-sanitizer: given, on PATH, in a CUDA toolkit, or from the nvidia-cuda-sanitizer-api wheel.
SANITIZER=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || true)}
for candidate in /usr/local/cuda/bin/compute-sanitizer \
    "$("$PYTHON" -c 'import nvidia.cuda_sanitizer_api as m; print(m.__path__[0])' 2>/dev/null)/bin/compute-sanitizer"; do
    if [ -z "$SANITIZER" ] && [ -f "$candidate" ]; then
        # The wheel ships the binary without its execute bit.
        [ -x "$candidate" ] || chmod +x "$candidate"
        SANITIZER=$candidate
    fi
done
if [ -n "$SANITIZER" ]; then
    for tool in memcheck racecheck; do
        stage "$tool" 45 "$SANITIZER" --tool "$tool" --error-exitcode 1 \
            "$PYTHON" benchmarks/gpu_bench.py --sanitize
        grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$LOGS/$tool.log" || true
    done
else
    SUMMARY+=("sanitizer    skipped: no compute-sanitizer (pip install nvidia-cuda-sanitizer-api-cu12)")
fi

# Registers and resident threads of the kernels, as ptxas reports them for this device.
CC=$("$PYTHON" -c 'from numba import cuda; print("%d.%d" % cuda.get_current_device().compute_capability)')
stage resources 40 "$PYTHON" benchmarks/kernel_resources.py --cc "$CC"
grep -E "^\| (train|late)" "$LOGS/resources.log" || true

stage benchmark 120 "$PYTHON" benchmarks/gpu_bench.py --steps "$STEPS" --out "$LOGS/table.md"
if [ -n "$OUT" ] && [ -f "$LOGS/table.md" ]; then
    cp "$LOGS/table.md" "$OUT"
fi

stage crossover 50 "$PYTHON" benchmarks/gpu_bench.py --crossover --out "$LOGS/crossover.md"

echo
echo "== summary (logs in $LOGS)"
printf '%s\n' "${SUMMARY[@]}"
echo
if [ -f "$LOGS/table.md" ]; then
    cat "$LOGS/table.md"
else
    echo "no benchmark table (see $LOGS/benchmark.log)"
fi
echo
[ -f "$LOGS/crossover.md" ] && cat "$LOGS/crossover.md"
exit "$FAILED"
