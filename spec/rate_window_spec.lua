-- Fixed budgets in constant-size state, and reservations given back, on the process store and
-- on the nginx shared-dict store (its own code, on a dict made here: get, set, add, delete with
-- expiry on a fake clock, which the store reads through ngx.now). The limiter is driven through
-- rate.new and acquire as a client drives it; no wait really passes.
local rate = require "truto.rate"

local key_seq = 0
local function fresh_key()
  key_seq = key_seq + 1
  return "window-spec token " .. key_seq .. " http://127.0.0.1"
end

-- A lua_shared_dict on the fake clock `clock` (clock.t, seconds).
local function fake_dict(clock)
  local values, expires = {}, {}
  local dict = {}
  local function live(k)
    if expires[k] and expires[k] <= clock.t then values[k], expires[k] = nil, nil end
    return values[k]
  end
  function dict.get(_, k) return live(k) end
  function dict.set(_, k, v, ttl)
    values[k], expires[k] = v, (ttl and ttl > 0) and clock.t + ttl or nil
    return true
  end
  function dict.add(self, k, v, ttl)
    if live(k) ~= nil then return false, "exists" end
    return self:set(k, v, ttl)
  end
  function dict.delete(_, k) values[k], expires[k] = nil, nil end
  function dict.values() return values end
  return dict
end

-- Runs fn(dict) with a global ngx whose shared dict `name` is a fake dict on `clock`.
local function with_nginx(clock, name, fn)
  local dict = fake_dict(clock)
  local saved = rawget(_G, "ngx")
  rawset(_G, "ngx", {
    shared = { [name] = dict }, get_phase = function() return "timer" end, sleep = function() end,
    update_time = function() end, now = function() return clock.t end, log = function() end, ERR = 4,
  })
  local ok, err = pcall(fn, dict)
  rawset(_G, "ngx", saved)
  assert(ok, err)
end

-- Hooks on the fake clock: sleep(s) moves it on (or, with `refuse`, is interrupted).
local function hooks_on(clock, extra)
  local h = {
    now = function() return clock.t end,
    sleep = function(s)
      if extra and extra.interrupt then return false end
      clock.t = clock.t + s
      return true
    end,
  }
  for k, v in pairs(extra or {}) do
    if k ~= "interrupt" then h[k] = v end
  end
  return h
end

local function largest_value(dict)
  local most = 0
  for _, v in pairs(dict.values()) do
    if type(v) == "string" then most = math.max(most, #v) end
  end
  return most
end

-- Whether no `per` seconds hold more than n of the times: each time is at least `per` after
-- the one n places before it.
local function at_most(n, times, per)
  table.sort(times)
  for i = n + 1, #times do
    if times[i] - times[i - n] < per - 1e-9 then return false end
  end
  return true
end

-- A limiter of a fresh key on the budget `opts`, in the store `extra` names.
local function limiter(opts, extra)
  for k, v in pairs(extra) do opts[k] = v end
  return rate.new(opts, fresh_key())
end

-- The stores the cases run on: the process, and the shared dict.
local STORES = {
  { "this process", function(_, fn) fn(nil, {}) end },
  { "a lua_shared_dict", function(clock, fn)
    local name = "spec_rate_" .. fresh_key():gsub("%W", "")
    with_nginx(clock, name, function(dict) fn(dict, { shared_dict = name }) end)
  end },
}

for _, case in ipairs(STORES) do
  local where, around = case[1], case[2]

  describe("a fixed budget in " .. where, function()
    it("gives back a reservation whose wait is longer than max_retry_wait: the next caller takes its place",
      function()
        local clock = { t = 1000 }
        around(clock, function(_, extra)
          local l = limiter({ requests = 1, per = 10, account = false }, extra)
          assert.equal(0, l:acquire(nil, hooks_on(clock)))
          local waited, kind = l:acquire(nil, hooks_on(clock, { max_wait = 5 }))
          assert.is_nil(waited)
          assert.equal("rate_limited", kind)
          -- 10 s (+ the 50 ms margin): the refused caller's place, not the one after it (20 s)
          assert.near(10.05, l:acquire(nil, hooks_on(clock, { max_wait = 60 })), 1e-6)
          l:close()
        end)
      end)

    it("gives back a reservation whose wait was interrupted", function()
      local clock = { t = 1000 }
      around(clock, function(_, extra)
        local l = limiter({ requests = 1, per = 10, account = false }, extra)
        assert.equal(0, l:acquire(nil, hooks_on(clock)))
        local waited, kind = l:acquire(nil, hooks_on(clock, { interrupt = true }))
        assert.is_nil(waited)
        assert.equal("interrupted", kind)
        assert.near(10.05, l:acquire(nil, hooks_on(clock, { max_wait = 60 })), 1e-6)
        l:close()
      end)
    end)

    it("gives back, through release, the place of a request that was never sent", function()
      local clock = { t = 1000 }
      around(clock, function(_, extra)
        local l = limiter({ requests = 2, per = 10, account = { requests = 1, per = 10 } }, extra)
        local waited, reservation = l:acquire("acct-1", hooks_on(clock))
        assert.equal(0, waited)
        l:release(reservation)
        l:release(reservation) -- once only
        -- both budgets have their place back: the account's only start, and one of the token's two
        assert.equal(0, l:acquire("acct-1", hooks_on(clock)))
        assert.equal(0, l:acquire("acct-2", hooks_on(clock)))
        assert.near(10.05, l:acquire("acct-3", hooks_on(clock, { max_wait = 60 })), 1e-6)
        l:close()
      end)
    end)

    it("keeps at most `requests` starts in any window over two budgets, at random times", function()
      local clock = { t = 1000 }
      around(clock, function(_, extra)
        local l = limiter({ requests = 30, per = 1, account = { requests = 8, per = 0.5 } }, extra)
        math.randomseed(11)
        local token_starts, account_starts = {}, {}
        for _ = 1, 3000 do
          clock.t = clock.t + math.random() * 0.02
          local account = "acct-" .. math.random(4)
          local t0 = clock.t
          local waited = assert(l:acquire(account, { now = function() return t0 end, sleep = function() end }))
          local at = t0 + waited
          token_starts[#token_starts + 1] = at
          account_starts[account] = account_starts[account] or {}
          table.insert(account_starts[account], at)
        end
        assert.is_true(at_most(30, token_starts, 1))
        for _, times in pairs(account_starts) do assert.is_true(at_most(8, times, 0.5)) end
        l:close()
      end)
    end)
  end)
end

describe("a fixed budget's state in a lua_shared_dict", function()
  it("stays the same size whatever `requests` is: 20,000 starts of a budget of 1e6 per minute", function()
    local clock = { t = 1000 }
    local name = "spec_rate_size"
    with_nginx(clock, name, function(dict)
      local l = rate.new({ requests = 1000000, per = 60, account = false, shared_dict = name }, fresh_key())
      local sizes = {}
      for i = 1, 20000 do
        clock.t = clock.t + 0.001
        assert.equal(0, l:acquire(nil, hooks_on(clock)))
        if i == 100 or i == 20000 then sizes[#sizes + 1] = largest_value(dict) end
      end
      -- 16 groups of "microseconds:count" at most (the ring of start times was 20 bytes a start)
      assert.is_true(sizes[1] <= 600, sizes[1])
      assert.is_true(sizes[2] <= 600, sizes[2])
      l:close()
    end)
  end)
end)
