-- Wire conformance through nginx's cosockets: the cases of spec/helpers/wire_cases.lua, the
-- ones spec/wire_conformance_spec.lua runs through libcurl, run inside a real nginx (LuaJIT,
-- the nginx transport, each case in a content handler) against the same scripted raw HTTP
-- server, with the same expected wire and the same expected result.
local socket = require "socket"
local cjson = require "cjson"
local wire = require "spec.helpers.wire"
local cases = require "spec.helpers.wire_cases"

local run = require "spec.helpers.run"
local nginx = require "spec.helpers.nginx"

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

local HTTP = [[
  server {
    listen 127.0.0.1:${port};
    location = /case { content_by_lua_block { require("wire_runner").run() } }
  }
]]

-- JSON gives back what Lua tables gave it, but for empty tables, which it cannot tell
-- apart: both {} here.
describe("the wire, through nginx cosockets #nginx", function()
  local server = wire.start()
  local n -- the nginx that runs the cases

  setup(function()
    n = nginx.start { http = HTTP, files = { ["wire_runner.lua"] = RUNNER }, lua_path = { ROOT .. "/?.lua" } }
  end)

  teardown(function()
    if n then n:stop() end
  end)

  -- error.log: nothing but nginx's own notices
  before_each(function() n:mark() end)
  after_each(function() assert.same({}, n:error_log_lines()) end)

  local function run_case(i)
    local c = assert(socket.connect("127.0.0.1", n.port))
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
