-- List every user of one connected account, with their groups.
--
--   TRUTO_API_TOKEN=... TRUTO_ACCOUNT=<integrated_account_id> lua5.4 examples/list_users.lua
--
-- `make demo` runs it against the bundled mock server when no token is set.
local truto = require "truto"

local account = os.getenv("TRUTO_ACCOUNT")
if not account or account == "" then
  io.stderr:write("set TRUTO_ACCOUNT to an integrated_account_id\n")
  os.exit(2)
end

local client = truto.new { integrated_account_id = account }

local function primary_email(user)
  for _, email in ipairs(user.emails or {}) do
    if email.is_primary then return email.email end
  end
  return user.emails and user.emails[1] and user.emails[1].email or ""
end

local ok, err = pcall(function()
  local count, by_status = 0, {}
  print(string.format("%-10s %-24s %-32s %s", "id", "name", "email", "status"))
  for user in client:users { truto_ignore_remote_data = true } do
    count = count + 1
    local status = tostring(user.status or "")
    by_status[status] = (by_status[status] or 0) + 1
    print(string.format("%-10s %-24s %-32s %s", user.id, tostring(user.name or ""), primary_email(user), status))
  end
  local parts = {}
  for status, n in pairs(by_status) do parts[#parts + 1] = status .. "=" .. n end
  table.sort(parts)
  print(string.format("\n%d users (%s)", count, table.concat(parts, ", ")))
end)

if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
