#!/usr/bin/env bash
# The test command: lint, then the whole suite. Fails when pytest collected no test.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
$BIN/ruff check .
$BIN/python -m pytest -n "${TEST_WORKERS:-2}" --dist worksteal --durations=15 "$@"
