#!/usr/bin/env bash
# One device run for the GPU path: the GPU tests, then the GPU pipeline benchmark.
# Run from the repo root on the GPU machine (device tool: carry .whl). Logs go to $OUT.
#   bash tools/gpu_check.sh [pytest args...]     (BENCH_ARGS=--quick for a smoke run,
#                                                  SKIP_BENCH=1 / SKIP_TESTS=1 to skip one)
set -uo pipefail
OUT=${OUT:-out/gpu_check}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 INSPECTOR_KERNEL_CACHE=/tmp/inspector-kernels
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv;
  python3 -c "import torch, cuda.bindings; print('torch', torch.__version__, 'cuda-bindings', cuda.bindings.__version__)";
  echo "CPU: $(nproc) usable; governor: $(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null || echo n/a);" \
    "driver: $(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_driver 2>/dev/null || echo n/a);" \
    "$(grep -m1 'model name' /proc/cpuinfo)"; } \
  2>&1 | tee "$OUT/env.txt"
test_rc=0
if [ -z "${SKIP_TESTS:-}" ]; then
  python3 -m pytest -m gpu tests/gpu -q -p no:cacheprovider -rA --durations=15 "$@" 2>&1 | tee "$OUT/pytest_gpu.log"
  test_rc=${PIPESTATUS[0]}
fi
if [ -z "${SKIP_BENCH:-}" ]; then
  python3 benchmarks/pipeline_gpu.py --out "$OUT" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log"
fi
echo "pytest rc=$test_rc"
exit "$test_rc"
