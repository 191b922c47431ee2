#!/usr/bin/env bash
# Installs what the test suite needs beyond the Python packages: each area adds its own step.
set -euo pipefail
cd "$(dirname "$0")/.."
# Real-time e2e: the official phoenix npm client (tests/e2e/test_phoenix_node.py) ...
if command -v npm >/dev/null 2>&1; then
    (cd tests/e2e/node && npm install --no-audit --no-fund --loglevel=error)
fi
# ... and Debian's Chromium for the browser tests (driven by Playwright with executable_path).
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -q && apt-get install -y -q chromium
fi
