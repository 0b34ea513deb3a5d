-- The item iterator's quick path (issue 22): items of a decoded page are handed out with the
-- checks done once per page, and what the slow path did per item still happens where it did: the
-- read-ahead is nudged after every 32nd item of a page while it is in flight, max_items cuts in
-- the middle of a page with the same resume point, a closed client raises at the next item.
-- The header lines a page's request carries are built once per client, and a wrapped transport
-- that adds a line to a request never sees it again on the next one.
local truto = require "truto"
local fake_transport = require "spec.helpers.fake_transport"

-- A list page of `n` users numbered from `first`, with `cursor` to the next one (or none).
local function page(first, n, cursor)
  local users = {}
  for i = first, first + n - 1 do users[#users + 1] = string.format('{"id":"u%03d"}', i) end
  return string.format('{"result":[%s],"next_cursor":%s}', table.concat(users, ","),
    cursor and ('"' .. cursor .. '"') or "null")
end

-- A transport object answering pages of 100 users, `pages` of them, and recording each request
-- and each pump (with the number of items the loop had taken when it came).
local function paged(pages, taken)
  local t
  t = fake_transport.new(function(_, k)
    local body = page((k - 1) * 100 + 1, 100, k < pages and ("c" .. k) or nil)
    return { status = 200, headers = {}, body = body, sends = 1 }
  end, function() t.pumps[#t.pumps + 1] = taken() end)
  t.pumps = {}
  return t
end

local seq = 0
local function client(t, opts)
  seq = seq + 1
  local o = { token = "speed-spec-" .. seq, base_url = "http://127.0.0.1:9", transport = t, rate_limit = false }
  for k, v in pairs(opts or {}) do o[k] = v end
  return truto.new(o)
end

describe("the item iterator's quick path", function()
  it("nudges the read-ahead after items 32, 64 and 96 of each page that has one in flight", function()
    local n = 0
    local t = paged(3, function() return n end)
    local c = client(t)
    local ids = {}
    for user in c:users { integrated_account_id = "acct-a" } do
      n = n + 1
      ids[n] = user.id
    end
    assert.equal(300, n)
    assert.equal("u001", ids[1])
    assert.equal("u100", ids[100])
    assert.equal("u300", ids[300])
    -- the pump comes before the 32nd item is given: the loop had taken 31
    assert.same({ 31, 63, 95, 131, 163, 195 }, t.pumps)
    assert.equal(3, #t.sent)
  end)

  it("cuts at max_items in the middle of a page, resume at that page's cursor and skip", function()
    local n = 0
    local t = paged(5, function() return n end)
    local c = client(t)
    local iter, state = c:users({ integrated_account_id = "acct-a" }, { max_items = 150 })
    local last
    for user in iter, state do
      n = n + 1
      last = user.id
    end
    assert.equal(150, n)
    assert.equal("u150", last)
    assert.is_true(state.cut)
    assert.same({ cursor = "c1", skip = 50 }, state.resume)
    -- page 2 fills max_items: nothing after it is read ahead, and page 2 (no read-ahead in
    -- flight while it is read) is not pumped
    assert.equal(2, #t.sent)
    assert.same({ 31, 63, 95 }, t.pumps)
  end)

  it("raises the closed error at the next item of the same page after client:close()", function()
    local t = paged(2, function() return 0 end)
    local c = client(t)
    local n = 0
    local ok, err = pcall(function()
      for _ in c:users { integrated_account_id = "acct-a" } do
        n = n + 1
        if n == 40 then c:close() end
      end
    end)
    assert.is_false(ok)
    assert.equal(40, n)
    assert.equal("closed", err.kind)
  end)

  it("sends the same header lines on every page", function()
    local t = paged(3, function() return 0 end)
    local c = client(t, { headers = { ["X-Team"] = "a" } })
    for _ in c:users { integrated_account_id = "acct-a" } do end
    assert.equal(3, #t.sent)
    local first = t.sent[1].headers
    assert.equal(3, #first)
    assert.equal("Accept: application/json", first[1])
    assert.matches("^User%-Agent: lua%-truto/", first[2])
    assert.equal("X-Team: a", first[3])
    assert.same(first, t.sent[2].headers)
    assert.same(first, t.sent[3].headers)
  end)

  it("gives a wrapped transport header lines of its own on each request", function()
    local inner = paged(3, function() return 0 end)
    local seen = {}
    -- the wrapper answers from the scripted transport instead of the libcurl one it is given
    local wrapper = setmetatable({
      start = function(_, req)
        req.headers[#req.headers + 1] = "X-Wrapped: 1"
        seen[#seen + 1] = #req.headers
        return inner:start(req)
      end,
    }, { __index = inner })
    local c = truto.new { token = "speed-spec-wrap", base_url = "http://127.0.0.1:9", rate_limit = false,
      wrap_transport = function() return wrapper end }
    for _ in c:users { integrated_account_id = "acct-a" } do end
    assert.same({ 3, 3, 3 }, seen)
  end)
end)
