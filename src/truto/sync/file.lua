--- truto.sync.file: the JSON state file of client:sync (the default store).
--
--   local store = require("truto.sync.file").new("users.state.json", { ttl = 600 })
--
-- One file per state, ids and hashes only:
-- `{ "version": 1, "resources": { "users": { "<account>": { "hwm": <epoch>,
-- "full_at": <epoch>, "runs_since_full": n, "incremental": false?,
-- "ids": { "<id>": "<hash>" } } } } }`. A commit writes a temporary file
-- beside it, fsyncs it, renames it over the state and fsyncs the directory,
-- so the file is always the last commit, whole.
--
-- The lock is `<path>.lock`, created exclusively, holding the process id,
-- the host, a token and an expiry (`ttl` seconds, renewed while the run
-- works). A lock whose process is gone (same host) or whose expiry passed is
-- taken over; a commit first checks the lock is still ours.
--
-- @module truto.sync.file
local core = require "truto.core"

local M = {}

local format = string.format
local DEFAULT_TTL = 600

local function store_error(kind, message, fields)
  local e = { kind = kind, message = message, remote = false }
  for k, v in pairs(fields or {}) do e[k] = v end
  return core.error(e)
end

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

local function hostname()
  local name = read_all("/proc/sys/kernel/hostname") or os.getenv("HOSTNAME") or "?"
  return (name:gsub("%s+$", ""))
end

local function dir_of(path)
  return path:match("^(.*)/[^/]*$") or "."
end

-- ------------------------------------------------------------------------
-- The lock file.
-- ------------------------------------------------------------------------

local function lock_text(self)
  return core.encode_json {
    pid = core.getpid(), host = self.host, token = self.token, expires = os.time() + self.ttl,
  }
end

-- Whether a lock (its decoded content) may be taken over, and why.
local function stale(self, holder)
  if type(holder) ~= "table" then return true, "unreadable" end
  if type(holder.expires) == "number" and holder.expires < os.time() then return true, "expired" end
  if holder.host == self.host and type(holder.pid) == "number" and not core.pid_alive(holder.pid) then
    return true, format("process %d is gone", holder.pid)
  end
  return false
end

local function locked_error(self, holder)
  local who = type(holder) == "table" and format("process %s on %s", tostring(holder.pid), tostring(holder.host))
    or "another process"
  return store_error("locked", format("the sync state %s is locked by %s (lock file %s)", self.path, who,
    self.lock_path), { path = self.path, holder = type(holder) == "table" and holder.pid or nil })
end

local function read_lock(self)
  local text = read_all(self.lock_path)
  if text == nil then return nil, false end
  local holder = core.decode_json(text)
  return holder, true
end

-- Takes over a stale lock: moves it aside (one taker wins the rename),
-- checks it is the lock judged stale, then creates ours.
local function take_over(self, text)
  local aside = self.lock_path .. ".stale." .. self.token
  if not os.rename(self.lock_path, aside) then return false end
  local moved = read_all(aside)
  if moved ~= text then
    os.rename(aside, self.lock_path) -- another taker's fresh lock: put it back
    return false
  end
  os.remove(aside)
  return core.create_exclusive(self.lock_path, lock_text(self)) == true
end

--- Takes the lock, or returns nil and a `locked` error.
function M.lock(self)
  if self.held then return true end
  for _ = 1, 3 do
    local ok, err, why = core.create_exclusive(self.lock_path, lock_text(self))
    if ok then
      self.held, self.renewed = true, os.time()
      return true
    end
    if why ~= "exists" then return nil, store_error("state", "cannot create the lock: " .. tostring(err)) end
    local text = read_all(self.lock_path)
    if text ~= nil then
      local holder = core.decode_json(text)
      local is_stale, reason = stale(self, holder)
      if not is_stale then return nil, locked_error(self, holder) end
      if self.debug then self.debug(format("sync: taking over the stale lock %s (%s)", self.lock_path, reason)) end
      if take_over(self, text) then
        self.held, self.renewed = true, os.time()
        return true
      end
    end
  end
  return nil, locked_error(self, (read_lock(self)))
end

-- Whether the lock file is still ours.
local function ours(self)
  local holder = read_lock(self)
  return type(holder) == "table" and holder.token == self.token, holder
end

-- Renews the lock's expiry when a third of the ttl has passed.
local function renew(self)
  local now = os.time()
  if now - self.renewed < self.ttl / 3 then return true end
  local mine, holder = ours(self)
  if not mine then return nil, locked_error(self, holder) end
  local tmp = self.lock_path .. ".renew." .. self.token
  local ok, err = core.write_durable(tmp, lock_text(self))
  if not ok then return nil, store_error("state", err) end
  os.rename(tmp, self.lock_path)
  self.renewed = now
  return true
