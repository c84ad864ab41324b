#!/usr/bin/env bash
# Install everything and run PillSnap's main job end to end on small generated data.
#
#   ./scripts/demo.sh                  # writes demo_run/
#   ./scripts/demo.sh --out /tmp/demo  # extra arguments go to python -m pillsnap.demo
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
python -m pillsnap.demo "$@"
