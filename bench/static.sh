#!/usr/bin/env bash
# The static-file scenarios (issue 11): nginx serves pre-made pages, so the server is never the
# bottleneck and what is measured is the client: transport, JSON decoding, the page loop.
#
#   S6  listing 20,000 users: 200 pages of 100 users (about 80 KB each) over plain HTTP, by
#       a bare C loop of libcurl + cjson.decode (bench/peers/curl_cjson.c), lua-truto, and
#       Lua 5.4 + LuaSocket + cjson; the first two with Debian's lua-cjson 2.1.0 and with the
#       current one (openresty 2.1.0.17, built by `make cjson-current`).
#   S7  1,000 get_organization over HTTPS (a throw-away CA made as spec/helpers/tls.lua does):
#       the bare C loop on one keep-alive connection, lua-truto with one client, lua-truto with
#       a new client per call, Node fetch and Python requests (one Session), each trusting the
#       same CA.
#
#   bench/static.sh                 both scenarios, BENCH_REPS (5) runs each, medians
#   BENCH_CALLGRIND=1 bench/static.sh   also the instructions each S6 client and decoding 50
#                                       pages cost (callgrind); =only: just those, printed
#
# Every run of every client is interleaved with the others (round robin), so a busy moment of
# the machine falls on all of them. Writes the section between the static markers of
# bench/RESULTS.md (BENCH_OUT names another directory) and prints it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
reps=${BENCH_REPS:-5}
build=${TRUTO_BUILD:-$root/build}
cjson_current=${CJSON_BUILD:-$root/build-cjson}
out_dir=${BENCH_OUT:-$here}
pages=${BENCH_STATIC_PAGES:-200}
calls=${BENCH_TLS_CALLS:-1000}
lua=${LUA_BIN:-lua5.4}

