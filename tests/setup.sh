#!/usr/bin/env bash
# Installs what the test suite needs beyond the Python packages: each area adds its own step.
set -euo pipefail
cd "$(dirname "$0")/.."
# Browser tests (tests/web): Debian's chromium, driven by Playwright for Python (never `playwright install`).
command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
