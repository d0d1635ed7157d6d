#!/usr/bin/env bash
# Installs Debian's Chromium for the browser end-to-end tests (web/e2e), driven by
# playwright-core. Idempotent: does nothing when /usr/bin/chromium exists. Needs root on Debian
# (apt-get); elsewhere install Chromium yourself at /usr/bin/chromium.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "scripts/chromium.sh: /usr/bin/chromium is missing; install Chromium (needs root and apt-get)" >&2
  exit 1
fi
echo "installing chromium (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
/usr/bin/chromium --version
