#!/usr/bin/env bash
# Set up and activate the project's Python environment, then build the Rust extension.
#
#   source scripts/env.sh        # used by scripts/demo.sh and scripts/test.sh
#
# Two virtual environments:
# - the shared one, ~/.cache/pillsnap/venv-py<version>-<hash of pyproject.toml>
#   (PILLSNAP_VENV moves it): every dependency (PyTorch, ultralytics, ONNX Runtime, the test
#   tools; several GB), never the project itself. It is keyed by the Python version and the
#   hash of pyproject.toml, so clones with the same dependencies share it (CI: seconds, not
#   the minutes a multi-GB torch install takes).
# - the clone's own overlay, <clone>/.venv: a venv without pip whose .pth file adds the
#   shared site-packages, plus this clone's editable install. A clone therefore always runs
#   its own code, however many clones use the shared environment.
# Run as root with apt-get available, it first installs the missing system packages: cmake
# and nasm (they build the bundled libjpeg-turbo, docs/build.md) and chromium (the web
# page's headless browser test).
set -euo pipefail

_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_python="${PYTHON:-python3}"
_pyver="$("$_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
_key="$( (echo "$_pyver"; cat "$_root/pyproject.toml") | sha256sum | cut -c1-12)"
export PILLSNAP_VENV="${PILLSNAP_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/pillsnap/venv-py$_pyver-$_key}"
_overlay="$_root/.venv"

