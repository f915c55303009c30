#!/usr/bin/env bash
# Re-vendors the front-end assets embedded in the binary from their npm packages.
# Versions are pinned here and in the file names, so a change is a deliberate commit.
set -euo pipefail
HTMX=2.0.11
HTMX_SSE=2.2.4
PICO=2.1.1
# Morphs live updates into the page (only what changed is touched).
IDIOMORPH=0.7.4
# The API reference viewer (/api/docs).
SWAGGER_UI=5.35.0
dest="$(cd "$(dirname "$0")/.." && pwd)/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "htmx.org@$HTMX" "htmx-ext-sse@$HTMX_SSE" "@picocss/pico@$PICO" "idiomorph@$IDIOMORPH" \
  "swagger-ui-dist@$SWAGGER_UI" >/dev/null
for f in *.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
rm -rf "$dest"/*.js "$dest"/*.css "$dest"/swagger-ui-*
cp "htmx.org-$HTMX/package/dist/htmx.min.js" "$dest/htmx-$HTMX.min.js"
cp "htmx-ext-sse-$HTMX_SSE/package/dist/sse.min.js" "$dest/htmx-ext-sse-$HTMX_SSE.min.js"
cp "picocss-pico-$PICO/package/css/pico.min.css" "$dest/pico-$PICO.min.css"
cp "idiomorph-$IDIOMORPH/package/dist/idiomorph-ext.min.js" "$dest/idiomorph-ext-$IDIOMORPH.min.js"
mkdir -p "$dest/swagger-ui-$SWAGGER_UI"
for f in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE; do
  cp "swagger-ui-dist-$SWAGGER_UI/package/$f" "$dest/swagger-ui-$SWAGGER_UI/$f"
done
echo "vendored htmx $HTMX, htmx-ext-sse $HTMX_SSE, pico $PICO, idiomorph $IDIOMORPH, swagger-ui $SWAGGER_UI into $dest"
