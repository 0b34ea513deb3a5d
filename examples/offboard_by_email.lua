-- Off-boards a user found by email address: deactivates the account, drops
-- its group memberships and frees its paid seat (the `downgrade` custom
-- method). Without --apply it only prints what it would do.
--
--   TRUTO_API_TOKEN=... TRUTO_ACCOUNT=<integrated_account_id> \
--     lua5.4 examples/offboard_by_email.lua ada@acme.example [--apply]
--
-- As shipped, --apply only talks to a server on this machine (the mock:
-- `lua-truto mock --port 8089`, TRUTO_BASE_URL=http://127.0.0.1:8089).
-- Check what your integration supports before removing that guard.
local truto = require "truto"

local account = os.getenv("TRUTO_ACCOUNT")
local email, apply = arg[1], arg[2] == "--apply"
if not account or account == "" or not email or (arg[2] and not apply) then
  io.stderr:write("usage: TRUTO_ACCOUNT=... lua5.4 examples/offboard_by_email.lua EMAIL [--apply]\n")
  os.exit(2)
end

local client = truto.new { integrated_account_id = account }

if apply and not client.base_url:match("^https?://127%.0%.0%.1[:/]") and
    not client.base_url:match("^https?://localhost[:/]") then
  io.stderr:write("--apply changes data: this example only does it against a local mock server\n")
  os.exit(2)
end

local function fail(err)
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end

local function has_email(user, wanted)
  for _, e in ipairs(type(user.emails) == "table" and user.emails or {}) do
    if type(e.email) == "string" and e.email:lower() == wanted then return true end
  end
  return false
end

-- The email filter narrows the list where the integration supports it;
-- has_email() makes sure of the match where it does not.
local wanted, matches = email:lower(), {}
local ok, err = pcall(function()
  for user in client:users { email = email } do
    if has_email(user, wanted) then matches[#matches + 1] = user end
  end
end)
if not ok then fail(err) end

if #matches == 0 then fail("no user has the address " .. email) end
if #matches > 1 then
  for _, u in ipairs(matches) do io.stderr:write(u.id, "\t", tostring(u.name), "\n") end
  fail(#matches .. " users have the address " .. email .. ": not touching any")
end

local user = matches[1]
local names = {}
for _, g in ipairs(type(user.groups) == "table" and user.groups or {}) do
  names[#names + 1] = string.format("%s (%s)", tostring(g.name), tostring(g.id))
end
print(string.format("user %s: %s <%s>, status %s", user.id, tostring(user.name), email, tostring(user.status)))
print(string.format("groups: %s", #names > 0 and table.concat(names, ", ") or "none"))

local steps = {
  { what = "set status to inactive and remove from every group",
    run = function()
      -- truto.array: an empty table would otherwise go out as {} rather than [].
      return client:update("user-directory", "users", user.id, { status = "inactive", groups = truto.array() },
        nil, { idempotency_key = "offboard-" .. user.id .. "-update" })
    end },
  { what = "free the paid seat (users/downgrade)",
    run = function()
      return client:call("user-directory", "users", "downgrade", { id = user.id },
        nil, { idempotency_key = "offboard-" .. user.id .. "-downgrade" })
    end },
}

for _, step in ipairs(steps) do
  if not apply then
    print("would " .. step.what)
  else
    local answer, step_err = step.run()
    if not answer then fail(step_err) end
    print("done: " .. step.what)
  end
end
if not apply then print("dry run: nothing changed (pass --apply to do it)") end
