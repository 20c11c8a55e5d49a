# Sourced by run-tests.sh: the official JavaScript SDKs and mqtt.js that tests drive against the
# emulator, from tests/js's lockfile (npm ci), again only when the lockfile changed.
set -euo pipefail
if ! command -v npm >/dev/null 2>&1; then
  echo "The tests need Node.js 20 and npm (for the official JavaScript SDKs)." >&2
  exit 1
fi
stamp=tests/js/node_modules/.installed-$(sha256sum tests/js/package-lock.json | cut -c1-16)
if [ ! -f "$stamp" ]; then
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
  touch "$stamp"
fi
