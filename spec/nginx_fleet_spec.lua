-- Four nginx workers, 40 concurrent listings of one 4-page account that the mock limits through
-- its ratelimit-* headers to 20 requests per 2 s (issue 16). The learned budget is shared by the
-- workers (lua_shared_dict truto_rate, or Redis), so the mock sees no more than its limit in any
-- of its windows and sends no 429; the listings that arrived first finish first (each keeps its
-- place in the budget's line across its pages) instead of all together at the end; a listing
-- whose client went away gives its place to the others; and when Redis dies mid-run the workers
-- keep to the limit through the shared dict and say so once in the error log.
local nginx = require "spec.helpers.nginx"
local mock = require "spec.helpers.mock"

local ACCOUNT = "acct-small" -- 40 users; limit = 10: 4 pages
local LIMIT, PER = 20, 2

-- Each listing prints its item count, when nginx got its request and when it ended (ngx.now()).
local function handler(m)
  return string.format([[
local truto = require "truto"
local M = {}
function M.list()
  local began = ngx.req.start_time()
  local rate_limit
  if ngx.var.arg_redis then
    rate_limit = { store = require("truto.rate.redis").new { port = tonumber(ngx.var.arg_redis) } }
  end
  local client = truto.new { token = %q, base_url = %q, rate_limit = rate_limit }
  local n = 0
  local ok, err = pcall(function()
    for _ in client:users { integrated_account_id = ngx.var.arg_account, limit = 10 } do n = n + 1 end
  end)
  client:close()
  ngx.update_time()
  ngx.say(ok and n or tostring(err), " ", string.format("%%.3f %%.3f", began, ngx.now()))
end
return M
]], m.token, m.url)
end

-- The requests of the account the mock logged, counted in its windows (floor(time / PER)).
local function per_window(entries)
  local counts, first = {}, nil
  for _, e in ipairs(entries) do
    if e.account == ACCOUNT then
      local w = math.floor(e.time / PER)
      counts[w] = (counts[w] or 0) + 1
      first = first and math.min(first, w) or w
    end
  end
  local most, total = 0, 0
  for _, n in pairs(counts) do
    most, total = math.max(most, n), total + n
  end
  return most, total, counts, first
end

-- The listings' { began, ended } ordered by when nginx got them; every body must say 40.
local function finished(bodies, skip)
  local out = {}
  for i, body in ipairs(bodies) do
    if not (skip and skip[i]) then
      local n, began, ended = (body or ""):match("^(%S+) (%S+) (%S+)")
      assert.equal("40", n, "listing " .. i .. ": " .. tostring(body))
      out[#out + 1] = { tonumber(began), tonumber(ended) }
    end
  end
  table.sort(out, function(a, b) return a[1] < b[1] end)
  return out
end

local function median_end(list, from, to)
  local ends = {}
  for i = from, to do ends[#ends + 1] = list[i][2] end
  table.sort(ends)
  return ends[math.ceil(#ends / 2)]
end

describe("nginx, 4 workers, 40 listings of one account limited by its headers #nginx #slow", function()
  local n, m
  setup(function()
    m = mock.start()
    n = nginx.start {
      workers = 4,
      files = { ["fleet.lua"] = handler(m) },
      lua_path = { "/usr/share/lua/5.1/?.lua" },
      http = [[
  lua_shared_dict truto_rate 1m;
  lua_check_client_abort on;
  server {
    listen 127.0.0.1:${port};
    location = /list { content_by_lua_block { require("fleet").list() } }
  }]],
    }
  end)
  teardown(function() if n then n:stop() end end)

  before_each(function()
    mock.reset()
    mock.limits { accounts = { [ACCOUNT] = { requests = LIMIT, per = PER } } }
    n:mark()
  end)

  local path = "/list?account=" .. ACCOUNT

  it("keep to the limit with no 429, and finish in the order they arrived", function()
    local bodies, elapsed = nginx.concurrent(n.port, path, 40, { seconds = 90 })
    local rate = mock.rate()
    local most, total = per_window(mock.requests())
    local list = finished(bodies)
    local first, last = median_end(list, 1, 10), median_end(list, 31, 40)
    io.stderr:write(string.format("\n40 listings: %.2f s (160 requests at 20 per 2 s: 8 windows); at most %d in a mock window; "
      .. "%d 429s; median end of the first 10 to arrive %.2f s, of the last 10 %.2f s\n", elapsed, most,
      rate.throttled, first - list[1][1], last - list[1][1]))
    assert.equal(160, total)
    assert.is_true(most <= LIMIT, most)
    assert.equal(0, rate.throttled)
    -- in lockstep (each page at the back of the line) every listing ends in the last window
    assert.is_true(last - first >= 2 * PER, string.format("median end of the first 10: %.2f s, of the last 10: %.2f s",
      first - list[1][1], last - list[1][1]))
    assert.same({}, n:error_log_lines())
  end)

  it("give the place of a listing whose client went away to the others within 1 s", function()
    -- 8 of 24 listings are abandoned at 1 s, waiting in line for the second window
    local gone = {}
    for i = 1, 8 do gone[i * 3] = true end
    local bodies = nginx.concurrent(n.port, path, 24, {
      seconds = 90,
      on_tick = function(t)
        if t >= 1 and not gone.done then
          gone.done = true
          local list = {}
          for i in pairs(gone) do if type(i) == "number" then list[#list + 1] = i end end
          return list
        end
      end,
    })
    finished(bodies, gone)
    local entries = mock.requests()
    local most, _, counts, w0 = per_window(entries)
    assert.is_true(most <= LIMIT, most)
    assert.equal(0, mock.rate().throttled)
    -- the second window is used in full, and its 20th request goes within 1 s of its start
    assert.equal(LIMIT, counts[w0 + 1])
    local times = {}
    for _, e in ipairs(entries) do
      if e.account == ACCOUNT and math.floor(e.time / PER) == w0 + 1 then times[#times + 1] = e.time end
    end
    table.sort(times)
    local late = times[LIMIT] - (w0 + 1) * PER
    io.stderr:write(string.format("\n8 of 24 abandoned: the second window's 20th request %.3f s into it\n", late))
    assert.is_true(late < 1, late)
  end)

  it("keep to the limit through the shared dict when Redis dies mid-run, and say so once", function()
    local redis_port, stop_redis = nginx.redis()
    finally(stop_redis)
    local killed = false
    local bodies = nginx.concurrent(n.port, path .. "&redis=" .. redis_port, 40, {
      seconds = 90,
      on_tick = function(t)
        if t >= 3 and not killed then
          killed = true
          stop_redis()
        end
      end,
    })
    finished(bodies)
    local most, total = per_window(mock.requests())
    local rate = mock.rate()
    io.stderr:write(string.format("\nRedis killed at 3 s: at most %d in a mock window, %d 429s\n", most, rate.throttled))
    assert.equal(160, total)
    assert.is_true(most <= LIMIT, most)
    local lines = n:error_log_lines()
    assert.equal(1, #lines, table.concat(lines, "\n"))
    assert.truthy(lines[1]:find("lua-truto: rate_limit.store failed (", 1, true), lines[1])
    assert.truthy(lines[1]:find("rate budgets fall back to the shared dict", 1, true), lines[1])
  end)
end)
