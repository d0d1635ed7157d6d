#!/usr/bin/env bash
# Installs Debian's promtool (package prometheus) for the alert rules check (docs/alerts.yml,
# TestAlertRules in cmd/ripple). Idempotent: does nothing when promtool is on PATH. Needs root on
# Debian (apt-get); elsewhere install promtool yourself. The package's server is not started
# (policy-rc.d refuses it: only the promtool binary is wanted).
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "scripts/promtool.sh: promtool is missing; install it (Debian package prometheus; needs root and apt-get)" >&2
  exit 1
fi
echo "installing promtool (apt-get install prometheus)"
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  made_policy=1
fi
trap '[ "$made_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
promtool --version
