#!/usr/bin/env bash
# Installs what the test suite needs beyond the Python packages: each area adds its own step.
set -euo pipefail
cd "$(dirname "$0")/.."
