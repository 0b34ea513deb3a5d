--- truto.rate.option: checks the `rate_limit` client option (truto.rate holds the limiter).
--
-- nil (the defaults), false (off) or a table `{ requests, per, account = { requests, per } |
-- false, shared_dict = name, store = object }`; every number finite and in range. A message
-- names the field. Runs on Lua 5.1 (LuaJIT) to 5.4.
--
-- @module truto.rate.option
local M = {}

local floor = math.floor
local format, tostring, type = string.format, tostring, type

local MAX_REQUESTS = 1000000 -- the largest fixed budget (its state is the same size whatever it is)
local MAX_PER = 86400        -- a day

local FIELDS = { requests = true, per = true, account = true, shared_dict = true, store = true }
local BUDGET_FIELDS = { requests = true, per = true }

--- A value as a message shows it: a number as it is, a string quoted, else its type.
function M.describe(v)
  if type(v) == "number" then return tostring(v) end
  if type(v) == "string" then return format("%q", v) end
  return type(v)
end

local function check_requests(where, v)
  if v == nil then return true end
  if type(v) ~= "number" or v ~= v or v < 1 or v > MAX_REQUESTS or floor(v) ~= v then
    return nil, format("%s.requests: integer from 1 to %d expected, got %s", where, MAX_REQUESTS, M.describe(v))
  end
  return true
end

local function check_per(where, v)
  if v == nil then return true end
  if type(v) ~= "number" or v ~= v or v <= 0 or v > MAX_PER then
    return nil, format("%s.per: seconds > 0 and at most %d expected, got %s", where, MAX_PER, M.describe(v))
  end
  return true
end

local function check_budget(where, t, fields)
  for k in pairs(t) do
    if not fields[k] then return nil, format("%s: unknown field %s", where, M.describe(k)) end
  end
  local ok, why = check_requests(where, t.requests)
  if not ok then return nil, why end
  return check_per(where, t.per)
end

--- Checks a `rate_limit` client option value.
-- nil (the defaults), false (off) or a table
-- `{ requests, per, account = { requests, per } | false, shared_dict = name, store = object }`;
-- a missing field takes its default.
-- @return true, or nil and why (a message naming the field)
function M.check(value)
  if value == nil or value == false then return true end
  if type(value) ~= "table" then
    return nil, "rate_limit: false or a table expected, got " .. M.describe(value)
  end
  local ok, why = check_budget("rate_limit", value, FIELDS)
  if not ok then return nil, why end
  local account = value.account
  if account ~= nil and account ~= false then
    if type(account) ~= "table" then
      return nil, "rate_limit.account: false or a table { requests, per } expected, got " .. M.describe(account)
    end
    ok, why = check_budget("rate_limit.account", account, BUDGET_FIELDS)
    if not ok then return nil, why end
  end
  local dict = value.shared_dict
  if dict ~= nil and (type(dict) ~= "string" or dict == "") then
    return nil, "rate_limit.shared_dict: the name of a lua_shared_dict expected, got " .. M.describe(dict)
  end
  local store = value.store
  if store ~= nil then
    local t = type(store)
    local reserve = (t == "table" or t == "userdata") and store.reserve
    local hold = (t == "table" or t == "userdata") and store.hold
    if type(reserve) ~= "function" or type(hold) ~= "function" then
      return nil, "rate_limit.store: an object with reserve and hold methods expected, got " .. M.describe(store)
    end
  end
  return true
end

return M
