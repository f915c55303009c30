#!/usr/bin/env bash
# Installs what the browser test needs: Debian's Chromium and the pinned
# playwright-core from the npm registry. Idempotent; runs as root in CI with no
# standard input. Playwright never downloads a browser of its own here (the
# test launches /usr/bin/chromium through executablePath).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x /usr/bin/chromium ]; then
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium >/dev/null
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "install.sh: npm not found (the machine's Node.js 20+ and npm are required)" >&2
  exit 1
fi

if [ ! -f node_modules/playwright-core/package.json ] || [ ! -f node_modules/axe-core/axe.min.js ]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
fi

mkdir -p artifacts
