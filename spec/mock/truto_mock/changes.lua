-- The mock's data changing over time, for sync: users and groups created, updated and deleted in
-- one account through `POST /__mock/changes`, on top of the fixed data of data.lua; the mock keeps
-- `updated_at` (the time of the change), and honours `updated_at[gt]` on the accounts that say
-- they support it:
--   acct-sync-<tag>           1,000 users K0001..K1000, the 6 groups; `updated_at[gt]` honoured
--   acct-sync-100k-<tag>      acct-large's 100,000 users, the 6 groups; honoured
--   acct-sync-nofilter-<tag>  as acct-sync-<tag>, but `updated_at[gt]` answers 400
--   acct-sync-ignore-<tag>    as acct-sync-<tag>, but `updated_at[gt]` is ignored (all items)
-- Changes apply to every data account (acct-small too); on the others the filter is ignored.
-- What changed is kept in the shared dict (`chg:<account>:<resource>`, a JSON document, and
-- `chgv:...`, a token that changes with it), so /__mock/reset forgets it.

local json = require "truto_mock.json"
local reply = require "truto_mock.reply"

local changes = {}

local dict = ngx.shared.truto_mock

-- Account families: name pattern, data they hold, what they do with `updated_at[gt]`.
local FAMILIES = {
  { "^acct%-sync%-nofilter%-[%w_]+$", "acct-1k", "reject" },
  { "^acct%-sync%-ignore%-[%w_]+$", "acct-1k", "ignore" },
  { "^acct%-sync%-100k%-[%w_]+$", "acct-large", "honour" },
  { "^acct%-sync%-[%w_]+$", "acct-1k", "honour" },
}

--- The sync account `name` is, or nil: { data = <data account>, since = "honour" | ... }.
function changes.account(name)
  for _, f in ipairs(FAMILIES) do
    if name:match(f[1]) then return { data = f[2], since = f[3] } end
  end
  return nil
end

local function iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

local function now()
  ngx.update_time()
  return ngx.now()
end

---------------------------------------------------------------------------------------------
-- The stored overlay: { created = { item, ... }, updated = { id = item }, deleted = { id = true } }

local function key(account, resource)
  return account .. ":" .. resource
end

local cache = {} -- key -> { version = token, overlay = decoded }

local function load(k)
  local version = dict:get("chgv:" .. k)
  if not version then return nil end
  local hit = cache[k]
  if hit and hit.version == version then return hit.overlay end
  local overlay = assert(json.decode(assert(dict:get("chg:" .. k))))
  overlay.created = overlay.created or {}
  overlay.updated = overlay.updated or {}
  overlay.deleted = overlay.deleted or {}
  cache[k] = { version = version, overlay = overlay }
  return overlay
end

local function save(k, overlay)
  local text = json.encode(overlay)
  assert(dict:set("chg:" .. k, text))
  local token = string.format("%.6f-%d", now(), dict:incr("chgv-seq", 1, 0))
  assert(dict:set("chgv:" .. k, token))
end

---------------------------------------------------------------------------------------------
-- A collection with its changes applied

-- The base index of the i-th item left once the sorted base indices `dels` are gone: the
-- smallest j with j = i + #{ d in dels : d <= j } (that j is never itself deleted).
local function base_index(dels, i)
  local function deleted_up_to(j)
    local lo, hi = 1, #dels
    while lo <= hi do
      local mid = math.floor((lo + hi) / 2)
      if dels[mid] <= j then lo = mid + 1 else hi = mid - 1 end
    end
    return hi
  end
  local j = i
  while true do
    local nj = i + deleted_up_to(j)
    if nj == j then return j end
    j = nj
  end
end

