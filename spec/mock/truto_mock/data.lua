-- Which items each account holds and how its lists are paged.
--
-- An account id is `<name>[@<ms>]`. data.account(id) tells what it is:
--   { id = <as given>, data = "acct-small" | ..., fault = "500" | nil, flaky = n | nil,
--     latency = ms | nil }
-- Fault and flaky accounts hold acct-small's data, served once the fault lets a request through.
--
-- A collection is what one resource of one account lists:
--   { count = n, item = function(i), find = function(id), page_size = n,
--     paging = "offset" | "empty-page" | "loop", ends_with = json.null | "" | nil (key omitted) }
-- Items are computed on demand: acct-huge's million users never exist at once.

local json = require "truto_mock.json"
local fixtures = require "truto_mock.fixtures"
local faults = require "truto_mock.faults"
local state = require "truto_mock.state"
local changes = require "truto_mock.changes"

local data = {}

local DATA_ACCOUNTS = {
  ["acct-small"] = true, ["acct-large"] = true, ["acct-huge"] = true,
  ["acct-empty-page"] = true, ["acct-loop"] = true, ["acct-nulls"] = true,
}

--- What account `id` is, or nil when there is no such account.
function data.account(id)
  local name, ms = id:match("^(.-)@(%d+)$")
  local account = { id = id, latency = tonumber(ms), data = "acct-small" }
  name = name or id
  if DATA_ACCOUNTS[name] then
    account.data = name
    return account
  end
  if name:match("^acct%-1k%-[%w_]+$") then -- a family of like accounts, for fan-out
    account.data = "acct-1k"
    return account
  end
  local sync = changes.account(name) -- acct-sync-*: data that changes (changes.lua)
  if sync then
    account.data, account.since = sync.data, sync.since
    return account
  end
  local fault = name:match("^fault%-(.+)$")
  if fault and faults.exists(fault) then
    account.fault = fault
    return account
  end
  local flaky, n = name:match("^flaky%-(.+)%-(%d+)$")
  if flaky and faults.exists(flaky) then
    account.fault, account.flaky = flaky, tonumber(n)
    return account
  end
  return nil
end

--- The delay asked for by an account id's `@<ms>` suffix, if any.
function data.latency(id)
  return type(id) == "string" and tonumber(id:match("@(%d+)$")) or nil
end

---------------------------------------------------------------------------------------------
-- Collections

local function from_list(items, page_size)
  local by_id, index = {}, {}
  for i, item in ipairs(items) do by_id[item.id], index[item.id] = item, i end
  return {
    count = #items,
    item = function(i) return items[i] end,
    find = function(id) return by_id[id] end,
    index_of = function(id) return index[id] end,
    page_size = page_size,
    paging = "offset",
    ends_with = json.null,
  }
end

local function from_series(series)
  return {
    count = series.count,
    item = function(i) return fixtures.generated_user(series, i) end,
    find = function(id)
      local i = fixtures.generated_index(series, id)
      return i and fixtures.generated_user(series, i)
    end,
    index_of = function(id) return fixtures.generated_index(series, id) end,
    page_size = 100,
    paging = "offset",
    ends_with = json.null,
  }
end

-- A query value matches when it equals `value`, or any of its values does (repeated key).
local function wanted(filter, value)
  if type(filter) == "table" then
    for _, f in ipairs(filter) do
      if f == value then return true end
    end
    return false
  end
  return filter == value
end

local function has(list, field, filter)
  for _, entry in ipairs(list or {}) do
    if wanted(filter, entry[field]) then return true end
  end
  return false
end

-- acct-small's user filters: status, group_id, email (any of the user's addresses).
local function user_matches(user, args)
  return (args.status == nil or wanted(args.status, user.status))
    and (args.group_id == nil or has(user.groups, "id", args.group_id))
    and (args.email == nil or has(user.emails, "email", args.email))
end

-- The filters of a query: `status=a`, `status=a&status=b` and `status[]=a&status[]=b` (the
-- documented array form) all give the values to match; a key without a value is ignored.
local FILTERS = { "status", "group_id", "email", "name", "type" }

