#!/usr/bin/env bash
# Vendors the official browser client of Azure Web PubSub for the example chat, so running the
# example needs no build step: @azure/web-pubsub-client, at the version pinned in
# package-lock.json beside this script, bundled by esbuild (pinned there too) into one ES module,
# static/vendor/web-pubsub-client.js, with the licences of every package bundled into it in
# static/vendor/web-pubsub-client.LICENSES.txt. Both are committed; run this again after changing
# the pin. Needs Node 20+ and npm, and reaches nothing but the npm registry. Builds in a temporary
# folder: the work tree gets the two files and nothing else.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cp "$here/package.json" "$here/package-lock.json" "$here/entry.js" "$here/licenses.mjs" "$work/"
cd "$work"
npm ci --no-audit --no-fund --loglevel=error
version="$(node -p 'require("@azure/web-pubsub-client/package.json").version')"
mkdir -p "$out"
./node_modules/.bin/esbuild entry.js --bundle --format=esm --platform=browser --target=es2022 \
  --minify --legal-comments=none --metafile=meta.json --log-level=warning \
  --banner:js="/* @azure/web-pubsub-client ${version} (MIT, Microsoft Corporation), bundled with \
its dependencies into one ES module by example_app/vendor/build.sh; their licences are in \
web-pubsub-client.LICENSES.txt. Do not edit: run the script. */" \
  --outfile="$out/web-pubsub-client.js"
node licenses.mjs meta.json > "$out/web-pubsub-client.LICENSES.txt"
echo "Wrote $(cd "$out" && pwd)/web-pubsub-client.js ($(wc -c < "$out/web-pubsub-client.js") bytes)"
