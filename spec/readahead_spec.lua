-- Read-ahead and many accounts at once (rate budgets: spec/rate_*_spec.lua).
-- Behaviour only: the speed itself is measured by `make bench`.
local h = require "spec.helpers.client"
local compat = require "spec.helpers.compat"
local core = require "truto.core"
local truto = require "truto"
local mock = h.mock

-- Waits (bounded) until the mock has logged n requests, letting the
-- client's transfers run meanwhile.
local function await_requests(client, n)
  local deadline = core.now() + 3
  while #mock.requests() < n and core.now() < deadline do
    require("truto.transport").pick(client._transports):pump()
    core.sleep(0.01)
  end
  return #mock.requests()
end

describe("read-ahead", function()
  before_each(function() mock.reset() end)

  it("asks for the next page while the caller works on the current one", function()
    local client = h.client()
    local iter, state = client:users { integrated_account_id = "acct-small" }
    assert.equal("u001", iter(state).id)
    assert.equal(2, await_requests(client, 2))
    local log = mock.requests()
    assert.is_string(log[2].args.next_cursor)
    local ids = { "u001" }
    for user in iter, state do ids[#ids + 1] = user.id end
    assert.equal(40, #ids)
    assert.equal("u040", ids[40])
    assert.equal(4, #mock.requests())
  end)

  it("is off with prefetch = false", function()
    local client = h.client { prefetch = false }
    local iter, state = client:users { integrated_account_id = "acct-small" }
    iter(state)
    core.sleep(0.2)
    assert.equal(1, #mock.requests())
    state:close()
  end)

  it("cancels the request in flight when the loop is left", function()
    local client = h.client()
    local iter, state, init, closer = client:users { integrated_account_id = "acct-small@300" }
    for _ in iter, state, init, closer do break end -- luacheck: ignore 512
    if not compat.tbc then state:close() end
    assert.is_true(state.closed)
    assert.is_nil(state.stream.pending)
    -- the client is free for other work at once
    local org = assert(client:get_organization("org-1", { integrated_account_id = "acct-small" }))
    assert.equal("org-1", org.id)
  end)

  it("raises a failure of the page read ahead only when that page is reached", function()
    for _, prefetch in ipairs { true, false } do
      mock.reset()
      local client = h.client { max_retries = 0, prefetch = prefetch }
      local seen = 0
      local ok, err = pcall(function()
        for _ in client:users { integrated_account_id = "acct-loop" } do seen = seen + 1 end
      end)
      assert.is_false(ok)
      assert.equal("loop", err.kind)
      assert.equal(20, seen) -- both pages before the looping one, with or without read-ahead
      assert.equal(3, #mock.requests())
    end
  end)
end)

describe("many accounts at once", function()
  before_each(function() mock.reset() end)

  it("yields item, account_id with each account's items in order", function()
    local client = h.client()
    local by_account = {}
    for user, account in client:users { integrated_account_id = { "acct-small", "acct-empty-page", "acct-nulls" } } do
      by_account[account] = by_account[account] or {}
      table.insert(by_account[account], user.id)
    end
    assert.equal(40, #by_account["acct-small"])
    assert.equal(25, #by_account["acct-empty-page"])
    assert.equal(40, #by_account["acct-nulls"])
    for _, ids in pairs(by_account) do
      for i, id in ipairs(ids) do assert.equal(string.format("u%03d", i), id) end
    end
    assert.equal(12, #mock.requests())
  end)

  it("keeps at most `concurrency` requests in flight", function()
    local accounts = {}
    for i = 1, 4 do accounts[i] = "acct-small@" .. (40 + i) end
    local function connections(concurrency)
      mock.reset()
      local client = h.client { concurrency = concurrency }
      local n = 0
      for _ in client:users { integrated_account_id = accounts } do n = n + 1 end
      assert.equal(160, n)
      local seen, count = {}, 0
      for _, req in ipairs(mock.requests()) do
        if not seen[req.connection] then seen[req.connection], count = true, count + 1 end
      end
      return count
    end
    assert.equal(1, connections(1))
    assert.is_true(connections(2) <= 2)
    assert.is_true(connections(4) >= 3)
  end)

  it("raises a failing account's error with account_id", function()
    local client = h.client { max_retries = 0 }
    local ok, err = pcall(function()
      for _ in client:users { integrated_account_id = { "acct-small", "fault-503" } } do end
    end)
    assert.is_false(ok)
    assert.is_true(truto.is_error(err))
    assert.equal(503, err.status)
    assert.equal("fault-503", err.account_id)
  end)

  it("collects failing accounts with on_error = 'skip'", function()
    local client = h.client { max_retries = 0 }
    local iter, state = client:users({ integrated_account_id = { "fault-404x", "acct-small", "fault-500" } },
      { on_error = "skip" })
    local n = 0
    for _, account in iter, state do
      assert.equal("acct-small", account)
      n = n + 1
    end
    assert.equal(40, n)
    assert.equal(2, #state.errors)
    local failed = {}
    for _, e in ipairs(state.errors) do failed[e.account_id] = e.error.status end
    assert.same({ ["fault-404x"] = 404, ["fault-500"] = 500 }, failed)
  end)

  it("refuses bad account lists before sending", function()
    local client = h.client()
    local function raises(expected, fn)
      local ok, err = pcall(fn)
      assert.is_false(ok)
      assert.equal(expected, (tostring(err):gsub("^[^:]*:%d+: ", "")))
    end
    raises("bad argument #1 to 'users' (integrated_account_id: a non-empty array of account ids expected)",
      function() client:users { integrated_account_id = {} } end)
    raises("bad argument #1 to 'users' (integrated_account_id[2]: string or integer id expected, got table)",
      function() client:users { integrated_account_id = { "a", {} } } end)
    raises("bad argument #3 to 'pages' (integrated_account_id: one account expected)",
      function() client:pages("user-directory", "users", { integrated_account_id = { "a" } }) end)
    assert.equal(0, #mock.requests())
  end)
end)
