#!/usr/bin/env bash
# Installs the package with the emulator and runs the example chat on the built-in emulator
# (or on Azure, when WEBPUBSUB_CONNECTION_STRING is set).
set -euo pipefail
cd "$(dirname "$0")"
. .ci/setup-venv.sh
exec .venv/bin/python -m example_app "$@"
