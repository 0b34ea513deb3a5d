-- Issue 16's numbers, against the mock (run from the worktree root after `make all`):
--   lua5.4 bench/scheduler.lua
-- 1. a listing whose loop body works 0.15 s per item, timeout = 1: runs that complete, and the
--    requests per page (items() and pages());
-- 2. acct-large (100,000 users): the learned budget against rate_limit = false;
-- 3. acct-large limited to 20 per 2 s through the mock's headers: 429s, and the time against
--    what the limit allows;
-- 4. deadline = 3 against 429 Retry-After: 1 forever (a scripted transport): how long it takes.
package.path = "build/?.lua;build/?/init.lua;./?.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local truto = require "truto"
local core = require "truto.core"
local mock = require "spec.helpers.mock"
local m = mock.start()

local function client(o)
  o = o or {}
  o.token, o.base_url = m.token, m.url
  return truto.new(o)
end

local function busy(s)
  local t0 = core.now()
  while core.now() - t0 < s do end
end

local RUNS, ITEMS = tonumber(os.getenv("RUNS") or 10), 30
for _, how in ipairs { "items", "pages" } do
  local ok_runs, requests = 0, 0
  for run = 1, RUNS do
    mock.reset()
    local c = client { timeout = 1 }
    local ok, err = pcall(function()
      local n = 0
      if how == "items" then
        for _ in c:users { integrated_account_id = "acct-1k-bench" .. run, limit = 10 } do
          n = n + 1
          busy(0.15)
          if n == ITEMS then break end
        end
      else
        for page in c:pages("user-directory", "users", { integrated_account_id = "acct-1k-bench" .. run, limit = 10 }) do
          n = n + #page.result
          busy(1.5)
          if n == ITEMS then break end
        end
      end
    end)
    if ok then ok_runs = ok_runs + 1 else print("  run " .. run .. ": " .. tostring(err)) end
    requests = requests + #mock.requests()
    c:close()
  end
  print(string.format("read-ahead, %s, 0.15 s per item, timeout = 1: %d of %d runs complete; %d requests for %d pages",
    how, ok_runs, RUNS, requests, RUNS * ITEMS / 10))
end

local unlimited -- seconds per page of acct-large with rate_limit = false
for _, rl in ipairs { { "default (learned)", nil }, { "rate_limit = false", false }, { "default (learned)", nil } } do
  mock.reset()
  local c = client { rate_limit = rl[2] }
  local t0 = core.now()
  local n = 0
  for _ in c:users { integrated_account_id = "acct-large", limit = 1000 } do n = n + 1 end
  local elapsed = core.now() - t0
  if rl[2] == false then unlimited = elapsed / 100 end
  print(string.format("acct-large, %d users, %s: %.2f s", n, rl[1], elapsed))
  c:close()
end

-- 4. acct-large paced by the mock's headers: 20 requests per 2 s for that account (fixed windows
--    aligned to the clock, like Truto's): 100 pages of 1,000 need 5 windows.
do
  local socket = require "socket"
  mock.reset()
  mock.limits { accounts = { ["acct-large"] = { requests = 20, per = 2 } } }
  local t = socket.gettime()
  socket.sleep(2 - t % 2 + 0.02) -- start just after a window opens
  local c = client {}
  local t0 = core.now()
  local n = 0
  for _ in c:users { integrated_account_id = "acct-large", limit = 1000 } do n = n + 1 end
  local elapsed = core.now() - t0
  local report = mock.rate()
  -- What the limit allows: the fifth window opens 7.98 s after the first request (sent 0.02 s
  -- into the first), and its 20 pages then take as long as without a limit (each page of 1,000
  -- users costs the client about as much as the wait the limit adds).
  local allowed = math.max(7.98 + 20 * unlimited, 100 * unlimited)
  print(string.format("acct-large limited to 20 per 2 s by headers: %d users, %d requests, %.2f s, %d 429s; "
    .. "the limit allows %.2f s (4 windows + 20 pages at %.3f s): %.2fx (%.2fx of the 8.0 s of 4 windows alone)",
    n, #mock.requests(), elapsed, report.throttled, allowed, unlimited, elapsed / allowed, elapsed / 8))
  c:close()
  mock.reset()
end

do
  local t = {}
  function t.start() return { wait = function()
    return { status = 429, headers = { ["retry-after"] = "1" }, body = '{"statusCode":429}', sends = 1 } end } end
  local c = truto.new { token = "x", base_url = "http://127.0.0.1:9", transport = t, deadline = 3, max_retries = 100 }
  local t0 = core.now()
  local _, err = c:get_organization("org-1", { integrated_account_id = "acct-forever" })
  print(string.format("deadline = 3 against 429 Retry-After: 1 forever: %.2f s, %s", core.now() - t0, err.kind))
end
mock.stop()
