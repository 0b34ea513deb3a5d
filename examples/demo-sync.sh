#!/usr/bin/env bash
# `make demo`, second part: two `lua-truto sync` runs against the bundled mock Truto server
# with a change in between (`lua-truto mock --port N -a ACC --update ...`). The first run yields
# the account's 1,000 users as created; the second exactly the change. Always on the mock.
set -euo pipefail
cd "$(dirname "$0")/.."
LUA_BIN=${LUA_BIN:-lua5.4}

port=$("$LUA_BIN" -e 'local s = assert(require("socket").bind("127.0.0.1", 0)); local _, p = s:getsockname(); s:close(); print(p)')
dir=$(spec/mock/serve --port "$port")
work=$(mktemp -d)
trap 'spec/mock/serve --stop "$dir"; rm -rf "$work"' EXIT
export TRUTO_API_TOKEN=test-token TRUTO_BASE_URL="http://127.0.0.1:$port"
sync=(lua5.4 ./lua-truto sync users -a acct-sync-demo --state "$work/users.state.json")

echo "== sync, first run (mock on 127.0.0.1:$port): every user is created" >&2
"${sync[@]}" >"$work/first.ndjson"
echo "$(wc -l <"$work/first.ndjson") changes; the first: $(head -c 100 "$work/first.ndjson")..." >&2

echo "== the mock changes: K0002 updated, K0003 deleted, one user created" >&2
lua5.4 ./lua-truto mock --port "$port" -a acct-sync-demo --update users/K0002 --body '{"title":"CTO"}' >/dev/null
lua5.4 ./lua-truto mock --port "$port" -a acct-sync-demo --delete users/K0003 --create users >/dev/null

echo "== sync, second run (--full: a complete listing finds the deletion)" >&2
"${sync[@]}" --full -o table
