#!/usr/bin/env bash
# System libraries Qt's xcb (and offscreen) platform plugins load, Xvfb for the real-X-server
# test, fonts, and desktop-file-utils. Without them Qt aborts with "Could not load the Qt
# platform plugin" -- this script checks first and installs (as root) or prints the command.
# Usage: packaging/system-deps.sh [--check]   (exit 0: all present)
set -u
PKGS="libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libxcb-image0 \
libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxcb-xfixes0 \
libegl1 libgl1 libfontconfig1 libdbus-1-3 libglib2.0-0 fonts-dejavu-core xvfb xauth \
desktop-file-utils"

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "hearth: cannot check system libraries (not a Debian/Ubuntu system); Qt needs the xcb libraries listed in README.md" >&2
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "hearth: missing system packages:$missing" >&2
  exit 1
fi
if [ "$(id -u)" = "0" ]; then
  echo "hearth: installing system packages:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $missing >/dev/null
  exit $?
fi
echo "hearth: Qt needs these system packages; install them with:" >&2
echo "  sudo apt-get install -y$missing" >&2
exit 1
