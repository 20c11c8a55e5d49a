# Sourced by run-tests.sh: Debian's Chromium for the browser tests (never a downloaded browser),
# wrk, so the benchmark smoke test covers the HTTP load path too, and nginx, which the slow-client
# hardening test runs in front of granian (tests/hardening/test_slow_clients.py starts its own
# nginx in a temporary directory; the system service is never started).
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
if [ -n "$missing" ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  echo "Installing Debian packages for the tests:$missing"
  # Installing nginx would start the system service (on port 80): a policy-rc.d that refuses
  # every start keeps it stopped, unless the machine has a policy of its own already.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
  fi
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null || install_status=$?
  if [ -n "$policy" ]; then $sudo rm -f "$policy"; fi
  if [ "${install_status:-0}" -ne 0 ]; then
    echo "apt-get install failed with $install_status" >&2
    exit "$install_status"
  fi
fi
