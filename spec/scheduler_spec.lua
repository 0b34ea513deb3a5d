-- Time is governed by the caller (issue 16): every wait a server or a store names is bounded by
-- max_retry_wait and the `deadline` option, the budget is learned from the answers (slow start,
-- holds), fan-out starts every account at once, and a DELETE follows the write rule.
-- A scripted transport object answers exactly what each spec says, so the headers are exact;
-- waits go through a recording sleep unless the spec measures the real clock.
local truto = require "truto"
local rate = require "truto.rate"
local core = require "truto.core"
local fake_transport = require "spec.helpers.fake_transport"

local ORG = '{"id":"org-1","name":"Org"}'

-- A transport object that answers each request with the next of `answers` (the last one is
-- kept for every later request). An answer is { status, headers, body } or { fail = kind }.
local function scripted(answers)
  return fake_transport.new(function(_, k)
    local a = answers[math.min(k, #answers)]
    if a.fail then return nil, { kind = a.fail, message = "scripted " .. a.fail, sends = 1 } end
    return { status = a.status or 200, headers = a.headers or {}, body = a.body or ORG, sends = 1 }
  end)
end

local key_seq = 0
-- A client on a token of its own (budgets are shared per token), a scripted transport, a
-- recording sleep.
local function client(answers, opts)
  key_seq = key_seq + 1
  local t = scripted(answers)
  local waits, seen = {}, {}
  local o = {
    token = "sched-spec-" .. key_seq, base_url = "http://127.0.0.1:9", transport = t,
    sleep = function(s) waits[#waits + 1] = s end,
    on_wait = function(info) seen[#seen + 1] = info end,
  }
  for k, v in pairs(opts or {}) do o[k] = v end
  return truto.new(o), t, waits, seen
end

local function get(c, account, opts)
  return c:get_organization("org-1", { integrated_account_id = account }, opts)
end

local SPENT_FOR_A_DAY = { ["ratelimit-remaining"] = "0", ["ratelimit-reset"] = "86400",
  ["ratelimit-limit"] = "10;w=86400" }

describe("waits a server names", function()
  it("are bounded by max_retry_wait: an answer saying the window reopens in 86,400 s holds 0.5 s", function()
    local c, t, waits, seen = client({ { headers = SPENT_FOR_A_DAY }, {} }, { max_retry_wait = 0.5 })
    assert(get(c, "acct-day"))
    assert(get(c, "acct-day")) -- held, but only for max_retry_wait
    assert.equal(2, #t.sent)
    assert.equal(1, #waits)
    assert.is_true(waits[1] > 0.4 and waits[1] <= 0.5, waits[1])
    assert.equal("ratelimit-reset", seen[1].reason)
    assert.equal("acct-day", seen[1].account)
    c:close()
  end)

  it("fail at once with rate_limited, naming the wait, when longer than the call's max_retry_wait", function()
    local c, t, waits = client({ { headers = SPENT_FOR_A_DAY }, {} }, { max_retry_wait = 30 })
    assert(get(c, "acct-day"))
    local value, err = get(c, "acct-day", { max_retry_wait = 1 })
    assert.is_nil(value)
    assert.equal("rate_limited", err.kind)
    assert.matches("a wait of 30%.0 s %(account acct%-day, ratelimit%-reset%), longer than max_retry_wait %(1 s%)",
      err.message)
    assert.equal(1, #t.sent) -- nothing was sent
    assert.same({}, waits)
    c:close()
  end)

  it("hold only the account that was told: a call without an account does not hold another account", function()
    local c, t, waits = client({ { headers = SPENT_FOR_A_DAY }, {} }, { max_retry_wait = 5 })
    assert(c:request { path = "/integrated-account" }) -- no account: holds only calls without one
    assert(get(c, "acct-other"))
    assert.same({}, waits)
    assert.equal(2, #t.sent)
    c:close()
  end)

  it("a 429 with ratelimit-reset: 3600 and no Retry-After fails at once, and holds later calls at most max_retry_wait", function()
    local c, t, waits = client({ { status = 429, headers = { ["ratelimit-reset"] = "3600" },
      body = '{"statusCode":429,"message":"Rate limit exceeded"}' }, {} }, { max_retry_wait = 2 })
    local _, err = get(c, "acct-429")
    assert.equal(429, err.status)
    assert.equal(3600, err.retry_after)
    assert.same({}, waits)
    assert(get(c, "acct-429"))
    assert.equal(1, #waits)
    assert.is_true(waits[1] > 1.5 and waits[1] <= 2, waits[1])
    assert.equal(2, #t.sent)
    c:close()
  end)
end)

describe("a rate_limit.store", function()
  for _, case in ipairs {
    { "1e9", function() return 1e9 end },
    { "1e300", function() return 1e300 end },
    { "nan", function() return 0 / 0 end },
    { '"3"', function() return "3" end },
    { "a negative wait", function() return -1 end },
    { "raising", function() error("store exploded") end },
  } do
    it("answering " .. case[1] .. " is a failed store: the request keeps to the process budget, said once in debug", function()
      local lines = {}
      local store = { reserve = case[2], hold = function() return true end }
      local c, t, waits = client({ {} }, {
        rate_limit = { requests = 100, per = 1, store = store }, max_retry_wait = 10,
        debug = function(line) if line:find("^rate limit") then lines[#lines + 1] = line end end,
      })
      assert(get(c, "acct-store"))
      assert.same({}, waits)
      assert.equal(1, #t.sent)
      assert.equal(1, #lines)
      assert.matches("^rate limit: rate_limit.store failed %(.+%); this request keeps to the budget of this process$",
        lines[1])
      c:close()
    end)
  end
end)

describe("the deadline option", function()
  it("is checked per client and per call", function()
    local ok, err = pcall(truto.new, { token = "t", base_url = "http://127.0.0.1:9", deadline = 0 })
    assert.is_false(ok)
    assert.matches("option 'deadline'", tostring(err))
    local c = client({ {} }, { deadline = 5 })
    assert(get(c, "acct-d", { deadline = 2 }))
    ok, err = pcall(get, c, "acct-d", { deadline = -1 })
    assert.is_false(ok)
    assert.matches("option 'deadline'", tostring(err))
    c:close()
  end)

  it("ends a call against 429 Retry-After: 1 forever within 3.2 s, as a timeout", function()
    local c, t = client({ { status = 429, headers = { ["retry-after"] = "1" },
      body = '{"statusCode":429,"message":"Rate limit exceeded"}' } },
      { sleep = core.sleep, max_retries = 100, deadline = 3 })
    local t0 = core.now()
    local value, err = get(c, "acct-forever")
    local elapsed = core.now() - t0
    assert.is_nil(value)
    assert.equal("timeout", err.kind)
    assert.equal(429, err.status)
    assert.matches("deadline", err.message)
    assert.is_true(elapsed <= 3.2, elapsed)
    assert.is_true(#t.sent >= 2 and #t.sent <= 4, #t.sent)
    c:close()
  end)

  it("bounds backoffs: a call that would wait past it fails at once", function()
    local c, t, waits = client({ { fail = "transport" } }, { max_retries = 100, deadline = 0.05 })
    local _, err = get(c, "acct-down")
    assert.equal("timeout", err.kind)
    assert.is_true(#t.sent < 100, #t.sent)
    for _, w in ipairs(waits) do assert.is_true(w < 0.05, w) end
    c:close()
  end)
end)

describe("the learned budget", function()
  it("has no fixed cap by default: 200 calls of one account never wait when answers carry no rate headers", function()
    local c, t, waits = client({ {} })
    for _ = 1, 200 do assert(get(c, "acct-free")) end
    assert.equal(200, #t.sent)
    assert.same({}, waits)
    c:close()
  end)

  it("starts an unknown account slowly: one request in flight until its first answer", function()
    local key = "slow-start " .. os.time()
    local l = rate.new(nil, key)
    local now = 0
    local hooks = { now = function() return now end, sleep = function(s) now = now + s end, probe_ttl = 30 }
    assert.equal(0, l:check_hints("acct-cold", hooks))                -- the probe goes
    local wait, why = l:check_hints("acct-cold", hooks)                 -- the next waits for its answer
    assert.is_true(wait > 0)
    assert.equal("slow start", why)
    assert.equal(0, l:check_hints("acct-other", hooks))               -- another account has its own
    l:observe("acct-cold", { ["ratelimit-remaining"] = "2", ["ratelimit-reset"] = "5" }, 200, nil, 60)
    assert.equal(0, l:check_hints("acct-cold", hooks))
    assert.equal(0, l:check_hints("acct-cold", hooks))
    wait, why = l:check_hints("acct-cold", hooks)                       -- the 2 left are taken
    assert.equal(5, wait)
    assert.equal("ratelimit-reset", why)
    l:close()
  end)

  it("gives the probe back when its request got no answer", function()
    local l = rate.new(nil, "probe-back " .. os.time())
    local hooks = { now = function() return 0 end, sleep = function() end, probe_ttl = 30 }
    assert.equal(0, l:check_hints("acct-p", hooks))
    assert.is_true(l:check_hints("acct-p", hooks) > 0)
    l:learn("acct-p", { failed = true })
    assert.equal(0, l:check_hints("acct-p", hooks))
    l:close()
  end)

  it("holds an account after a 429 until its wait ends, then starts slowly again", function()
    local l = rate.new(nil, "hold-429 " .. os.time())
    local now = 0
    local hooks = { now = function() return now end, sleep = function() end, probe_ttl = 30 }
    assert.equal(0, l:check_hints("acct-h", hooks))
    l:observe("acct-h", { ["retry-after"] = "2" }, 429, 2, 60)
    local wait, why = l:check_hints("acct-h", hooks)
    assert.equal(2, wait)
    assert.equal("retry-after", why)
    now = 2
    assert.equal(0, l:check_hints("acct-h", hooks))
    assert.equal("slow start", select(2, l:check_hints("acct-h", hooks)))
    l:close()
  end)

  it("keeps a constant-size state per account, whatever the numbers", function()
    local hints = require "truto.rate.hints"
    local s = {}
    hints.learn(s, 0, hints.read({ ["ratelimit-limit"] = "1000000;w=10", ["ratelimit-remaining"] = "999999",
      ["ratelimit-reset"] = "10" }, 200, nil, 60))
    for _ = 1, 1000 do assert.equal(0, hints.take(s, 1, 30)) end
    local text = hints.encode(s)
    assert.is_true(#text < 100, #text)
    assert.same(s, hints.decode(text))
  end)
end)

describe("fan-out", function()
  it("starts every account in the first round, up to concurrency (2 accounts, concurrency = 2)", function()
    local order = {}
    local started = {}
    local t = { sent = {} }
    function t.start(_, req)
      local account = req.url:match("integrated_account_id=([%w%-%%]+)")
      started[#started + 1] = account
      local handle = { account = account }
      function handle.wait()
        order[#order + 1] = "answer " .. account
        return { status = 200, headers = {}, body = '{"result":[{"id":"u1"}],"next_cursor":null}', sends = 1 }
      end
      function handle.cancel() end
      return handle
    end
    function t.wait_any(_, handles)
      -- both accounts must be in flight before the first answer is read
      order[#order + 1] = "in flight " .. #handles
      return 1
    end
    function t.pump() end
    function t.close() end
    key_seq = key_seq + 1
    local c = truto.new { token = "fan-" .. key_seq, base_url = "http://127.0.0.1:9", transport = t }
    local accounts = {}
    for _, account in c:users { integrated_account_id = { "acct-a", "acct-b" } } do
      accounts[#accounts + 1] = account
    end
    table.sort(accounts)
    assert.same({ "acct-a", "acct-b" }, accounts)
    assert.same({ "acct-a", "acct-b" }, started)
    assert.equal("in flight 2", order[1])
    c:close()
  end)
end)

describe("a DELETE", function()
  it("gets an Idempotency-Key by default and is re-sent, with the same key, after a send that got no answer", function()
    local c, t = client({ { fail = "transport" }, { status = 204, body = "" } })
    local res = assert(c:request { method = "DELETE", path = "/unified/user-directory/users/u1" })
    assert.equal(204, res.status)
    assert.equal(2, #t.sent)
    local keys = {}
    for i, sent in ipairs(t.sent) do
      for _, line in ipairs(sent.headers) do
        local k = line:match("^Idempotency%-Key: (%x+)$")
        if k then keys[i] = k end
      end
    end
    assert.equal(32, #keys[1])
    assert.equal(keys[1], keys[2])
    c:close()
  end)

  it("without a key (idempotency_key = false) is not sent again once it may have arrived", function()
    local c, t = client({ { fail = "transport" }, { status = 204, body = "" } })
    local value, err = c:delete("user-directory", "users", "u1", { integrated_account_id = "acct-x" },
      { idempotency_key = false })
    assert.is_nil(value)
    assert.equal("transport", err.kind)
    assert.equal(1, #t.sent)
    c:close()
  end)
end)

describe("a signal", function()
  it("ends core.sleep at once (Ctrl-C during a wait)", function()
    -- in a child lua5.4 (its SIGINT hook raises "interrupted!" right after the sleep returns
    -- early): a 20 s sleep, SIGINT after 0.3 s
    local out = os.tmpname()
    local chunk = 'package.cpath = "build/?.so;" .. package.cpath; local core = require "truto.core"; '
      .. 'local t = core.now(); local ok, err = pcall(core.sleep, 20); '
      .. 'io.write(string.format("%.3f %s", core.now() - t, tostring(err)))'
    os.execute("lua5.4 -e '" .. chunk .. "' >" .. out .. " 2>&1 & pid=$!; sleep 0.3; kill -INT $pid; wait $pid")
    local f = assert(io.open(out))
    local text = f:read("*a")
    f:close()
    os.remove(out)
    local elapsed, why = text:match("^(%S+) (.*)$")
    assert.is_true(tonumber(elapsed) < 5, text)
    assert.matches("interrupted", why)
  end)

  it("makes a call waiting to send again fail as interrupted when its sleep reports it", function()
    local c, t = client({ { status = 429, headers = { ["retry-after"] = "5" },
      body = '{"statusCode":429,"message":"Rate limit exceeded"}' }, {} },
      { sleep = function() return false, "interrupted" end })
    local value, err = get(c, "acct-int")
    assert.is_nil(value)
    assert.equal("interrupted", err.kind)
    assert.equal(1, #t.sent)
    c:close()
  end)
end)

describe("a read-ahead", function()
  local h = require "spec.helpers.client"
  local mock = h.mock

  local function busy(seconds)
    local t0 = core.now()
    while core.now() - t0 < seconds do end
  end

  for _, how in ipairs { "users", "pages" } do
    it("times out only while the caller waits for it: 0.15 s of work per item, timeout = 1, one request per page ("
      .. how .. ")", function()
      for _ = 1, 2 do
        mock.reset()
        local c = h.client { timeout = 1 }
        local n = 0
        if how == "users" then
          for _ in c:users({ integrated_account_id = "acct-1k-ra", limit = 10 }) do
            n = n + 1
            busy(0.15)
            if n == 20 then break end
          end
        else
          for page in c:pages("user-directory", "users", { integrated_account_id = "acct-1k-ra", limit = 10 }) do
            n = n + #page.result
            busy(1.5)
            if n == 20 then break end
          end
        end
        assert.equal(20, n)
        local requests = mock.requests()
        assert.is_true(#requests <= 3, #requests) -- 2 pages and at most one read-ahead
        local cursors = {}
        for _, r in ipairs(requests) do
          local cursor = r.raw_query
          assert.is_nil(cursors[cursor], "a page was asked for twice")
          cursors[cursor] = true
        end
        c:close()
      end
    end)
  end
end)

describe("client:close() in the middle of a loop", function()
  local h = require "spec.helpers.client"
  for _, case in ipairs {
    { "one account", { integrated_account_id = "acct-1k-close", limit = 10 } },
    { "many accounts", { integrated_account_id = { "acct-1k-c1", "acct-1k-c2" }, limit = 10 } },
  } do
    it("raises the closed error object at the next step (" .. case[1] .. ")", function()
      local c = h.client {}
      local n = 0
      local ok, err = pcall(function()
        for _ in c:users(case[2]) do
          n = n + 1
          if n == 3 then c:close() end
        end
      end)
      assert.is_false(ok)
      assert.equal(3, n)
      assert.equal("closed", err.kind)
      assert.equal("the client is closed (client:close() was called)", err.message)
    end)
  end
end)

describe("fan-out while one account waits", function()
  local h = require "spec.helpers.client"
  local mock = h.mock

  it("reads the other account's answers once: none is sent again because of another's Retry-After", function()
    mock.reset()
    local c = h.client { timeout = 0.5, concurrency = 2 }
    local per_account = {}
    for _, account in c:users { integrated_account_id = { "flaky-429-1", "acct-1k-fan@300" }, limit = 250 } do
      per_account[account] = (per_account[account] or 0) + 1
    end
    assert.same({ ["flaky-429-1"] = 40, ["acct-1k-fan@300"] = 1000 }, per_account)
    local sent = {}
    for _, r in ipairs(mock.requests()) do
      local account = r.raw_query:match("integrated_account_id=([%w%-%%]+)")
      sent[account] = (sent[account] or 0) + 1
    end
    assert.equal(4, sent["acct-1k-fan%40300"]) -- 4 pages, each asked for once
    assert.equal(2, sent["flaky-429-1"])  -- the 429, then its page
    c:close()
  end)
end)

describe("curl wait_any", function()
  local h = require "spec.helpers.client"
  it("refuses a request of another client instead of waiting on it (never spins)", function()
    local tr = require "truto.transport"
    local m = h.server()
    local c1, c2 = h.client { transport = "curl" }, h.client { transport = "curl" }
    local t1, t2 = tr.pick(c1._transports), tr.pick(c2._transports)
    local handle = t1:start { method = "GET", headers = {},
      url = m.url .. "/unified/user-directory/organizations/org-1?integrated_account_id=acct-small" }
    local ok, err = pcall(t2.wait_any, t2, { handle })
    assert.is_false(ok)
    assert.matches("wait_any: request 1 belongs to another transport", tostring(err))
    assert.equal(1, t1:wait_any { handle })
    local answer = assert(handle:wait())
    assert.equal(200, answer.status)
    c1:close()
    c2:close()
  end)
end)