# System packages: cmake + nasm build the bundled libjpeg-turbo (docs/build.md); chromium
# runs the web page's browser test (headless).
_missing=""
command -v cmake >/dev/null 2>&1 || _missing="$_missing cmake"
command -v nasm >/dev/null 2>&1 || _missing="$_missing nasm"
command -v chromium >/dev/null 2>&1 || _missing="$_missing chromium"
if [ -n "$_missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[env] apt-get installing:$_missing (cmake, nasm: the extension's build; chromium: the browser test)"
    apt-get update -qq && apt-get install -y -qq $_missing >/dev/null
  elif ! command -v cmake >/dev/null 2>&1 || ! command -v nasm >/dev/null 2>&1; then
    echo "[env] cmake and nasm are required: apt-get install -y cmake nasm (see docs/build.md)" >&2
    return 1 2>/dev/null || exit 1
  else
    echo "[env] chromium is missing (apt-get install -y chromium): the browser test is skipped" >&2
  fi
fi

# A clone's .venv that this script did not make may be someone's own environment: never
# delete it.
if [ -e "$_overlay" ] && [ ! -f "$_overlay/.pillsnap-overlay" ]; then
  echo "[env] $_overlay exists but was not made by scripts/env.sh; move it away and rerun" >&2
  return 1 2>/dev/null || exit 1
fi

# Several clones (parallel CI jobs) may set up the shared environment at once: one creates
# or cleans it while the others wait, instead of deleting each other's half-made copy.
mkdir -p "$(dirname "$PILLSNAP_VENV")"
_lock_fd=""
if command -v flock >/dev/null 2>&1; then
  exec {_lock_fd}>"$PILLSNAP_VENV.lock"
  if ! flock -n "$_lock_fd"; then
    echo "[env] waiting for another scripts/env.sh that is setting up $PILLSNAP_VENV"
    flock "$_lock_fd"
  fi
fi

if [ ! -f "$PILLSNAP_VENV/.pillsnap-complete" ]; then
  # The first run with these dependencies downloads and unpacks several GB: say so, and let
  # pip print its Collecting/Downloading/Installing lines (also without a terminal).
  echo "[env] creating the shared dependency environment $PILLSNAP_VENV"
  echo "[env] expect about 6.5 GB (mostly PyTorch and its CUDA libraries): several minutes," \
    "10 or more on a slow connection; pip's progress follows"
  _started=$SECONDS
  rm -rf "$PILLSNAP_VENV"
  "$_python" -m venv "$PILLSNAP_VENV"
  "$PILLSNAP_VENV/bin/python" -m pip install --quiet --upgrade pip
  # pip has no "dependencies only": install the project with all its extras, then remove
  # the project, so the shared environment never imports one clone's code for another.
  # (The extension compiled here lands in this clone's target/, which the build below reuses.)
  (cd "$_root" && "$PILLSNAP_VENV/bin/python" -m pip install -e ".[dev]")
  "$PILLSNAP_VENV/bin/python" -m pip uninstall --quiet -y pillsnap
  touch "$PILLSNAP_VENV/.pillsnap-complete"
  _took=$((SECONDS - _started))
  echo "[env] $PILLSNAP_VENV ready: $(du -sh "$PILLSNAP_VENV" | cut -f1)" \
    "in $((_took / 60)) min $((_took % 60)) s"
else
  echo "[env] reusing $PILLSNAP_VENV"
fi

_shared_site="$("$PILLSNAP_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# An environment made by an older env.sh holds an editable install of whichever clone ran
# last (its .pth would put that clone's code on every overlay's path): remove it once.
if compgen -G "$_shared_site/pillsnap-*.dist-info" >/dev/null; then
  echo "[env] removing a project install from the shared environment (dependencies only there)"
  "$PILLSNAP_VENV/bin/python" -m pip uninstall --quiet -y pillsnap
fi
if [ -n "$_lock_fd" ]; then
  exec {_lock_fd}>&-
fi

# The overlay: made from the shared environment's interpreter, so both have the same Python;
# made again (seconds) when it belongs to another shared environment or interpreter.
_overlay_id="$PILLSNAP_VENV $(grep -E '^(home|version) ' "$PILLSNAP_VENV/pyvenv.cfg" | tr '\n' ' ')"
if [ ! -x "$_overlay/bin/python" ] || [ "$(cat "$_overlay/.pillsnap-overlay" 2>/dev/null)" != "$_overlay_id" ]; then
  echo "[env] creating this clone's overlay $_overlay (on top of the shared environment)"
  rm -rf "$_overlay"
  "$PILLSNAP_VENV/bin/python" -m venv --without-pip "$_overlay"
  echo "$_overlay_id" > "$_overlay/.pillsnap-overlay"
fi
_overlay_site="$("$_overlay/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# addsitedir also runs the shared environment's own .pth files. The name sorts after the
# project's editable pillsnap.pth, so this clone's source comes first on sys.path. (repr():
# the path is written as a correctly quoted Python string, whatever it contains.)
"$_overlay/bin/python" -c 'import sys; print(f"import site; site.addsitedir({sys.argv[1]!r})")' \
  "$_shared_site" > "$_overlay_site/zz-pillsnap-shared.pth"

# Console scripts of the shared environment (pytest, torchrun, uvicorn, pip, ...) start the
# shared interpreter, which does not see the overlay: give each a wrapper in the overlay that
# runs it with the overlay's interpreter. Native executables (ruff, maturin) need none.
for _old in "$_overlay"/bin/*; do
  [ -f "$_old" ] && [ ! -L "$_old" ] || continue
  _first="" _second=""
  { IFS= read -r _first && IFS= read -r _second; } < "$_old" || true
  case "$_second" in "# pillsnap overlay wrapper"*) rm -f "$_old" ;; esac
done
for _script in "$PILLSNAP_VENV"/bin/*; do
  _name="${_script##*/}"
  [ -f "$_script" ] && [ ! -L "$_script" ] && [ ! -e "$_overlay/bin/$_name" ] || continue
  _first=""
  IFS= read -r _first < "$_script" || true
  case "$_first" in
    "#!$PILLSNAP_VENV/bin/python"*) ;;
    *) continue ;;
  esac
  printf '#!/bin/sh\n# pillsnap overlay wrapper: the shared %s, run by this clone'"'"'s interpreter\nexec "%s" "%s" "$@"\n' \
    "$_name" "$_overlay/bin/python" "$_script" > "$_overlay/bin/$_name"
  chmod +x "$_overlay/bin/$_name"
done

# shellcheck disable=SC1091
source "$_overlay/bin/activate"
# The overlay's bin first (python and the wrappers), then the shared one (ruff and maturin,
# native executables); `deactivate` restores the PATH from before.
export PATH="$_overlay/bin:$PILLSNAP_VENV/bin:${PATH#"$_overlay/bin:"}"
hash -r

echo "[env] building the Rust extension (release) into $_overlay"
_started=$SECONDS
# pip and maturin come from the shared site-packages through the .pth file above.
(cd "$_root" && python -m pip install --quiet --no-deps --no-build-isolation -e .)
echo "[env] extension built in $((SECONDS - _started)) s"
unset _root _python _pyver _key _overlay _missing _lock_fd _shared_site _overlay_id \
  _overlay_site _old _script _name _first _second _started _took
