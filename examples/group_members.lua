-- Keeps a local copy of one group's member list in step with the directory:
-- prints who joined (+) and who left (-) since the last run, then saves the
-- new list. Run it from cron to feed another system, or to watch a group.
--
--   TRUTO_API_TOKEN=... TRUTO_ACCOUNT=<integrated_account_id> \
--     lua5.4 examples/group_members.lua GROUP_ID [SNAPSHOT_FILE]
--
-- SNAPSHOT_FILE (default: group-<GROUP_ID>.members) holds one "id<TAB>name"
-- line per member; it is replaced whole, through a temporary file.
local truto = require "truto"

local account = os.getenv("TRUTO_ACCOUNT")
local group_id, snapshot = arg[1], arg[2]
if not account or account == "" or not group_id then
  io.stderr:write("usage: TRUTO_ACCOUNT=... lua5.4 examples/group_members.lua GROUP_ID [SNAPSHOT_FILE]\n")
  os.exit(2)
end
snapshot = snapshot or ("group-" .. group_id:gsub("[^%w_.-]", "_") .. ".members")

local client = truto.new { integrated_account_id = account }

local function fail(err)
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end

-- The saved members: id -> name, and the ids in file order.
local function read_snapshot(path)
  local members, order = {}, {}
  local f = io.open(path, "r")
  if not f then return members, order end
  for line in f:lines() do
    local id, name = line:match("^([^\t]+)\t?(.*)$")
    if id then
      members[id] = name
      order[#order + 1] = id
    end
  end
  f:close()
  return members, order
end

local function in_group(user)
  if type(user.groups) ~= "table" then return true end -- not reported: trust the filter
  for _, g in ipairs(user.groups) do
    if g.id == group_id then return true end
  end
  return false
end

local group, err = client:get("user-directory", "groups", group_id)
if not group then fail(err) end

-- group_id asks the integration for the members only; in_group() checks it.
local current, order = {}, {}
local ok, list_err = pcall(function()
  for user in client:users { group_id = group_id, truto_ignore_remote_data = true } do
    if in_group(user) and not current[user.id] then
      current[user.id] = tostring(user.name or "")
      order[#order + 1] = user.id
    end
  end
end)
if not ok then fail(list_err) end

local before, before_order = read_snapshot(snapshot)
local joined, left = 0, 0
for _, id in ipairs(order) do
  if before[id] == nil then
    joined = joined + 1
    print("+ " .. id .. "\t" .. current[id])
  end
end
for _, id in ipairs(before_order) do
  if current[id] == nil then
    left = left + 1
    print("- " .. id .. "\t" .. before[id])
  end
end

local tmp = snapshot .. ".tmp"
local f = assert(io.open(tmp, "w"))
for _, id in ipairs(order) do f:write(id, "\t", current[id], "\n") end
assert(f:close())
assert(os.rename(tmp, snapshot))

print(string.format("%s (%s): %d members, %d joined, %d left", tostring(group.name), group_id,
  #order, joined, left))
