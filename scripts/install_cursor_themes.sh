#!/usr/bin/env bash
# The synthetic narratives videos draw real X11 cursor themes (arrows, hands, grabbing hands,
# crosshairs with the hotspots their files declare). Install Debian's theme packages when
# missing and we may use apt; tests that need them skip with this script's name otherwise.
set -euo pipefail
have() { [ -d "/usr/share/icons/$1/cursors" ]; }
if have DMZ-White && have Adwaita && have redglass; then
  echo "cursor themes: present"
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "cursor themes: installing dmz-cursor-theme, adwaita-icon-theme, xcursor-themes"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends dmz-cursor-theme adwaita-icon-theme xcursor-themes >/dev/null
else
  echo "cursor themes: missing and cannot apt-get install them; synthetic-theme tests will skip" >&2
  echo "               install dmz-cursor-theme adwaita-icon-theme xcursor-themes" >&2
fi
