#!/usr/bin/env bash
# Does lua-truto block nginx? 20 concurrent requests to one listing location of
# examples/nginx.conf, served by ONE nginx worker, each waiting ~500 ms for the mock Truto
# server (account acct-small@500, one page). With the nginx transport (cosockets) the worker
# serves them all at once: the lot takes about as long as one. With the libcurl transport the
# worker blocks in each request in turn: about 20 times as long.
#
#   bench/nginx_concurrency.sh [N] [LATENCY_MS] [PAGES] [WORKERS]     # defaults: 20 500 1 1
#
# PAGES > 1 lists acct-small in PAGES pages (each LATENCY_MS late) instead of one. WORKERS > 1
# runs that many nginx workers (e.g. 4). Meanwhile a /fast location (it only says "ok") is asked
# every 50 ms, and its p50 and p99 latency are printed for each transport: what the other
# requests of a worker feel while the listings run.
# Needs nginx with lua-nginx-module, curl(1), luajit with luasocket, awk, and lua-truto built for
# LuaJIT in TRUTO_NGINX_BUILD (default build-luajit: `make LUA=luajit`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
n=${1:-20}
latency=${2:-500}
pages=${3:-1}
workers=${4:-1}
build=${TRUTO_NGINX_BUILD:-build-luajit}
case $build in /*) ;; *) build=$root/$build ;; esac
if [ ! -f "$build/truto/core.so" ] || [ ! -f "$build/truto/ngx.lua" ]; then
  echo "nginx_concurrency: no LuaJIT build in $build (make LUA=luajit)" >&2
  exit 1
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)

free_port() {
  luajit -e 'local s = assert(require("socket").bind("127.0.0.1", 0)); local _, p = s:getsockname(); s:close(); print(p)'
}
now() { date +%s.%N; }

mock_port=$(free_port)
mock_dir=$(spec/mock/serve --port "$mock_port")
prefix=$(mktemp -d "${TMPDIR:-/tmp}/truto-nginx-bench.XXXXXX")
cleanup() {
  if [ -f "$prefix/nginx.pid" ]; then
    "$nginx" -p "$prefix/" -c nginx.conf -s stop 2>/dev/null || true
    for _ in $(seq 50); do [ -f "$prefix/nginx.pid" ] || break; sleep 0.1; done
  fi
  spec/mock/serve --stop "$mock_dir"
  rm -rf "$prefix" "$mock_dir"
}
trap cleanup EXIT

port=$(free_port)
chmod 755 "$prefix"
cp examples/nginx.conf examples/openresty.lua "$prefix/"
ln -s "$build" "$prefix/lib"
sed -i -e "s/listen 127\.0\.0\.1:8080;/listen 127.0.0.1:$port;/" \
  -e "s/^worker_processes .*/worker_processes $workers;/" \
  -e 's|^    location = /users {|    location = /fast { content_by_lua_block { ngx.say("ok") } }\n    location = /users {|' \
  "$prefix/nginx.conf"
user=()
[ "$(id -u)" = 0 ] && user=(-g "user root;")
TRUTO_API_TOKEN=test-token TRUTO_BASE_URL="http://127.0.0.1:$mock_port" \
  "$nginx" -p "$prefix/" -c nginx.conf -e "$prefix/error.log" "${user[@]}"
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done

limit=$(( (40 + pages - 1) / pages ))
path="/users?account=acct-small@$latency&limit=$limit"

# Runs n requests at once with ?transport=$1; prints the wall time in seconds and /fast's p50
# and p99 latency in ms (asked every 50 ms meanwhile). Every answer must be a 200 listing all 40
# users.
run() {
  local kind=$1 out=$prefix/out.$1 start end i bad
  rm -rf "$out" && mkdir -p "$out"
  # warm-up requests: each worker loads the module and opens its pool
  for ((i = 1; i <= workers; i++)); do curl -sf "http://127.0.0.1:$port$path&transport=$kind" >/dev/null & done
  wait
  # one curl process sends all n at once (n processes started from this shell would reach
  # nginx spread over a second or more on a loaded machine, and that spread was measured)
  local args=()
  for ((i = 1; i <= n; i++)); do args+=(-o "$out/$i" "http://127.0.0.1:$port$path&transport=$kind"); done
  start=$(now)
  curl -s -Z --parallel-immediate --parallel-max "$n" -w '%{http_code}\n' "${args[@]}" >"$out/codes" &
  echo $! >"$out/pids"
  while kill -0 $(cat "$out/pids") 2>/dev/null; do
    curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/fast" >>"$out/fast" || true
    sleep 0.05
  done
  wait
  end=$(now)
  bad=0
  for ((i = 1; i <= n; i++)); do
    if ! grep -q '"count":40' "$out/$i"; then bad=$((bad + 1)); fi
  done
  bad=$((bad + n - $(grep -c '^200$' "$out/codes")))
  [ "$bad" = 0 ] || { echo "nginx_concurrency: $bad of $n answers were wrong ($kind)" >&2; exit 1; }
  sort -n "$out/fast" | awk -v a="$start" -v b="$end" \
    '{ v[NR] = $1 } END { printf "%.3f %.1f %.1f\n", b - a, v[int((NR - 1) * 0.5) + 1] * 1000, v[int((NR - 1) * 0.99) + 1] * 1000 }'
}

# one request alone, for the yardstick
one_start=$(now)
curl -sf "http://127.0.0.1:$port$path&transport=ngx" >/dev/null
curl -sf "http://127.0.0.1:$port$path&transport=ngx" >/dev/null
one_end=$(now)
one=$(awk -v a="$one_start" -v b="$one_end" 'BEGIN { printf "%.3f", (b - a) / 2 }')

read -r ngx_time ngx_p50 ngx_p99 < <(run ngx)
read -r curl_time curl_p50 curl_p99 < <(run curl)
printf 'nginx, %d worker(s); %d concurrent GET %s (%d page(s), each %d ms late)\n' "$workers" "$n" "$path" "$pages" "$latency"
printf '  one request alone : %6.2f s\n' "$one"
ratio() { awk -v a="$1" -v b="$one" 'BEGIN { printf "%.1f", a / b }'; }
printf '  transport "ngx"   : %6.2f s  (%sx one request)   /fast p50 %6.1f ms  p99 %7.1f ms\n' \
  "$ngx_time" "$(ratio "$ngx_time")" "$ngx_p50" "$ngx_p99"
printf '  transport "curl"  : %6.2f s  (%sx one request)   /fast p50 %6.1f ms  p99 %7.1f ms\n' \
  "$curl_time" "$(ratio "$curl_time")" "$curl_p50" "$curl_p99"
if grep -E '\[(error|alert|crit|emerg)\]' "$prefix/error.log"; then
  echo "nginx_concurrency: nginx logged errors (above)" >&2
  exit 1
fi
