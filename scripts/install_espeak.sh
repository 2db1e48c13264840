#!/usr/bin/env bash
# The demo voices its narration and the speech tests synthesise words with Debian's
# espeak-ng (no download at run time). Install it when missing and we may use apt;
# without it the demo falls back to its scripted transcript and the speech tests skip.
set -euo pipefail
if command -v espeak-ng >/dev/null 2>&1; then
  echo "speech: $(command -v espeak-ng)"
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "speech: installing Debian's espeak-ng"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends espeak-ng >/dev/null
  command -v espeak-ng
else
  echo "speech: espeak-ng not found and cannot apt-get install it; the demo uses its scripted transcript" >&2
  echo "        and the speech tests skip (Debian/Ubuntu: sudo apt-get install espeak-ng)" >&2
fi
