#!/usr/bin/env bash
# Set up coplay with its test dependencies, check the layout (import layers) and the code
# (ruff), start a throwaway PostgreSQL server on loopback (installing it if needed) so the
# memory conformance tests run on both backends, and run the test suite. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
.venv/bin/lint-imports
.venv/bin/ruff check .
COPLAY_TEST_POSTGRES_URL="${COPLAY_TEST_POSTGRES_URL:-$(bash scripts/postgres.sh)}"
export COPLAY_TEST_POSTGRES_URL
exec .venv/bin/python -m pytest "$@"
