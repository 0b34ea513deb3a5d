--- truto.sync.sqlite: a SQLite mirror as the state of client:sync.
--
--   local store = require("truto.sync.sqlite").new("directory.db")
--   for change in client:sync("users", { integrated_account_id = id }, { state = store }) do ... end
--   -- SELECT id FROM users WHERE deleted_at IS NULL AND json_extract(json, '$.is_2fa_enabled') = 0
--
-- Through LuaSQL (Debian: lua-sql-sqlite3), loaded only when a store is made.
-- One table per resource: `account_id`, `id`, `hash`, `updated_at` (the
-- item's), `deleted_at` (when a complete listing no longer had it; the row
-- keeps its last `json`), `json` (the item, canonical JSON). The checkpoints
-- (`truto_sync_state`) and a line per commit (`truto_sync_runs`: what it
-- applied) are written in the same transaction as the rows, so the mirror
-- and the state never disagree: a run that dies leaves the last commit.
-- The lock is SQLite's own: a run holds `BEGIN IMMEDIATE` (WAL mode, so
-- readers are never blocked); a second run gets `locked` at once, and a dead
-- process's lock is gone with it. Values go in through the driver's escaping
-- (`conn:escape`), never as raw text.
--
-- @module truto.sync.sqlite
local core = require "truto.core"

local M = {}

local format, floor = string.format, math.floor

local function store_error(kind, message)
  return core.error { kind = kind, message = message, remote = false }
end

-- ------------------------------------------------------------------------
-- SQL with escaped values.
-- ------------------------------------------------------------------------

local function quote(self, v)
  if v == nil then return "NULL" end
  if type(v) == "number" then
    if v == floor(v) then return format("%d", v) end
    return format("%.17g", v)
  end
  v = tostring(v)
  if v:find("\0", 1, true) then error(store_error("state", "a value holds a NUL byte"), 0) end
  return "'" .. self.conn:escape(v) .. "'"
end

local function ident(name)
  if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
    error(store_error("state", format("%q is not a table name (letters, digits, _)", tostring(name))), 0)
  end
  return '"' .. name .. '"'
end

-- Runs one statement; closes what it returns. true, or nil and an error.
local function exec(self, sql)
  local res, err = self.conn:execute(sql)
  if res == nil then
    local msg = tostring(err)
    local kind = msg:find("database is locked", 1, true) and "locked" or "state"
    return nil, store_error(kind, format("sqlite %s: %s", self.path, msg:gsub("^LuaSQL: ", "")))
  end
  if type(res) == "userdata" then res:close() end
  return true
end

local function must(self, sql)
  local ok, err = exec(self, sql)
  if not ok then error(err, 0) end
end

