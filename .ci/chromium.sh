#!/usr/bin/env bash
# Installs Debian's chromium for the HTML report's browser test (crates/ramguard/tests/report_html.rs)
# when it is missing. Without it, that test skips with one clear message instead of failing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium.sh: no apt-get here; the HTML report's browser test will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium
