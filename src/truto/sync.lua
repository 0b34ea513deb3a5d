--- truto.sync: what changed since the last run, deletions included.
--
-- `client:sync(resource, params [, opts])` is an iterator of changes
-- `{ op = "created" | "updated" | "deleted", id, item, account_id }` for one
-- account or many (`integrated_account_id = { ... }`). It is built on the
-- public list iterator (`client:list`, fan-out included) and a state store
-- (truto.sync.file, truto.sync.sqlite, truto.sync.redis, or any object with
-- lock, load, apply, commit, rollback and unlock):
--
-- * An account the state does not know is listed completely; each item is
--   `created`. Later runs hash each item (FNV-1a over the canonical JSON
--   encoding: sorted keys) and compare with the state: `updated` when the
--   hash differs. Only a complete listing tells `deleted` (ids the state
--   holds that the listing did not give).
-- * An account listed before reads incrementally (`updated_at[gt]` = the
--   start of its last run minus `overlap`), and completely every
--   `full_every` seconds (or `{ runs = n }`). A vendor that answers 400 to
--   the filter, or ignores it, falls back to complete listings once and for
--   good (the state remembers it), with a debug line.
-- * The state advances only when the loop ends normally or `it:commit()` is
--   called: a break, an error or a killed process leaves the last committed
--   state, and the next run yields those changes again.
--
-- @module truto.sync
local core = require "truto.core"
local options = require "truto.options"
local time = require "truto.time"

local M = {}

local type, pairs, ipairs, next, tostring, error, pcall = type, pairs, ipairs, next, tostring, error, pcall
local setmetatable = setmetatable
local format, floor = string.format, math.floor

local MODEL = "user-directory"
M.DEFAULT_OVERLAP = require("truto.defaults").sync_overlap
M.DEFAULT_FULL_EVERY = require("truto.defaults").sync_full_every
local sync_options = require "truto.sync.options"
local split_options, account_list = sync_options.split, sync_options.accounts
M.store = sync_options.store

local function sync_error(kind, message, fields)
  local e = { kind = kind, message = message, remote = false }
  for k, v in pairs(fields or {}) do e[k] = v end
  return core.error(e)
end
M.error = sync_error

-- ------------------------------------------------------------------------
-- Values.
-- ------------------------------------------------------------------------

--- The content hash of an item and its canonical JSON text.
function M.hash(item)
  local text, err = core.encode_json(item)
  if not text then return nil, err end
  return core.fingerprint(text), text
end

--- Epoch seconds of an ISO 8601 time (`2024-05-01T10:00:00.123Z`,
-- `+02:00` offsets; no zone: UTC), or of a number (seconds, or milliseconds
-- past 1e11); nil when it is neither.
function M.epoch(v)
  return time.epoch(v, true)
end

--- ISO 8601 UTC text of epoch seconds.
function M.iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", floor(t))
end

-- An item's id as the string the state keys it by.
local function id_of(item)
  local id = type(item) == "table" and item.id
  if type(id) == "string" and id ~= "" then return id end
  if type(id) == "number" then
    if id == floor(id) and id > -2 ^ 53 and id < 2 ^ 53 then return format("%d", id) end
    return tostring(id)
  end
  return nil
end

-- ------------------------------------------------------------------------
-- The plan of a run: which accounts are listed completely, which read
-- incrementally (grouped by their `updated_at[gt]`, one fan-out each).
-- ------------------------------------------------------------------------

local function due(entry, own, now)
  local every = own.full_every
  if every.seconds and now - (entry.full_at or 0) >= every.seconds then return true end
  if every.runs and (entry.runs_since_full or 0) + 1 >= every.runs then return true end
  return false
end

local function mode_of(entry, own, now)
  if entry == nil or entry.hwm == nil or own.full or own.incremental == false then return "full" end
  if entry.incremental == false or due(entry, own, now) then return "full" end
  return "incremental"
end

