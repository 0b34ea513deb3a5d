#!/usr/bin/env bash
# `make demo`: list users through the module. With TRUTO_API_TOKEN and
# TRUTO_ACCOUNT set it asks Truto itself; otherwise it starts the bundled
# mock server on a free loopback port, lists its acct-small account, and
# stops the server again.
set -euo pipefail
cd "$(dirname "$0")/.."
export LUA_CPATH="build/?.so;;" LUA_PATH="build/?.lua;build/?/init.lua;;"
LUA_BIN=${LUA_BIN:-lua5.4}

if [ -n "${TRUTO_API_TOKEN:-}" ]; then
  exec "$LUA_BIN" examples/list_users.lua
fi

port=$("$LUA_BIN" -e 'local s = assert(require("socket").bind("127.0.0.1", 0)); local _, p = s:getsockname(); s:close(); print(p)')
dir=$(spec/mock/serve --port "$port")
trap 'spec/mock/serve --stop "$dir"' EXIT
echo "(no TRUTO_API_TOKEN: using the mock Truto server on 127.0.0.1:$port)" >&2
TRUTO_API_TOKEN=test-token TRUTO_BASE_URL="http://127.0.0.1:$port" TRUTO_ACCOUNT=acct-small \
  "$LUA_BIN" examples/list_users.lua
