-- The learned budget counts the requests still out (issue 16): an answer from a window the
-- state had not counted in, or from a budget the server changed, cannot hand out again the
-- starts that requests already in flight will use. (20 concurrent listings in one nginx worker
-- got 19 429s from a mock limiting the account to 25 per 2 s before this.)
local hints = require "truto.rate.hints"

-- How many requests may start at `now` before the state says wait.
local function starts_left(s, now)
  local n = 0
  while n < 1000 and hints.take(s, now, 0) == 0 do n = n + 1 end
  return n
end

local function answer(remaining, reset, limit)
  return hints.read({ ["ratelimit-remaining"] = tostring(remaining), ["ratelimit-reset"] = tostring(reset),
    ["ratelimit-limit"] = limit }, 200, nil, 60)
end

describe("a learned budget with 20 requests in flight", function()
  it("keeps them out of a window it learns from a changed budget with a reset about the same", function()
    local s = {}
    hints.learn(s, 0, answer(99980, 9.5, "100000;w=10")) -- a big budget, its window ends at 9.5
    for _ = 1, 20 do assert.equal(0, (hints.take(s, 1, 0))) end
    -- the first answer: the server now allows 25 per 2 s, this was its first request of 25,
    -- and the window it names ends at 9.2: the 19 others in flight count there too
    hints.learn(s, 1.1, answer(24, 8.1, "25;w=2"))
    assert.equal(5, starts_left(s, 1.1))
  end)

  it("keeps them out of a window it had not counted in", function()
    local s = {}
    hints.learn(s, 0, answer(30, 5, "30;w=5"))
    for _ = 1, 20 do assert.equal(0, (hints.take(s, 1, 0))) end
    -- an answer naming another window (ending at 2.1, not 5): its 29 left do not count the
    -- 19 others still out
    hints.learn(s, 1.1, answer(29, 1, "30;w=5"))
    assert.equal(10, starts_left(s, 1.1))
  end)

  it("forgets requests never heard of again after 30 s", function()
    local s = {}
    hints.learn(s, 0, answer(50, 100, "100;w=100"))
    for _ = 1, 20 do hints.take(s, 1, 0) end -- 20 abandoned: no answer, no failure reported
    for _ = 1, 10 do hints.take(s, 40, 0) end -- 39 s later: 10 more start
    hints.learn(s, 41, answer(60, 300, "100;w=100")) -- a new window: only the 9 others are out
    assert.equal(51, starts_left(s, 41))
  end)

  it("encodes the count of requests out with the state", function()
    local s = {}
    hints.learn(s, 0, answer(10, 5, "25;w=5"))
    hints.take(s, 1, 0)
    hints.take(s, 1, 0)
    local back = hints.decode(hints.encode(s))
    assert.equal(2, back.out)
    assert.equal(s.out_until, back.out_until)
  end)
end)
