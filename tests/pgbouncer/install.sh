#!/usr/bin/env bash
# Builds PgBouncer 1.24.1 from Debian 13 (trixie)'s source package into tests/pgbouncer/.build,
# for the transaction-pooling test (tests/it/pgbouncer.rs). Debian 12 packages PgBouncer 1.18,
# which cannot carry sqlx's protocol-level prepared statements in transaction mode (that came
# with 1.21's max_prepared_statements); trixie's package is the same upstream release Debian
# ships today, built here with bookworm's libraries. Idempotent; runs as root in CI with no
# standard input. Takes about a minute the first time.
set -euo pipefail
cd "$(dirname "$0")"

version=1.24.1
orig="pgbouncer_${version}.orig.tar.gz"
sha256=da72a3aba13072876d055a3e58dd4aba4a5de4ed6148e73033185245598fd3e0
url="http://deb.debian.org/debian/pool/main/p/pgbouncer/${orig}"

if [ -x .build/bin/pgbouncer ] && .build/bin/pgbouncer --version 2>/dev/null | grep -q "PgBouncer ${version}"; then
  exit 0
fi

missing=()
for pkg in libevent-dev libc-ares-dev libssl-dev pkgconf make gcc curl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL --retry 3 -o "$work/$orig" "$url"
echo "${sha256}  $work/$orig" | sha256sum -c --quiet -
tar -xzf "$work/$orig" -C "$work"
(
  cd "$work/pgbouncer-${version}"
  ./configure --quiet --prefix="$PWD/../install" --without-pam --without-systemd >/dev/null
  make -s -j"$(nproc)" >/dev/null 2>&1 || make -j"$(nproc)"
  make -s install >/dev/null
)
rm -rf .build
mkdir -p .build/bin
cp "$work/install/bin/pgbouncer" .build/bin/
.build/bin/pgbouncer --version | head -n1