-- Every row of a query, as tables keyed by column name.
local function rows(self, sql)
  local cur, err = self.conn:execute(sql)
  if not cur then error(store_error("state", format("sqlite %s: %s", self.path, tostring(err))), 0) end
  local out = {}
  while true do
    local row = cur:fetch({}, "a")
    if not row then break end
    out[#out + 1] = row
  end
  cur:close()
  return out
end

-- Runs fn(...) turning raised error objects into nil, err.
local function guarded(fn, ...)
  local ok, a, b = pcall(fn, ...)
  if ok then return a, b end
  if type(a) == "table" then return nil, a end
  return nil, store_error("state", tostring(a))
end

local function integer(v)
  if v == nil then return nil end
  return floor(tonumber(v))
end

-- ------------------------------------------------------------------------
-- The store.
-- ------------------------------------------------------------------------

local SCHEMA = {
  [[CREATE TABLE IF NOT EXISTS truto_sync_state (resource TEXT NOT NULL, account_id TEXT NOT NULL,
    hwm INTEGER, full_at INTEGER, runs_since_full INTEGER, incremental INTEGER,
    PRIMARY KEY (resource, account_id))]],
  [[CREATE TABLE IF NOT EXISTS truto_sync_runs (run INTEGER PRIMARY KEY AUTOINCREMENT,
    resource TEXT NOT NULL, committed_at TEXT NOT NULL, final INTEGER NOT NULL,
    created INTEGER NOT NULL, updated INTEGER NOT NULL, deleted INTEGER NOT NULL)]],
}

local function ensure_table(self, resource)
  if self.tables[resource] then return end
  must(self, format([[CREATE TABLE IF NOT EXISTS %s (account_id TEXT NOT NULL, id TEXT NOT NULL,
    hash TEXT, updated_at TEXT, deleted_at TEXT, json TEXT, PRIMARY KEY (account_id, id))]], ident(resource)))
  self.tables[resource] = true
end

local function begin(self)
  local ok, err = exec(self, "BEGIN IMMEDIATE")
  if not ok then
    if err.kind == "locked" then
      err = store_error("locked", format("the sync state %s is locked by another run (SQLite)", self.path))
    end
    return nil, err
  end
  self.in_tx = true
  return true
end

function M.lock(self)
  if self.in_tx then return true end
  local ok, err = begin(self)
  if not ok then return nil, err end
  return guarded(function()
    for _, sql in ipairs(SCHEMA) do must(self, sql) end
    return true
  end)
end

function M.load(self, resource, account)
  return guarded(function()
    ensure_table(self, resource)
    local hashes = {}
    for _, row in ipairs(rows(self, format("SELECT id, hash FROM %s WHERE account_id = %s AND deleted_at IS NULL",
      ident(resource), quote(self, account)))) do
      hashes[row.id] = row.hash
    end
    local cp = rows(self, format("SELECT * FROM truto_sync_state WHERE resource = %s AND account_id = %s",
      quote(self, resource), quote(self, account)))[1]
    if not cp and next(hashes) == nil then return nil end
    cp = cp or {}
    local entry = {
      hashes = hashes, hwm = integer(cp.hwm), full_at = integer(cp.full_at),
      runs_since_full = integer(cp.runs_since_full),
    }
    if cp.incremental ~= nil and integer(cp.incremental) == 0 then entry.incremental = false end
    return entry
  end)
end

local function apply_one(self, t, c)
  if c.op == "deleted" then
    must(self, format("UPDATE %s SET deleted_at = %s, hash = NULL WHERE account_id = %s AND id = %s", t,
      quote(self, self.now()), quote(self, c.account_id), quote(self, c.id)))
  else
    must(self, format([[INSERT INTO %s (account_id, id, hash, updated_at, deleted_at, json)
      VALUES (%s, %s, %s, %s, NULL, %s) ON CONFLICT (account_id, id) DO UPDATE SET hash = excluded.hash,
      updated_at = excluded.updated_at, deleted_at = NULL, json = excluded.json]], t, quote(self, c.account_id),
      quote(self, c.id), quote(self, c.hash), quote(self, c.updated_at), quote(self, c.json)))
  end
  self.counts[c.op] = self.counts[c.op] + 1
end

function M.apply(self, resource, changes)
  if not self.in_tx then return nil, store_error("state", "apply without the lock") end
  return guarded(function()
    ensure_table(self, resource)
    local t = ident(resource)
    for _, c in ipairs(changes) do apply_one(self, t, c) end
    return true
  end)
end

local function write_checkpoints(self, resource, checkpoints)
  for account, cp in pairs(checkpoints) do
    local incremental = cp.incremental == false and 0 or nil
    must(self, format([[INSERT INTO truto_sync_state (resource, account_id, hwm, full_at, runs_since_full,
      incremental) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (resource, account_id) DO UPDATE SET
      hwm = excluded.hwm, full_at = excluded.full_at, runs_since_full = excluded.runs_since_full,
      incremental = excluded.incremental]], quote(self, resource), quote(self, account), quote(self, cp.hwm),
      quote(self, cp.full_at), quote(self, cp.runs_since_full), quote(self, incremental)))
  end
end

local function reset_counts(self)
  self.counts = { created = 0, updated = 0, deleted = 0 }
end

--- Commits the rows applied so far, with the checkpoints when given (the
-- end of a run), in one transaction; a commit inside a run keeps the lock.
function M.commit(self, resource, checkpoints)
  if not self.in_tx then return nil, store_error("state", "commit without the lock") end
  local ok, err = guarded(function()
    ensure_table(self, resource)
    if checkpoints then write_checkpoints(self, resource, checkpoints) end
    local n = self.counts
    must(self, format([[INSERT INTO truto_sync_runs (resource, committed_at, final, created, updated, deleted)
      VALUES (%s, %s, %d, %d, %d, %d)]], quote(self, resource), quote(self, self.now()), checkpoints and 1 or 0,
      n.created, n.updated, n.deleted))
    return true
  end)
  if not ok then return nil, err end
  ok, err = exec(self, "COMMIT")
  if not ok then return nil, err end
  self.in_tx = false
  reset_counts(self)
  if not checkpoints then return begin(self) end
  return true
end

function M.rollback(self)
  if self.in_tx then
    exec(self, "ROLLBACK")
    self.in_tx = false
  end
  self.tables = {}
  reset_counts(self)
  return true
end

function M.unlock(self)
  return M.rollback(self)
end

--- Closes the database (a run in progress is rolled back).
function M.close(self)
  if self.closed then return end
  M.rollback(self)
  self.closed = true
  self.conn:close()
  self.env:close()
end

--- A store on the SQLite database `path` (created when missing).
-- @string path the database file
-- @raise when LuaSQL's SQLite driver is not installed, or the file cannot be opened
function M.new(path)
  if type(path) ~= "string" or path == "" then error("bad argument #1 to 'new' (a path expected)", 2) end
  local ok, driver = pcall(require, "luasql.sqlite3")
  if not ok then
    error("truto.sync.sqlite needs LuaSQL's SQLite driver (Debian: lua-sql-sqlite3): " .. tostring(driver), 2)
  end
  local env = assert(driver.sqlite3())
  local conn, err = env:connect(path)
  if not conn then
    env:close()
    error(format("truto.sync.sqlite: cannot open %s: %s", path, tostring(err)), 2)
  end
  local self = setmetatable({
    path = path, env = env, conn = conn, tables = {}, in_tx = false,
    now = function() return os.date("!%Y-%m-%dT%H:%M:%SZ") end,
  }, { __index = M, __name = "truto.sync.sqlite", __gc = M.close, __close = M.close })
  reset_counts(self)
  must(self, "PRAGMA journal_mode = WAL")
  must(self, "PRAGMA busy_timeout = 0")
  return self
end

return M
