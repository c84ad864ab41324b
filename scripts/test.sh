#!/usr/bin/env bash
# Install what the tests need and run every test: Rust (cargo test, clippy), then Python
# (ruff, pytest). Used by .ci/run.
#
#   ./scripts/test.sh              # everything
#   ./scripts/test.sh -k scan      # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh

echo "[test] cargo test"
cargo test --quiet
echo "[test] cargo clippy"
cargo clippy --quiet --all-targets -- -D warnings
cargo clippy --quiet --all-targets --features python -- -D warnings
echo "[test] ruff"
ruff check python tests
echo "[test] pytest"
python -m pytest "$@"
