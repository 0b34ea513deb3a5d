-- Rate budgets inside nginx (the LuaJIT build, `make LUA=luajit`): ngx threads on one client,
-- four workers sharing `lua_shared_dict truto_rate`, and two separate nginx instances sharing
-- one budget in a real redis-server (Debian's redis-server + lua-nginx-redis), which this spec
-- starts on 127.0.0.1 and stops by its PID. What reached the mock, per window, and how many
-- 429s it sent (its limits are set to the clients' budget) are the evidence.
local socket = require "socket"
local mock = require "spec.helpers.mock"
local nginx = require "spec.helpers.nginx"

local run = require "spec.helpers.run"
local quote, shell, read_file, free_port = run.quote, run.sh, run.slurp, run.free_port

-- The handlers, in each nginx's prefix as rate_checks.lua.
local CHECKS = [==[
local truto = require "truto"
local M = {}

-- The rate_limit option from the query: requests, per, and redis (a port) for the Redis store.
local function budget()
  local rl = { requests = tonumber(ngx.var.arg_requests), per = tonumber(ngx.var.arg_per), account = false }
  if ngx.var.arg_redis then
    rl.store = require("truto.rate.redis").new { port = tonumber(ngx.var.arg_redis) }
  end
  return rl
end

-- One listing with a client made for this request (the README's example): the item count.
function M.list()
  local client = truto.new { rate_limit = budget(), max_retries = 0 }
  local n = 0
  for _ in client:users { integrated_account_id = ngx.var.arg_account, limit = tonumber(ngx.var.arg_limit) } do
    n = n + 1
  end
  client:close()
  ngx.say(n)
end

-- 20 ngx threads on one client, one get_organization each: how many succeeded.
function M.threads()
  local client = truto.new { rate_limit = budget(), max_retries = 0 }
  local threads = {}
  for i = 1, 20 do
    threads[i] = ngx.thread.spawn(function()
      return client:get_organization("org-1", { integrated_account_id = "acct-small" }) ~= nil
    end)
  end
  local n = 0
  for i = 1, 20 do
    local ran, got = ngx.thread.wait(threads[i])
    if ran and got == true then n = n + 1 end
  end
  client:close()
  ngx.say(n)
end

-- The limiter alone, without a client or a transport: n acquires on a limiter of the key
-- "spec-key", each start as the time the limiter reserved it, one per line. With debug=1, the
-- debug lines come first, each as "debug: <line>".
function M.acquire()
  local rate = require "truto.rate"
  local limiter = rate.new(budget(), "spec-key")
  local lines = {}
  local hooks = { sleep = ngx.sleep, now = function() ngx.update_time() return ngx.now() end }
  if ngx.var.arg_debug then
    hooks.debug = function(line) lines[#lines + 1] = "debug: " .. line end
  end
  local out = {}
  for i = 1, tonumber(ngx.var.arg_n) do
    -- the time the limiter reserved (the call's start plus its wait), not when this worker woke:
    -- a worker delayed on a loaded machine would record a late time and make windows overlap
    local t0 = hooks.now()
    local waited = limiter:acquire(nil, hooks)
    out[i] = string.format("%.6f", t0 + waited)
  end
  limiter:close()
  ngx.say(limiter.where, "\n", table.concat(lines, "\n"), #lines > 0 and "\n" or "", table.concat(out, "\n"))
end

local function clock()
  ngx.update_time()
  return ngx.now()
end

-- The limiter alone on the budget of the query (with tag: a key of its own): n acquires that
-- never wait, then the largest budget value its store holds, in bytes (the shared dict, or with
-- redis=port the ":w" keys in Redis).
function M.size()
  local rate = require "truto.rate"
  local limiter = rate.new(budget(), "spec-size-" .. ngx.var.arg_tag)
  local hooks = { sleep = ngx.sleep, now = clock }
  for _ = 1, tonumber(ngx.var.arg_n) do assert(limiter:acquire(nil, hooks) == 0) end
  limiter:close()
  local most = 0
  if ngx.var.arg_redis then
    local red = require("truto.rate.redis").library():new()
    assert(red:connect("127.0.0.1", tonumber(ngx.var.arg_redis)))
    for _, k in ipairs(assert(red:keys("truto_rate:*:w"))) do most = math.max(most, #assert(red:get(k))) end
    red:close()
  else
    local dict = ngx.shared.truto_rate
    for _, k in ipairs(dict:get_keys(0)) do
      local v = dict:get(k)
      if type(v) == "string" then most = math.max(most, #v) end
    end
  end
  ngx.say(most)
end

-- On the budget of the query (1 per 10 s): a first start, a second whose wait (10 s) is
-- interrupted, then a third: the first's wait, the second's failure and the third's wait as
-- the limiter reserved it (no sleep passes).
function M.abandon()
  local rate = require "truto.rate"
  local limiter = rate.new(budget(), "spec-abandon-" .. ngx.var.arg_tag)
  local function hooks(slept) return { sleep = function() return slept end, now = clock, max_wait = 60 } end
  local first = limiter:acquire(nil, hooks(true))
  local _, kind = limiter:acquire(nil, hooks(false))
  local third = limiter:acquire(nil, hooks(true))
  limiter:close()
  ngx.say(string.format("%.2f %s %.2f", first, tostring(kind), third))
end

-- The learned budget of acct-x in a limiter of the key "spec-hints" whose rate_limit.store is
-- the Redis of redis=port: learn=1 tells it an answer said the window is spent for 5 s; else it
-- says what a request of acct-x must wait, and why.
function M.hints()
  local rate = require "truto.rate"
  local limiter = rate.new(budget(), "spec-hints-" .. ngx.var.arg_tag)
  local hooks = { sleep = ngx.sleep, now = clock, max_wait = 60 }
  local wait, why = limiter:check_hints("acct-x", hooks)
  if ngx.var.arg_learn then
    limiter:observe("acct-x", { ["ratelimit-limit"] = "10;w=5", ["ratelimit-remaining"] = "0",
      ["ratelimit-reset"] = "5" }, 200, nil, 60)
  end
  limiter:close()
  ngx.say(string.format("%.1f %s", wait, tostring(why)))
end

return M
]==]

-- The server of each nginx (spec/helpers/nginx.lua makes the rest of its nginx.conf).
local SERVER = [[
  server {
    listen 127.0.0.1:${port} reuseport;
    location = /list { content_by_lua_block { require("rate_checks").list() } }
    location = /threads { content_by_lua_block { require("rate_checks").threads() } }
    location = /acquire { content_by_lua_block { require("rate_checks").acquire() } }
    location = /size { content_by_lua_block { require("rate_checks").size() } }
    location = /abandon { content_by_lua_block { require("rate_checks").abandon() } }
    location = /hints { content_by_lua_block { require("rate_checks").hints() } }
  }
]]

local started = {} -- the nginx instances to stop

-- Starts an nginx with `workers` workers (and the truto_rate dict when `dict`); returns its
-- port and prefix.
local function start_nginx(workers, dict)
  local m = mock.start()
  local n = nginx.start {
    workers = workers,
    files = { ["rate_checks.lua"] = CHECKS },
    env = "TRUTO_API_TOKEN=test-token TRUTO_BASE_URL=" .. quote(m.url),
    main = "env TRUTO_API_TOKEN;\nenv TRUTO_BASE_URL;",
    http = (dict and "  lua_shared_dict truto_rate 1m;\n" or "") .. SERVER,
  }
  started[#started + 1] = n
  return n.port, n.prefix
end

-- Runs the GET requests `urls` all at once (curl, in the background); returns their bodies.
local function concurrently(urls)
  local dir = shell("mktemp -d /tmp/truto-rate-out.XXXXXX"):gsub("%s+$", "")
  local cmd = {}
  for i, url in ipairs(urls) do
    cmd[#cmd + 1] = ("curl -s -m 120 -o %s/%d %s &"):format(dir, i, quote(url))
  end
  cmd[#cmd + 1] = "wait"
  shell(table.concat(cmd, "\n"))
  local bodies = {}
  for i = 1, #urls do bodies[i] = read_file(dir .. "/" .. i):gsub("%s+$", "") end
  os.execute("rm -rf " .. quote(dir))
  return bodies
end

-- The largest number of logged requests that arrived within any `per` seconds.
local function max_in_window(entries, per)
  local times = {}
  for _, e in ipairs(entries) do times[#times + 1] = e.time end
  table.sort(times)
  local best, j = 0, 1
  for i = 1, #times do
    while times[i] - times[j] >= per do j = j + 1 end
    best = math.max(best, i - j + 1)
  end
  return best, times
end

-- The largest number of logged requests in one of the mock's windows (floor(time / per): the
-- windows its limits count in, like Truto's). Arrival times carry the network's jitter (a
-- start kept `per` after another can arrive a little less than `per` later), which the mock's
-- windows see only across a window's edge; the sliding measure above sees it everywhere.
local function max_per_mock_window(entries, per)
  local counts, best = {}, 0
  for _, e in ipairs(entries) do
    local w = math.floor(e.time / per)
    counts[w] = (counts[w] or 0) + 1
    best = math.max(best, counts[w])
  end
  return best
end

-- The end of an nginx's error log, to show with a failed assertion.
local function errors_of(prefix)
  local text = read_file(prefix .. "/error.log")
  return text:sub(-3000)
end

local function repeated(value, n)
  local out = {}
  for i = 1, n do out[i] = value end
  return out
end

-- Starts a redis-server on a free 127.0.0.1 port, stopped by its PID when the test ends.
local function start_redis()
  local port, stop = nginx.redis()
  finally(stop)
  return port
end

-- Runs `callers` concurrent /acquire calls of n acquires each on the given ports (round robin);
-- returns the stores the limiters used (set of names) and every start time, sorted.
local function acquire_all(ports, callers, n, query)
  local urls = {}
  for i = 1, callers do
    urls[i] = ("http://127.0.0.1:%d/acquire?n=%d&%s"):format(ports[(i - 1) % #ports + 1], n, query)
  end
  local stores, times, debug = {}, {}, {}
  for _, body in ipairs(concurrently(urls)) do
    local first = true
    for line in body:gmatch("[^\n]+") do
      if first then
        stores[line] = true
      elseif line:find("^debug: ") then
        debug[#debug + 1] = line:sub(8)
      else
        times[#times + 1] = tonumber(line)
      end
      first = false
    end
  end
  table.sort(times)
  return stores, times, debug
end

local function most_within(times, per)
  local best, j = 0, 1
  for i = 1, #times do
    while times[i] - times[j] >= per do j = j + 1 end
    best = math.max(best, i - j + 1)
  end
  return best
end

describe("rate budgets inside nginx", function()
  setup(function()
    mock.start()
    nginx.build()
  end)

  teardown(function()
    for _, n in ipairs(started) do n:stop() end
    mock.reset()
  end)

  before_each(function()
    mock.reset()
  end)

  describe("the limiter alone (no client, no transport)", function()
    it("keeps 4 workers with lua_shared_dict truto_rate inside one budget, and 4 without it do not", function()
      local shared = start_nginx(4, true)
      local stores, times = acquire_all({ shared }, 8, 10, "requests=20&per=1")
      assert.same({ truto_rate = true }, stores)
      assert.equal(80, #times)
      assert.is_true(most_within(times, 1) <= 20, most_within(times, 1))
      assert.is_true(times[#times] - times[1] >= 3, times[#times] - times[1]) -- 80 at 20 per second
      -- the same without the dict: each worker has a budget of its own
      local apart = start_nginx(4, false)
      stores, times = acquire_all({ apart }, 8, 10, "requests=20&per=1")
      assert.same({ process = true }, stores)
      assert.is_true(most_within(times, 1) > 20, most_within(times, 1))
    end)

    it("keeps to the budget of the worker, and says so, when Redis cannot be reached", function()
      local port = start_nginx(1, false)
      local closed = free_port()
      local stores, times, debug = acquire_all({ port }, 1, 30, "requests=10&per=1&debug=1&redis=" .. closed)
      assert.same({ store = true }, stores)
      assert.equal(30, #times)
      assert.is_true(most_within(times, 1) <= 10, most_within(times, 1))
      assert.is_true(times[#times] - times[1] >= 2, times[#times] - times[1])
      assert.equal("rate limit: rate_limit.store failed (redis: connection refused); "
        .. "this request keeps to the budget of this process", debug[1])
    end)

    it("keeps two nginx instances inside one budget through truto.rate.redis", function()
      local redis_port = start_redis()
      local a = start_nginx(2, false)
      local b = start_nginx(2, false)
      local stores, times = acquire_all({ a, b }, 8, 10, "requests=20&per=1&redis=" .. redis_port)
      assert.same({ store = true }, stores)
      assert.equal(80, #times)
      assert.is_true(most_within(times, 1) <= 20, most_within(times, 1))
      assert.is_true(times[#times] - times[1] >= 3, times[#times] - times[1])
    end)

    it("keep a budget of 1e6 per minute in the same few hundred bytes, in the shared dict and in Redis", function()
      local redis_port = start_redis()
      local port = start_nginx(1, true)
      for _, store in ipairs { "", "&redis=" .. redis_port } do
        local sizes = {}
        for _, n in ipairs { 100, 5000 } do
          local body = concurrently { ("http://127.0.0.1:%d/size?requests=1000000&per=60&n=%d&tag=%d%s")
            :format(port, n, n, store) }
          sizes[#sizes + 1] = tonumber(body[1])
        end
        -- at most 16 groups of "microseconds:count" (a ring of start times was 20 bytes a start)
        assert.is_true(sizes[1] > 0 and sizes[1] <= 600, store .. ": " .. tostring(sizes[1]))
        assert.is_true(sizes[2] > 0 and sizes[2] <= 600, store .. ": " .. tostring(sizes[2]))
      end
    end)

    it("give the place of an interrupted reservation to the next caller, in the shared dict and in Redis", function()
      local redis_port = start_redis()
      local port = start_nginx(1, true)
      for i, store in ipairs { "", "&redis=" .. redis_port } do
        local body = concurrently { ("http://127.0.0.1:%d/abandon?requests=1&per=10&tag=%d%s"):format(port, i, store) }
        -- the third waits for the interrupted one's place, 10 s (+ the 50 ms margin) after the first,
        -- less what passed since: not 20 s
        local first, kind, third = body[1]:match("^(%S+) (%S+) (%S+)$")
        assert.same({ "0.00", "interrupted" }, { first, kind }, body[1] .. store)
        assert.is_true(tonumber(third) > 9.5 and tonumber(third) <= 10.05, body[1] .. store)
      end
    end)

    it("share what the answers taught through Redis: an account spent on one nginx waits on another", function()
      local redis_port = start_redis()
      local a, prefix_a = start_nginx(1, false)
      local b, prefix_b = start_nginx(1, false)
      local q = "tag=1&redis=" .. redis_port
      assert.same({ "0.0 nil" }, concurrently { ("http://127.0.0.1:%d/hints?learn=1&%s"):format(a, q) },
        errors_of(prefix_a))
      local body = concurrently { ("http://127.0.0.1:%d/hints?%s"):format(b, q) }
      local wait, why = body[1]:match("^(%S+) (%S+)$")
      assert.equal("ratelimit-reset", why, body[1] .. errors_of(prefix_b))
      assert.is_true(tonumber(wait) > 4 and tonumber(wait) <= 5, body[1])
      -- an account nothing was said of: its first request goes at once
      body = concurrently { ("http://127.0.0.1:%d/hints?tag=2&redis=%d"):format(b, redis_port) }
      assert.same({ "0.0 nil" }, body)
    end)
  end)

  it("spread 20 ngx threads on one client evenly: 5 at 0, 2, 4 and 6 s with { requests = 5, per = 2 }", function()
    local port, prefix = start_nginx(1, false)
    mock.limits { token = { requests = 5, per = 2 } }
    local t0 = socket.gettime()
    local body = concurrently { ("http://127.0.0.1:%d/threads?requests=5&per=2"):format(port) }
    local elapsed = socket.gettime() - t0
    assert.same({ "20" }, body, errors_of(prefix))
    local entries = mock.requests()
    local most, times = max_in_window(entries, 2)
    assert.equal(20, #times)
    assert.equal(5, most)
    -- four groups of five, each 2 s (+ the 50 ms margin) after the one before
    for g = 1, 3 do
      local gap = times[g * 5 + 1] - times[g * 5 - 4]
      assert.is_true(gap >= 2 and gap < 2.6, "group " .. g .. ": " .. gap)
      assert.is_true(times[g * 5 + 5] - times[g * 5 + 1] < 0.5, "group " .. g .. " spread")
    end
    assert.is_true(elapsed >= 6, elapsed)
    assert.equal(0, mock.rate().throttled)
  end)

  it("share one budget between 4 workers through lua_shared_dict truto_rate: 40 listings, zero 429s", function()
    local port, prefix = start_nginx(4, true)
    mock.limits { token = { requests = 20, per = 1 } }
    local urls = {}
    for i = 1, 40 do
      urls[i] = ("http://127.0.0.1:%d/list?requests=20&per=1&account=acct-small&limit=20"):format(port)
    end
    local t0 = socket.gettime()
    local bodies = concurrently(urls)
    local elapsed = socket.gettime() - t0
    assert.same(repeated("40", 40), bodies, errors_of(prefix))
    local entries = mock.requests()
    local sliding, times = max_in_window(entries, 1)
    assert.equal(80, #times)
    local most = max_per_mock_window(entries, 1)
    assert.is_true(most <= 20, most)
    assert.equal(0, mock.rate().throttled)
    assert.is_true(elapsed >= 3, elapsed) -- 80 requests at 20 per second
    print(string.format("\n  4 workers, shared dict: 80 requests in %.2f s, at most %d in a mock window (%d in any 1 s), "
      .. "0 429s", elapsed, most, sliding))
  end)

  it("keep two nginx instances inside one budget through a Redis store", function()
    local redis_port = start_redis()
    local a, prefix_a = start_nginx(2, false)
    local b, prefix_b = start_nginx(2, false)
    mock.limits { token = { requests = 10, per = 1 } }
    local urls = {}
    for i = 1, 20 do
      urls[i] = ("http://127.0.0.1:%d/list?requests=10&per=1&account=acct-small&limit=20&redis=%d")
        :format(i % 2 == 0 and a or b, redis_port)
    end
    local t0 = socket.gettime()
    local bodies = concurrently(urls)
    local elapsed = socket.gettime() - t0
    assert.same(repeated("40", 20), bodies, errors_of(prefix_a) .. errors_of(prefix_b))
    local entries = mock.requests()
    local sliding, times = max_in_window(entries, 1)
    assert.equal(40, #times)
    local most = max_per_mock_window(entries, 1)
    assert.is_true(most <= 10, most)
    assert.equal(0, mock.rate().throttled)
    assert.is_true(elapsed >= 3, elapsed) -- 40 requests at 10 per second
    print(string.format("\n  2 nginx, 1 Redis budget: 40 requests in %.2f s, at most %d in a mock window (%d in any 1 s), "
      .. "0 429s", elapsed, most, sliding))
  end)
end)
