-- Process hygiene: fork, dead peers, callbacks that raise, size and speed limits.
local h = require "spec.helpers.client"
local posix = require "testposix"
local mock = h.mock

local PARAMS = { integrated_account_id = "acct-small" }

describe("a forked child", function()
  before_each(function() mock.reset() end)

  it("opens its own connection and leaves the parent's alone", function()
    local client = h.client { max_retries = 0 }
    assert(client:get_organization("org-1", PARAMS))
    local pid = posix.fork()
    if pid == 0 then
      local ok = pcall(function() assert(client:get_organization("org-1", PARAMS)) end)
      posix._exit(ok and 0 or 1)
    end
    assert.equal(0, posix.wait(pid))
    assert(client:get_organization("org-1", PARAMS))
    local log = mock.requests()
    assert.equal(3, #log)
    assert.are_not.equal(log[1].connection, log[2].connection) -- the child's own
    assert.equal(log[1].connection, log[3].connection)         -- the parent's, still alive
  end)
end)

describe("a forked child with a page read ahead by its parent", function()
  before_each(function() mock.reset() end)

  it("reads its own copy, and the parent still gets its page", function()
    local client = h.client { max_retries = 1, sleep = function() end, timeout = 5 }
    local params = { integrated_account_id = "acct-small@300", limit = 10 }
    local iter, state = client:users(params)
    assert.equal("u001", iter(state).id) -- page 2 is now in flight, 300 ms late
    local pid = posix.fork()
    if pid == 0 then
      local ok, n = pcall(function()
        local count = 1
        for _ in iter, state do count = count + 1 end
        return count
      end)
      posix._exit(ok and n == 40 and 0 or 1)
    end
    assert.equal(0, posix.wait(pid))
    local count, t0 = 1, os.time()
    for _ in iter, state do count = count + 1 end
    assert.equal(40, count)
    assert.is_true(os.time() - t0 <= 3) -- not after a timeout
    -- parent: 4 pages; child: pages 2, 3 and 4 again on its own connection
    local log = mock.requests()
    assert.equal(7, #log)
  end)
end)

describe("a peer that hangs up", function()
  it("while we send a large body gives an error, not a SIGPIPE", function()
    local client = h.client { max_retries = 0 }
    local big = string.rep("x", 16 * 1024 * 1024)
    local res, err = client:create("user-directory", "users", { blob = big }, { integrated_account_id = "fault-close" })
    assert.is_nil(res)
    assert.is_true(err.kind == "transport" or err.kind == "http")
    assert(client:get_organization("org-1", PARAMS)) -- and the client still works
  end)
end)

describe("callbacks", function()
  it("an on_retry that raises propagates a Lua error and leaves the client usable", function()
    local client = h.client { sleep = function() end, on_retry = function() error("stop here") end }
    local ok, err = pcall(client.get_organization, client, "org-1", { integrated_account_id = "fault-500" })
    assert.is_false(ok)
    assert.matches("stop here", err)
    assert(client:get_organization("org-1", PARAMS))
  end)
end)

describe("limits", function()
  it("cut off a body larger than max_body with a clear error", function()
    local client = h.client { max_body = 200, max_retries = 0 }
    local org, err = client:get("user-directory", "users", "u001", PARAMS)
    assert.is_nil(org)
    assert.equal("transport", err.kind)
    assert.equal("response body larger than max_body (200 bytes)", err.message)
  end)

  it("abort a server that sends too slowly (low_speed_limit / low_speed_time)", function()
    local client = h.client { low_speed_limit = 100, low_speed_time = 1, max_retries = 0 }
    local t0 = os.time()
    local org, err = client:get_organization("org-1", { integrated_account_id = "fault-slow" })
    assert.is_nil(org)
    assert.equal("timeout", err.kind)
    assert.matches("too slow", err.message)
    assert.is_true(os.time() - t0 <= 3)
  end)

  it("time out a whole attempt after timeout seconds, per client or per call", function()
    local client = h.client { max_retries = 0 }
    local _, err = client:get_organization("org-1", { integrated_account_id = "fault-slow" }, { timeout = 0.5 })
    assert.equal("timeout", err.kind)
  end)
end)
