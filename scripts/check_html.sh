#!/usr/bin/env bash
# Render an sftlens report offline in headless Chromium and save a screenshot.
# Usage: scripts/check_html.sh REPORT.html OUT.png [WIDTHxHEIGHT]
# Fails when the file is missing, references anything over the network, or Chromium cannot render it.
# Installs Chromium with apt-get when it is missing (Debian/Ubuntu, as root).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTHxHEIGHT]" >&2
  exit 2
fi
report=$(realpath "$1")
out=$(realpath -m "$2")
size=${3:-1200x2000}
[ -f "$report" ] || { echo "$0: $1: no such file" >&2; exit 2; }
# self-contained: no external scripts, styles, images or fonts
if grep -Eqi '(src|href)=["'"'"']?(https?:)?//' "$report"; then
  echo "$0: $1 references a network resource (src/href to http(s)://); the report must be self-contained" >&2
  exit 1
fi
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "$0: chromium not found; installing it with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  browser=$(command -v chromium)
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$out"
timeout 120 "$browser" --headless --disable-gpu --no-sandbox --hide-scrollbars --no-first-run \
  --user-data-dir="$profile" --window-size="${size/x/,}" --screenshot="$out" "file://$report" >/dev/null 2>&1 || true
if [ ! -s "$out" ]; then
  echo "$0: chromium produced no screenshot for $1" >&2
  exit 1
fi
echo "wrote $out"
