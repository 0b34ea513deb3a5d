-- A rate budget store in Redis, for a fleet of OpenResty / nginx machines with one token:
--
--   local store = require("truto.rate.redis").new { host = "10.0.0.5", port = 6379 }
--   local client = truto.new { rate_limit = { store = store } }
--
-- It talks to Redis through lua-resty-redis (Debian: lua-nginx-redis, module "nginx.redis";
-- OpenResty: "resty.redis"), so it runs inside nginx, in phases that may use cosockets
-- (rewrite, access, content, timer). Each reservation is one script (EVALSHA, the text sent
-- once): it reads Redis' own clock (TIME), so the machines' clocks do not matter, and runs
-- atomically. The scripts run the very modules this process runs (truto.rate.window for a
-- fixed budget: a string of at most 16 groups of start times, whatever `requests` is; and
-- truto.rate.hints for a learned one: what the answers' ratelimit-* headers and 429s said,
-- so every machine of the fleet paces an account by what any of them was told). Beside each
-- fixed budget, a key holds the server's hold. Keys expire once they no longer matter. When
-- Redis cannot be reached, the limiter keeps to the next shared level for that request (the
-- nginx shared dict, else its own process) and says so through `debug` and, once, error.log.

local R = require("truto.defaults").redis
local M = {}

local format = string.format
local unpack = table.unpack or rawget(_G, "unpack")

-- The text of the Lua module `name` (on package.path), to run inside Redis as it is.
local function source(name)
  local path = package.searchpath and package.searchpath(name, package.path)
  local f = path and io.open(path, "rb")
  if not f then error("truto.rate.redis: the source of " .. name .. " is not on package.path", 3) end
  local text = f:read("*a")
  f:close()
  return text
end