local function filter_args(args)
  local out = {}
  for _, name in ipairs(FILTERS) do
    local values = {}
    for _, key in ipairs({ name, name .. "[]" }) do
      local v = args[key]
      if type(v) ~= "table" then v = { v } end
      for _, x in ipairs(v) do
        if type(x) == "string" then values[#values + 1] = x end
      end
    end
    if #values == 1 then out[name] = values[1] elseif #values > 1 then out[name] = values end
  end
  return out
end

local function filtered(items, keep, args)
  local out = {}
  args = filter_args(args)
  for _, item in ipairs(items) do
    if keep(item, args) then out[#out + 1] = item end
  end
  return out
end

-- The first `n` items.
local function head(items, n)
  local out = {}
  for i = 1, math.min(n, #items) do out[i] = items[i] end
  return out
end

local function users(account, args)
  local all = fixtures.users()
  if account == "acct-large" then return from_series(fixtures.LARGE) end
  if account == "acct-huge" then return from_series(fixtures.HUGE) end
  if account == "acct-1k" then return from_series(fixtures.K1) end
  if account == "acct-empty-page" then
    local c = from_list(head(all, 25), 10)
    c.paging = "empty-page"
    return c
  end
  if account == "acct-loop" then
    local c = from_list(head(all, 30), 10)
    c.paging = "loop"
    return c
  end
  local c = from_list(filtered(all, user_matches, args), 10)
  if account == "acct-nulls" then c.ends_with = "" end
  return c
end

local function group_matches(group, args)
  return (args.name == nil or wanted(args.name, group.name))
    and (args.type == nil or wanted(args.type, group.type))
end

local function groups(account, args)
  local c = from_list(filtered(fixtures.groups(), group_matches, args), 10)
  if account == "acct-nulls" then c.ends_with = nil end
  return c
end

local function organizations()
  return from_list(state.organizations(), 10)
end

local RESOURCES = { users = users, groups = groups, organizations = organizations }

--- The collection `resource` of `account` (an account from data.account), filtered by `args`.
function data.collection(account, resource, args)
  local c = RESOURCES[resource](account.data, args)
  if resource == "organizations" then return c end
  return changes.collection(account, resource, c, args)
end

---------------------------------------------------------------------------------------------
-- Paging. Cursors are opaque to the client: base64 of "<account>/<resource>:<n>", where n is
-- the offset of the next page (or its number, for acct-empty-page). acct-loop uses "c1", "c2".

local function encode_cursor(tag, n)
  return ngx.encode_base64(tag .. ":" .. n)
end

local function decode_cursor(tag, cursor)
  local text = ngx.decode_base64(cursor)
  local t, n = (text or ""):match("^(.*):(%d+)$")
  if t ~= tag then return nil end
  return tonumber(n)
end

local function slice(c, offset, limit)
  local items = json.array()
  for i = offset + 1, math.min(offset + limit, c.count) do
    items[#items + 1] = c.item(i)
  end
  return items
end

local function offset_page(c, tag, limit, cursor)
  local offset = 0
  if cursor then
    offset = decode_cursor(tag, cursor)
    if not offset or offset > c.count then return nil end
  end
  local more = offset + limit < c.count
  return slice(c, offset, limit), more and encode_cursor(tag, offset + limit) or c.ends_with
end

-- Page 2 is empty but points on to page 3; pages 3, 4, ... hold what page 2 should have.
local function empty_page_page(c, tag, limit, cursor)
  local page = 1
  if cursor then
    page = decode_cursor(tag, cursor)
    if not page or page < 2 or (page - 2) * limit > c.count then return nil end
  end
  local offset = page <= 2 and 0 or (page - 2) * limit
  local items = page == 2 and json.array() or slice(c, offset, limit)
  local more = page == 2 or offset + limit < c.count
  return items, more and encode_cursor(tag, page + 1) or c.ends_with
end

-- No cursor -> page 1, "c1" -> page 2, "c2" -> page 3, whose cursor is "c1" again.
local LOOP = { c1 = 2, c2 = 3 }
local LOOP_NEXT = { "c1", "c2", "c1" }

local function loop_page(c, _, limit, cursor)
  local page = cursor and LOOP[cursor] or (not cursor and 1)
  if not page then return nil end
  return slice(c, (page - 1) * limit, limit), LOOP_NEXT[page]
end

local PAGERS = { offset = offset_page, ["empty-page"] = empty_page_page, loop = loop_page }

--- One page of collection `c`: the items and the next cursor (json.null, "" or nil at the end).
--- Returns nil when `cursor` is not one this list handed out.
function data.page(c, tag, limit, cursor)
  return PAGERS[c.paging](c, tag, limit, cursor)
end

return data
