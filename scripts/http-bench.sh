#!/usr/bin/env bash
# HTTP benchmark through real sockets: `webnet serve --no-worker` on a throwaway database of
# 3 regions and 10,000 devices, driven by wrk (-t2 -c8) on the six workloads of the Django
# comparison, each also given as a fraction of `GET /healthz` measured in the same run (the
# ceiling of the HTTP stack on this machine, which makes the figures comparable across noisy
# runs). Prints a Markdown table.
#
#   cargo build --release && scripts/http-bench.sh            # 15 s per workload
#   DURATION=5s scripts/http-bench.sh                          # quicker
#   SOAK=300 scripts/http-bench.sh                             # then 5 minutes of mixed load,
#                                                              # with the server's RSS every 30 s
#
# Needs wrk (Debian: apt-get install wrk), curl and psql, and PostgreSQL at DATABASE_URL's
# server (default postgres://localhost). Not part of CI: a benchmark is not a timed test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${WEBNET_BIN:-$root/target/release/webnet}"
duration="${DURATION:-15s}"
server="${DATABASE_URL:-postgres://localhost/postgres}"
db="webnet_http_bench"
url="${server%/*}/$db"
port="${PORT:-18181}"
base="http://127.0.0.1:$port"
work="$(mktemp -d)"
export WEBNET_SECRET_KEY="${WEBNET_SECRET_KEY:-http-bench-secret-key-0123456789abcdef}"

[ -x "$bin" ] || { echo "build first: cargo build --release (or set WEBNET_BIN)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

psql "$server" -qc "DROP DATABASE IF EXISTS $db" 2>/dev/null
"$bin" --database-url "$url" migrate >/dev/null
"$bin" --database-url "$url" seed-demo --regions 3 --devices 10000 >/dev/null
"$bin" --database-url "$url" user create bench --role operator --customer demo \
  --password-stdin <<<"http-bench-password" >/dev/null
token="$("$bin" --database-url "$url" token create bench --name http-bench | grep -o 'wn_[A-Za-z0-9]*' | head -1)"
site="$(psql "$url" -Atc "SELECT site FROM devices ORDER BY id LIMIT 1")"
ids="$(seq -s, 1 1000)"

"$bin" --database-url "$url" serve --no-worker --bind "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
serve=$!
trap 'kill $serve 2>/dev/null || true; wait $serve 2>/dev/null || true; rm -rf "$work"; psql "$server" -qc "DROP DATABASE IF EXISTS $db" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.2; done

# A browser session for the page: the login form's CSRF token, then the form itself.
jar="$work/cookies"
csrf="$(curl -fs -c "$jar" "$base/login" | grep -o 'name="csrf_token" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//')"
curl -fs -b "$jar" -c "$jar" -o /dev/null -d "username=bench&password=http-bench-password&csrf_token=$csrf" "$base/login"
cookie="$(awk '$6 == "webnet_session" { print $6 "=" $7 }' "$jar")"

# Writes a wrk script that sends `method` with `body` and `header`.
script() {
  local name=$1 method=$2 header=$3 body=${4:-}
  {
    echo "wrk.method = \"$method\""
    echo "wrk.headers[\"Content-Type\"] = \"application/json\""
    echo "wrk.headers[$header]"
    if [ -n "$body" ]; then echo "wrk.body = '$body'"; fi
  } | sed 's/wrk.headers\[\(.*\): \(.*\)\]/wrk.headers["\1"] = "\2"/' >"$work/$name.lua"
}
script healthz GET "Accept: */*"
script api GET "Authorization: Bearer $token"
script page GET "Cookie: $cookie"
script one POST "Authorization: Bearer $token" '{"targets": {"device_ids": [1]}, "commands": ["show version"]}'
script thousand POST "Authorization: Bearer $token" "{\"targets\": {\"device_ids\": [$ids]}, \"commands\": [\"show version\"]}"

# Runs wrk; prints "req/s p50 p99" (latencies in ms).
measure() {
  local lua=$1 path=$2
  wrk -t2 -c8 -d"$duration" --latency -s "$work/$lua.lua" "$base$path" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /Requests\/sec/ { rps = $2 }
    /Non-2xx/ { bad = $NF }
    END { printf "%s %.1f %.1f %s\n", rps, p50, p99, (bad == "" ? 0 : bad) }'
}

read -r hz_rps hz_p50 hz_p99 _ < <(measure healthz /healthz)
echo
echo "| workload | req/s | p50 / p99 ms | of /healthz | Django original req/s | × original |"
echo "| --- | --- | --- | --- | --- | --- |"
printf '| `GET /healthz` | %.0f | %s / %s | 1 | | |\n' "$hz_rps" "$hz_p50" "$hz_p99"
row() {
  local label=$1 lua=$2 path=$3 original=$4
  read -r rps p50 p99 bad < <(measure "$lua" "$path")
  [ "$bad" = 0 ] || echo "warning: $bad non-2xx answers for $label" >&2
  awk -v l="$label" -v r="$rps" -v a="$p50" -v b="$p99" -v h="$hz_rps" -v o="$original" \
    'BEGIN { printf "| %s | %.0f | %s / %s | %.3f | %s | %.0f× |\n", l, r, a, b, r / h, o, r / o }'
}
row '`GET /api/v1/regions/`' api /api/v1/regions/ 44.8
row '`GET /api/v1/devices/` (first page of 50)' api /api/v1/devices/ 22.6
row "\`GET /api/v1/devices/?site=$site\`" api "/api/v1/devices/?site=$site" 22.4
row '`POST /api/v1/commands/run`, one device' one /api/v1/commands/run 29.8
row '`POST /api/v1/commands/run`, 1,000 devices' thousand /api/v1/commands/run 15.6
row "\`GET /devices?site=$site\` (the page, signed in)" page "/devices?site=$site" 3.6
echo
echo "server RSS after the run: $(ps -o rss= -p $serve | awk '{ printf "%.0f MiB", $1 / 1024 }')"
# wrk stops with requests in flight: a request cancelled at its BEGIN or COMMIT used to leave
# PostgreSQL warnings (a stray ROLLBACK, or a BEGIN inside an open transaction) in the log.
echo "transaction warnings in the server's log: $(grep -c 'no transaction in progress\|already a transaction in progress' "$work/serve.log" || true)"

# Soak: rounds of 30 s cycling through a list, a page and job creation, with the server's
# resident memory after each, to show whether it grows under steady load.
if [ -n "${SOAK:-}" ]; then
  duration=30s
  rss() { ps -o rss= -p "$serve" | awk '{ printf "%.1f MiB", $1 / 1024 }'; }
  echo
  echo "| soak round (30 s each) | workload | req/s | server RSS after |"
  echo "| --- | --- | --- | --- |"
  echo "| 0 | (before) | | $(rss) |"
  for round in $(seq 1 $(( SOAK / 30 ))); do
    case $(( round % 3 )) in
      1) label='device list (API)' lua=api path=/api/v1/devices/ ;;
      2) label='device page, one site' lua=page path="/devices?site=$site" ;;
      0) label='job creation, one device' lua=one path=/api/v1/commands/run ;;
    esac
    read -r rps _ < <(measure "$lua" "$path")
    echo "| $round | $label | $rps | $(rss) |"
  done
fi
