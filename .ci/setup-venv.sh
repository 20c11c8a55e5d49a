# Sourced by the top-level scripts: creates .venv and installs the project with every extra the
# tests, the emulator and the example app need. Idempotent and quiet when already done.
set -euo pipefail
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev,emulator]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
