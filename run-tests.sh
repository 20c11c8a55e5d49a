#!/usr/bin/env bash
# Installs everything the tests need (a venv, the package with its extras, Debian's chromium,
# wrk and nginx, the official JavaScript SDKs from tests/js's lockfile) and runs the linters, the type checker, the docs build (Sphinx, warnings are errors)
# and the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
. .ci/setup-venv.sh
. .ci/install-system-packages.sh
. .ci/install-node-packages.sh
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy --strict"
.venv/bin/mypy
echo "== sphinx -n -W"
docs_out=$(mktemp -d)
trap 'rm -rf "$docs_out"' EXIT
.venv/bin/python -m sphinx -b html -n -W --keep-going -q docs "$docs_out"
rm -rf "$docs_out"
trap - EXIT
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
