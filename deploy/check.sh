#!/usr/bin/env bash
# Checks the deployment recipes: systemd units (systemd-analyze verify, when available) and
# Kubernetes manifests (YAML structure). Run from the repository root: bash deploy/check.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

passed=0
failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# --- systemd -------------------------------------------------------------------------------
units=(deploy/systemd/webnet.service "deploy/systemd/webnet-worker@.service")
for unit in "${units[@]}"; do
    if [[ -f "$unit" ]]; then pass "exists: $unit"; else fail "missing: $unit"; fi
done
if [[ -f deploy/systemd/webnet.env.example ]] \
    && grep -q '^DATABASE_URL=' deploy/systemd/webnet.env.example \
    && grep -q '^WEBNET_SECRET_KEY=' deploy/systemd/webnet.env.example; then
    pass "env example sets DATABASE_URL and WEBNET_SECRET_KEY"
else
    fail "deploy/systemd/webnet.env.example must set DATABASE_URL and WEBNET_SECRET_KEY"
fi

if command -v systemd-analyze >/dev/null 2>&1; then
    # verify needs ExecStart's binary and EnvironmentFile to exist: point copies at stubs.
    stub="$tmp/bin/webnet"
    mkdir -p "$tmp/bin" "$tmp/units"
    printf '#!/bin/sh\nexit 0\n' >"$stub"
    chmod 0755 "$stub"
    cp deploy/systemd/webnet.env.example "$tmp/webnet.env"
    for unit in "${units[@]}"; do
        [[ -f "$unit" ]] || continue
        name="$(basename "$unit")"
        # A template is verified through an instance.
        instance="${name/@./@us-east-1.}"
        sed -e "s#/usr/local/bin/webnet#$stub#g" \
            -e "s#/etc/webnet/webnet.env#$tmp/webnet.env#g" \
            "$unit" >"$tmp/units/$name"
        if [[ "$instance" != "$name" ]]; then
            ln -sf "$tmp/units/$name" "$tmp/units/$instance"
            target="$tmp/units/$instance"
        else
            target="$tmp/units/$name"
        fi
        if out="$(cd "$tmp/units" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$target" 2>&1)" \
            && ! grep -q "$name\|$instance" <<<"$out"; then
            pass "systemd-analyze verify $name"
        else
            fail "systemd-analyze verify $name"
            printf '%s\n' "$out" | sed 's/^/    /'
        fi
    done
else
    echo "SKIP systemd-analyze not installed: systemd units not verified"
fi

# --- Kubernetes ----------------------------------------------------------------------------
if ! python3 -c 'import yaml' 2>/dev/null; then
    pip install --quiet pyyaml
fi
manifests=(deploy/kubernetes/*.yaml)
validator_done=0
while IFS= read -r line; do
    case "$line" in
        DONE) validator_done=1 ;;
        PASS\ *) pass "${line#PASS }" ;;
        FAIL\ *) fail "${line#FAIL }" ;;
        *) echo "$line" ;;
    esac
done < <(python3 - "${manifests[@]}" <<'PY'
import sys
import yaml

def check(path, i, doc):
    where = f"{path}#{i}"
    if not isinstance(doc, dict):
        return [f"{where}: not a mapping"]
    errs = []
    for key in ("apiVersion", "kind"):
        if not doc.get(key):
            errs.append(f"{where}: missing {key}")
    name = (doc.get("metadata") or {}).get("name")
    if not name:
        errs.append(f"{where}: missing metadata.name")
    where = f"{path} {doc.get('kind')}/{name}"
    if doc.get("kind") == "Deployment":
        spec = doc.get("spec") or {}
        match = (spec.get("selector") or {}).get("matchLabels")
        tmpl = spec.get("template") or {}
        labels = (tmpl.get("metadata") or {}).get("labels")
        if not match or match != labels:
            errs.append(f"{where}: spec.selector.matchLabels {match} != template labels {labels}")
        containers = (tmpl.get("spec") or {}).get("containers") or []
        if not containers:
            errs.append(f"{where}: no containers")
        for c in containers:
            if not c.get("image"):
                errs.append(f"{where}: container {c.get('name')} has no image")
            args = c.get("args")
            if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
                errs.append(f"{where}: container {c.get('name')} has no args list of strings")
    return errs, where

for path in sys.argv[1:]:
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        print(f"FAIL {path}: does not parse: {str(e).splitlines()[0]}")
        continue
    if not docs:
        print(f"FAIL {path}: no documents")
        continue
    for i, doc in enumerate(docs):
        result = check(path, i, doc)
        if isinstance(result, list):
            for e in result:
                print(f"FAIL {e}")
            continue
        errs, where = result
        if errs:
            for e in errs:
                print(f"FAIL {e}")
        else:
            print(f"PASS manifest {where}")
print("DONE")
PY
)
if [[ $validator_done -ne 1 ]]; then fail "manifest validator did not run to completion"; fi

# Every required manifest is present.
for m in server.yaml worker-us-east-1.yaml worker-eu-west-1.yaml worker-default.yaml secret.example.yaml; do
    if [[ -f "deploy/kubernetes/$m" ]]; then pass "exists: deploy/kubernetes/$m"; else fail "missing: deploy/kubernetes/$m"; fi
done

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
