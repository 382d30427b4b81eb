#!/usr/bin/env bash
# Set up everything (system packages, .venv with all extras) and run the test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/monitor -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
exec .venv/bin/python -m pytest -m "not slow and not gpu" "$@"
