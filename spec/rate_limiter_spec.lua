-- truto.rate on its own: the option check, budgets, reservation before waiting, sharing by key,
-- server pacing, reporting, stores. A fake clock: sleep() yields the coroutine to a scheduler
-- that advances time, so the numbers are exact.
local rate = require "truto.rate"

-- Runs fns as coroutines on a fake clock; sleep(s) suspends the caller for s seconds.
-- Returns the clock's hooks builder and a run() that returns when every coroutine has ended.
local function scheduler()
  local clock = { t = 0 }
  local tasks = {}
  local function now() return clock.t end
  local function sleep(s)
    local co = coroutine.running()
    tasks[#tasks + 1] = { co = co, at = clock.t + s, seq = #tasks }
    coroutine.yield()
  end
  function clock.hooks(extra)
    local h = { now = now, sleep = sleep }
    for k, v in pairs(extra or {}) do h[k] = v end
    return h
  end
  function clock.spawn(fn)
    tasks[#tasks + 1] = { co = coroutine.create(fn), at = clock.t, seq = #tasks }
  end
  function clock.run()
    while #tasks > 0 do
      table.sort(tasks, function(a, b)
        if a.at ~= b.at then return a.at < b.at end
        return a.seq < b.seq
      end)
      local task = table.remove(tasks, 1)
      clock.t = math.max(clock.t, task.at)
      assert(coroutine.resume(task.co))
    end
  end
  return clock
end

local function round(x)
  return math.floor(x * 1000 + 0.5) / 1000
end

-- At most n of the sorted times in any window of `per` seconds.
local function max_in_window(times, per)
  table.sort(times)
  local best, j = 0, 1
  for i = 1, #times do
    while times[i] - times[j] >= per - 1e-9 do j = j + 1 end
    best = math.max(best, i - j + 1)
  end
  return best
end

local key_seq = 0
local function fresh_key()
  key_seq = key_seq + 1
  return "spec-token " .. key_seq .. " http://127.0.0.1"
end

describe("rate.check", function()
  it("accepts nil, false and tables with the documented fields", function()
    assert.is_true(rate.check(nil))
    assert.is_true(rate.check(false))
    assert.is_true(rate.check {})
    assert.is_true(rate.check { requests = 5, per = 2 })
    assert.is_true(rate.check { requests = 5, per = 0.5, account = false, shared_dict = "x" })
    assert.is_true(rate.check { account = { requests = 3 } })
    assert.is_true(rate.check { store = { reserve = function() end, hold = function() end } })
  end)

  it("refuses non-finite and out-of-range numbers, naming the field", function()
    local cases = {
      { { per = math.huge }, "rate_limit.per: seconds > 0 and at most 86400 expected, got inf" },
      { { per = 0 / 0 }, "rate_limit.per: seconds > 0 and at most 86400 expected, got " .. tostring(0 / 0) },
      { { per = 0 }, "rate_limit.per: seconds > 0 and at most 86400 expected, got 0" },
      { { per = -1 }, "rate_limit.per: seconds > 0 and at most 86400 expected, got -1" },
      { { per = 86401 }, "rate_limit.per: seconds > 0 and at most 86400 expected, got 86401" },
      { { per = "10" }, 'rate_limit.per: seconds > 0 and at most 86400 expected, got "10"' },
      { { requests = 0 }, "rate_limit.requests: integer from 1 to 1000000 expected, got 0" },
      { { requests = 1.5 }, "rate_limit.requests: integer from 1 to 1000000 expected, got 1.5" },
      { { requests = math.huge }, "rate_limit.requests: integer from 1 to 1000000 expected, got inf" },
      { { requests = 1000001 }, "rate_limit.requests: integer from 1 to 1000000 expected, got 1000001" },
      { { account = { per = math.huge } }, "rate_limit.account.per: seconds > 0 and at most 86400 expected, got inf" },
      { { account = { requests = -3 } }, "rate_limit.account.requests: integer from 1 to 1000000 expected, got -3" },
      { { account = true }, "rate_limit.account: false or a table { requests, per } expected, got boolean" },
      { { account = { requests = 3, shared_dict = "x" } }, 'rate_limit.account: unknown field "shared_dict"' },
      { { request = 5 }, 'rate_limit: unknown field "request"' },
      { { shared_dict = "" }, 'rate_limit.shared_dict: the name of a lua_shared_dict expected, got ""' },
      { { store = {} }, "rate_limit.store: an object with reserve and hold methods expected, got table" },
      { true, "rate_limit: false or a table expected, got boolean" },
      { 500, "rate_limit: false or a table expected, got 500" },
    }
    for _, case in ipairs(cases) do
      local ok, why = rate.check(case[1])
      assert.is_nil(ok)
      assert.equal(case[2], why)
    end
  end)

  it("rate.new raises what check says, and gives nil for false", function()
    assert.is_nil(rate.new(false, fresh_key()))
    local ok, err = pcall(rate.new, { per = math.huge }, fresh_key())
    assert.is_false(ok)
    assert.matches("rate_limit.per: seconds > 0 and at most 86400 expected, got inf", err, 1, true)
  end)
end)

describe("a limiter", function()
  it("has no fixed budget by default (the budget is learned), and one per token or account on request", function()
    local l = rate.new(nil, fresh_key())
    assert.is_nil(l.token)
    assert.is_nil(l.account)
    assert.same({}, l:budgets("acct-x"))
    assert.equal("process", l.where)
    l:close()
    l = rate.new({ requests = 7, account = false }, fresh_key())
    assert.same({ requests = 7, per = 10 }, l.token)
    assert.is_nil(l.account)
    l:close()
    l = rate.new({ account = { requests = 3, per = 1 } }, fresh_key())
    assert.is_nil(l.token)
    assert.same({ requests = 3, per = 1 }, l.account)
    l:close()
  end)

  it("keeps each account's learned window apart, past the 256 budget names it keeps made", function()
    local l = rate.new(nil, fresh_key())
    local hooks = { now = function() return 100 end, sleep = function() end, probe_ttl = 0 }
    -- 300 accounts, each told it has nothing left for 30 s; then account 1 and 300 again
    for i = 1, 300 do
      assert.equal(0, (l:check_hints("acct-" .. i, hooks)))
      l:observe("acct-" .. i, { ["ratelimit-remaining"] = "0", ["ratelimit-reset"] = "30" }, 200, nil, 60)
    end
    for _, i in ipairs { 1, 255, 256, 257, 300 } do
      local wait, why = l:check_hints("acct-" .. i, hooks)
      assert.are.same({ 30, "ratelimit-reset" }, { wait, why }, "acct-" .. i)
    end
    assert.equal(0, (l:check_hints("acct-301", hooks)))
    assert.equal(0, (l:check_hints(nil, hooks)))
    l:close()
  end)

  it("spreads 20 concurrent waiters: 5 at 0, 2, 4 and 6 s (a place is reserved before waiting)", function()
    local clock = scheduler()
    local l = rate.new({ requests = 5, per = 2, account = false }, fresh_key())
    local starts = {}
    for _ = 1, 20 do
      clock.spawn(function()
        l:acquire(nil, clock.hooks())
        starts[#starts + 1] = round(clock.t)
      end)
    end
    clock.run()
    table.sort(starts)
    -- per + the 5 % margin (50 ms at most) between a start and the one `requests` before it
    assert.same({ 0, 0, 0, 0, 0, 2.05, 2.05, 2.05, 2.05, 2.05, 4.1, 4.1, 4.1, 4.1, 4.1,
      6.15, 6.15, 6.15, 6.15, 6.15 }, starts)
    l:close()
  end)

  it("keeps at most `requests` starts in any window when calls come at random times", function()
    local clock = scheduler()
    local l = rate.new({ requests = 10, per = 1, account = false }, fresh_key())
    local starts = {}
    math.randomseed(7)
    for _ = 1, 200 do
      local at = math.random() * 8
      clock.spawn(function()
        clock.hooks().sleep(at)
        l:acquire(nil, clock.hooks())
        starts[#starts + 1] = clock.t
      end)
    end
    clock.run()
    assert.equal(200, #starts)
    assert.equal(10, max_in_window(starts, 1))
    l:close()
  end)

  it("shares one budget between limiters with the same key, and none between different keys", function()
    local clock = scheduler()
    local key = fresh_key()
    local a = rate.new({ requests = 4, per = 2, account = false }, key)
    local b = rate.new({ requests = 4, per = 2, account = false }, key)
    local other = rate.new({ requests = 4, per = 2, account = false }, fresh_key())
    assert.equal(2, rate.users(key))
    local waits = {}
    clock.spawn(function()
      for i = 1, 4 do waits[#waits + 1] = { "a" .. i, round(a:acquire(nil, clock.hooks())) } end
      for i = 1, 4 do waits[#waits + 1] = { "b" .. i, round(b:acquire(nil, clock.hooks())) } end
      for i = 1, 4 do waits[#waits + 1] = { "o" .. i, round(other:acquire(nil, clock.hooks())) } end
    end)
    clock.run()
    assert.same({ { "a1", 0 }, { "a2", 0 }, { "a3", 0 }, { "a4", 0 },
      { "b1", 2.05 }, { "b2", 0 }, { "b3", 0 }, { "b4", 0 },
      { "o1", 0 }, { "o2", 0 }, { "o3", 0 }, { "o4", 0 } }, waits)
    a:close()
    a:close() -- idempotent
    assert.equal(1, rate.users(key))
    b:close()
    other:close()
    assert.equal(0, rate.users(key))
  end)

  it("forgets a budget once the last limiter of its key is closed", function()
    local clock = scheduler()
    local key = fresh_key()
    local a = rate.new({ requests = 1, per = 100, account = false }, key)
    clock.spawn(function() a:acquire(nil, clock.hooks()) end)
    clock.run()
    a:close()
    local b = rate.new({ requests = 1, per = 100, account = false }, key)
    local waited
    clock.spawn(function() waited = b:acquire(nil, clock.hooks()) end)
    clock.run()
    assert.equal(0, waited)
    b:close()
    assert.has_error(function() b:acquire(nil, clock.hooks()) end, "rate limiter used after close")
  end)

  it("lets go of a budget whose limiters were collected without close()", function()
    local clock = scheduler()
    local key = fresh_key()
    local a = rate.new({ requests = 1, per = 100, account = false }, key)
    clock.spawn(function() a:acquire(nil, clock.hooks()) end)
    clock.run()
    assert.equal(1, rate.users(key))
    a = nil -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    assert.equal(0, rate.users(key))
    local b = rate.new({ requests = 1, per = 100, account = false }, key)
    local waited
    clock.spawn(function() waited = b:acquire(nil, clock.hooks()) end)
    clock.run()
    assert.equal(0, waited)
    b:close()
  end)

  it("keeps in memory only the account budgets still inside their window", function()
    local store = rate.local_store()
    local function budgets(i)
      return { { name = "t", requests = 5000, per = 1 }, { name = "a" .. i, requests = 2, per = 1 } }
    end
    for i = 1, 999 do assert.equal(0, store:reserve(budgets(i), i * 0.001)) end
    local n = 0
    for _ in pairs(store.windows) do n = n + 1 end
    assert.equal(1000, n) -- the token and 999 accounts
    store:reserve(budgets(1000), 1.5) -- the 1000th reservation sweeps: accounts 1..500 are past
    n = 0
    for _ in pairs(store.windows) do n = n + 1 end
    assert.equal(1 + 500, n)
    assert.is_nil(store.windows.a500)
    assert.is_table(store.windows.a501)
    -- what was dropped starts afresh (it was past its window anyway), what is kept still counts
    assert.equal(0, store:reserve(budgets(1), 1.5))
    assert.equal(0, store:reserve(budgets(1), 1.5))
    assert.equal(1, store:reserve(budgets(1), 1.5))
    assert.equal(0, store:reserve(budgets(700), 1.5)) -- its window: 0.7, and now 1.5
    assert.near(0.2, store:reserve(budgets(700), 1.5), 1e-9) -- 0.7 + 1
  end)

  it("gives each account its own budget inside the shared token budget", function()
    local clock = scheduler()
    local l = rate.new({ requests = 12, per = 1, account = { requests = 3, per = 1 } }, fresh_key())
    local starts = { all = {} }
    for i = 1, 36 do
      local account = "acct-" .. (i % 6)
      clock.spawn(function()
        l:acquire(account, clock.hooks())
        starts[account] = starts[account] or {}
        table.insert(starts[account], clock.t)
        table.insert(starts.all, clock.t)
      end)
    end
    clock.run()
    assert.equal(36, #starts.all)
    assert.equal(12, max_in_window(starts.all, 1))
    for i = 0, 5 do
      assert.equal(6, #starts["acct-" .. i])
      assert.is_true(max_in_window(starts["acct-" .. i], 1) <= 3)
    end
    l:close()
    -- a large token budget: each account's own is what holds
    clock = scheduler()
    l = rate.new({ requests = 100, per = 1, account = { requests = 3, per = 1 } }, fresh_key())
    local per_account = {}
    for i = 1, 36 do
      local account = "acct-" .. (i % 6)
      clock.spawn(function()
        l:acquire(account, clock.hooks())
        per_account[account] = per_account[account] or {}
        table.insert(per_account[account], round(clock.t))
      end)
    end
    clock.run()
    for i = 0, 5 do
      assert.same({ 0, 0, 0, 1.05, 1.05, 1.05 }, per_account["acct-" .. i])
    end
    -- a request without an account draws on the token budget only
    assert.equal(1, #l:budgets(nil))
    assert.equal(2, #l:budgets("a"))
    l:close()
  end)

  it("holds the budget until the reset when the server says the window is spent", function()
    local clock = scheduler()
    local l = rate.new({ requests = 100, per = 10 }, fresh_key())
    local log = {}
    clock.spawn(function()
      log[#log + 1] = l:acquire("acct-x", clock.hooks())
      l:observe("acct-x", { ["ratelimit-limit"] = "50;w=10", ["ratelimit-remaining"] = "3", ["ratelimit-reset"] = "7" })
      log[#log + 1] = l:acquire("acct-x", clock.hooks()) -- remaining 3: go on
      l:observe("acct-x", { ["ratelimit-remaining"] = "0", ["ratelimit-reset"] = "4" })
      log[#log + 1] = l:acquire("acct-y", clock.hooks()) -- another account is not held
      log[#log + 1] = l:acquire("acct-x", clock.hooks())
      log[#log + 1] = clock.t
      -- a 429 holds the account until its wait ends
      l:observe("acct-x", { ["retry-after"] = "2", ["ratelimit-remaining"] = "0", ["ratelimit-reset"] = "2" }, 429, 2)
      log[#log + 1] = l:acquire("acct-x", clock.hooks())
      l:observe(nil, { ["ratelimit-remaining"] = { "0" }, ["ratelimit-reset"] = "1.5" })
      log[#log + 1] = l:acquire(nil, clock.hooks()) -- no account: the token budget was held
      l:observe("acct-x", { ["ratelimit-remaining"] = "0" }) -- no reset: nothing to go by
      l:observe("acct-x", { ["ratelimit-remaining"] = "0", ["ratelimit-reset"] = "soon" })
      log[#log + 1] = l:acquire("acct-x", clock.hooks())
    end)
    clock.run()
    assert.same({ 0, 0, 0, 4, 4, 2, 1.5, 0 }, log)
    l:close()
  end)

  it("reports holds of 0.1 s or more through on_wait and debug, and no shorter ones", function()
    local clock = scheduler()
    local l = rate.new({ requests = 2, per = 1, account = { requests = 1, per = 0.5 } }, fresh_key())
    local infos, lines = {}, {}
    local hooks = clock.hooks {
      on_wait = function(info) infos[#infos + 1] = info end,
      debug = function(line) lines[#lines + 1] = line end,
    }
    clock.spawn(function()
      l:acquire("a1", hooks)   -- at 0
      l:acquire("a1", hooks)   -- the account budget: at 0.525 (0.5 + the margin)
      l:acquire("a2", hooks)   -- the token budget: at 1.05
      clock.hooks().sleep(1.5)
      l:acquire("a3", hooks)   -- 2.55: free
      l:acquire("a4", hooks)   -- 2.55: free
      clock.hooks().sleep(0.97)
      l:acquire("a5", hooks)   -- 3.52: the token budget frees at 3.6: 0.08 s, not reported
    end)
    clock.run()
    assert.equal(2, #infos)
    local first = infos[1]
    assert.same({ budget = "account", account = "a1", requests = 1, per = 0.5, store = "process" },
      { budget = first.budget, account = first.account, requests = first.requests, per = first.per, store = first.store })
    assert.near(0.525, infos[1].wait, 1e-9)
    assert.equal("token", infos[2].budget)
    assert.near(0.525, infos[2].wait, 1e-9)
    assert.same({
      "rate limit: holding the request 0.53 s for the account budget of a1 (1 per 0.5 s)",
      "rate limit: holding the request 0.53 s for the token budget (2 per 1 s)",
    }, lines)
    l:close()
  end)

  it("uses rate_limit.store, giving it the budgets, and falls back to the process when it fails", function()
    local calls = {}
    local fail = false
    local store = {
      reserve = function(_, budgets, now)
        calls[#calls + 1] = { "reserve", budgets, now }
        if fail then return nil, "connection refused" end
        return 0.25, 2
      end,
      hold = function(_, name, seconds, now)
        calls[#calls + 1] = { "hold", name, seconds, now }
        return true
      end,
    }
    local clock = scheduler()
    local l = rate.new({ requests = 3, per = 1, account = { requests = 2, per = 1 }, store = store }, "k")
    assert.equal("store", l.where)
    local lines, waited = {}, {}
    local hooks = clock.hooks { debug = function(line) lines[#lines + 1] = line end }
    clock.spawn(function()
      waited[#waited + 1] = l:acquire("acct-1", hooks)
      l:observe("acct-1", { ["ratelimit-remaining"] = "0", ["ratelimit-reset"] = "5" })
      fail = true
      waited[#waited + 1] = l:acquire("acct-2", hooks)
    end)
    clock.run()
    assert.same({ 0.25, 0 }, waited)
    assert.equal("reserve", calls[1][1])
    local budgets = calls[1][2]
    assert.equal(2, #budgets)
    assert.same({ requests = 3, per = 1.05, kind = "token" },
      { requests = budgets[1].requests, per = budgets[1].per, kind = budgets[1].kind })
    assert.same({ requests = 2, per = 1.05, kind = "account" },
      { requests = budgets[2].requests, per = budgets[2].per, kind = budgets[2].kind })
    assert.matches("^t:%x+:3/1$", budgets[1].name)
    assert.matches("^a:%x+:2/1:acct%-1$", budgets[2].name)
    assert.is_nil(budgets[1].name:find("k", 1, true) and budgets[1].name:find(":k:", 1, true))
    assert.equal(0, calls[1][3])
    assert.same({ "hold", budgets[2].name, 5, 0.25 }, calls[2])
    assert.same({
      "rate limit: holding the request 0.25 s for the account budget of acct-1 (2 per 1 s)",
      "rate limit: rate_limit.store failed (connection refused); this request keeps to the budget of this process",
    }, lines)
    l:close()
  end)
end)
