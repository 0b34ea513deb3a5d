-- The active users of one connected account as CSV (RFC 4180: CRLF line
-- ends, fields with a comma, a quote or a line break quoted).
--
--   TRUTO_API_TOKEN=... TRUTO_ACCOUNT=<integrated_account_id> \
--     lua5.4 examples/active_users_csv.lua > active_users.csv
--
-- TRUTO_BASE_URL points it at another server, e.g. the mock: `lua-truto mock --port 8089`.
local truto = require "truto"

local account = os.getenv("TRUTO_ACCOUNT")
if not account or account == "" then
  io.stderr:write("set TRUTO_ACCOUNT to an integrated_account_id\n")
  os.exit(2)
end

local client = truto.new { integrated_account_id = account }

local function csv_field(v)
  local s = v == nil and "" or tostring(v)
  if s:find('[,"\r\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

local function csv_row(...)
  local fields = table.pack(...)
  for i = 1, fields.n do fields[i] = csv_field(fields[i]) end
  io.write(table.concat(fields, ",", 1, fields.n), "\r\n")
end

-- The primary address, else the first one, else nothing.
local function primary_email(user)
  local emails = type(user.emails) == "table" and user.emails or {}
  for _, e in ipairs(emails) do
    if e.is_primary then return e.email end
  end
  return emails[1] and emails[1].email
end

local function optional(v)
  if v == truto.null then return nil end
  return v
end

local ok, err = pcall(function()
  csv_row("id", "name", "email", "last_login_at")
  local count = 0
  -- status=active asks the integration to filter; the test below keeps the
  -- answer right for integrations that ignore the parameter.
  -- truto_ignore_remote_data: the vendor's raw record is not needed here.
  for user in client:users { status = "active", truto_ignore_remote_data = true } do
    if user.status == "active" then
      count = count + 1
      csv_row(user.id, optional(user.name), primary_email(user), optional(user.last_login_at))
    end
  end
  io.stderr:write(string.format("%d active users\n", count))
end)

if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
