-- truto.sync.redis against a real redis-server (Debian's redis-server and lua-nginx-redis). Outside
-- nginx, lua-resty-redis is given a cosocket made of LuaSocket (below, for this spec only): the
-- store's own code and the connection code of truto.rate.redis run as they do inside nginx.
local helper = require "spec.helpers.client"
local run = require "spec.helpers.run"
local sync_helper = require "spec.helpers.sync"
local socket = require "socket"

local mock = helper.mock
local have = io.open("/usr/bin/redis-server") and io.open("/usr/share/lua/5.1/nginx/redis.lua")

-- An ngx.socket.tcp on LuaSocket: connect, settimeout (ms), send (strings or nested tables),
-- receive, and a keepalive that closes.
local function cosocket()
  local function flatten(t, out)
    for _, v in ipairs(t) do
      if type(v) == "table" then flatten(v, out) else out[#out + 1] = tostring(v) end
    end
    return out
  end
  local Sock = {}
  Sock.__index = Sock
  function Sock:connect(host, port)
    local s = socket.tcp()
    s:settimeout(self.t or 1)
    local ok, err = s:connect(host, port)
    if not ok then return nil, err end
    self.s = s
    return 1
  end
  function Sock:settimeout(ms)
    self.t = ms / 1000
    if self.s then self.s:settimeout(self.t) end
  end
  function Sock:send(data)
    if type(data) == "table" then data = table.concat(flatten(data, {})) end
    return self.s:send(data)
  end
  function Sock:receive(pattern) return self.s:receive(pattern or "*l") end
  function Sock:setkeepalive() self.s:close() return 1 end
  function Sock.getreusedtimes() return 0 end
  function Sock:close()
    if self.s then self.s:close() end
    return 1
  end
  return function() return setmetatable({}, Sock) end
end

-- Loads lua-resty-redis with that cosocket; ngx is a global only while it loads.
local function load_redis_library()
  if package.loaded["nginx.redis"] then return end
  local saved_path = package.path
  package.path = "/usr/share/lua/5.1/?.lua;" .. package.path
  rawset(_G, "ngx", { socket = { tcp = cosocket() }, null = setmetatable({}, { __name = "null" }) })
  require "nginx.redis"
  rawset(_G, "ngx", nil)
  package.path = saved_path
end

local function start_redis()
  local port = run.free_port()
  local dir = run.tmpdir()
  local pid = run.spawn(string.format("cd %s && exec redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no",
    run.quote(dir), port))
  finally(function()
    run.kill(pid)
    for _ = 1, 50 do
      if not run.alive(pid) then break end
      socket.sleep(0.1)
    end
  end)
  assert(run.wait_port(port, 5), "redis-server does not accept connections")
  return port
end

local summary = sync_helper.summary

local function changes_of(client, params, opts)
  return sync_helper.changes_of(client, "users", params, opts)
end

local test = have and it or pending
local why = have and "" or " (needs redis-server and lua-nginx-redis)"

describe("truto.sync.redis", function()
  test("keeps the state in Redis: 1,000 created, then exactly the 6 changes, then none" .. why, function()
    load_redis_library()
    local port = start_redis()
    local store = require("truto.sync.redis").new { port = port, name = "spec" .. os.time() }
    local client = helper.client()
    local account = "acct-sync-redis" .. os.time()
    local params = { integrated_account_id = account }
    local opts = { state = store, incremental = false }
    assert.equal(1000, #changes_of(client, params, opts))
    mock.changes { account = account, resource = "users",
      update = { { id = "K0011", title = "CTO" }, { id = "K0500", status = "inactive" }, { id = "K0900", title = "VP" } },
      delete = { "K0002", "K0003" }, create = { { id = "K-new-1", name = "Newcomer" } } }
    assert.same({ "created K-new-1", "deleted K0002", "deleted K0003", "updated K0011", "updated K0500",
      "updated K0900" }, summary((changes_of(client, params, opts))))
    local none, st = changes_of(client, params, opts)
    assert.same({}, none)
    assert.equal(999, st.stats.unchanged)
  end)

  test("refuses a second run with `locked` until the first ends; an expired lock is gone" .. why, function()
    load_redis_library()
    local port = start_redis()
    local redis = require "truto.sync.redis"
    local name = "lock" .. os.time()
    local a = redis.new { port = port, name = name, ttl = 1 }
    local b = redis.new { port = port, name = name }
    local client = helper.client()
    local params = { integrated_account_id = "acct-sync-rlock" .. os.time() }
    local it, st = client:sync("users", params, { state = a })
    it(st)
    local err = helper.raised(client.sync, client, "users", params, { state = b })
    assert.equal("locked", err.kind)
    socket.sleep(1.2) -- a's lock expires: its holder is taken for dead
    local all = changes_of(client, params, { state = b })
    assert.equal(1000, #all)
    -- a lost its lock: its commit is refused, it does not overwrite b's state
    err = helper.raised(function() for _ in it, st do end end)
    assert.equal("locked", err.kind)
  end)
end)
