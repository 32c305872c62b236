#!/usr/bin/env bash
# Install the headless browser the site test drives (tests/test_site.py): Debian's chromium and
# chromium-driver, plus the fonts pages are drawn with (DejaVu, with its MathML math font, and
# Liberation). Does nothing when chromium and chromedriver are there. Needs root (or sudo), apt.
#   bash scripts/install_browser.sh
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "chromium and chromedriver already installed: $(chromium --version 2>/dev/null || echo chromium)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get here: install Chromium and its chromedriver with your package manager" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "installing chromium needs root (apt-get); run this script as root" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  chromium chromium-driver fonts-dejavu-core fonts-dejavu-extra fonts-liberation >/dev/null
echo "installed: $(chromium --version)"
