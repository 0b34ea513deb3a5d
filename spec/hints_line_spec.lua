-- The line of a learned budget (truto.rate.hints, issue 16): when a window has few starts left,
-- the calls waiting for it go oldest first, a listing keeps its place across its pages, and a
-- waiter that went away stops holding anyone up.
local hints = require "truto.rate.hints"

-- A budget that knows its window: `remaining` starts left, the window ends at `reset`.
local function window(remaining, reset)
  return { known = true, remaining = remaining, reset = reset, limit = 20, window = 2, bounded = true }
end

local ANSWER = { remaining = 5, reset = 1.5 } -- an answer of the same window (hints.read's shape)

describe("a learned budget's line", function()
  it("gives a window's last starts to the calls that began first, not to whoever asks first", function()
    local s = window(0, 2)
    -- an old listing (began at 0) and a young one (began at 1) both wait for the window at 2
    assert.same({ 1.5, "ratelimit-reset" }, { hints.take(s, 0.5, 0, 0, "old") })
    assert.same({ 0.5, "ratelimit-reset" }, { hints.take(s, 1.5, 0, 1, "young") })
    -- the window reopens with 20 starts; 19 go to others, then only one is left:
    s.remaining, s.reset = 1, 4
    -- the young one asks first, and waits for the old one
    assert.same({ hints.POLL, "ratelimit-reset" }, { hints.take(s, 2.001, 0, 1, "young") })
    assert.equal(0, (hints.take(s, 2.002, 0, 0, "old")))
    assert.equal(0, s.remaining)
  end)

  it("lets a younger call go when enough starts are left for everyone older", function()
    local s = window(0, 2)
    hints.take(s, 0.5, 0, 0, "old")
    s.remaining, s.reset = 2, 4
    assert.equal(0, (hints.take(s, 2.001, 0, 1, "young")))
    assert.equal(1, s.remaining)
  end)

  it("keeps a listing's place for its next page, and forgets a single call once it is answered", function()
    local s = window(0, 2)
    hints.take(s, 0.5, 0, 0, "listing")
    hints.take(s, 0.5, 0, 0.1, "call")
    s.remaining, s.reset = 10, 4
    assert.equal(0, (hints.take(s, 2.0, 0, 0, "listing")))
    assert.equal(0, (hints.take(s, 2.0, 0, 0.1, "call")))
    hints.learn(s, 2.01, ANSWER, "listing", true)
    hints.learn(s, 2.01, ANSWER, "call", false)
    assert.same({ "listing" }, { s.q[1][1], s.q[2] and s.q[2][1] })
    -- one start left: a younger call waits while the listing asks for its next page
    s.remaining = 1
    assert.same({ hints.POLL, "ratelimit-reset" }, { hints.take(s, 2.1, 0, 1, "young") })
    assert.equal(0, (hints.take(s, 2.11, 0, 0, "listing")))
  end)

  it("lets a younger call go once an older waiter has not looked again within 0.25 s", function()
    local s = window(0, 2)
    hints.take(s, 0.5, 0, 0, "gone") -- said it would look again at 2, and never did
    s.remaining, s.reset = 1, 4
    assert.same({ hints.POLL, "ratelimit-reset" }, { hints.take(s, 2.2, 0, 1, "young") })
    assert.equal(0, (hints.take(s, 2.26, 0, 1, "young")))
    assert.is_nil(s.q and s.q[2])
  end)

  it("keeps the 16 oldest waiters, whatever the number waiting, through the shared dict's text", function()
    local s = window(0, 2)
    for i = 40, 1, -1 do hints.take(s, 1, 0, i / 100, "w" .. i) end
    assert.equal(16, #s.q)
    local back = hints.decode(hints.encode(s))
    assert.equal(16, #back.q)
    for i = 1, 16 do
      assert.same({ "w" .. i, i / 100, 2 }, back.q[i])
    end
    assert.is_true(#hints.encode(s) < 600, #hints.encode(s))
    -- a call that names no place is never held by the line
    s.remaining, s.reset = 1, 4
    assert.equal(0, (hints.take(s, 2.01, 0)))
  end)
end)

describe("a learned budget's line, read back from a store", function()
  it("never counts a call's own place as ahead of it (times in the store are rounded to ms)", function()
    local s = window(0, 2)
    assert.equal(1.5, (hints.take(s, 0.5, 0, 0.0004, "me")))
    s = hints.decode(hints.encode(s)) -- the shared dict's text: since 0.0004 -> 0.000
    s.remaining, s.reset = 1, 4
    assert.equal(0, (hints.take(s, 2.0, 0, 0.0004, "me")))
  end)
end)
