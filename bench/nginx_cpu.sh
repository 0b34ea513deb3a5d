#!/usr/bin/env bash
# Worker CPU inside nginx: lua-truto's nginx transport against the loop an OpenResty user would
# otherwise write (lua-resty-http `request_uri` with keep-alive + `cjson.decode`, page after
# page), listing the same users from a static nginx that serves pre-made pages, with /fast (a
# location that only says "ok") asked every 50 ms meanwhile. Like with like: both clients with
# gzip off (neither asks for it: `truto.ngx.gzip = false`), then both with gzip on (both send
# Accept-Encoding: gzip, the static server sends the pages gzip-compressed (gzip_static, level 6)
# and each inflates them: lua-truto with its zlib, the hand-written loop with zlib through the
# FFI, as lua-ffi-zlib does). GZIP=off or GZIP=on runs one mode only.
#
#   bench/nginx_cpu.sh [CONCURRENT] [USERS] [PAGE] [WORKERS]    # defaults: 20 20000 180 4
#
# Prints, for each client, the wall time of CONCURRENT listings of USERS users (pages of PAGE
# users, about 80 KB each), the CPU seconds the measured nginx's workers used (utime + stime
# from /proc, the static server not counted), the ratio of the two CPU figures, and /fast's
# p50 and p99 latency during each run. ROUNDS=N (default 2) alternates N runs of each and shows
# the one with the least worker CPU; every run is listed first. Then SEQUENTIAL=N (default 10)
# listings one at a time, alternating, each measuring its own CPU (os.clock), whole and with the
# transports alone. Each mode prints its own table and ratios.
#
# Needs nginx with lua-nginx-module, curl(1), luajit with lua-cjson, awk, lua-truto built for
# LuaJIT in TRUTO_NGINX_BUILD (default build-luajit: `make LUA=luajit`), and the unmodified
# lua-resty-http source in RESTY_HTTP (default ../shared/vendor/lua-resty-http-55bcc5a), put on
# lua_package_path as it is. CJSON_JIT=DIR puts DIR/cjson.so (a lua-cjson built for LuaJIT, such
# as `make cjson-current`'s build-cjson/luajit: the current one, as OpenResty ships it) ahead of
# Debian's for both clients.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
n=${1:-20}
users=${2:-20000}
page=${3:-180}
workers=${4:-4}
build=${TRUTO_NGINX_BUILD:-build-luajit}
case $build in /*) ;; *) build=$root/$build ;; esac
resty=${RESTY_HTTP:-$root/../shared/vendor/lua-resty-http-55bcc5a}
resty=$(cd "$resty" && pwd)
if [ ! -f "$build/truto/core.so" ] || [ ! -f "$build/truto/ngx.lua" ]; then
  echo "nginx_cpu: no LuaJIT build in $build (make LUA=luajit)" >&2
  exit 1
fi
cjson_cpath=""
if [ -n "${CJSON_JIT:-}" ]; then
  cjson_dir=$(cd "$CJSON_JIT" && pwd)
  [ -f "$cjson_dir/cjson.so" ] || { echo "nginx_cpu: no cjson.so in $cjson_dir" >&2; exit 1; }
  cjson_cpath="$cjson_dir/?.so;"
fi
[ -f "$resty/lib/resty/http.lua" ] || { echo "nginx_cpu: no lua-resty-http in $resty" >&2; exit 1; }
nginx=$(command -v nginx || echo /usr/sbin/nginx)
modules=/usr/lib/nginx/modules
[ -f $modules/ngx_http_lua_module.so ] || modules=/usr/share/nginx/modules

free_port() {
  luajit -e 'local s = assert(require("socket").bind("127.0.0.1", 0)); local _, p = s:getsockname(); s:close(); print(p)'
}

prefix=$(mktemp -d "${TMPDIR:-/tmp}/truto-nginx-cpu.XXXXXX")
chmod 755 "$prefix"
cleanup() {
  for d in static measured; do
    if [ -f "$prefix/$d/nginx.pid" ]; then
      "$nginx" -p "$prefix/$d/" -c nginx.conf -s stop 2>/dev/null || true
    fi
  done
  for _ in $(seq 50); do
    [ -f "$prefix/static/nginx.pid" ] || [ -f "$prefix/measured/nginx.pid" ] || break
    sleep 0.1
  done
  rm -rf "$prefix"
}
trap cleanup EXIT
user=""
[ "$(id -u)" = 0 ] && user="user root;"

# The pages: /unified/user-directory/users?...&next_cursor=K -> pages/K.json (the first: 1.json).
mkdir -p "$prefix/static/pages" "$prefix/measured"
LUA_PATH="$root/?.lua;;" luajit - "$prefix/static/pages" "$users" "$page" <<'EOF'
local cjson = require "cjson"
local fixtures = require "spec.mock.truto_mock.fixtures"
local dir, users, size = arg[1], tonumber(arg[2]), tonumber(arg[3])
local series = { prefix = "B", digits = 6, count = users, domain = "bench.example" }
local pages = math.ceil(users / size)
for p = 1, pages do
  local result = {}
  for i = (p - 1) * size + 1, math.min(p * size, users) do result[#result + 1] = fixtures.generated_user(series, i) end
  local f = assert(io.open(dir .. "/" .. p .. ".json", "w"))
  f:write(cjson.encode { result = result, next_cursor = p < pages and tostring(p + 1) or cjson.null,
    result_count = #result })
  f:close()
  assert(os.execute("gzip -6 -k -f " .. dir .. "/" .. p .. ".json"))
end
EOF
page_bytes=$(stat -c %s "$prefix/static/pages/1.json")
gz_bytes=$(stat -c %s "$prefix/static/pages/1.json.gz")

static_port=$(free_port)
cat >"$prefix/static/nginx.conf" <<EOF
$user
worker_processes 1;
pid nginx.pid;
error_log error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000;
  default_type application/json;
  gzip_static on;
  server {
    listen 127.0.0.1:$static_port;
    root $prefix/static;
    location = /unified/user-directory/users {
      try_files /pages/\${arg_next_cursor}.json /pages/1.json;
    }
  }
}
EOF
"$nginx" -p "$prefix/static/" -c nginx.conf -e "$prefix/static/error.log"

port=$(free_port)
cat >"$prefix/measured/bench.lua" <<'EOF'
local truto = require "truto"
local cjson = require "cjson"
local http = require "resty.http"
local M = {}
local base = os.getenv("TRUTO_BASE_URL")

-- ?gzip=1: both clients ask for gzip and inflate the answers; else neither asks.
local function gzip_wanted() return ngx.var.arg_gzip == "1" end

-- zlib through the FFI, as a hand-written loop would inflate (lua-ffi-zlib's way).
local ffi = require "ffi"
ffi.cdef [[
typedef struct {
  const unsigned char *next_in; unsigned avail_in; unsigned long total_in;
  unsigned char *next_out; unsigned avail_out; unsigned long total_out;
  const char *msg; void *state; void *zalloc; void *zfree; void *opaque;
  int data_type; unsigned long adler; unsigned long reserved;
} bench_z_stream;
int inflateInit2_(bench_z_stream *strm, int windowBits, const char *version, int stream_size);
int inflate(bench_z_stream *strm, int flush);
int inflateEnd(bench_z_stream *strm);
const char *zlibVersion(void);
]]
local zlib = ffi.load("z")
local CHUNK = 65536
local out_buf = ffi.new("unsigned char[?]", CHUNK)
local function inflate(data)
  local strm = ffi.new("bench_z_stream")
  assert(zlib.inflateInit2_(strm, 31, zlib.zlibVersion(), ffi.sizeof(strm)) == 0)
  strm.next_in, strm.avail_in = data, #data
  local parts = {}
  local ret
  repeat
    strm.next_out, strm.avail_out = out_buf, CHUNK
    ret = zlib.inflate(strm, 0)
    if ret ~= 0 and ret ~= 1 then zlib.inflateEnd(strm) error("inflate: " .. ret) end
    parts[#parts + 1] = ffi.string(out_buf, CHUNK - strm.avail_out)
  until ret == 1
  zlib.inflateEnd(strm)
  return table.concat(parts)
end

local function body_of(res)
  if res.headers["Content-Encoding"] == "gzip" then return inflate(res.body) end
  return res.body
end

local function resty_headers()
  local h = { Authorization = "Bearer test-token", Accept = "application/json" }
  if gzip_wanted() then h["Accept-Encoding"] = "gzip" end
  return h
end

-- ?clock=1: answers the CPU seconds the listing took (os.clock: the worker's CPU; exact when
-- it is the only request of the worker).
local function done(n, c0)
  if ngx.var.arg_clock then ngx.say(os.clock() - c0) else ngx.say(n) end
end

local client
function M.truto()
  client = client or truto.new { rate_limit = false, max_retries = 0 }
  require("truto.ngx").gzip = gzip_wanted()
  local c0 = os.clock()
  local n = 0
  for _ in client:users { integrated_account_id = "bench" } do n = n + 1 end
  done(n, c0)
end

-- What an OpenResty user writes by hand: lua-resty-http, keep-alive, cjson, page after page.
function M.resty()
  local c0 = os.clock()
  local httpc = http.new()
  local n, cursor = 0, nil
  repeat
    local query = { integrated_account_id = "bench", next_cursor = cursor }
    local res, err = httpc:request_uri(base .. "/unified/user-directory/users", {
      query = query, keepalive_timeout = 60000, keepalive_pool = 32, headers = resty_headers(),
    })
    if not res then ngx.status = 502 ngx.say(err) return end
    local page = cjson.decode(body_of(res))
    for _ in ipairs(page.result) do n = n + 1 end
    cursor = page.next_cursor
  until cursor == nil or cursor == cjson.null
  done(n, c0)
end

-- The transports alone: every page fetched (page K's cursor is K), not decoded.
local URL = base .. "/unified/user-directory/users?integrated_account_id=bench"
local PAGES = tonumber(os.getenv("BENCH_PAGES"))
local transport
function M.raw_truto()
  transport = transport or require("truto.ngx").new { token = "test-token" }
  require("truto.ngx").gzip = gzip_wanted()
  local c0, bytes = os.clock(), 0
  for p = 1, PAGES do
    local res = assert(transport:perform { method = "GET", url = URL .. (p > 1 and "&next_cursor=" .. p or ""),
      headers = { "Accept: application/json" } })
    bytes = bytes + #res.body
  end
  done(bytes, c0)
end
function M.raw_resty()
  local c0, bytes = os.clock(), 0
  local httpc = http.new()
  for p = 1, PAGES do
    local res = assert(httpc:request_uri(URL .. (p > 1 and "&next_cursor=" .. p or ""), {
      keepalive_timeout = 60000, keepalive_pool = 32, headers = resty_headers() }))
    bytes = bytes + #body_of(res)
  end
  done(bytes, c0)
end

return M
EOF
cat >"$prefix/measured/nginx.conf" <<EOF
load_module $modules/ndk_http_module.so;
load_module $modules/ngx_http_lua_module.so;
$user
worker_processes $workers;
pid nginx.pid;
error_log error.log notice;
env TRUTO_API_TOKEN;
env TRUTO_BASE_URL;
env BENCH_PAGES;
events { worker_connections 1024; }
http {
  access_log off;
  lua_package_path "$build/?.lua;$resty/lib/?.lua;$prefix/measured/?.lua;;";
  lua_package_cpath "$build/?.so;$cjson_cpath;";
  lua_socket_log_errors off;
  lua_shared_dict truto_rate 1m;
  server {
    listen 127.0.0.1:$port;
    location = /truto { content_by_lua_block { require("bench").truto() } }
    location = /resty { content_by_lua_block { require("bench").resty() } }
    location = /raw_truto { content_by_lua_block { require("bench").raw_truto() } }
    location = /raw_resty { content_by_lua_block { require("bench").raw_resty() } }
    location = /fast { content_by_lua_block { ngx.say("ok") } }
  }
}
EOF
TRUTO_API_TOKEN=test-token TRUTO_BASE_URL="http://127.0.0.1:$static_port" BENCH_PAGES=$(( (users + page - 1) / page )) \
  "$nginx" -p "$prefix/measured/" -c nginx.conf -e "$prefix/measured/error.log"
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$static_port") 2>/dev/null && break
  sleep 0.05
done
master=$(cat "$prefix/measured/nginx.pid")

# CPU ticks of the measured workers so far.
ticks() {
  local total=0 pid
  for pid in $(ps -o pid= --ppid "$master"); do
    total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

# run LOCATION -> "wall cpu p50 p99" (the listings ask with $gzip_query)
run() {
  local loc=$1 out=$prefix/out.$1 i start end t0 t1 bad
  rm -rf "$out" && mkdir -p "$out"
  # warm-up: each worker loads the modules and fills its pool
  for ((i = 1; i <= workers * 2; i++)); do curl -sf "http://127.0.0.1:$port/$loc?$gzip_query" >/dev/null & done
  wait
  t0=$(ticks)
  start=$(date +%s.%N)
  for ((i = 1; i <= n; i++)); do
    curl -s -o "$out/$i" "http://127.0.0.1:$port/$loc?$gzip_query" &
    echo $! >>"$out/pids"
  done
  # /fast every 50 ms while the listings run
  while kill -0 $(cat "$out/pids") 2>/dev/null; do
    curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/fast" >>"$out/fast" || true
    sleep 0.05
  done
  wait
  end=$(date +%s.%N)
  t1=$(ticks)
  bad=0
  for ((i = 1; i <= n; i++)); do [ "$(cat "$out/$i")" = "$users" ] || bad=$((bad + 1)); done
  [ "$bad" = 0 ] || { echo "nginx_cpu: $bad of $n listings through /$loc were wrong: $(head -c 200 "$out/1")" >&2; exit 1; }
  sort -n "$out/fast" | awk -v a="$start" -v b="$end" -v c="$((t1 - t0))" -v hz="$hz" \
    '{ v[NR] = $1 } END { p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1];
       printf "%.2f %.2f %.1f %.1f %d\n", b - a, c / hz, p50 * 1000, p99 * 1000, NR }'
}

# measure MODE: the alternating runs and the one-at-a-time listings with gzip MODE (off, on).
measure() {
  local mode=$1
  gzip_query=gzip=0
  if [ "$mode" = on ]; then
    gzip_query=gzip=1
    curl -sf -o /dev/null -D "$prefix/gz.headers" -H 'Accept-Encoding: gzip' \
      "http://127.0.0.1:$static_port/unified/user-directory/users?next_cursor=1"
    grep -qi '^content-encoding: gzip' "$prefix/gz.headers" || { echo "nginx_cpu: the static server sends no gzip" >&2; exit 1; }
  fi
  # Alternate runs, ROUNDS of each (the machine may be shared): the run with the least worker CPU
  # of each client is shown.
  best() { # "wall cpu p50 p99 n" lines on stdin -> the one with the least cpu
    sort -k2,2n | head -1
  }
  rounds=${ROUNDS:-2}
  : >"$prefix/runs.resty"
  : >"$prefix/runs.truto"
  for ((r = 1; r <= rounds; r++)); do
    run resty >>"$prefix/runs.resty"
    run truto >>"$prefix/runs.truto"
  done
  read -r r_wall r_cpu r_p50 r_p99 _ < <(best <"$prefix/runs.resty")
  read -r t_wall t_cpu t_p50 t_p99 _ < <(best <"$prefix/runs.truto")
  awk '{ printf "  run: lua-resty-http  wall %6.2f s  CPU %6.2f s  /fast p99 %6.1f ms\n", $1, $2, $4 }' "$prefix/runs.resty"
  awk '{ printf "  run: lua-truto      wall %6.2f s  CPU %6.2f s  /fast p99 %6.1f ms\n", $1, $2, $4 }' "$prefix/runs.truto"
  printf 'gzip %s on both; nginx, %d workers; %d concurrent listings of %d users (%d pages of %d, %d bytes each, %d gzipped) from a static nginx; lua-cjson: %s\n' \
    "$mode" "$workers" "$n" "$users" "$(( (users + page - 1) / page ))" "$page" "$page_bytes" "$gz_bytes" \
    "${CJSON_JIT:-Debian 2.1.0}"
  printf '  %-32s %8s %12s %11s %11s\n' client "wall s" "worker CPU s" "/fast p50" "/fast p99"
  printf '  %-32s %8.2f %12.2f %9.1f ms %8.1f ms\n' "lua-resty-http + cjson.decode" "$r_wall" "$r_cpu" "$r_p50" "$r_p99"
  printf '  %-32s %8.2f %12.2f %9.1f ms %8.1f ms\n' "lua-truto (nginx transport)" "$t_wall" "$t_cpu" "$t_p50" "$t_p99"
  awk -v a="$t_cpu" -v b="$r_cpu" 'BEGIN { printf "  worker CPU, lua-truto / lua-resty-http: %.2f x\n", a / b }'
  # One listing at a time, alternating, its CPU measured by the worker itself (low noise on a
  # shared machine): whole listings, then the transports alone (pages fetched, not decoded).
  seq=${SEQUENTIAL:-10}
  for loc in truto resty raw_truto raw_resty; do curl -sf "http://127.0.0.1:$port/$loc?$gzip_query" >/dev/null; done
  : >"$prefix/seq"
  for ((i = 1; i <= seq; i++)); do
    for loc in resty truto raw_resty raw_truto; do
      echo "$loc $(curl -sf "http://127.0.0.1:$port/$loc?clock=1&$gzip_query")" >>"$prefix/seq"
    done
  done
  awk -v n="$seq" '{ sum[$1] += $2 }
    END {
      printf "one listing at a time (mean of %d, worker CPU per listing):\n", n
      printf "  whole listing   lua-resty-http + cjson %.3f s   lua-truto %.3f s   %.2f x\n", sum["resty"] / n, sum["truto"] / n, sum["truto"] / sum["resty"]
      printf "  transport only  lua-resty-http         %.3f s   truto.ngx %.3f s   %.2f x\n", sum["raw_resty"] / n, sum["raw_truto"] / n, sum["raw_truto"] / sum["raw_resty"]
    }' "$prefix/seq"
}
case ${GZIP:-both} in
  off | on) measure "$GZIP" ;;
  both) measure off; measure on ;;
  *) echo "nginx_cpu: GZIP must be off, on or both" >&2; exit 2 ;;
esac
# (lua-resty-http warns once per worker that lua-resty-openssl is missing: not ours)
if grep -E '\[(warn|error|alert|crit|emerg)\]' "$prefix/measured/error.log" | grep -v 'resty\.openssl'; then
  echo "nginx_cpu: nginx logged warnings or errors (above)" >&2
  exit 1
fi
