--- truto.sync.redis: the state of client:sync in Redis, for a fleet or nginx timers.
--
--   local store = require("truto.sync.redis").new { host = "10.0.0.5", name = "directory" }
--   for change in client:sync("users", { integrated_account_id = id }, { state = store }) do ... end
--
-- Through lua-resty-redis (OpenResty "resty.redis", Debian lua-nginx-redis "nginx.redis") and the
-- connection code of truto.rate.redis, so it runs where cosockets do (content, access, timer).
-- Keys, under `prefix` (default "truto_sync:") and the state's `name`:
--   <p><name>:lock                          the lock: a token, SET NX with a ttl (PX)
--   <p><name>:<resource>:<account>:ids      hash id -> content hash
--   <p><name>:<resource>:<account>:meta     hash hwm, full_at, runs_since_full, incremental
-- Changes wait in the process until the commit, which is one EVAL: it checks the lock is still
-- ours, applies them (a JSON argument, decoded by Redis' cjson) and the checkpoints, and renews
-- the lock, atomically. A lock whose holder died expires after `ttl` seconds (Redis cannot tell
-- whether a process on another machine is gone); a run renews it while it works.
--
-- @module truto.sync.redis
local R = require("truto.defaults").redis
local core = require "truto.core"
local rate_redis = require "truto.rate.redis"

local M = {}

local format = string.format
local DEFAULT_TTL = 600

local function store_error(kind, message)
  return core.error { kind = kind, message = message, remote = false }
end

local COMMIT = [[
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('LOCKLOST') end
local base = ARGV[3]
for _, c in ipairs(cjson.decode(ARGV[4])) do
  local key = base .. c[2] .. ':ids'
  if c[1] == 'd' then redis.call('HDEL', key, c[3]) else redis.call('HSET', key, c[3], c[4]) end
end
for _, m in ipairs(cjson.decode(ARGV[5])) do
  local key = base .. m[1] .. ':meta'
  redis.call('DEL', key)
  redis.call('HSET', key, 'hwm', m[2], 'full_at', m[3], 'runs_since_full', m[4], 'incremental', m[5])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
]]

local RENEW = [[
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
]]

local UNLOCK = [[
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
]]

local function call(self, fn)
  return rate_redis.with_connection(self.lib, self, fn)
end

local function ttl_ms(self)
  return format("%d", self.ttl * 1000)
end

local function locked_error(self)
  return store_error("locked", format("the sync state %s is locked by another run (Redis key %s)", self.name,
    self.lock_key))
end

function M.lock(self)
  if self.held then return true end
  local res, err = call(self, function(red)
    return red:set(self.lock_key, self.token, "NX", "PX", ttl_ms(self))
  end)
  if res == nil then return nil, store_error("state", err) end
  if res ~= "OK" then return nil, locked_error(self) end
  self.held, self.renewed = true, os.time()
  return true
end

local function null(v)
  return v == nil or (type(v) ~= "string" and type(v) ~= "number")
end

-- A flat HGETALL answer as a table.
local function pairs_of(list)
  local out = {}
  if type(list) ~= "table" then return out end
  for i = 1, #list, 2 do out[list[i]] = list[i + 1] end
  return out
end

local function number(v)
  if null(v) or v == "" then return nil end
  return tonumber(v)
end

function M.load(self, resource, account)
  local base = self.base .. resource .. ":" .. account
  local res, err = call(self, function(red)
    red:init_pipeline()
    red:hgetall(base .. ":ids")
    red:hgetall(base .. ":meta")
    return red:commit_pipeline()
  end)
  if res == nil then return nil, store_error("state", err) end
  local hashes, meta = pairs_of(res[1]), pairs_of(res[2])
  if next(hashes) == nil and next(meta) == nil then return nil end
  local entry = { hashes = hashes, hwm = number(meta.hwm), full_at = number(meta.full_at),
    runs_since_full = number(meta.runs_since_full) }
  if meta.incremental == "0" then entry.incremental = false end
  return entry
end

local function renew(self)
  if os.time() - self.renewed < self.ttl / 3 then return true end
  local res, err = call(self, function(red) return red:eval(RENEW, 1, self.lock_key, self.token, ttl_ms(self)) end)
  if res == nil then return nil, store_error("state", err) end
  if res ~= 1 then return nil, locked_error(self) end
  self.renewed = os.time()
  return true
end

function M.apply(self, resource, changes)
  if not self.held then return nil, store_error("state", "apply without the lock") end
  local ok, err = renew(self)
  if not ok then return nil, err end
  local list = self.pending[resource] or {}
  self.pending[resource] = list
  for _, c in ipairs(changes) do
    list[#list + 1] = { c.op == "deleted" and "d" or "s", c.account_id, c.id, c.hash or "" }
  end
  return true
end

local function text(v)
  if v == nil then return "" end
  return format("%d", v)
end

function M.commit(self, resource, checkpoints)
  if not self.held then return nil, store_error("state", "commit without the lock") end
  local metas = {}
  for account, cp in pairs(checkpoints or {}) do
    metas[#metas + 1] = { account, text(cp.hwm), text(cp.full_at), text(cp.runs_since_full),
      cp.incremental == false and "0" or "" }
  end
  local ops = self.pending[resource] or {}
  local res, err = call(self, function(red)
    return red:eval(COMMIT, 1, self.lock_key, self.token, ttl_ms(self), self.base .. resource .. ":",
      #ops > 0 and core.encode_json(ops) or "[]", #metas > 0 and core.encode_json(metas) or "[]")
  end)
  if res == nil then
    if tostring(err):find("LOCKLOST", 1, true) then return nil, locked_error(self) end
    return nil, store_error("state", err)
  end
  self.pending[resource] = nil
  self.renewed = os.time()
  return true
end

function M.rollback(self)
  self.pending = {}
  return true
end

function M.unlock(self)
  if not self.held then return true end
  self.held = false
  call(self, function(red) return red:eval(UNLOCK, 1, self.lock_key, self.token) end)
  return true
end

--- A store in Redis.
-- @tparam table opts `name` (the state's name, "default"), `ttl` (seconds a lock lasts without
--   renewal, 600), `prefix` ("truto_sync:"), and the connection's: `host` ("127.0.0.1"),
--   `port` (6379), `password`, `db`, `timeout` (1 s), `keepalive` (60 s), `pool_size` (16)
-- @raise without lua-resty-redis, or on a bad option
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2) end
  local lib = rate_redis.library()
  if not lib then error("truto.sync.redis needs lua-resty-redis inside nginx (Debian: lua-nginx-redis)", 2) end
  local self = setmetatable({
    lib = lib, host = opts.host or R.host, port = opts.port or R.port, password = opts.password,
    db = opts.db, timeout = opts.timeout or R.timeout,
    keepalive = opts.keepalive or R.keepalive, pool_size = opts.pool_size or R.pool_size,
    name = opts.name or "default", ttl = opts.ttl or DEFAULT_TTL, token = core.random_hex(16),
    pending = {}, held = false,
  }, { __index = M, __name = "truto.sync.redis" })
  for _, k in ipairs { "port", "timeout", "keepalive", "pool_size", "ttl" } do
    local v = self[k]
    if type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge then
      error(format("bad argument #1 to 'new' (%s: a number > 0 expected, got %s)", k, tostring(v)), 2)
    end
  end
  if type(self.name) ~= "string" or self.name == "" or not self.name:match("^[%w_.:-]+$") then
    error("bad argument #1 to 'new' (name: letters, digits, _ . : -)", 2)
  end
  local prefix = opts.prefix or "truto_sync:"
  self.base = prefix .. self.name .. ":"
  self.lock_key = self.base .. "lock"
  return self
end

return M
