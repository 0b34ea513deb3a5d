-- Retries: which failures are retried, how long we wait, what is resent.
-- Waits go through an injected sleep that records them instead of sleeping.
local h = require "spec.helpers.client"
local truto = require "truto"
local mock = h.mock

local ACCOUNT = "acct-small"

local function recording_client(opts)
  local waits, retries = {}, {}
  local o = {
    sleep = function(s) waits[#waits + 1] = s end,
    on_retry = function(info) retries[#retries + 1] = info end,
    timeout = 1,
  }
  for k, v in pairs(opts or {}) do o[k] = v end
  return h.client(o), waits, retries
end

local function get(client, account, opts)
  return client:get_organization("org-1", { integrated_account_id = account }, opts)
end

describe("retries", function()
  before_each(function() mock.reset() end)

  for _, fault in ipairs { "500", "502", "504", "close", "truncated" } do
    it("recover from " .. fault .. " with jittered exponential backoff", function()
      local client, waits, retries = recording_client()
      local org, err = get(client, "flaky-" .. fault .. "-2")
      assert.is_nil(err)
      assert.equal("org-1", org.id)
      assert.equal(3, #mock.requests())
      assert.equal(1, retries[1].attempt)
      assert.equal(2, retries[2].attempt)
      if fault == "close" and retries[1].wait == 0 then
        -- the first request went on a kept-alive connection that the
        -- server dropped: libcurl sent it again on a new one at once, and
        -- that send is an attempt the caller sees, without a wait
        assert.same({ retries[2].wait }, waits)
        assert.is_true(waits[1] >= 0 and waits[1] <= 1.0)
      else
        assert.equal(2, #waits)
        assert.is_true(waits[1] >= 0 and waits[1] <= 0.5)
        assert.is_true(waits[2] >= 0 and waits[2] <= 1.0)
      end
    end)
  end

  it("wait what a 429 names in Retry-After", function()
    local client, waits, retries = recording_client()
    assert(get(client, "flaky-429-1"))
    assert.same({ 1 }, waits)
    assert.equal(429, retries[1].status)
    assert.equal(2, #mock.requests())
  end)

  it("give up after max_retries and say how many attempts were made", function()
    local client, waits = recording_client()
    local _, err = get(client, "fault-500")
    assert.equal(500, err.status)
    assert.equal(4, err.attempts)
    assert.equal(3, #waits)
    assert.equal(4, #mock.requests())
  end)

  it("can be turned off per client and per call", function()
    local client, waits = recording_client { max_retries = 0 }
    local _, err = get(client, "fault-500")
    assert.equal(1, err.attempts)
    assert.same({}, waits)
    mock.reset()
    local c2, w2 = recording_client()
    local _, err2 = get(c2, "fault-500", { max_retries = 1 })
    assert.equal(2, err2.attempts)
    assert.equal(1, #w2)
  end)

  it("return a 429 at once when its wait is longer than max_retry_wait", function()
    local client, waits = recording_client { max_retry_wait = 0.5 }
    local _, err = get(client, "fault-429")
    assert.equal(429, err.status)
    assert.equal(1, err.retry_after)
    assert.equal(1, err.attempts)
    assert.same({}, waits)
  end)

  for _, status in ipairs { 400, 401, 404, 503 } do
    it("never retry " .. status, function()
      local client, waits = recording_client()
      local account = ({ [400] = nil, [401] = "fault-remote", [404] = "no-such-account", [503] = "fault-503" })[status]
      local _, err
      if status == 400 then
        local res = assert(client:request { path = "/unified/user-directory/users" })
        assert.equal(400, res.status)
      else
        _, err = get(client, account)
        assert.equal(status, err.status)
      end
      assert.same({}, waits)
      assert.equal(1, #mock.requests())
    end)
  end

  it("let retry_statuses replace the list", function()
    local client, waits = recording_client { retry_statuses = { 503 } }
    local _, err = get(client, "fault-503")
    assert.equal(4, err.attempts)
    mock.reset()
    local _, err500 = get(client, "fault-500")
    assert.equal(1, err500.attempts)
    assert.equal(3, #waits)
  end)

  it("do not resend a PATCH that may have taken effect, without an Idempotency-Key", function()
    local client, waits = recording_client()
    local _, err = client:update_organization("org-1", { name = "x" }, { integrated_account_id = "fault-500" },
      { idempotency_key = false })
    assert.equal(500, err.status)
    assert.equal(1, #mock.requests())
    assert.same({}, waits)
  end)

  it("resend a PATCH with its Idempotency-Key, the same on every attempt", function()
    local client = recording_client()
    local org = assert(client:update_organization("org-1", { name = "y" },
      { integrated_account_id = "flaky-500-2" }, { idempotency_key = "key-1" }))
    assert.equal("y", org.name)
    local log = mock.requests()
    assert.equal(3, #log)
    for _, req in ipairs(log) do
      assert.equal("key-1", req.headers["idempotency-key"])
      assert.equal('{"name":"y"}', req.body)
    end
  end)

  it("give every POST and PATCH a generated key, the same on each attempt, and resend it", function()
    local client = recording_client()
    local user = assert(client:create("user-directory", "users", { name = "n" },
      { integrated_account_id = "flaky-500-2" }))
    assert.is_table(user)
    local log = mock.requests()
    assert.equal(3, #log)
    local key = log[1].headers["idempotency-key"]
    assert.matches("^%x+$", key)
    assert.equal(32, #key)
    for _, req in ipairs(log) do
      assert.equal("POST", req.method)
      assert.equal(key, req.headers["idempotency-key"])
    end
    mock.reset()
    assert(client:create("user-directory", "users", { name = "n" }, { integrated_account_id = "acct-small" }))
    assert.are_not.equal(key, mock.last().headers["idempotency-key"])
  end)

  it("refuse an empty or blank Idempotency-Key", function()
    local client = h.client()
    for _, key in ipairs { "", " ", "\t" } do
      local ok, err = pcall(client.create, client, "user-directory", "users", {}, { integrated_account_id = "a" },
        { idempotency_key = key })
      assert.is_false(ok)
      assert.is_string(err) -- as luaL_argerror raises it
      assert.matches("option 'idempotency_key'", tostring(err))
    end
    assert.equal(0, #mock.requests())
  end)

  it("resend a POST whose connection was refused", function()
    local waits = {}
    local client = truto.new { token = "t", base_url = "http://127.0.0.1:9", sleep = function(s) waits[#waits + 1] = s end }
    local _, err = client:create("user-directory", "users", { name = "n" }, { integrated_account_id = "a" })
    assert.equal("transport", err.kind)
    assert.equal(4, err.attempts)
    assert.equal(3, #waits)
  end)

  it("resume an iterator at the same cursor: no page skipped or read twice", function()
    -- the account fails its first two requests, then pages like acct-small
    local client = recording_client()
    local ids = {}
    for user in client:users { integrated_account_id = "flaky-500-2", limit = 10 } do ids[#ids + 1] = user.id end
    assert.equal(40, #ids)
    assert.equal("u001", ids[1])
    assert.equal("u040", ids[40])
    local log = mock.requests()
    assert.equal(6, #log)
    assert.equal(log[1].raw_query, log[3].raw_query)
  end)

  it("reject unknown call options", function()
    local client = h.client()
    local ok, err = pcall(get, client, ACCOUNT, { retries = 1 })
    assert.is_false(ok)
    assert.matches([[bad argument #3 to 'get_organization' %(unknown option "retries"%)]], tostring(err))
  end)
end)
