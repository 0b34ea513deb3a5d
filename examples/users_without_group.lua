-- The users of one connected account who are in no group: the ones an
-- access review should look at first.
--
--   TRUTO_API_TOKEN=... TRUTO_ACCOUNT=<integrated_account_id> lua5.4 examples/users_without_group.lua
--
-- It reads each user's `groups` (the unified model's memberships). An
-- integration that does not report memberships leaves the field out: those
-- users are counted apart rather than called group-less.
local truto = require "truto"

local account = os.getenv("TRUTO_ACCOUNT")
if not account or account == "" then
  io.stderr:write("set TRUTO_ACCOUNT to an integrated_account_id\n")
  os.exit(2)
end

local client = truto.new { integrated_account_id = account }

local ok, err = pcall(function()
  local groups = 0
  for _ in client:groups { truto_ignore_remote_data = true } do groups = groups + 1 end

  local total, lonely, unknown = 0, 0, 0
  for user in client:users { truto_ignore_remote_data = true } do
    total = total + 1
    local memberships = user.groups
    if type(memberships) ~= "table" then
      unknown = unknown + 1
    elseif next(memberships) == nil then
      lonely = lonely + 1
      print(string.format("%s\t%s\t%s", user.id, tostring(user.name or ""), tostring(user.status or "")))
    end
  end
  print(string.format("%d of %d users are in none of the %d groups", lonely, total, groups))
  if unknown > 0 then
    print(string.format("%d users have no group information", unknown))
  end
end)

if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
