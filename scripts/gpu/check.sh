#!/usr/bin/env bash
# The GPU session's checks, run on the device machine (Python 3.12, torch with CUDA, timm,
# a CPU-only ONNX Runtime) over the working tree with .device/ from scripts/gpu/kit.sh:
#
#   bash scripts/gpu/check.sh all             # or one stage: serve | train | graphs
#
# Each stage prints its tables and leaves its JSON (and the step profiles) in $OUT, the
# folder the device tool brings back. Stages, in the order `all` runs them, with their time
# on an H200 (estimates; the first run will say):
# - serve (about 2 min): issue 14's GPU rows: single and combo answers at batch 1 (p50/p95/
#   p99, the spec's 20 + 200 runs), each split into model time and the CPU's share, and the
#   image work, with both models as PyTorch modules on CUDA (bench/standin.py: that ONNX
#   Runtime has no CUDA provider), labelled so;
# - train (about 4 min): issue 15 item 3: compiled (mode default) training on 12,000
#   synthetic photos, three loader epochs of 93 steps and the resident pass, throughput in
#   windows of 20 steps with the GPU's clock, power and limits, a profile of a normal and
#   of the first slow window (bench/steps.py);
# - graphs (about 4 min): the same with train.compile=reduce-overhead (CUDA graphs).
# Record what they print in docs/benchmarks.md with the machine line they give.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT="${OUT:-/tmp/pillsnap-gpu}"
res=/tmp/pillsnap-gpu-results  # packed into $OUT/results.tgz: the tool brings back 8 files
mkdir -p "$OUT" "$res"
export PYTHONUNBUFFERED=1
stage="${1:-all}"

# PIP_BREAK_SYSTEM_PACKAGES: that machine's Python may be marked externally managed
PIP_BREAK_SYSTEM_PACKAGES=1 pip install --quiet --no-index --no-deps .device/wheels/*.whl || exit 1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv \
    | tee "$res/gpu.txt"
python -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)"

work=/tmp/pillsnap-bench-train
train() {  # $1: compile mode
  python -m pillsnap.bench train --images 12000 --classes 100 --batch 128 --modes "$1" \
      --epochs 3 --window 20 --profile --max-batch 0 --work "$work" \
      --json "$res/train-$1.json" > "$res/train-$1.log" 2>&1
  grep -v " INFO " "$res/train-$1.log" | tail -40
  mkdir -p "$res/profiles-$1"
  cp "$work/profiles/$1/"*.txt "$res/profiles-$1/" 2>/dev/null  # the traces stay: too big
}
case "$stage" in
  serve|all)
    python -m pillsnap.bench serve --standin .device/standin --device cuda \
        --json "$res/serve.json" 2>&1 | tee "$res/serve.log" ;;&
  train|all) train default ;;&
  graphs|all) train reduce-overhead ;;
  serve|train|graphs) ;;
  *) echo "unknown stage $stage: serve | train | graphs | all" >&2; exit 2 ;;
esac
tar czf "$OUT/results.tgz" -C "$res" .
