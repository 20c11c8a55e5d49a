#!/usr/bin/env bash
# Installs everything the tests need (a venv, the package with its extras, Debian's chromium
# and wrk) and runs the linters, the type checker and the whole test suite. Extra arguments go
# to pytest.
set -euo pipefail
cd "$(dirname "$0")"
. .ci/setup-venv.sh
. .ci/install-system-packages.sh
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
