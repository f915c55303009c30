#!/usr/bin/env bash
# Installs Schemathesis (pinned in requirements.txt) from PyPI into tests/schemathesis/.venv
# for the schema-driven API test. Idempotent; runs as root in CI with no standard input.
set -euo pipefail
cd "$(dirname "$0")"

python=$(command -v python3 || true)
if [ -z "$python" ]; then
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq python3 python3-venv >/dev/null
  python=$(command -v python3)
fi
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq python3-venv >/dev/null
fi

want=$(grep -E '^schemathesis==' requirements.txt | cut -d= -f3)
if [ -x .venv/bin/st ] && [ "$(.venv/bin/st --version 2>/dev/null | awk '{print $NF}')" = "$want" ]; then
  exit 0
fi
rm -rf .venv
"$python" -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
.venv/bin/st --version