local function overlaid(c, ov)
  local dels = {}
  for id in pairs(ov.deleted) do
    local i = c.index_of and c.index_of(id)
    if i then dels[#dels + 1] = i end
  end
  table.sort(dels)
  local alive = c.count - #dels
  local by_id = {}
  for _, item in ipairs(ov.created) do by_id[item.id] = item end
  local out = {}
  for k, v in pairs(c) do out[k] = v end
  out.count = alive + #ov.created
  out.item = function(i)
    if i > alive then return ov.created[i - alive] end
    local item = c.item(base_index(dels, i))
    return ov.updated[item.id] or item
  end
  out.find = function(id)
    if ov.deleted[id] then return nil end
    return ov.updated[id] or by_id[id] or c.find(id)
  end
  out.index_of = nil
  return out
end

-- The latest `updated_at` of a base collection (computed once per account and resource).
local latest = {}

local function latest_update(k, c)
  if latest[k] == nil then
    local max = ""
    for i = 1, c.count do
      local u = c.item(i).updated_at
      if type(u) == "string" and u > max then max = u end
    end
    latest[k] = max
  end
  return latest[k]
end

local filtered_cache = {} -- key -> { tag = version .. since, items = {...} }

local function list_collection(c, items)
  local by_id = {}
  for _, item in ipairs(items) do by_id[item.id] = item end
  local out = {}
  for k, v in pairs(c) do out[k] = v end
  out.count = #items
  out.item = function(i) return items[i] end
  out.find = function(id) return by_id[id] end
  return out
end

-- Items updated after `since`: when no item of the base data is that recent (the usual case),
-- only the changed ones are looked at; else all of them.
local function updated_after(k, base, c, ov, since)
  local tag = (dict:get("chgv:" .. k) or "") .. "|" .. since
  local hit = filtered_cache[k]
  if hit and hit.tag == tag then return list_collection(c, hit.items) end
  local items = {}
  if latest_update(k, base) <= since then
    local ids = {}
    for id in pairs(ov and ov.updated or {}) do
      if not (ov.deleted[id]) then ids[#ids + 1] = id end
    end
    table.sort(ids)
    for _, id in ipairs(ids) do
      local item = ov.updated[id]
      if item.updated_at > since then items[#items + 1] = item end
    end
    for _, item in ipairs(ov and ov.created or {}) do
      if item.updated_at > since then items[#items + 1] = item end
    end
  else
    for i = 1, c.count do
      local item = c.item(i)
      if type(item.updated_at) == "string" and item.updated_at > since then items[#items + 1] = item end
    end
  end
  filtered_cache[k] = { tag = tag, items = items }
  return list_collection(c, items)
end

--- Collection `c` of `account` (from data.account) with its changes, filtered by
--- `updated_at[gt]` when the account honours it.
function changes.collection(account, resource, c, args)
  local k = key(account.id, resource)
  local ov = load(k)
  local out = ov and overlaid(c, ov) or c
  local since = args and args["updated_at[gt]"]
  if account.since == "honour" and type(since) == "string" then
    return updated_after(k, c, out, ov, since)
  end
  return out
end

--- The 400 of an account that does not support `updated_at[gt]` (nil for the others).
function changes.refuse(account, args)
  if account.since == "reject" and args["updated_at[gt]"] ~= nil then
    return reply.error(400, "updated_at: this integration does not support filtering by updated_at",
      { truto_is_remote_error = true })
  end
  return nil
end

---------------------------------------------------------------------------------------------
-- POST /__mock/changes

local function find_created(ov, id)
  for i, item in ipairs(ov.created) do
    if item.id == id then return i, item end
  end
  return nil
end

local function merge(target, patch)
  for k, v in pairs(patch) do
    if v == json.null then target[k] = nil else target[k] = v end
  end
  return target
end

-- Applies one change list to the overlay; returns the ids touched, or nil and a message.
local function apply(ov, c, body, stamp)
  local done = { created = json.array(), updated = json.array(), deleted = json.array() }
  for _, item in ipairs(body.create or {}) do
    if type(item) ~= "table" then return nil, "create: objects expected" end
    local new = json.copy(item)
    if new.id == nil then
      new.id = string.format("%s-new-%d", body.resource:sub(1, 1), dict:incr("chg-id:" .. body.resource, 1, 0))
    end
    if type(new.id) ~= "string" then return nil, "create: id must be a string" end
    if c.find(new.id) then return nil, "create: id " .. new.id .. " exists" end
    new.created_at = new.created_at or stamp
    new.updated_at = stamp
    ov.created[#ov.created + 1] = new
    ov.deleted[new.id] = nil
    done.created[#done.created + 1] = new.id
  end
  for _, patch in ipairs(body.update or {}) do
    if type(patch) ~= "table" or type(patch.id) ~= "string" then return nil, "update: objects with an id expected" end
    local current = c.find(patch.id)
    if not current then return nil, "update: no item " .. patch.id end
    local updated = merge(json.copy(current), patch)
    updated.updated_at = stamp
    local i = find_created(ov, patch.id)
    if i then ov.created[i] = updated else ov.updated[patch.id] = updated end
    done.updated[#done.updated + 1] = patch.id
  end
  for _, id in ipairs(body.delete or {}) do
    if type(id) ~= "string" or not c.find(id) then return nil, "delete: no item " .. tostring(id) end
    local i = find_created(ov, id)
    if i then table.remove(ov.created, i) else ov.deleted[id] = true end
    ov.updated[id] = nil
    done.deleted[#done.deleted + 1] = id
  end
  return done
end

--- The control endpoint: `{ account, resource, create = {...}, update = {...}, delete = {...} }`.
--- `collection(account, resource)` gives the account's current collection (changes applied).
function changes.control(text, account_of, collection)
  local body = json.decode(text)
  if type(body) ~= "table" or json.is_array(body) then return reply.error(400, "a JSON object expected") end
  if type(body.account) ~= "string" or not account_of(body.account) then
    return reply.error(404, "Integrated account not found")
  end
  if body.resource ~= "users" and body.resource ~= "groups" then
    return reply.error(400, "resource must be users or groups")
  end
  local account = account_of(body.account)
  local k = key(account.id, body.resource)
  local ov = json.copy(load(k)) or { created = {}, updated = {}, deleted = {} }
  local stamp = iso(now())
  local done, err = apply(ov, collection(account, body.resource), body, stamp)
  if not done then return reply.error(400, err) end
  save(k, ov)
  done.account, done.resource, done.updated_at = account.id, body.resource, stamp
  return reply.json(200, done)
end

return changes
