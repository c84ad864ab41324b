#!/usr/bin/env bash
# Build, here, what a GPU session's one prepared run needs and the GPU machine lacks, into
# .device/ (ignored by git; the device tool carries it):
#
#   ./scripts/gpu/kit.sh          # then: device run, carry [".device"],
#                                 #   command "bash scripts/gpu/check.sh all"
#
# - wheels/: PillSnap as an abi3 wheel (the Rust extension built for any CPython >= 3.10),
#   and the pure-Python or abi3 dependencies that machine's Python 3.12 lacks (pydantic and
#   its core, python-dotenv, nvidia-ml-py for the GPU clock and power in the step windows);
# - standin/: YOLO11m (one class, fused, initial weights) traced to TorchScript for
#   `bench serve --standin` (bench/standin.py): ultralytics does not install there (its
#   OpenCV and polars wheels alone exceed what a run may carry).
# About 45 MB in all, under the 64 MiB a run carries.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/env.sh >/dev/null
rm -rf .device && mkdir -p .device/wheels
maturin build --release --quiet --out .device/wheels
py() { python -c "import importlib.metadata as m; print(m.version('$1'))"; }
pip download --quiet --no-deps --only-binary :all: --python-version 3.12 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .device/wheels \
    "pydantic==$(py pydantic)" "pydantic-core==$(py pydantic-core)" \
    "annotated-types==$(py annotated-types)" "typing-inspection==$(py typing-inspection)" \
    "python-dotenv==$(py python-dotenv)" nvidia-ml-py
python -m pillsnap.bench standin --out .device/standin
du -sh .device .device/*
