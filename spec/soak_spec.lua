-- Soak: 20,000 requests through one client with faults mixed in; the
-- process's resident memory stays flat after warm-up (under 1 MiB of growth,
-- i.e. less than ~60 bytes a request). TRUTO_SOAK_REQUESTS scales it down
-- for the slow sanitizer and valgrind runs.
local h = require "spec.helpers.client"
local mock = h.mock

local REQUESTS = tonumber(os.getenv("TRUTO_SOAK_REQUESTS")) or 20000
-- Sanitizers and valgrind keep freed memory aside on purpose: RSS means
-- nothing there, so those runs check behaviour only (and leaks their way).
local CHECK_RSS = os.getenv("TRUTO_SOAK_CHECK_RSS") ~= "0"

local function rss_kib()
  local f = assert(io.open("/proc/self/statm"))
  local _, resident = f:read("*n", "*n")
  f:close()
  return resident * 4 -- pages of 4 KiB
end

-- Every request gets one of these, in turn: mostly good, some faults.
local MIX = {
  { "acct-small", "ok" }, { "acct-small", "ok" }, { "acct-small", "ok" }, { "acct-small", "ok" },
  { "fault-500", "http" }, { "acct-small", "ok" }, { "fault-malformed", "decode" },
  { "acct-small", "ok" }, { "fault-close", "transport" }, { "no-such-account", "http" },
}

describe("a long-running client", function()
  it("keeps memory flat over " .. REQUESTS .. " requests with faults", function()
    mock.reset()
    local client = h.client { max_retries = 0, rate_limit = false }
    local counts, warm = {}, nil
    for i = 1, REQUESTS do
      local row = MIX[(i - 1) % #MIX + 1]
      local org, err = client:get_organization("org-1", { integrated_account_id = row[1], n = i % 7 })
      local got = org and "ok" or err.kind
      assert.equal(row[2], got)
      counts[got] = (counts[got] or 0) + 1
      if i == math.floor(REQUESTS / 10) then
        collectgarbage()
        collectgarbage()
        warm = rss_kib()
      end
    end
    collectgarbage()
    collectgarbage()
    local final = rss_kib()
    print(string.format("\n    soak: %d requests, RSS after warm-up %d KiB, at the end %d KiB", REQUESTS, warm, final))
    if CHECK_RSS then
      assert.is_true(final - warm < 1024, ("RSS grew from %d to %d KiB"):format(warm, final))
    end
    assert.equal(math.floor(REQUESTS / 10) * 6, counts.ok)
    mock.reset() -- the log of 20,000 requests is not needed
  end)
end)
