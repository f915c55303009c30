#!/usr/bin/env bash
# Re-vendors the front-end assets embedded in the binary from their npm packages.
# Versions are pinned here and in the file names, so a change is a deliberate commit.
set -euo pipefail
HTMX=2.0.11
HTMX_SSE=2.2.4
PICO=2.1.1
dest="$(cd "$(dirname "$0")/.." && pwd)/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "htmx.org@$HTMX" "htmx-ext-sse@$HTMX_SSE" "@picocss/pico@$PICO" >/dev/null
for f in *.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
rm -f "$dest"/*.js "$dest"/*.css
cp "htmx.org-$HTMX/package/dist/htmx.min.js" "$dest/htmx-$HTMX.min.js"
cp "htmx-ext-sse-$HTMX_SSE/package/dist/sse.min.js" "$dest/htmx-ext-sse-$HTMX_SSE.min.js"
cp "picocss-pico-$PICO/package/css/pico.min.css" "$dest/pico-$PICO.min.css"
echo "vendored htmx $HTMX, htmx-ext-sse $HTMX_SSE, pico $PICO into $dest"
