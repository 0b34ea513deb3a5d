#!/usr/bin/env bash
# `make demo-nginx`: examples/nginx.conf and examples/openresty.lua, as shipped, inside a real
# nginx against the bundled mock Truto server. Starts the mock and nginx on free loopback ports
# (only the `listen` port of the copied nginx.conf is changed), asks a few locations, stops both.
#
# Needs nginx with lua-nginx-module (Debian: nginx-light libnginx-mod-http-lua) and lua-truto
# built for LuaJIT in TRUTO_NGINX_BUILD (default build-luajit: `make LUA=luajit`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${TRUTO_NGINX_BUILD:-build-luajit}
case $build in /*) ;; *) build=$root/$build ;; esac
if [ ! -f "$build/truto/core.so" ] || [ ! -f "$build/truto/ngx.lua" ]; then
  echo "demo-nginx: no LuaJIT build in $build (make LUA=luajit)" >&2
  exit 1
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)

free_port() {
  luajit -e 'local s = assert(require("socket").bind("127.0.0.1", 0)); local _, p = s:getsockname(); s:close(); print(p)'
}

mock_port=$(free_port)
mock_dir=$(spec/mock/serve --port "$mock_port")
prefix=$(mktemp -d "${TMPDIR:-/tmp}/truto-nginx-demo.XXXXXX")
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
sed -i "s/listen 127\.0\.0\.1:8080;/listen 127.0.0.1:$port;/" "$prefix/nginx.conf"
user=()
# As root, nginx runs its worker as nobody, who may not read a checkout under /root.
[ "$(id -u)" = 0 ] && user=(-g "user root;")

TRUTO_API_TOKEN=test-token TRUTO_BASE_URL="http://127.0.0.1:$mock_port" TRUTO_ACCOUNT=acct-small \
  "$nginx" -p "$prefix/" -c nginx.conf -e "$prefix/error.log" "${user[@]}"
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done

url="http://127.0.0.1:$port"
echo "(mock Truto on 127.0.0.1:$mock_port, nginx with examples/nginx.conf on 127.0.0.1:$port)" >&2
show() {
  printf "$ curl"; printf " %q" "$@"; echo
  curl -sS -w '  -> HTTP %{http_code}\n' "$@"
}
show "$url/users"
show "$url/users?account=acct-small&status=inactive&transport=curl"
show "$url/organizations/org-1"
show -X PATCH -d '{"name":"Acme Corp (renamed)"}' "$url/organizations/org-1"
show -X DELETE "$url/organizations/org-1"
show "$url/organizations/org-1"
show "$url/users?account=no-such-account"
show -H "X-User-Email: ada@acme.example" "$url/me"
show -H "X-User-Email: jose.nunez@acme.example" "$url/me"
show -X POST "$url/sync"
sleep 0.5
show "$url/sync"
if grep -E '\[(error|alert|crit|emerg)\]' "$prefix/error.log"; then
  echo "demo-nginx: nginx logged errors (above)" >&2
  exit 1
fi
