-- Log every request a script sends, and print a summary at the end: the on_request /
-- on_response hooks outside nginx (see truto.metrics).
--
--   TRUTO_API_TOKEN=... TRUTO_ACCOUNT=<integrated_account_id> lua5.4 examples/request_log.lua
--
-- Each attempt is one line on stderr (method, path, status or failure, milliseconds, the
-- ratelimit-remaining Truto sent); stdout gets the number of users and the collector's counters.
local truto = require "truto"
local metrics = require "truto.metrics"

local account = os.getenv("TRUTO_ACCOUNT")
if not account or account == "" then
  io.stderr:write("set TRUTO_ACCOUNT to an integrated_account_id\n")
  os.exit(2)
end

local collector = metrics.collector() -- counters in a Lua table

local function on_response(info)
  collector.on_response(info)
  local path = info.url:match("^%a+://[^/]+([^?]*)") or info.url
  io.stderr:write(string.format("%s %s attempt %d -> %s in %.0f ms (remaining %s)\n", info.method, path,
    info.attempt, info.status or info.kind, info.seconds * 1000,
    info.headers and info.headers["ratelimit-remaining"] or "-"))
end

local client = truto.new { integrated_account_id = account, on_request = collector.on_request,
  on_response = on_response }

local ok, err = pcall(function()
  local count = 0
  for _ in client:users { limit = 10 } do count = count + 1 end
  print("users: " .. count)
end)
if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
for line in collector:text():gmatch("[^\n]+") do
  if line:match("^truto_attempts_total") or line:match("^truto_requests_total") then print(line) end
end
