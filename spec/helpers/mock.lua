-- Busted helper: runs the mock Truto server (spec/mock/serve) and reads its request log.
--
--   local mock = require "spec.helpers.mock"
--   local m = mock.start()   -- { url = "http://127.0.0.1:PORT", port, token = "test-token", dir }
--   mock.requests()          -- the request log, oldest first; mock.last(): the newest entry
--   mock.reset()             -- empties the log and forgets all server state (limits too)
--   mock.limits { token = { requests = 20, per = 2 } }  -- small rate limits for one spec
--   mock.rate()              -- the limits and the number of 429s they caused
--   mock.changes { account = ..., resource = "users", update = {...}, delete = {...}, create = {...} }
--   mock.stop()              -- also done at process exit
--
-- Plain Lua 5.4 with luasocket and lua-cjson. See spec/mock/README.md for the accounts.

local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local compat = require "spec.helpers.compat"
local run = require "spec.helpers.run"

local mock = {}
local quote = run.quote

local TOKEN = "test-token"
local START_TIMEOUT = 5 -- seconds

-- Busted gives every spec file fresh copies of the modules it loads (insulate), so the server
-- is kept in the registry: one process, one server, whichever copy of this module asks.
local REGISTRY_KEY = "lua-truto spec.helpers.mock"
local shared = debug.getregistry()[REGISTRY_KEY] or {}
debug.getregistry()[REGISTRY_KEY] = shared

local SERVE = (function()
  local source = debug.getinfo(1, "S").source
  local dir = source:match("^@(.*)/[^/]*$") or "."
  return dir .. "/../mock/serve"
end)()

-- Runs `serve` on a free port; returns the server table, or nil and serve's output.
local function launch()
  local port = run.free_port()
  local p = assert(io.popen(string.format("%s --port %d --watch %d 2>&1", quote(SERVE), port, run.OWN_PID)))
  local out = p:read("*a")
  if not p:close() then return nil, out end
  local dir = out:match("([^\n]+)\n*$")
  if not run.wait_port(port, START_TIMEOUT) then
    os.execute(quote(SERVE) .. " --stop " .. quote(dir))
    return nil, "nothing accepts connections on port " .. port .. " after " .. START_TIMEOUT .. " s"
  end
  return { url = "http://127.0.0.1:" .. port, port = port, token = TOKEN, dir = dir }
end

--- Starts the server once per process; later calls return the same table.
function mock.start()
  if shared.server then return shared.server end
  local server, err
  for _ = 1, 3 do -- another process may take the free port before nginx binds it
    server, err = launch()
    if server then break end
  end
  if not server then error("mock.start: the mock Truto server did not start:\n" .. err, 2) end
  shared.server = server
  -- Stops the server when the Lua state closes (Busted ends with os.exit(code, true)).
  shared.sentinel = shared.sentinel or setmetatable({}, { __gc = function() mock.stop() end })
  return server
end

local function running()
  return shared.server or error("the mock server is not running: call mock.start() first", 3)
end

--- Every logged request since the start or the last reset, oldest first.
function mock.requests()
  local f = assert(io.open(running().dir .. "/requests.log", "r"))
  local entries = {}
  for line in f:lines() do
    local entry = cjson.decode(line)
    entry.connection = compat.tointeger(entry.connection) -- cjson reads every number as a float
    entries[#entries + 1] = entry
  end
  f:close()
  return entries
end

--- The newest request log entry, or nil.
function mock.last()
  local entries = mock.requests()
  return entries[#entries]
end

--- Clears the request log and all server state (fault counters, organizations, ...).
function mock.reset()
  local chunks = {}
  local _, code = http.request({
    url = running().url .. "/__mock/reset",
    method = "POST",
    headers = { ["content-length"] = "0" },
    sink = ltn12.sink.table(chunks),
  })
  if code ~= 200 then
    error("mock.reset: " .. tostring(code) .. " " .. table.concat(chunks), 2)
  end
end

-- A control endpoint call: the decoded JSON answer, or raises with the status and body.
local function control(method, path, body)
  local chunks = {}
  local _, code = http.request({
    url = running().url .. path,
    method = method,
    headers = { ["content-length"] = tostring(body and #body or 0), ["content-type"] = "application/json" },
    source = body and ltn12.source.string(body),
    sink = ltn12.sink.table(chunks),
  })
  if code ~= 200 then
    error("mock: " .. method .. " " .. path .. ": " .. tostring(code) .. " " .. table.concat(chunks), 3)
  end
  return cjson.decode(table.concat(chunks))
end

--- Sets the server's rate limits until the next reset (spec/mock/README.md, "Rate limits"):
-- mock.limits { token = { requests = 20, per = 2 }, account = { ... }, accounts = { [id] = { ... } } }.
-- A budget left out keeps its (high) default. Returns what GET /__mock/limits returns.
function mock.limits(config)
  return control("POST", "/__mock/limits", cjson.encode(config))
end

--- The limits in force and the counters: { token, account, accounts, throttled = the 429s the
-- limits caused since the last reset, counted = the requests they counted }.
function mock.rate()
  return control("GET", "/__mock/limits")
end

--- Changes an account's users or groups (spec/mock/README.md, "Changes over time"):
-- mock.changes { account = "acct-sync-x", resource = "users", update = { { id = "K0001", title = "CTO" } },
-- delete = { "K0002" }, create = { { name = "New" } } }. Returns the ids touched.
function mock.changes(change)
  return control("POST", "/__mock/changes", cjson.encode(change))
end

--- Stops the server and removes its directory. Harmless when it does not run.
function mock.stop()
  local server = shared.server
  if not server then return end
  shared.server = nil
  os.execute(quote(SERVE) .. " --stop " .. quote(server.dir))
  os.execute("rm -rf " .. quote(server.dir))
end

return mock
