#!/usr/bin/env bash
# Browser tests drive Debian's chromium through Playwright (a tool's own browser
# download does not work offline). Install it when missing and we may use apt.
set -euo pipefail
for exe in chromium chromium-browser; do
  if command -v "$exe" >/dev/null 2>&1; then
    echo "browser: $(command -v "$exe")"
    exit 0
  fi
done
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "browser: installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  command -v chromium
else
  echo "browser: chromium not found and cannot apt-get install it; browser tests will fail" >&2
  echo "         install chromium (or set QUILT_LLAVA_CHROMIUM=/path/to/chrome)" >&2
fi
