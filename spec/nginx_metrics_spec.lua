-- lua-truto's metrics in a real nginx (LuaJIT build), issue 21 item 6: the on_request /
-- on_response hooks feed truto.metrics' collector, kept in a lua_shared_dict and served as
-- Prometheus text by truto.ngx.metrics(); after 100 listings against the mock under a small
-- rate limit (some 429s), its counts equal what the mock logged.
local http = require "socket.http"
local mock = require "spec.helpers.mock"
local nginx = require "spec.helpers.nginx"

local HANDLERS = [==[
local truto = require "truto"
local metrics = require "truto.metrics"
local M = {}
local collector, clients = nil, {}

-- One listing of acct-small, pages of 20; says how many users it gave. ?learn=1: the client
-- learns the budget from the ratelimit headers (and holds requests); else it does not (and
-- meets the 429s).
function M.list()
  collector = collector or metrics.collector { shared_dict = "truto_metrics" }
  local learn = ngx.var.arg_learn == "1"
  local client = clients[learn]
  if not client then
    local opts = { token = "test-token", base_url = "http://127.0.0.1:" .. ngx.var.arg_mock,
      max_retries = 10, on_request = collector.on_request, on_response = collector.on_response }
    if not learn then opts.rate_limit = false end
    client = truto.new(opts)
    clients[learn] = client
  end
  local n = 0
  for _ in client:users { integrated_account_id = "acct-small", limit = 20 } do n = n + 1 end
  ngx.say(n)
end

-- A call whose hooks raise: it still answers; error.log says what the hooks did.
function M.raising()
  local client = truto.new { token = "test-token", base_url = "http://127.0.0.1:" .. ngx.var.arg_mock,
    on_request = function() error("request hook broke") end, on_response = function() error("response hook broke") end }
  local org, err = client:get_organization("org-1", { integrated_account_id = "acct-small" })
  ngx.say(org and org.id or tostring(err))
end

return M
]==]

local HTTP = [[
  lua_shared_dict truto_metrics 1m;
  lua_shared_dict truto_rate 1m;
  server {
    listen 127.0.0.1:${port};
    location = /list { content_by_lua_block { require("handlers").list() } }
    location = /raising { content_by_lua_block { require("handlers").raising() } }
    location = /metrics { content_by_lua_block { require("truto.ngx").metrics() } }
  }
]]

-- The samples of Prometheus text: "name{labels}" -> number.
local function samples(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, 1) ~= "#" then
      local key, value = line:match("^(%S+) (%S+)$")
      assert(key, "not a sample line: " .. line)
      out[key] = tonumber(value)
    end
  end
  return out
end

describe("truto.ngx.metrics (issue 21 item 6) #nginx", function()
  local m, n

  setup(function()
    m = mock.start()
    n = nginx.start { workers = 2, http = HTTP, files = { ["handlers.lua"] = HANDLERS } }
  end)

  teardown(function()
    if n then n:stop() end
    mock.reset()
  end)

  it("after 100 listings with 429s, counts what the mock logged", function()
    mock.reset()
    mock.limits { token = { requests = 40, per = 1 } }
    for i = 1, 100 do
      local body, code = http.request(n:url(("/list?mock=%d&learn=%d"):format(m.port, i > 50 and 1 or 0)))
      assert.are.equal(200, code, body)
      assert.are.equal("40\n", body)
    end
    local text, code, headers = http.request(n:url("/metrics"))
    assert.are.equal(200, code)
    assert.are.equal("text/plain; version=0.0.4; charset=utf-8", headers["content-type"])
    local got = samples(text)

    local sent = 0
    for _, r in ipairs(mock.requests()) do
      if r.path == "/unified/user-directory/users" then sent = sent + 1 end
    end
    local throttled = mock.rate().throttled
    assert.is_true(throttled > 0, "the mock's limit caused no 429: " .. require("cjson").encode(mock.rate()) .. text)
    assert.are.equal(200, sent - throttled) -- 100 listings of 2 pages

    local A = '{account="acct-small"}'
    assert.are.equal(sent, got["truto_attempts_total" .. A])
    assert.are.equal(sent - throttled, got['truto_requests_total{account="acct-small",class="2xx"}'])
    assert.are.equal(throttled, got['truto_requests_total{account="acct-small",class="4xx"}'])
    assert.are.equal(throttled, got["truto_rate_limited_total" .. A])
    assert.are.equal(throttled, got["truto_retries_total" .. A])
    assert.are.equal(sent, got["truto_request_duration_seconds_count"])
    assert.are.equal(sent, got['truto_request_duration_seconds_bucket{le="+Inf"}'])
    assert.is_true(got['truto_request_duration_seconds_bucket{le="0.005"}'] <= sent)
    local remaining = got["truto_ratelimit_remaining" .. A]
    assert.is_true(remaining >= 0 and remaining < 40, tostring(remaining))
    -- holds: counted with their seconds, or neither
    local holds, held = got["truto_rate_limit_holds_total" .. A], got["truto_rate_limit_hold_seconds_total" .. A]
    assert.are.equal(holds == nil, held == nil)
    if holds then assert.is_true(held > 0 and holds > 0) end
    assert.is_nil(text:find("test-token", 1, true))
  end)

  it("a hook that raises does not fail the call; error.log says so at warn", function()
    local from = #n:log()
    local body, code = http.request(n:url("/raising?mock=" .. m.port))
    assert.are.equal(200, code)
    assert.are.equal("org-1\n", body)
    local log = n:log():sub(from + 1)
    assert.truthy(log:find("%[warn%].-truto: the on_request hook raised: [^\n]*request hook broke"), log)
    assert.truthy(log:find("%[warn%].-truto: the on_response hook raised: [^\n]*response hook broke"), log)
  end)
end)
