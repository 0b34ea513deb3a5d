-- Reads several connected accounts one after another with one client (one
-- keep-alive connection): users, active users and groups of each. A failing
-- account is reported and the others are still read.
--
--   TRUTO_API_TOKEN=... lua5.4 examples/many_accounts.lua ACCOUNT [ACCOUNT...]
--   TRUTO_API_TOKEN=... TRUTO_ACCOUNTS=acct-1,acct-2 lua5.4 examples/many_accounts.lua
--
-- With neither, it reads TRUTO_ACCOUNT. Exits 1 when any account failed.
local truto = require "truto"

local accounts = {}
for i = 1, #arg do accounts[#accounts + 1] = arg[i] end
if #accounts == 0 then
  for a in (os.getenv("TRUTO_ACCOUNTS") or os.getenv("TRUTO_ACCOUNT") or ""):gmatch("[^,%s]+") do
    accounts[#accounts + 1] = a
  end
end
if #accounts == 0 then
  io.stderr:write("usage: lua5.4 examples/many_accounts.lua ACCOUNT [ACCOUNT...] (or set TRUTO_ACCOUNTS)\n")
  os.exit(2)
end

-- No default account: each call names its own. One retry at most keeps a
-- broken account from holding up the rest for long.
local client = truto.new { max_retries = 1 }

local function summary(account)
  local users, active, groups = 0, 0, 0
  local params = { integrated_account_id = account, truto_ignore_remote_data = true }
  for user in client:users(params) do
    users = users + 1
    if user.status == "active" then active = active + 1 end
  end
  for _ in client:groups(params) do groups = groups + 1 end
  return users, active, groups
end

local function describe(err)
  if not truto.is_error(err) then return tostring(err) end
  if err.kind == "http" then
    return string.format("%d %s", err.status, err.message or err.error or "")
  end
  return string.format("%s: %s", err.kind, err.message or "")
end

local width = #"account"
for _, a in ipairs(accounts) do width = math.max(width, #a) end
local row = "%-" .. width .. "s  %6s  %6s  %6s"

print(string.format(row, "account", "users", "active", "groups"))
local failed = 0
for _, account in ipairs(accounts) do
  local ok, users, active, groups = pcall(summary, account)
  if ok then
    print(string.format(row, account, users, active, groups))
  else
    failed = failed + 1
    print(string.format("%-" .. width .. "s  error: %s", account, describe(users)))
  end
end
if failed > 0 then os.exit(1) end
