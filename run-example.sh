#!/usr/bin/env bash
# Runs the example chat on the built-in emulator (or on Azure, when WEBPUBSUB_CONNECTION_STRING
# is set), after installing what it needs, and only that, into .venv-example the first time.
# EXAMPLE_PORT (5000) and EMULATOR_PORT (8080) move it; see example_app/__main__.py.
# --device runs a simulated MQTT device too, a thermometer in #general (docs/example-app.md).
set -euo pipefail
cd "$(dirname "$0")"
. .ci/setup-example-venv.sh
exec .venv-example/bin/python -m example_app "$@"
