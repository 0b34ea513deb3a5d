-- The on_request / on_response hooks and truto.metrics' collector outside nginx (issue 21
-- item 6): what each hook is told about each attempt, per client and per call, that a hook's
-- error never fails the call, that the options are checked at truto.new, the Prometheus text,
-- and examples/request_log.lua.
local helper = require "spec.helpers.client"
local run = require "spec.helpers.run"
local metrics = require "truto.metrics"
local truto = require "truto"

local mock = helper.mock

local function recorder()
  local seen = {}
  return seen, function(info) seen[#seen + 1] = { "request", info } end,
    function(info) seen[#seen + 1] = { "response", info } end
end

describe("on_request / on_response", function()
  before_each(function() mock.reset() end)

  it("are told of each attempt, before and after, with its account, status and time", function()
    local seen, on_request, on_response = recorder()
    local client = helper.client { on_request = on_request, on_response = on_response, max_retries = 0 }
    local org = assert(client:get_organization("org-1", { integrated_account_id = "acct-small" }))
    assert.are.equal("org-1", org.id)
    assert.are.equal(2, #seen)
    local req, resp = seen[1][2], seen[2][2]
    assert.are.same({ "request", "response" }, { seen[1][1], seen[2][1] })
    local url = mock.start().url .. "/unified/user-directory/organizations/org-1?integrated_account_id=acct-small"
    assert.are.same({ method = "GET", url = url, account = "acct-small", attempt = 1, held = 0 }, req)
    assert.are.equal("GET", resp.method)
    assert.are.equal(url, resp.url)
    assert.are.equal("acct-small", resp.account)
    assert.are.equal(1, resp.attempt)
    assert.are.equal(200, resp.status)
    assert.is_nil(resp.kind)
    assert.are.equal("99999", resp.headers["ratelimit-remaining"])
    assert.is_true(resp.seconds >= 0 and resp.seconds < 30)
  end)

  it("see every retry (429 then 200) with its attempt number", function()
    local seen, on_request, on_response = recorder()
    local client = helper.client { on_request = on_request, on_response = on_response, max_retries = 2,
      sleep = function() end, rate_limit = false, max_retry_wait = 120 }
    mock.limits { token = { requests = 1, per = 60 } }
    assert(helper.client { rate_limit = false }:get_organization("org-1", { integrated_account_id = "acct-small" })) -- spends it
    local _, err = client:get_organization("org-1", { integrated_account_id = "acct-small" })
    assert.are.equal(429, err.status)
    local got = {}
    for _, s in ipairs(seen) do got[#got + 1] = s[1] .. " " .. s[2].attempt .. " " .. tostring(s[2].status) end
    assert.are.same({ "request 1 nil", "response 1 429", "request 2 nil", "response 2 429", "request 3 nil",
      "response 3 429" }, got)
    assert.are.equal(4, #mock.requests())
  end)

  it("of a call replace the client's for that call", function()
    local client_seen, client_req = recorder()
    local call_seen, call_req = recorder()
    local client = helper.client { on_request = client_req }
    assert(client:get_organization("org-1", { integrated_account_id = "acct-small" }, { on_request = call_req }))
    assert.are.equal(0, #client_seen)
    assert.are.equal(1, #call_seen)
    assert(client:get_organization("org-1", { integrated_account_id = "acct-small" }))
    assert.are.equal(1, #client_seen)
  end)

  it("report a transport failure by its kind", function()
    local seen, on_request, on_response = recorder()
    local port = run.free_port()
    local client = truto.new { token = "test-token", base_url = "http://127.0.0.1:" .. port, max_retries = 0,
      on_request = on_request, on_response = on_response }
    local _, err = client:get_organization("org-1", { integrated_account_id = "acct-small" })
    assert.are.equal("transport", err.kind)
    assert.are.equal("response", seen[2][1])
    assert.is_nil(seen[2][2].status)
    assert.are.equal("transport", seen[2][2].kind)
    assert.are.equal(err.message, seen[2][2].message)
  end)

  it("that raise do not fail the call; debug says so", function()
    local said = {}
    local client = helper.client { on_request = function() error("boom") end,
      on_response = function() error({}) end, debug = function(s) said[#said + 1] = s end }
    local org = assert(client:get_organization("org-1", { integrated_account_id = "acct-small" }))
    assert.are.equal("org-1", org.id)
    local found = {}
    for _, s in ipairs(said) do
      if s:find("^truto: the on_request hook raised: .*boom") then found.request = true end
      if s:find("^truto: the on_response hook raised: ") then found.response = true end
    end
    assert.are.same({ request = true, response = true }, found)
  end)

  it("are checked by truto.new and by a call", function()
    local err = helper.raised(truto.new, { token = "t", on_request = 5 })
    assert.are.equal("option 'on_request': function expected, got 5",
      require("truto.options").misuse_message(err))
    err = helper.raised(truto.new, { token = "t", on_response = "x" })
    assert.are.equal("option 'on_response': function expected, got string",
      require("truto.options").misuse_message(err))
    local client = helper.client {}
    err = helper.raised(client.get_organization, client, "org-1", { integrated_account_id = "acct-small" },
      { on_response = true })
    assert.are.equal("option 'on_response': function expected, got boolean",
      require("truto.options").misuse_message(err))
  end)
end)

describe("truto.metrics.collector", function()
  before_each(function() mock.reset() end)

  it("counts a listing in a Lua table and renders Prometheus text", function()
    local c = metrics.collector()
    local client = helper.client { on_request = c.on_request, on_response = c.on_response }
    local n = 0
    for _ in client:users { integrated_account_id = "acct-small" } do n = n + 1 end
    assert.are.equal(40, n)
    local text = c:text()
    assert.truthy(text:find('\ntruto_requests_total{account="acct-small",class="2xx"} 4\n', 1, true))
    assert.truthy(text:find('\ntruto_attempts_total{account="acct-small"} 4\n', 1, true))
    assert.truthy(text:find('\ntruto_request_duration_seconds_count 4\n', 1, true))
    assert.truthy(text:find('\ntruto_request_duration_seconds_bucket{le="+Inf"} 4\n', 1, true))
    assert.truthy(text:find('\ntruto_ratelimit_remaining{account="acct-small"} 99996\n', 1, true))
    assert.truthy(text:find("# TYPE truto_request_duration_seconds histogram\n", 1, true))
    assert.is_nil(text:find("truto_retries_total{", 1, true))
  end)

  it("escapes an account id in a label", function()
    local c = metrics.collector()
    c.on_request { method = "GET", url = "u", account = 'a"b\\c\nd', attempt = 2, held = 0.5 }
    local text = c:text()
    assert.truthy(text:find('\ntruto_retries_total{account="a\\"b\\\\c\\nd"} 1\n', 1, true))
    assert.truthy(text:find('\ntruto_rate_limit_hold_seconds_total{account="a\\"b\\\\c\\nd"} 0.5\n', 1, true))
  end)

  it("needs a declared lua_shared_dict for shared_dict", function()
    assert.has_error(function() metrics.collector { shared_dict = "truto_metrics" } end)
  end)
end)

describe("examples/request_log.lua", function()
  it("logs each attempt and prints the counters", function()
    local m = mock.start()
    mock.reset()
    local out, ok = run.sh(("cd %s && TRUTO_API_TOKEN=%s TRUTO_BASE_URL=%s TRUTO_ACCOUNT=acct-small "
      .. "LUA_PATH='build/?.lua;;' LUA_CPATH='build/?.so;;' lua5.4 examples/request_log.lua")
      :format(run.quote(run.ROOT), m.token, m.url))
    assert.is_true(ok, out)
    out = out:gsub(" in %d+ ms ", " in N ms ")
    local line = "GET /unified/user-directory/users attempt 1 -> 200 in N ms (remaining %d)\n"
    assert.are.equal(line:format(99999) .. line:format(99998) .. line:format(99997) .. line:format(99996)
      .. 'users: 40\ntruto_requests_total{account="acct-small",class="2xx"} 4\n'
      .. 'truto_attempts_total{account="acct-small"} 4\n', out)
  end)
end)
