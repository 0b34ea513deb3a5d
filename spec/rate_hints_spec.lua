-- The learned budget's window end, from `ratelimit-reset` rounded up to whole seconds (as Truto
-- and the mock send it): every answer of one window bounds its end from above, and the lowest
-- bound is kept, so an account paced by its headers is not held up to a second past each window
-- (the listing limited to 20 per 2 s took 12.7 s where the limit allows about 9.3 s).
local hints = require "truto.rate.hints"

-- The answer a server with windows of `per` seconds aligned to its clock gives at time t: the
-- window's end rounded up to whole seconds from t, as spec/mock/truto_mock/limits.lua does.
local function answer_at(t, remaining, limit, per)
  local reset = math.max(1, math.ceil((math.floor(t / per) + 1) * per - t))
  return hints.read({ ["ratelimit-remaining"] = tostring(remaining), ["ratelimit-reset"] = tostring(reset),
    ["ratelimit-limit"] = limit .. ";w=" .. per }, 200, nil, 60)
end

-- Takes one start at `t` (it must be allowed) and learns its answer at t + latency.
local function request(s, t, latency, remaining)
  assert.equal(0, (hints.take(s, t, 0)))
  hints.learn(s, t + latency, answer_at(t + latency / 2, remaining, 3, 2))
end

describe("a learned budget's window end", function()
  it("is the lowest bound the answers of the window gave, not the last one's", function()
    local s = {}
    -- a budget of 3 per 2 s, windows [0, 2), [2, 4), ...; answers 10 ms after their start
    request(s, 0.1, 0.01, 2)   -- at 0.105 the window ends in ceil(1.895) = 2 s: by 2.11
    request(s, 1.02, 0.01, 1)  -- ceil(0.975) = 1: by 2.03
    request(s, 1.5, 0.01, 0)   -- ceil(0.495) = 1: by 2.51
    local wait, why = hints.take(s, 1.6, 0)
    assert.equal("ratelimit-reset", why)
    assert.near(2.03 - 1.6, wait, 1e-9) -- the last answer alone: 2.51
    -- the next window's end is a guess (2.03 + 2) until one of its answers bounds it
    assert.equal(0, (hints.take(s, 2.04, 0)))
    hints.learn(s, 2.05, answer_at(2.045, 2, 3, 2)) -- ceil(1.955) = 2: by 4.05
    assert.near(4.05, s.reset, 1e-9)
    assert.equal(0, (hints.take(s, 3.01, 0)))
    hints.learn(s, 3.02, answer_at(3.02, 1, 3, 2)) -- ceil(0.98) = 1: by 4.02, lower
    assert.near(4.02, s.reset, 1e-9)
  end)

  it("takes an answer that says more is left than the state allows as a new window", function()
    local s = {}
    -- windows of 1 s: the next window's end is within a second of this one's bound
    assert.equal(0, (hints.take(s, 0.5, 0)))
    hints.learn(s, 0.5, answer_at(0.5, 0, 3, 1)) -- by 1.5, nothing left
    -- the server says 2 are left, by 2.2: more than this window could have; a new one
    hints.learn(s, 1.2, answer_at(1.2, 2, 3, 1))
    assert.near(2.2, s.reset, 1e-9)
    assert.equal(2, s.remaining)
  end)

  it("keeps the bound through the shared dict's encoding", function()
    local s = {}
    request(s, 1.02, 0.01, 1)
    local back = hints.decode(hints.encode(s))
    assert.is_true(back.bounded)
    assert.near(s.reset, back.reset, 1e-12)
  end)
end)

describe("answers of one window learned out of order", function()
  it("never give back starts the state already counted (windows of 2 s)", function()
    local s = {}
    -- a probe at 0.1 finds 19 left of 20 per 2 s, by 2
    assert.equal(0, (hints.take(s, 0.1, 0)))
    hints.learn(s, 0.11, answer_at(0.105, 19, 20, 2))
    -- 19 go at once; the server answers them 18, 17, ..., 0, and the answer saying 18 is
    -- learned last (another worker read it late)
    for _ = 1, 19 do assert.equal(0, (hints.take(s, 0.2, 0))) end
    for left = 17, 0, -1 do hints.learn(s, 0.3, answer_at(0.25, left, 20, 2)) end
    hints.learn(s, 0.31, answer_at(0.25, 18, 20, 2))
    assert.equal(0, s.remaining)
    local wait, why = hints.take(s, 0.32, 0)
    assert.equal("ratelimit-reset", why)
    assert.is_true(wait > 1.5, wait)
  end)
end)
