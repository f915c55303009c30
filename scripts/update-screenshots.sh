#!/usr/bin/env bash
# Copies the screenshots the browser test takes (tests/browser/artifacts/, written by every
# run of `cargo test`) into docs/img/ for the README's tour. Run after the test passes.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
for shot in regions job device phone api-reference users tokens audit; do
  cp "$root/tests/browser/artifacts/$shot.png" "$root/docs/img/$shot.png"
done
echo "docs/img/ updated from tests/browser/artifacts/"
