-- The fan-out driver: one account's Retry-After wait does not stall the
-- others. Their pages are asked for and read while it waits (compared by
-- the times the mock recorded, not by wall-clock bounds).
local h = require "spec.helpers.client"
local mock = h.mock

local function account_of(r)
  return (r.raw_query:match("integrated_account_id=([%w%-%%]+)"))
end

describe("fan-out driver", function()
  for _, transport in ipairs { "curl" } do
    it(transport .. ": the other account's pages all arrive, once, before one account's Retry-After ends", function()
      mock.reset()
      local c = h.client { transport = transport, concurrency = 2 }
      local per_account = {}
      for _, account in c:users { integrated_account_id = { "flaky-429-date-1", "acct-1k-fan" }, limit = 100 } do
        per_account[account] = (per_account[account] or 0) + 1
      end
      assert.same({ ["flaky-429-date-1"] = 40, ["acct-1k-fan"] = 1000 }, per_account)
      local flaky, other = {}, {}
      for _, r in ipairs(mock.requests()) do
        if account_of(r) == "flaky-429-date-1" then flaky[#flaky + 1] = r.time else other[#other + 1] = r.time end
      end
      assert.equal(2, #flaky) -- the 429, then its page
      assert.equal(10, #other) -- 10 pages, each asked for once
      for i = 1, #other do
        assert.is_true(other[i] < flaky[2], string.format("page %d of the other account waited for the 429", i))
      end
      c:close()
    end)
  end
end)