log() { echo "static: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ -f "$build/truto/core.so" ] || die "no $build/truto/core.so: run make all"
[ -f "$cjson_current/cjson.so" ] || die "no $cjson_current/cjson.so: run make cjson-current"
work=$(mktemp -d "${TMPDIR:-/tmp}/truto-static.XXXXXX")
nginx_pid=""
cleanup() {
  if [ -n "$nginx_pid" ]; then kill "$nginx_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

cc -O2 -Wall -Wextra -Werror -o "$work/curl_cjson" "$here/peers/curl_cjson.c" \
  $(pkg-config --cflags --libs lua5.4 libcurl)
mkdir -p "$work/pages" "$work/tmp"
"$lua" "$here/static/pages.lua" "$work/pages" "$pages"

# A throw-away CA and a server certificate for localhost, as spec/helpers/tls.lua makes them.
(
  cd "$work"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=lua-truto-bench-ca \
    -keyout ca.key -out ca.crt
  openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr
  echo "subjectAltName=DNS:localhost,IP:127.0.0.1" >ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext \
    -out server.crt
) >/dev/null 2>&1 || die "openssl could not make the certificates"

free_port() { "$lua" -e 'local s = require("socket").bind("127.0.0.1", 0); local _, p = s:getsockname(); print(p); s:close()'; }
http_port=$(free_port)
tls_port=$(free_port)
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
cat >"$work/nginx.conf" <<CONF
$user_line
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 256; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  default_type application/json;
  client_body_temp_path $work/tmp;
  proxy_temp_path $work/tmp;
  fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp;
  scgi_temp_path $work/tmp;
  root $work/pages;
  server {
    listen 127.0.0.1:$http_port;
    location = /unified/user-directory/users { try_files /p\$arg_next_cursor.json =404; }
  }
  server {
    listen 127.0.0.1:$tls_port ssl;
    ssl_certificate $work/server.crt;
    ssl_certificate_key $work/server.key;
    location = /unified/user-directory/organizations/org-1 { try_files /org.json =404; }
  }
}
CONF
nginx -p "$work/" -c "$work/nginx.conf" -e "$work/error.log" &
nginx_pid=$!
for _ in $(seq 50); do
  curl -sf -o /dev/null "http://127.0.0.1:$http_port/unified/user-directory/users" && break
  sleep 0.1
done

base="http://127.0.0.1:$http_port"
list_url="$base/unified/user-directory/users?integrated_account_id=acct-static&limit=100"
org_url="https://localhost:$tls_port/unified/user-directory/organizations/org-1?integrated_account_id=acct-static"
deb_cpath="$build/?.so;;"
cur_cpath="$build/?.so;$cjson_current/?.so;;"
lpath="$build/?.lua;$build/?/init.lua;;"
want_users=$((pages * 100))

# name|expected items|command (run by bash -c with the environment set in it)
s6=(
  "c_debian|$want_users|LUA_CPATH='$deb_cpath' \$RUN '$work/curl_cjson' list '$list_url'"
  "c_current|$want_users|LUA_CPATH='$cur_cpath' \$RUN '$work/curl_cjson' list '$list_url'"
  "truto_debian|$want_users|LUA_CPATH='$deb_cpath' LUA_PATH='$lpath' TRUTO_BASE_URL='$base' TRUTO_API_TOKEN=t \$RUN $lua '$here/clients/truto.lua' list accounts=acct-static limit=100 rate_limit=off"
  "truto_current|$want_users|LUA_CPATH='$cur_cpath' LUA_PATH='$lpath' TRUTO_BASE_URL='$base' TRUTO_API_TOKEN=t \$RUN $lua '$here/clients/truto.lua' list accounts=acct-static limit=100 rate_limit=off"
  "luasocket_debian|$want_users|LUA_CPATH='$deb_cpath' TRUTO_BASE_URL='$base' TRUTO_API_TOKEN=t \$RUN $lua '$here/peers/luasocket.lua' accounts=acct-static limit=100"
  "luasocket_current|$want_users|LUA_CPATH='$cur_cpath' TRUTO_BASE_URL='$base' TRUTO_API_TOKEN=t \$RUN $lua '$here/peers/luasocket.lua' accounts=acct-static limit=100"
)
tls_base="https://localhost:$tls_port"
s7=(
  "c_keepalive|$calls|BENCH_CA='$work/ca.crt' LUA_CPATH='$deb_cpath' \$RUN '$work/curl_cjson' get '$org_url' $calls"
  "truto_keepalive|$calls|LUA_CPATH='$deb_cpath' LUA_PATH='$lpath' TRUTO_BASE_URL='$tls_base' TRUTO_API_TOKEN=t \$RUN $lua '$here/clients/truto.lua' keepalive calls=$calls org=org-1 accounts=acct-static rate_limit=off ca_file='$work/ca.crt'"
  "truto_fresh|$calls|LUA_CPATH='$deb_cpath' LUA_PATH='$lpath' TRUTO_BASE_URL='$tls_base' TRUTO_API_TOKEN=t \$RUN $lua '$here/clients/truto.lua' fresh calls=$calls org=org-1 accounts=acct-static rate_limit=off ca_file='$work/ca.crt'"
  "node_fetch|$calls|NODE_EXTRA_CA_CERTS='$work/ca.crt' \$RUN node '$here/peers/node_orgs.mjs' '$org_url' $calls"
  "python_requests|$calls|REQUESTS_CA_BUNDLE='$work/ca.crt' \$RUN python3 '$here/peers/python_orgs.py' '$org_url' $calls"
)

declare -A times cpu
# run_set NAME-OF-ARRAY: every client once per round, BENCH_REPS rounds.
run_set() {
  local -n set=$1
  local rep entry name want cmd t0 t1 got
  for rep in $(seq "$reps"); do
    for entry in "${set[@]}"; do
      IFS='|' read -r name want cmd <<<"$entry"
      t0=$EPOCHREALTIME
      got=$(RUN="" /usr/bin/time -f '%U %S' -o "$work/cpu" bash -c "$cmd" 2>"$work/stderr") ||
        { cat "$work/stderr" >&2; die "$name failed"; }
      t1=$EPOCHREALTIME
      got=$(sed -n 's/^items=//p' <<<"$got")
      [ "$got" = "$want" ] || die "$name read $got items, not $want"
      times[$name]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') "
      cpu[$name]+="$(awk '{ printf "%.3f", $1 + $2 }' "$work/cpu") "
      log "$1 round $rep: $name ${times[$name]% } s, CPU ${cpu[$name]% } s"
    done
  done
}
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "${BENCH_CALLGRIND:-0}" = only ]; then
  reps=0 # instructions only (below), for profiling: RESULTS.md is left alone
else
  run_set s6
  run_set s7
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

declare -A med mcpu
for k in "${!times[@]}"; do # none when reps=0
  med[$k]=$(median "${times[$k]}")
  mcpu[$k]=$(median "${cpu[$k]}")
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
row() {
  printf '| %s | %s s | %s x | %s s | %s x |\n' "$1" "${med[$2]}" "$(ratio "${med[$2]}" "${med[$3]}")" \
    "${mcpu[$2]}" "$(ratio "${mcpu[$2]}" "${mcpu[$3]}")"
}

