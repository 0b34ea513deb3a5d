#!/usr/bin/env bash
# Rate budgets across nginx workers: an nginx with 4 workers and `lua_shared_dict truto_rate`,
# one lua-truto client per worker with rate_limit = { requests = 50, per = 2 }, against the mock
# Truto server limited to the same 50 requests per 2 s for the token. 10 concurrent callers, each
# asking a worker for 25 get_organization calls (250 requests, about 10 s).
#
#   bench/rate_budget.sh [REQUESTS] [PER] [CALLERS] [CALLS]     # defaults: 50 2 10 25
#
# TRANSPORT=curl makes the workers' clients use libcurl (blocking each worker in turn) instead of
# the default, nginx's cosockets.
#
# Prints one line per measure and ends with `rate_budget: ok` when the throughput after the
# first window is at least 0.9 x the budget and the mock sent zero 429s (else exits 1).
# Throughput: the requests that started after the first full burst, divided by the time from
# the first start to the last (the first window's burst of REQUESTS would flatter it).
# Needs nginx with lua-nginx-module, curl(1), lua5.4 with luasocket and lua-cjson, and
# lua-truto built for LuaJIT in TRUTO_NGINX_BUILD (default build-luajit: `make LUA=luajit`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
requests=${1:-50}
per=${2:-2}
callers=${3:-10}
calls=${4:-25}
transport=${TRANSPORT:-ngx}
case $transport in ngx | curl) ;; *) echo "rate_budget: TRANSPORT must be ngx or curl" >&2; exit 2 ;; esac
build=${TRUTO_NGINX_BUILD:-build-luajit}
case $build in /*) ;; *) build=$root/$build ;; esac
if [ ! -f "$build/truto/core.so" ] || [ ! -f "$build/truto/rate.lua" ]; then
  echo "rate_budget: no LuaJIT build with truto.rate in $build (make LUA=luajit)" >&2
  exit 1
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)

free_port() {
  lua5.4 -e 'local s = assert(require("socket").bind("127.0.0.1", 0)); local _, p = s:getsockname(); s:close(); print(p)'
}

mock_port=$(free_port)
mock_dir=$(spec/mock/serve --port "$mock_port")
prefix=$(mktemp -d "${TMPDIR:-/tmp}/truto-rate-bench.XXXXXX")
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  if [ -f "$prefix/nginx.pid" ]; then
    "$nginx" -p "$prefix/" -c nginx.conf -s stop 2>/dev/null || true
    for _ in $(seq 50); do [ -f "$prefix/nginx.pid" ] || break; sleep 0.1; done
  fi
  spec/mock/serve --stop "$mock_dir"
  rm -rf "$mock_dir" "$prefix"
}
trap cleanup EXIT

modules=/usr/lib/nginx/modules
[ -f "$modules/ngx_http_lua_module.so" ] || modules=/usr/share/nginx/modules
user=""
[ "$(id -u)" = 0 ] && user="user root;"
port=$(free_port)
mkdir -p "$prefix/tmp"
cat >"$prefix/nginx.conf" <<EOF
load_module "$modules/ndk_http_module.so";
load_module "$modules/ngx_http_lua_module.so";
$user
daemon on;
worker_processes 4;
pid "$prefix/nginx.pid";
error_log "$prefix/error.log" warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path "$prefix/tmp";
  lua_package_path "$build/?.lua;;";
  lua_package_cpath "$build/?.so;;";
  lua_shared_dict truto_rate 1m;
  init_worker_by_lua_block {
    BUDGET = { requests = $requests, per = $per, account = false }
  }
  server {
    listen 127.0.0.1:$port;
    location = /calls {
      content_by_lua_block {
        local truto = require "truto"
        CLIENT = CLIENT or truto.new { token = "test-token", base_url = "http://127.0.0.1:$mock_port",
          rate_limit = BUDGET, max_retries = 0, transport = "$transport" }
        local ok, failed = 0, 0
        for _ = 1, tonumber(ngx.var.arg_n) do
          if CLIENT:get_organization("org-1", { integrated_account_id = "acct-small" }) then ok = ok + 1
          else failed = failed + 1 end
        end
        ngx.say(ok, " ", failed, " ", ngx.worker.pid())
      }
    }
  }
}
EOF
"$nginx" -p "$prefix/" -c nginx.conf -e "$prefix/error.log"
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done

curl -sf -X POST -H 'Content-Type: application/json' \
  -d "{\"token\":{\"requests\":$requests,\"per\":$per}}" "http://127.0.0.1:$mock_port/__mock/limits" >/dev/null
start=$(date +%s.%N)
for i in $(seq "$callers"); do
  curl -s -m 300 -o "$prefix/out.$i" "http://127.0.0.1:$port/calls?n=$calls" &
done
wait
end=$(date +%s.%N)
cat "$prefix"/out.* >"$prefix/answers"
curl -s "http://127.0.0.1:$mock_port/__mock/limits" >"$prefix/limits.json"

status=0
lua5.4 - "$mock_dir/requests.log" "$prefix/limits.json" "$prefix/answers" "$requests" "$per" "$start" "$end" "$transport" <<'EOF' || status=$?
local cjson = require "cjson"
local log, limits_file, answers_file = arg[1], arg[2], arg[3]
local requests, per, start, stop = tonumber(arg[4]), tonumber(arg[5]), tonumber(arg[6]), tonumber(arg[7])
local transport = arg[8]
local times = {}
for line in io.lines(log) do times[#times + 1] = cjson.decode(line).time end
table.sort(times)
local ok, failed, workers, broken = 0, 0, {}, 0
for line in io.lines(answers_file) do
  local a, b, pid = line:match("^(%d+) (%d+) (%d+)$")
  if a then
    ok, failed = ok + tonumber(a), failed + tonumber(b)
    workers[pid] = true
  elseif line:find("<title>", 1, true) then
    broken = broken + 1
  end
end
if broken > 0 then
  print(string.format("rate_budget: FAILED (%d callers got an error page from nginx)", broken))
  os.exit(1)
end
local nworkers = 0
for _ in pairs(workers) do nworkers = nworkers + 1 end
local most, j = 0, 1
for i = 1, #times do
  while times[i] - times[j] >= per do j = j + 1 end
  most = math.max(most, i - j + 1)
end
if #times < 2 then
  print("rate_budget: FAILED (" .. #times .. " requests reached the mock)")
  os.exit(1)
end
local f = assert(io.open(limits_file))
local throttled = cjson.decode(f:read("*a")).throttled
f:close()
local budget = requests / per
local span = times[#times] - times[1]
local steady = (#times - requests) / span
print(string.format("rate_budget: budget %d per %s s (%.1f/s), 4 nginx workers (%d answered), shared dict, %s transport",
  requests, per, budget, nworkers, transport))
print(string.format("rate_budget: %d requests at the mock (%d ok, %d failed) in %.2f s wall", #times, ok, failed,
  stop - start))
print(string.format("rate_budget: throughput after the first window %.2f/s = %.3f x budget", steady, steady / budget))
print(string.format("rate_budget: most requests in any %s s window: %d; 429s sent by the mock: %d", per, most,
  throttled))
if steady >= 0.9 * budget and throttled == 0 and failed == 0 then
  print("rate_budget: ok")
else
  print("rate_budget: FAILED")
  os.exit(1)
end
EOF
if [ "$status" != 0 ]; then
  echo "rate_budget: the end of nginx's error log:" >&2
  tail -n 5 "$prefix/error.log" >&2 || true
fi
exit "$status"