end

function M.unlock(self)
  if not self.held then return true end
  self.held = false
  if ours(self) then os.remove(self.lock_path) end
  return true
end

-- ------------------------------------------------------------------------
-- The state.
-- ------------------------------------------------------------------------

local function read_state(self)
  local text = read_all(self.path)
  if text == nil or text == "" then return { version = 1, resources = {} } end
  local state, err = core.decode_json(text)
  if type(state) ~= "table" or type(state.resources) ~= "table" then
    return nil, store_error("state", format("the sync state %s is not a state file: %s", self.path,
      tostring(type(err) == "table" and err.message or "no resources")))
  end
  return state
end

local function state(self)
  if not self.data then
    local data, err = read_state(self)
    if not data then return nil, err end
    self.data = data
  end
  return self.data
end

--- The entry of `account` for `resource`: { hashes, hwm, full_at,
-- runs_since_full, incremental }, or nil when the state has none.
function M.load(self, resource, account)
  local data, err = state(self)
  if not data then return nil, err end
  local r = data.resources[resource]
  local e = r and r[account]
  if not e then return nil end
  return { hashes = e.ids or {}, hwm = e.hwm, full_at = e.full_at, runs_since_full = e.runs_since_full,
    incremental = e.incremental }
end

--- Keeps changes until the commit.
function M.apply(self, resource, changes)
  local ok, err = renew(self)
  if not ok then return nil, err end
  local list = self.pending[resource]
  if not list then
    list = {}
    self.pending[resource] = list
  end
  -- ids and hashes only: the items are the caller's
  for _, c in ipairs(changes) do
    list[#list + 1] = { op = c.op, account_id = c.account_id, id = c.id, hash = c.hash }
  end
  return true
end

local function entry_of(data, resource, account)
  local r = data.resources[resource]
  if not r then
    r = {}
    data.resources[resource] = r
  end
  local e = r[account]
  if not e then
    e = { ids = {} }
    r[account] = e
  end
  e.ids = e.ids or {}
  return e
end

local function merged(self, resource, checkpoints)
  local data = state(self)
  for _, c in ipairs(self.pending[resource] or {}) do
    local ids = entry_of(data, resource, c.account_id).ids
    if c.op == "deleted" then ids[c.id] = nil else ids[c.id] = c.hash end
  end
  for account, cp in pairs(checkpoints or {}) do
    local e = entry_of(data, resource, account)
    e.hwm, e.full_at, e.runs_since_full, e.incremental = cp.hwm, cp.full_at, cp.runs_since_full, cp.incremental
  end
  return data
end

-- Writes `text` as the state: temporary file, fsync, rename, fsync the directory.
local function write_atomically(self, text)
  local tmp = format("%s.tmp.%d", self.path, core.getpid())
  local ok, err = core.write_durable(tmp, text)
  if not ok then return nil, store_error("state", err) end
  local renamed, rerr = os.rename(tmp, self.path)
  if not renamed then
    os.remove(tmp)
    return nil, store_error("state", "rename: " .. tostring(rerr))
  end
  ok, err = core.fsync_dir(dir_of(self.path))
  if not ok then return nil, store_error("state", err) end
  return true
end

--- Makes the pending changes (and the checkpoints, when given) the state.
function M.commit(self, resource, checkpoints)
  local data, err = state(self)
  if not data then return nil, err end
  local mine, holder = ours(self)
  if not mine then return nil, locked_error(self, holder) end
  data = merged(self, resource, checkpoints)
  self.pending[resource] = nil
  local text
  text, err = core.encode_json(data)
  if not text then return nil, store_error("state", "cannot encode the state: " .. tostring(err)) end
  return write_atomically(self, text)
end

--- Forgets the pending changes (the file keeps the last commit).
function M.rollback(self)
  self.pending = {}
  self.data = nil
  return true
end

--- A store on the state file `path`.
-- @string path the state file (created by the first commit)
-- @tparam[opt] table opts `ttl` (seconds a lock lasts without renewal, 600), `debug` (function)
function M.new(path, opts)
  if type(path) ~= "string" or path == "" then error("bad argument #1 to 'new' (a path expected)", 2) end
  opts = opts or {}
  local ttl = opts.ttl or DEFAULT_TTL
  if type(ttl) ~= "number" or ttl <= 0 then error("bad argument #2 to 'new' (ttl: seconds > 0 expected)", 2) end
  return setmetatable({
    path = path, lock_path = path .. ".lock", ttl = ttl, host = hostname(), token = core.random_hex(8),
    pending = {}, held = false, debug = opts.debug,
  }, { __index = M, __name = "truto.sync.file" })
end

return M
