#!/usr/bin/env bash
# Create (once) and activate the project's virtual environment, then build the extension.
#
#   source scripts/env.sh        # used by scripts/demo.sh and scripts/test.sh
#
# The environment lives outside the clone, keyed by the Python version and the hash of
# pyproject.toml, so a fresh clone with unchanged dependencies reuses it (CI: seconds, not
# the minutes a multi-GB torch install takes). PILLSNAP_VENV overrides the location.
set -euo pipefail

_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_python="${PYTHON:-python3}"
_pyver="$("$_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
_key="$( (echo "$_pyver"; cat "$_root/pyproject.toml") | sha256sum | cut -c1-12)"
export PILLSNAP_VENV="${PILLSNAP_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pillsnap/venv-py$_pyver-$_key}"

# System packages: cmake + nasm build the bundled libjpeg-turbo (docs/build.md); chromium
# runs the web page's browser test (headless).
_missing=""
command -v cmake >/dev/null 2>&1 || _missing="$_missing cmake"
command -v nasm >/dev/null 2>&1 || _missing="$_missing nasm"
command -v chromium >/dev/null 2>&1 || _missing="$_missing chromium"
if [ -n "$_missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[env] installing:$_missing"
    apt-get update -qq && apt-get install -y -qq $_missing >/dev/null
  elif ! command -v cmake >/dev/null 2>&1 || ! command -v nasm >/dev/null 2>&1; then
    echo "[env] cmake and nasm are required: apt-get install -y cmake nasm (see docs/build.md)" >&2
    return 1 2>/dev/null || exit 1
  else
    echo "[env] chromium is missing (apt-get install -y chromium): the browser test is skipped" >&2
  fi
fi

if [ ! -f "$PILLSNAP_VENV/.pillsnap-complete" ]; then
  echo "[env] creating $PILLSNAP_VENV (first run with these dependencies: several minutes)"
  rm -rf "$PILLSNAP_VENV"
  "$_python" -m venv "$PILLSNAP_VENV"
  "$PILLSNAP_VENV/bin/pip" install --quiet --upgrade pip
  # Everything except the project itself; the project is built below on every run.
  (cd "$_root" && "$PILLSNAP_VENV/bin/pip" install --quiet -e ".[dev]")
  touch "$PILLSNAP_VENV/.pillsnap-complete"
else
  echo "[env] reusing $PILLSNAP_VENV"
fi

# shellcheck disable=SC1091
source "$PILLSNAP_VENV/bin/activate"
echo "[env] building the Rust extension (release)"
(cd "$_root" && pip install --quiet --no-deps --no-build-isolation -e .)
