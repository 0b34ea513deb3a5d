-- Wire conformance through nginx's cosockets: the cases of spec/helpers/wire_cases.lua, the
-- ones spec/wire_conformance_spec.lua runs through libcurl, run inside a real nginx (LuaJIT,
-- the nginx transport, each case in a content handler) against the same scripted raw HTTP
-- server, with the same expected wire and the same expected result.
local socket = require "socket"
local cjson = require "cjson"
local wire = require "spec.helpers.wire"
local cases = require "spec.helpers.wire_cases"

local run = require "spec.helpers.run"
local quote, shell, write_file, read_file, free_port = run.quote, run.sh, run.write, run.slurp, run.free_port

local ROOT = run.ROOT

-- Runs case ?i=N against ?base=URL; answers { result = ... } or { runner_error = ... }.
local RUNNER = [==[
local cjson = require "cjson.safe"
local M = {}

-- Closes the idle connections nginx pools for the wire server, so that each case starts as
-- the libcurl runner's does: with no connection (the pool name of truto.ngx for http).
local function drain(port)
  while true do
    local sock = ngx.socket.tcp()
    if not sock:connect("127.0.0.1", port, { pool = "truto:http:127.0.0.1:" .. port }) then return end
    local reused = sock:getreusedtimes() > 0
    sock:close()
    if not reused then return end
  end
end

function M.run()
  local cases = require "spec.helpers.wire_cases"
  local case = cases[tonumber(ngx.var.arg_i)]
  local base = ngx.unescape_uri(ngx.var.arg_base)
  drain(tonumber(base:match(":(%d+)$")))
  local ok, result = pcall(case.run, require "truto", base)
  collectgarbage()
  cjson.encode_sparse_array(true)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(ok and { result = result } or { runner_error = tostring(result) }))
end

return M
]==]

local CONFIG = [[
load_module "${modules}/ndk_http_module.so";
load_module "${modules}/ngx_http_lua_module.so";
${user}
daemon on;
worker_processes 1;
pid "${prefix}/nginx.pid";
error_log "${prefix}/error.log" notice;

events { worker_connections 1024; }

http {
  access_log off;
  client_body_temp_path "${prefix}/body";
  proxy_temp_path "${prefix}/proxy";
  fastcgi_temp_path "${prefix}/fastcgi";
  uwsgi_temp_path "${prefix}/uwsgi";
  scgi_temp_path "${prefix}/scgi";
  lua_package_path "${build}/?.lua;${root}/?.lua;${prefix}/?.lua;;";
  lua_package_cpath "${build}/?.so;;";
  lua_socket_log_errors off;

  server {
    listen 127.0.0.1:${port};
    location = /case { content_by_lua_block { require("wire_runner").run() } }
  }
}
]]

-- JSON gives back what Lua tables gave it, but for empty tables, which it cannot tell
-- apart: both {} here.
describe("the wire, through nginx cosockets", function()
  local server = wire.start()
  local nginx = {}

  setup(function()
    local build = os.getenv("TRUTO_NGINX_BUILD") or "build-luajit"
    if build:sub(1, 1) ~= "/" then build = ROOT .. "/" .. build end
    local out, ok = shell(("cd %s && env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u TRUTO_BUILD make -s LUA=luajit BUILD=%s all")
      :format(quote(ROOT), quote(build)))
    assert(ok, "make LUA=luajit failed:\n" .. out)
    local prefix = shell("mktemp -d /tmp/truto-nginx-wire.XXXXXX"):gsub("%s+$", "")
    nginx.prefix = prefix
    write_file(prefix .. "/wire_runner.lua", RUNNER)
    nginx.port = free_port()
    local modules
    for _, dir in ipairs { "/usr/lib/nginx/modules", "/usr/share/nginx/modules" } do
      if io.open(dir .. "/ngx_http_lua_module.so") then modules = dir end
    end
    local vars = { modules = assert(modules, "ngx_http_lua_module.so not found"), prefix = prefix, build = build,
      root = ROOT, port = nginx.port, user = shell("id -u"):match("^0%s") and "user root;" or "" }
    write_file(prefix .. "/nginx.conf", (CONFIG:gsub("%${([%w_]+)}", function(k) return tostring(assert(vars[k], k)) end)))
    local start_out, started = shell(("nginx -p %s/ -c %s/nginx.conf -e %s/error.log"):format(prefix, prefix, prefix))
    assert(started, "nginx did not start:\n" .. start_out)
    local pid = assert(tonumber((shell("echo $PPID"))))
    os.execute(("setsid sh -c 'while kill -0 %d 2>/dev/null && [ -f %s/nginx.pid ]; do sleep 0.5; done; "
      .. "[ -f %s/nginx.pid ] && nginx -p %s/ -c %s/nginx.conf -s stop' </dev/null >/dev/null 2>&1 &")
      :format(pid, prefix, prefix, prefix, prefix))
    local deadline = socket.gettime() + 5
    repeat
      local c = socket.connect("127.0.0.1", nginx.port)
      if c then c:close() break end
      socket.sleep(0.05)
    until socket.gettime() > deadline
  end)

  teardown(function()
    local prefix = nginx.prefix
    if prefix then
      os.execute(("nginx -p %s/ -c %s/nginx.conf -s stop >/dev/null 2>&1"):format(prefix, prefix))
      for _ = 1, 50 do
        if not io.open(prefix .. "/nginx.pid") then break end
        socket.sleep(0.1)
      end
      os.execute("rm -rf " .. quote(prefix))
    end
  end)

  -- error.log: nothing but nginx's own notices
  local log_size = 0
  before_each(function() log_size = #read_file(nginx.prefix .. "/error.log") end)
  after_each(function()
    local lines = {}
    for line in read_file(nginx.prefix .. "/error.log"):sub(log_size + 1):gmatch("[^\n]+") do
      if not line:find("%[notice%]") then lines[#lines + 1] = line end
    end
    assert.same({}, lines)
  end)

  local function run_case(i)
    local c = assert(socket.connect("127.0.0.1", nginx.port))
    c:settimeout(60)
    c:send(("GET /case?i=%d&base=%s HTTP/1.0\r\nHost: x\r\n\r\n"):format(i, server.url:gsub(":", "%%3A")))
    local text = c:receive("*a")
    c:close()
    assert.equal("200", text:match("^HTTP/1%.%d (%d+)"), text)
    return cjson.decode(text:match("\r\n\r\n(.*)$"))
  end

  for i, case in ipairs(cases) do
    it(case.name, function()
      wire.script(case.script)
      local answer = run_case(i)
      assert.is_nil(answer.runner_error)
      assert.same(case.result, answer.result)
      assert.same(case.wire, wire.normalize(wire.log(), "127.0.0.1:" .. server.port))
    end)
  end
end)
