#!/usr/bin/env sh
# Headless Chromium for tests/test_inspect.py, which opens `shelm inspect` pages the way a reader would.
# Debian/Ubuntu: installs the distribution's `chromium` unless a Chromium is already on PATH.
set -eu
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium
