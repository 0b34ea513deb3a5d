-- The fault matrix: for every fault account of the mock, with the default
-- retry policy, the exact outcome of listing its users, and how many
-- requests the server saw. Waits are recorded, not slept.
local h = require "spec.helpers.client"
local mock = h.mock

-- account -> { outcome, attempts, waits check }
-- outcome is "ok:<n items>" or "<kind>:<status or ->"
local MATRIX = {
  { "fault-429", "http:429", 4, function(w) return w[1] == 1 and w[2] == 1 and w[3] == 1 end },
  { "fault-429-date", "http:429", 4, function(w) return w[1] >= 0 and w[1] <= 2 end },
  { "fault-429-reset", "http:429", 4, function(w) return w[1] == 3 and w[3] == 3 end },
  { "fault-500", "http:500", 4, function(w) return w[1] <= 0.5 and w[2] <= 1 and w[3] <= 2 end },
  { "fault-502", "http:502", 4, function(w) return w[1] <= 0.5 and w[2] <= 1 and w[3] <= 2 end },
  { "fault-504", "http:504", 4, function(w) return w[1] <= 0.5 and w[2] <= 1 and w[3] <= 2 end },
  { "fault-503", "http:503", 1 },
  { "fault-remote", "http:401", 1 },
  { "fault-malformed", "decode:200", 1 },
  { "fault-notobject", "decode:200", 1 },
  { "fault-badresult", "decode:200", 1 },
  { "fault-badcursor", "decode:200", 1 },
  { "fault-html", "decode:200", 1 },
  { "fault-nul", "ok:1", 1 },
  { "fault-truncated", "transport:-", 4 },
  { "fault-close", "transport:-", 4 },
  { "fault-huge-length", "transport:-", 1 },
  { "fault-slow", "timeout:-", 4 },
  { "flaky-429-1", "ok:40", 5 },
  { "flaky-500-3", "ok:40", 7 },
  { "flaky-502-1", "ok:40", 5 },
  { "flaky-504-2", "ok:40", 6 },
  { "flaky-close-1", "ok:40", 5 },
  { "flaky-truncated-2", "ok:40", 6 },
  { "flaky-500-4", "http:500", 4 },
}

local function outcome(client, account)
  local n = 0
  local ok, err = pcall(function()
    for _ in client:users { integrated_account_id = account } do n = n + 1 end
  end)
  if ok then return "ok:" .. n end
  return err.kind .. ":" .. (err.status or "-"), err
end

describe("the fault matrix", function()
  before_each(function() mock.reset() end)

  for _, row in ipairs(MATRIX) do
    local account, expected, requests, waits_ok = row[1], row[2], row[3], row[4]
    it(account .. " -> " .. expected .. " after " .. requests .. " request(s)", function()
      local waits = {}
      local client = h.client { timeout = 1, sleep = function(s) waits[#waits + 1] = s end }
      local got, err = outcome(client, account)
      assert.equal(expected, got)
      local log = mock.requests()
      assert.equal(requests, #log)
      for _, req in ipairs(log) do
        assert.equal("/unified/user-directory/users", req.path)
        assert.equal("Bearer test-token", req.headers.authorization)
      end
      if err and err.attempts then assert.equal(requests, err.attempts) end
      if waits_ok then assert.is_true(waits_ok(waits), "waits: " .. table.concat(waits, ", ")) end
    end)
  end
end)