callgrind=""
if [ "${BENCH_CALLGRIND:-0}" != 0 ]; then
  cg() { # cpath how -> instructions
    LUA_CPATH="$1" LUA_PATH="$lpath" valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
      "$lua" "$here/static/decode_cost.lua" "$2" "$work/pages" 50 >/dev/null 2>"$work/cg.err"
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/cg.err"
  }
  cg_dir=${BENCH_CG_DIR:-$work} # where the callgrind files stay (for callgrind_annotate)
  cgrun() { # name command -> instructions of the client process
    RUN="valgrind --tool=callgrind --callgrind-out-file=$cg_dir/callgrind.$1" bash -c "$2" >/dev/null \
      2>"$work/cg.err"
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/cg.err"
  }
  declare -A ir
  for entry in "${s6[@]}"; do
    IFS='|' read -r name _ cmd <<<"$entry"
    ir[$name]=$(cgrun "$name" "$cmd")
    log "callgrind: $name ${ir[$name]}"
  done
  irow() { printf '| %s | %s | %s x |\n' "$1" "${ir[$2]}" "$(ratio "${ir[$2]}" "${ir[$3]}")"; }
  ir_plain_deb=$(cg "$deb_cpath" cjson); ir_core_deb=$(cg "$deb_cpath" core)
  ir_plain_cur=$(cg "$cur_cpath" cjson); ir_core_cur=$(cg "$cur_cpath" core)
  callgrind=$(cat <<CG

Instructions (callgrind, reproducible on a busy machine) of the whole client process for S6:

| client | instructions | vs libcurl + cjson.decode |
|---|---|---|
$(irow "C: libcurl + cjson.decode, Debian cjson" c_debian c_debian)
$(irow "lua-truto, Debian cjson" truto_debian c_debian)
$(irow "LuaSocket + cjson, Debian cjson" luasocket_debian c_debian)
$(irow "C: libcurl + cjson.decode, current cjson" c_current c_current)
$(irow "lua-truto, current cjson" truto_current c_current)
$(irow "LuaSocket + cjson, current cjson" luasocket_current c_current)

Instructions (callgrind, whole process: Lua start, reading the files, decoding) to decode 50 of the
pages (4 MB, 5,000 users), \`bench/static/decode_cost.lua\`:

| lua-cjson | plain \`cjson.decode\` | lua-truto's decoder | on top |
|---|---|---|---|
| Debian 2.1.0 (json_compat.c) | $ir_plain_deb | $ir_core_deb | $(awk -v a="$ir_core_deb" -v b="$ir_plain_deb" 'BEGIN { printf "%+.1f %%", (a - b) * 100 / b }') |
| current 2.1.0.17 (no fix-ups) | $ir_plain_cur | $ir_core_cur | $(awk -v a="$ir_core_cur" -v b="$ir_plain_cur" 'BEGIN { printf "%+.1f %%", (a - b) * 100 / b }') |
CG
)
fi

if [ "$reps" = 0 ]; then
  printf '%s\n' "$callgrind"
  exit 0
fi
section=$(cat <<MD
<!-- static:begin (written by bench/static.sh) -->
## Static files: the client alone (S6, S7)

nginx serves pre-made pages (\`bench/static/pages.lua\`), so the server is never the bottleneck.
Run of $(date -u '+%Y-%m-%d %H:%M UTC'), $reps rounds, every client once per round, medians (each
run's wall time, and the CPU time, user + system, of the client's process: start included, nginx
not); load average $load_before before, $load_after after; $(nproc) CPUs.

**S6: listing $want_users users** ($pages pages of 100 users, about 80 KB each, plain HTTP,
keep-alive where the client has it). The ratio is to the bare C loop with the same lua-cjson.

| client | wall | vs libcurl + cjson.decode | CPU | vs libcurl + cjson.decode |
|---|---|---|---|---|
$(row "C: libcurl + cjson.decode, Debian cjson 2.1.0" c_debian c_debian)
$(row "lua-truto, Debian cjson 2.1.0" truto_debian c_debian)
$(row "Lua 5.4 + LuaSocket + cjson, Debian cjson 2.1.0" luasocket_debian c_debian)
$(row "C: libcurl + cjson.decode, current cjson 2.1.0.17" c_current c_current)
$(row "lua-truto, current cjson 2.1.0.17" truto_current c_current)
$(row "Lua 5.4 + LuaSocket + cjson, current cjson 2.1.0.17" luasocket_current c_current)

Targets: lua-truto at most 1.15 x the C loop with Debian's cjson, at most 1.05 x with the current
one, and ahead of LuaSocket + cjson with both.

**S7: $calls get_organization over HTTPS** (nginx with a throw-away CA; each client trusts it).
The ratio is to lua-truto with one client (one keep-alive TLS connection).

| client | wall | vs lua-truto keep-alive | CPU | vs lua-truto keep-alive |
|---|---|---|---|---|
$(row "C: libcurl + cjson.decode, one connection" c_keepalive truto_keepalive)
$(row "lua-truto, one client" truto_keepalive truto_keepalive)
$(row "lua-truto, a new client per call" truto_fresh truto_keepalive)
$(row "Node fetch" node_fetch truto_keepalive)
$(row "Python requests (one Session)" python_requests truto_keepalive)
$callgrind
<!-- static:end -->
MD
)

results="$out_dir/RESULTS.md"
touch "$results"
printf '%s\n' "$section" >"$work/section"
if grep -q '<!-- static:begin' "$results"; then
  awk -v file="$work/section" 'BEGIN { while ((getline l < file) > 0) s = s l "\n" }
    /<!-- static:begin/ { printf "%s", s; skip = 1 } !skip { print } /<!-- static:end/ { skip = 0; next }' \
    "$results" >"$work/results"
  cp "$work/results" "$results"
else
  printf '\n%s\n' "$section" >>"$results"
fi
printf '%s\n' "$section"
