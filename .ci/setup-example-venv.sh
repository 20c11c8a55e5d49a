# Sourced by run-example.sh: creates .venv-example with what the example chat needs to run, the
# package and its emulator extra (Flask, the service SDK, aiohttp) and paho-mqtt for the
# simulated device (--device), and none of the tools the tests and linters need
# (.ci/setup-venv.sh makes that venv, .venv). Idempotent and quiet when already done.
set -euo pipefail
example_venv=.venv-example
example_requirements=(-e ".[emulator]" "paho-mqtt>=2.1")
if [ ! -x "$example_venv/bin/python" ]; then
  python3 -m venv "$example_venv"
  # Its own .gitignore, as Python 3.13's venv writes one: git, ruff and the rest skip it.
  echo "*" > "$example_venv/.gitignore"
fi
stamp="$example_venv/.installed-$( (cat setup.cfg pyproject.toml; echo "${example_requirements[*]}") \
  | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "Installing the example's packages into $example_venv (once)..."
  "$example_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "${example_requirements[@]}"
  rm -f "$example_venv"/.installed-*
  touch "$stamp"
fi
