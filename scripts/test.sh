#!/usr/bin/env bash
# Sets up everything the test suite needs from a fresh clone, then runs lint and the whole suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/core -x`).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# checkov pins heavy dependencies of its own: it lives in a separate virtualenv (tests/infra runs it).
python3 -m venv .venv-checkov
.venv-checkov/bin/python -m pip install -q --upgrade pip
.venv-checkov/bin/python -m pip install -q 'checkov==3.3.30'   # pinned: new checkov releases add checks
npm ci --no-audit --no-fund --loglevel=error   # Azurite, started on free ports by the tests themselves

.venv/bin/ruff check .
.venv/bin/python -m pytest -q "$@"
