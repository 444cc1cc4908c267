#!/usr/bin/env bash
# The one GPU check (a few minutes on an H200): the CUDA tests, then bench/gpu.py's table (versions,
# classifier crops/s at batch 1/8/32/64 in fp32 and AMP, front end and Scorer frames/s, server batched
# vs unbatched at 32 clients), written with the device's name to OUT (default out/gpu_check).
# Without CUDA the CUDA tests and rows are skipped and the rest still runs. Exits 1 when any part failed.
#   bash bench/gpu_check.sh [OUT] [bench/gpu.py options...]
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-out/gpu_check}
shift || true
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
failed=()
# the CUDA tests live in one file: collecting the others would need the browser and test extras
"$PY" -m pytest -q -p no:cacheprovider tests/integration/test_cuda.py 2>&1 | tee "$OUT/cuda_tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("CUDA tests")
tests=$(tail -n 1 "$OUT/cuda_tests.log")
"$PY" bench/gpu.py --out "$OUT/gpu_check.md" "$@" 2>&1 | tee "$OUT/gpu.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("bench/gpu.py")
echo "| CUDA tests (tests/integration/test_cuda.py) | ${tests//|/\/} |" >> "$OUT/gpu_check.md"
echo "table: $OUT/gpu_check.md"
if ((${#failed[@]})); then
    echo "gpu_check: FAILED: ${failed[*]} (logs in $OUT)" >&2
    exit 1
fi