local function plan(run)
  local full, by_since, order = {}, {}, {}
  for _, account in ipairs(run.accounts) do
    local acc = run.acc[account]
    if acc.mode == "full" then
      full[#full + 1] = account
    else
      local since = acc.entry.hwm - run.own.overlap
      acc.since = since
      if not by_since[since] then
        by_since[since] = {}
        order[#order + 1] = since
      end
      local g = by_since[since]
      g[#g + 1] = account
    end
  end
  local groups = {}
  if #full > 0 then groups[1] = { accounts = full, mode = "full" } end
  table.sort(order)
  for _, since in ipairs(order) do
    groups[#groups + 1] = { accounts = by_since[since], mode = "incremental", since = since }
  end
  return groups
end

-- ------------------------------------------------------------------------
-- The iterator.
-- ------------------------------------------------------------------------

local Sync = {}
Sync.__index = Sync
Sync.__name = "truto.sync"
M.Sync = Sync

local function say(run, line)
  if run.debug then run.debug("sync: " .. line) end
end

local function fail(run, err)
  run:close()
  error(err, 0)
end

-- Hands one change to the store (it stays pending until commit).
local function apply(run, change)
  local ok, err = run.store:apply(run.resource, { change })
  if not ok then fail(run, err) end
end

local function store_change(op, account, id, item, hash, text)
  return {
    op = op, account_id = account, id = id, item = item, hash = hash, json = text,
    updated_at = type(item) == "table" and type(item.updated_at) == "string" and item.updated_at or nil,
  }
end

local function public_change(c)
  return { op = c.op, id = c.id, item = c.item, account_id = c.account_id }
end

-- Starts the list iterator of the next group.
local function open_group(run, group)
  local params = {}
  for k, v in next, run.params do params[k] = v end
  params.integrated_account_id = group.accounts
  if group.mode == "incremental" then
    params.updated_at = { gt = M.iso(group.since) }
  end
  local list_opts = {}
  for k, v in pairs(run.list_opts) do list_opts[k] = v end
  -- errors of an incremental read are looked at (400: the filter is refused)
  if group.mode == "incremental" then list_opts.on_error = "skip" end
  local step, state, _, closer = run.client:list(run.model, run.resource, params, list_opts)
  run.group = { step = step, state = state, closer = closer, info = group }
  for _, account in ipairs(group.accounts) do
    run.acc[account].listed = group.mode
    run.acc[account].first = true
  end
  say(run, format("%s listing of %s for %d account(s)%s", group.mode == "full" and "complete" or "incremental",
    run.resource, #group.accounts, group.since and " with updated_at[gt]=" .. M.iso(group.since) or ""))
end

-- An incremental read whose vendor ignored the filter: an item older than
-- `since`. On the account's first item the listing is complete anyway.
local function check_filter(run, acc, item)
  local first = acc.first
  acc.first = false
  if acc.listed ~= "incremental" or acc.ignored then return end
  local t = M.epoch(item.updated_at)
  if t ~= nil and t >= acc.since then return end
  acc.ignored = true
  acc.fallback = true
  run.stats.fallbacks = run.stats.fallbacks + 1
  if first then
    acc.listed = "full"
    say(run, format("account %s ignores updated_at[gt] (its first item is older); falling back to complete "
      .. "listings, this one included", acc.account))
  else
    acc.incomplete = true
    say(run, format("account %s ignores updated_at[gt] (an item older than the filter); falling back to "
      .. "complete listings from the next run", acc.account))
  end
end

-- The change an item makes, or nil when it is unchanged.
local function diff(run, item, account)
  local acc = run.acc[account]
  local id = id_of(item)
  if not id then
    fail(run, sync_error("sync", format("an item of %s (account %s) has no id", run.resource, account),
      { account_id = account }))
  end
  check_filter(run, acc, item)
  local hash, text = M.hash(item)
  if not hash then fail(run, sync_error("sync", "an item cannot be encoded: " .. tostring(text))) end
  local previous = acc.seen[id] or acc.entry.hashes[id]
  acc.seen[id] = hash
  if previous == hash then
    run.stats.unchanged = run.stats.unchanged + 1
    return nil
  end
  local op = previous == nil and "created" or "updated"
  return store_change(op, account, id, item, hash, text)
end

-- After an incremental group: accounts whose filter was refused (400) are
-- listed completely; other errors are the caller's.
local function close_group(run)
  local g = run.group
  run.group = nil
  local errors = type(g.state) == "table" and g.state.errors or {}
  local retry = {}
  for _, e in ipairs(errors) do
    local acc = run.acc[e.account_id]
    local err = e.error
    if g.info.mode == "incremental" and type(err) == "table" and err.status == 400 and acc and not acc.fallback then
      acc.fallback = true
      run.stats.fallbacks = run.stats.fallbacks + 1
      say(run, format("account %s refused updated_at[gt] (HTTP 400); falling back to complete listings",
        e.account_id))
      retry[#retry + 1] = e.account_id
    elseif acc then
      acc.error = err
      run.errors[#run.errors + 1] = { account_id = e.account_id, error = err }
      if run.list_opts.on_error ~= "skip" then fail(run, err) end
    end
  end
  if #retry > 0 then
    table.insert(run.groups, run.next_group, { accounts = retry, mode = "full" })
  end
end

-- The deletions of every account listed completely, in id order.
local function deletions(run)
  local out = {}
  for _, account in ipairs(run.accounts) do
    local acc = run.acc[account]
    if acc.listed == "full" and not acc.error and not acc.incomplete then
      local gone = {}
      for id in pairs(acc.entry.hashes) do
        if acc.seen[id] == nil then gone[#gone + 1] = id end
      end
      table.sort(gone)
      for _, id in ipairs(gone) do out[#out + 1] = store_change("deleted", account, id) end
    end
  end
  return out
end

-- The checkpoint of each account this run read without error.
local function checkpoints(run)
  local out = {}
  for _, account in ipairs(run.accounts) do
    local acc = run.acc[account]
    if not acc.error and acc.listed then
      local entry = acc.entry
      local complete = acc.listed == "full" and not acc.incomplete
      local cp = {
        hwm = run.started,
        full_at = complete and run.started or entry.full_at,
        runs_since_full = complete and 0 or (entry.runs_since_full or 0) + 1,
      }
      if acc.fallback or entry.incremental == false then cp.incremental = false end
      out[account] = cp
    end
  end
  return out
end

-- Lets the caller make what it was handed durable first (a flush): when
-- `before_commit` raises, nothing is committed.
local function before_commit(run)
  local hook = run.own.before_commit
  if hook then
    local ok, err = pcall(hook)
    if not ok then fail(run, err) end
  end
end

local function finish(run)
  before_commit(run)
  local ok, err = run.store:commit(run.resource, checkpoints(run), run.stats)
  if not ok then fail(run, err) end
  run.committed = true
  run:close()
  say(run, format("created %d, updated %d, deleted %d, unchanged %d", run.stats.created, run.stats.updated,
    run.stats.deleted, run.stats.unchanged))
  return nil
end

local function count(run, op)
  run.stats[op] = run.stats[op] + 1
end

-- The generic-for step: the next change, or nil at the end (committed).
local function step(run)
  if run.closed then return nil end
  while true do
    if run.pending_deletes then
      local i = run.delete_index + 1
      local c = run.pending_deletes[i]
      if c == nil then return finish(run) end
      run.delete_index = i
      apply(run, c)
      count(run, "deleted")
      return public_change(c)
    end
    local g = run.group
    if g then
      local ok, item, account = pcall(g.step, g.state)
      if not ok then fail(run, item) end
      if item == nil then
        close_group(run)
      else
        account = account or g.info.accounts[1]
        local c = diff(run, item, account)
        if c then
          apply(run, c)
          count(run, c.op)
          return public_change(c)
        end
      end
    else
      local group = run.groups[run.next_group]
      if group then
        run.next_group = run.next_group + 1
        open_group(run, group)
      else
        run.pending_deletes, run.delete_index = deletions(run), 0
      end
    end
  end
end

--- Commits what the loop has yielded so far (the changes, not the
-- checkpoints: the next run reads from the same point, and yields none of
-- the committed changes again). Raises the store's error.
function Sync:commit()
  if self.closed then return true end
  before_commit(self)
  local ok, err = self.store:commit(self.resource, nil, self.stats)
  if not ok then fail(self, err) end
  return true
end

--- Ends the run: without a commit, the changes since the last commit are
-- forgotten (rolled back) and the lock released. Never raises.
function Sync:close()
  if self.closed then return end
  self.closed = true
  local g = self.group
  self.group = nil
  if g and g.closer and g.closer.close then pcall(g.closer.close, g.closer) end
  if not self.committed then pcall(self.store.rollback, self.store) end
  pcall(self.store.unlock, self.store)
end
Sync.__close = Sync.close
Sync.__gc = Sync.close

--- client:sync(resource, params, opts): the iterator (see the module doc).
-- Returns `step, it, nil, it`; `it.stats` counts created, updated, deleted,
-- unchanged, fallbacks; `it.errors` lists accounts skipped (on_error = "skip").
function M.sync(client, resource, params, opts)
  local fname = "sync"
  options.check_name(fname, 1, resource, "resource")
  options.check_optional_table(fname, 2, params)
  params = params or {}
  local own, list_opts = split_options(fname, 3, opts)
  local store = M.store(fname, 3, own.state)
  local accounts = account_list(fname, 2, client, params)
  local clock = own.clock or os.time
  local run = setmetatable({
    client = client, resource = resource, model = own.model or MODEL, params = params, own = own,
    list_opts = list_opts, store = store, accounts = accounts, acc = {}, errors = {},
    started = floor(clock()), next_group = 1,
    stats = { created = 0, updated = 0, deleted = 0, unchanged = 0, fallbacks = 0, accounts = #accounts },
    debug = own.debug or (type(rawget(client, "_policy")) == "table" and client._policy.debug) or nil,
  }, Sync)
  local ok, err = store:lock()
  if not ok then
    run.closed = true -- not ours to roll back or unlock
    error(err, 0)
  end
  for _, account in ipairs(accounts) do
    local entry
    entry, err = store:load(resource, account)
    if err then
      run:close()
      error(err, 0)
    end
    entry = entry or { hashes = {} }
    entry.hashes = entry.hashes or {}
    local mode = mode_of(entry.hwm ~= nil and entry or nil, own, run.started)
    run.acc[account] = { account = account, entry = entry, seen = {}, mode = mode }
  end
  run.groups = plan(run)
  return step, run, nil, run
end

return M
