-- Busted helper: runs spec/helpers/wire_server.lua (a scripted raw HTTP
-- server that records requests byte for byte) and talks to it.
--
--   local wire = require "spec.helpers.wire"
--   local w = wire.start()          -- { url = "http://127.0.0.1:PORT", port }
--   wire.script { "drop", "ok" }    -- clears the log; answers the next requests so
--   wire.log()                      -- what arrived: { conn, line, headers = {...}, body, step }
--   wire.normalize(log, host)       -- the same with connections numbered from 1 and
--                                   -- volatile values (Host, User-Agent, keys) named
-- The server stops when this Lua process exits.
local socket = require "socket"
local run = require "spec.helpers.run"
local cjson = require "cjson"

local wire = {}

local REGISTRY_KEY = "lua-truto spec.helpers.wire"
local shared = debug.getregistry()[REGISTRY_KEY] or {}
debug.getregistry()[REGISTRY_KEY] = shared

local SERVER = (function()
  local source = debug.getinfo(1, "S").source
  return (source:match("^@(.*)/[^/]*$") or ".") .. "/wire_server.lua"
end)()


-- One control line; returns the whole answer.
local function control(line)
  local c = assert(socket.connect("127.0.0.1", shared.server.port))
  c:settimeout(5)
  assert(c:send(line .. "\n"))
  local out, _, partial = c:receive("*a")
  c:close()
  return out or partial or ""
end

function wire.start()
  if shared.server then return shared.server end
  local port = run.free_port()
  local pid = run.spawn(string.format("exec lua5.4 %q %d %d", SERVER, port, run.OWN_PID))
  if not run.wait_port(port, 5) then
    run.kill(pid)
    error("the wire server did not start on port " .. port)
  end
  shared.server = { url = "http://127.0.0.1:" .. port, port = port, pid = pid }
  shared.sentinel = setmetatable({}, { __gc = function() run.kill(pid) end })
  return shared.server
end

function wire.script(steps)
  assert(control("WIRE SCRIPT " .. table.concat(steps or {}, ",")) == "OK\n")
end

function wire.log()
  local entries = {}
  for line in control("WIRE LOG"):gmatch("[^\n]+") do entries[#entries + 1] = cjson.decode(line) end
  return entries
end

-- Header lines -> sorted "name: value" with lower-case names; drops the
-- transport's own Accept-Encoding; names volatile values.
local function normalize_headers(lines, keys, host)
  local out = {}
  for _, line in ipairs(lines) do
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    name = name:lower()
    if name == "user-agent" and value:match("^lua%-truto/%S+ ") then value = "<default>" end
    if name == "host" and value == host then value = "<server>" end
    if name == "idempotency-key" then
      if not keys[value] then
        keys.n = keys.n + 1
        keys[value] = "<key " .. keys.n .. ">"
      end
      value = keys[value]
    end
    if name ~= "accept-encoding" then out[#out + 1] = name .. ": " .. value end
  end
  table.sort(out)
  return out
end

--- The log with connections numbered 1, 2, ... in order of appearance,
-- headers normalized (see above): the same for every transport.
function wire.normalize(entries, host)
  local conns, n, keys = {}, 0, { n = 0 }
  local out = {}
  for i, e in ipairs(entries) do
    if not conns[e.conn] then
      n = n + 1
      conns[e.conn] = n
    end
    out[i] = { conn = conns[e.conn], line = e.line, headers = normalize_headers(e.headers, keys, host), body = e.body }
  end
  return out
end

return wire