-- A script that runs with the modules `names` (each as a local of the same name).
local function script(names, body)
  local parts = {}
  for name, module in pairs(names) do
    parts[#parts + 1] = format("local %s = (function()\n%s\nend)()\n", name, source(module))
  end
  table.sort(parts)
  return table.concat(parts) .. body
end

-- A script and its SHA1 (hex; nil where nginx's ngx.sha1_bin is missing): run() sends the
-- text only when Redis does not know the digest yet.
local function prepared(text)
  local ngx = rawget(_G, "ngx")
  local sha1 = type(ngx) == "table" and ngx.sha1_bin
  local sha = sha1 and (sha1(text):gsub(".", function(c) return format("%02x", c:byte()) end))
  return { text = text, sha = sha }
end

local function run(red, prepared_script, ...)
  if prepared_script.sha then
    local res, err = red:evalsha(prepared_script.sha, ...)
    if res or not tostring(err):find("NOSCRIPT", 1, true) then return res, err end
  end
  return red:eval(prepared_script.text, ...)
end

-- Reserves one start over the budgets KEYS (window, hold, window, hold, ...), ARGV (requests,
-- per, ...): the wait and the start in microseconds of Redis' clock, and the deciding budget.
local RESERVE = [[
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS / 2
local states, limits, holds = {}, {}, {}
for i = 1, n do
  states[i] = window.decode(redis.call('GET', KEYS[2 * i - 1]))
  limits[i] = { tonumber(ARGV[2 * i - 1]), window.us(tonumber(ARGV[2 * i])) }
  local hold = redis.call('GET', KEYS[2 * i])
  if hold then holds[i] = window.us(tonumber(hold), true) end
end
local start, binding = window.reserve(states, limits, holds, now)
for i = 1, n do
  local ttl = math.floor(window.lifetime(states[i], limits[i][2], now) / 1000) + 1000
  redis.call('SET', KEYS[2 * i - 1], window.encode(states[i]), 'PX', ttl)
end
return { string.format('%.0f', start - now), binding, string.format('%.0f', start) }
]]

-- Gives back the reservation ARGV[1] (its start, microseconds) in the windows KEYS.
local RELEASE = [[
local x = tonumber(ARGV[1])
for i = 1, #KEYS do
  local text = redis.call('GET', KEYS[i])
  local ttl = redis.call('PTTL', KEYS[i])
  if text and ttl > 0 then
    local g = window.decode(text)
    window.release(g, x)
    redis.call('SET', KEYS[i], window.encode(g), 'PX', ttl)
  end
end
return 1
]]

-- The learned budget KEYS[1] (truto.rate.hints, on Redis' clock): may a request start now?
-- ARGV = probe_ttl, the call's age (seconds since it began) and id ("" for none). Returns
-- the wait (seconds) and its reason.
local HINT_TAKE = [[
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local s = hints.decode(redis.call('GET', KEYS[1]))
local id = ARGV[3] ~= '' and ARGV[3] or nil
local wait, why = hints.take(s, now, tonumber(ARGV[1]), now - (tonumber(ARGV[2]) or 0), id)
local ttl = math.floor((hints.lifetime(s, now) + hints.FORGET_AFTER) * 1000) + 1
redis.call('SET', KEYS[1], hints.encode(s), 'PX', ttl)
return { string.format('%.6f', wait), why or '' }
]]

-- What one attempt taught, into the learned budget KEYS[1]: ARGV = failed ("1" or ""),
-- remaining, reset, limit, window, hold, why ("" for none), the call's id ("" for none), stay
-- ("1": it asks again).
local HINT_LEARN = [[
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function field(i)
  if ARGV[i] == '' then return nil end
  return tonumber(ARGV[i])
end
local h = { failed = ARGV[1] == '1' or nil, remaining = field(2), reset = field(3), limit = field(4),
  window = field(5), hold = field(6), why = ARGV[7] ~= '' and ARGV[7] or nil }
local s = hints.decode(redis.call('GET', KEYS[1]))
hints.learn(s, now, h, ARGV[8] ~= '' and ARGV[8] or nil, ARGV[9] == '1')
local ttl = math.floor((hints.lifetime(s, now) + hints.FORGET_AFTER) * 1000) + 1
redis.call('SET', KEYS[1], hints.encode(s), 'PX', ttl)
return 1
]]

local HOLD = [[
local t = redis.call('TIME')
local seconds = tonumber(ARGV[1])
local deadline = tonumber(t[1]) + tonumber(t[2]) / 1000000 + seconds
local current = redis.call('GET', KEYS[1])
if not current or tonumber(current) < deadline then
  redis.call('SET', KEYS[1], string.format('%.6f', deadline), 'PX', math.ceil(seconds * 1000) + 1000)
end
return 1
]]

local function redis_library()
  for _, name in ipairs { "resty.redis", "nginx.redis" } do
    local ok, lib = pcall(require, name)
    if ok then return lib end
  end
  return nil
end

--- Runs fn(red) on a pooled connection to the Redis of `conf` (`host`, `port`, `password`,
-- `db`, `timeout`, `keepalive`, `pool_size`); returns fn's result, or nil and an error. Shared
-- with truto.sync.redis. `lib` is lua-resty-redis (M.library()).
function M.with_connection(lib, conf, fn)
  local red = lib:new()
  red:set_timeout(conf.timeout * 1000)
  local ok, err = red:connect(conf.host, conf.port)
  if not ok then return nil, "redis: " .. tostring(err) end
  if red:get_reused_times() == 0 then
    if conf.password then
      ok, err = red:auth(conf.password)
      if not ok then red:close() return nil, "redis auth: " .. tostring(err) end
    end
    if conf.db then
      ok, err = red:select(conf.db)
      if not ok then red:close() return nil, "redis select: " .. tostring(err) end
    end
  end
  local res
  res, err = fn(red)
  if res == nil then
    red:close()
    return nil, "redis: " .. tostring(err)
  end
  red:set_keepalive(conf.keepalive * 1000, conf.pool_size)
  return res
end

--- lua-resty-redis ("resty.redis" in OpenResty, "nginx.redis" on Debian), or nil.
function M.library()
  return redis_library()
end

-- Seconds as Redis's Lua reads them: "%.6f" with a "." whatever LC_NUMERIC
-- the calling process set (Lua 5.4's string.format follows it).
local function decimal(x)
  return (format("%.6f", x):gsub(",", "."))
end

local Store = {}
Store.__index = Store

-- Runs fn(red) on one of the store's connections; returns its results, or nil and an error.
local function connected(self, fn)
  return M.with_connection(self.lib, self, fn)
end

function Store.reserve(self, budgets)
  local args = { self.scripts.reserve, 2 * #budgets }
  for _, b in ipairs(budgets) do
    args[#args + 1] = self.prefix .. b.name .. ":w"
    args[#args + 1] = self.prefix .. b.name .. ":hold"
  end
  for _, b in ipairs(budgets) do
    args[#args + 1] = format("%d", b.requests)
    args[#args + 1] = decimal(b.per)
  end
  local res, err = connected(self, function(red) return run(red, unpack(args)) end)
  if type(res) ~= "table" then return nil, err or "redis: unexpected answer" end
  local wait = tonumber(res[1])
  if not wait then return nil, "redis: unexpected answer" end
  local binding = tonumber(res[2])
  return wait / 1000000, binding ~= 0 and binding or nil, res[3]
end

-- Gives back the reservation `ticket` (reserve's third answer) of a request that never started.
function Store.release(self, budgets, ticket)
  local args = { self.scripts.release, #budgets }
  for _, b in ipairs(budgets) do args[#args + 1] = self.prefix .. b.name .. ":w" end
  args[#args + 1] = ticket
  local res, err = connected(self, function(red) return run(red, unpack(args)) end)
  if res == nil then return nil, err end
  return true
end

-- The learned budget `name` (truto.rate.hints) lives in Redis too, on Redis' clock, so the
-- fleet shares what the answers' ratelimit-* headers taught.
function Store.hint_take(self, name, _, probe_ttl, age, id)
  local res, err = connected(self, function(red)
    return run(red, self.scripts.hint_take, 1, self.prefix .. name, decimal(probe_ttl or 0), decimal(age or 0),
      type(id) == "string" and id or "")
  end)
  if type(res) ~= "table" then return nil, err or "redis: unexpected answer" end
  local wait = tonumber(res[1])
  if not wait then return nil, "redis: unexpected answer" end
  return wait, res[2] ~= "" and res[2] or nil
end

local function field(v)
  if type(v) ~= "number" then return "" end
  return decimal(v)
end

function Store.hint_learn(self, name, _, h, id, stay)
  local res, err = connected(self, function(red)
    return run(red, self.scripts.hint_learn, 1, self.prefix .. name, h.failed and "1" or "", field(h.remaining),
      field(h.reset), field(h.limit), field(h.window), field(h.hold), type(h.why) == "string" and h.why or "",
      type(id) == "string" and id or "", stay and "1" or "")
  end)
  if res == nil then return nil, err end
  return true
end

function Store.hold(self, name, seconds)
  local res, err = connected(self, function(red)
    return red:eval(HOLD, 1, self.prefix .. name .. ":hold", decimal(seconds))
  end)
  if res == nil then return nil, err end
  return true
end

-- The store's settings from the options of new, checked (raising for new's caller).
local function settings(opts)
  local store = {
    host = opts.host or R.host, port = opts.port or R.port, password = opts.password,
    db = opts.db, timeout = opts.timeout or R.timeout, prefix = opts.prefix or "truto_rate:",
    keepalive = opts.keepalive or R.keepalive, pool_size = opts.pool_size or R.pool_size,
  }
  for _, k in ipairs { "port", "timeout", "keepalive", "pool_size" } do
    local v = store[k]
    if type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge then
      error(format("bad argument #1 to 'new' (%s: a number > 0 expected, got %s)", k, tostring(v)), 3)
    end
  end
  if type(store.host) ~= "string" or type(store.prefix) ~= "string" then
    error("bad argument #1 to 'new' (host and prefix must be strings)", 3)
  end
  return store
end

--- A Redis store.
-- @tparam table opts `host` ("127.0.0.1"), `port` (6379), `password`, `db` (0), `timeout`
--   (seconds, 1), `prefix` ("truto_rate:"), `keepalive` (idle seconds, 60), `pool_size` (16)
-- @return the store, for `rate_limit = { store = ... }`
-- @raise outside nginx (no lua-resty-redis), or on a bad option
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2) end
  local lib = redis_library()
  if not lib then
    error("truto.rate.redis needs lua-resty-redis inside nginx (Debian: lua-nginx-redis)", 2)
  end
  local store = setmetatable(settings(opts), Store)
  store.lib = lib
  store.scripts = {
    reserve = prepared(script({ window = "truto.rate.window" }, RESERVE)),
    release = prepared(script({ window = "truto.rate.window" }, RELEASE)),
    hint_take = prepared(script({ hints = "truto.rate.hints" }, HINT_TAKE)),
    hint_learn = prepared(script({ hints = "truto.rate.hints" }, HINT_LEARN)),
  }
  -- fn(red) on the store's connections, for other stores that share them (truto.webhook)
  store.with_connection = function(fn) return connected(store, fn) end
  return store
end

return M
