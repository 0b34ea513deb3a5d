--- truto.sync.options: the arguments of client:sync (truto.sync), checked: the sync's own
-- options (state, full, incremental, overlap, full_every, ...) apart from the list call's,
-- the state store, and the accounts. Misuse raises, naming the argument.
--
-- @module truto.sync.options
local options = require "truto.options"
local DEFAULTS = require "truto.defaults"

local M = {}

local type, pairs, ipairs = type, pairs, ipairs
local format, floor = string.format, math.floor
local argerror, typeerror = options.argerror, options.typeerror

-- The options of client:sync beyond the list call's own.
local SYNC_OPTIONS = {
  state = true, full = true, incremental = true, overlap = true, full_every = true, debug = true,
  model = true, clock = true, before_commit = true,
}
local STORE_METHODS = { "lock", "load", "apply", "commit", "rollback", "unlock" }

local function check_full_every(v)
  if v == nil then return { seconds = DEFAULTS.sync_full_every } end
  if type(v) == "number" and v >= 0 then return { seconds = v } end
  if type(v) == "table" then
    local runs, seconds = v.runs, v.seconds
    local ok = (runs == nil or (type(runs) == "number" and runs >= 1 and runs == floor(runs)))
      and (seconds == nil or (type(seconds) == "number" and seconds >= 0))
      and (runs ~= nil or seconds ~= nil)
    for k in pairs(v) do
      if k ~= "runs" and k ~= "seconds" then ok = false end
    end
    if ok then return { runs = runs, seconds = seconds } end
  end
  return nil
end

--- Resolves `opts.state`: a store object, or a path (the JSON state file).
function M.store(fname, n, state)
  if type(state) == "string" then
    if state == "" then argerror(fname, n, "option 'state': a path must not be empty") end
    return require("truto.sync.file").new(state)
  end
  if type(state) ~= "table" then
    argerror(fname, n, "option 'state': a path or a store object (truto.sync.file/sqlite/redis) required")
  end
  for _, m in ipairs(STORE_METHODS) do
    if type(state[m]) ~= "function" then
      argerror(fname, n, format("option 'state': the store has no %s method", m))
    end
  end
  return state
end

--- Splits opts into the sync's own (checked, with their defaults) and the list call's.
function M.split(fname, n, opts)
  if opts == nil then typeerror(fname, n, "table of options (with state)", opts) end
  if type(opts) ~= "table" then typeerror(fname, n, "table of options", opts) end
  local own, list = {}, {}
  for k, v in pairs(opts) do
    if SYNC_OPTIONS[k] then own[k] = v else list[k] = v end
  end
  options.check(fname, n, list, options.CALL)
  own.full_every = check_full_every(own.full_every)
  if not own.full_every then
    argerror(fname, n, "option 'full_every': seconds >= 0, or { runs = n, seconds = s }")
  end
  local overlap = own.overlap
  if overlap == nil then own.overlap = DEFAULTS.sync_overlap
  elseif type(overlap) ~= "number" or overlap < 0 or overlap ~= overlap or overlap == math.huge then
    argerror(fname, n, "option 'overlap': seconds >= 0 expected")
  end
  for _, k in ipairs { "full", "incremental" } do
    if own[k] ~= nil and type(own[k]) ~= "boolean" then
      argerror(fname, n, format("option '%s': boolean expected", k))
    end
  end
  for _, k in ipairs { "debug", "clock", "before_commit" } do
    if own[k] ~= nil and type(own[k]) ~= "function" then
      argerror(fname, n, format("option '%s': function expected", k))
    end
  end
  if own.model ~= nil then options.check_name(fname, n, own.model, "model") end
  return own, list
end

--- The accounts of params (or the client's), as a list without repeats.
function M.accounts(fname, n, client, params)
  local accounts = params.integrated_account_id
  if accounts == nil then accounts = client.integrated_account_id end
  if type(accounts) == "string" then accounts = { accounts } end
  if type(accounts) ~= "table" or accounts[1] == nil then
    argerror(fname, n, "integrated_account_id required (an id or an array of ids)")
  end
  local list, seen = {}, {}
  for i, a in ipairs(accounts) do
    if type(a) ~= "string" or a == "" then
      argerror(fname, n, format("integrated_account_id[%d]: a non-empty string expected", i))
    end
    if not seen[a] then
      seen[a] = true
      list[#list + 1] = a
    end
  end
  return list
end

return M
