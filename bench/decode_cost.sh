#!/bin/sh
# Decoding one page of bench/nginx_cpu.sh (bench/decode_page.lua): lua-truto's read_response
# against plain cjson.decode, on Lua 5.4 and LuaJIT, with Debian's lua-cjson 2.1.0 and the
# current one (`make cjson-current`). Per line: the time ratio (least of 5 rounds) and the
# instructions callgrind counts for PAGES pages (whole process, the same start for both), so
# the extra of read_response is (core - cjson) / (cjson - start).
#
#   bench/decode_cost.sh [BUILD54 [BUILDJIT [PAGES]]]    (defaults: build build-luajit 50)
set -eu
cd "$(dirname "$0")/.."
B54=${1:-build}
BJIT=${2:-build-luajit}
PAGES=${3:-50}
CJ=${CJSON_BUILD:-build-cjson}
instr() { # instructions of: lua script args (environment set by the caller)
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | sed -n 's/.*refs: *//p' | tr -d ,
}
row() ( # name, lua, build, extra cpath
  name=$1 lua=$2 b=$3 extra=$4
  export LUA_PATH="$b/?.lua;./?.lua;;"
  if [ "$lua" = luajit ]; then
    export LUA_CPATH="$b/?.so;$extra;"
  else
    export LUA_CPATH_5_4="$b/?.so;$extra;"
  fi
  ratio=$("$lua" bench/decode_page.lua 200 | sed -n 's/.*decode: *//p')
  start=$(instr "$lua" bench/decode_page.lua 0 cjson)
  cj=$(instr "$lua" bench/decode_page.lua "$PAGES" cjson)
  co=$(instr "$lua" bench/decode_page.lua "$PAGES" core)
  extra_pct=$(awk -v s="$start" -v a="$cj" -v b="$co" 'BEGIN { printf "%+.1f %%", (b - a) * 100 / (a - s) }')
  echo "| $name | $ratio | $cj | $co | $extra_pct |"
)
echo "| runtime, lua-cjson | read_response / cjson.decode (time) | cjson.decode, instr. | read_response, instr. | extra of decoding |"
echo "|---|---|---|---|---|"
row "Lua 5.4, Debian 2.1.0" lua5.4 "$B54" ""
row "Lua 5.4, 2.1.0.17" lua5.4 "$B54" "$CJ/?.so;"
row "LuaJIT, Debian 2.1.0" luajit "$BJIT" ""
row "LuaJIT, 2.1.0.17" luajit "$BJIT" "$CJ/luajit/?.so;"
