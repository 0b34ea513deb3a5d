-- Iterators walk every page exactly once, in order, and stop at the end.
local h = require "spec.helpers.client"
local compat = require "spec.helpers.compat"
local mock = h.mock

local function escape(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function ids(items)
  local out = {}
  for i, item in ipairs(items) do out[i] = item.id end
  return out
end

local function range(prefix, from, to, width)
  local out = {}
  for i = from, to do out[#out + 1] = prefix .. string.format("%0" .. width .. "d", i) end
  return out
end

describe("client:users", function()
  local client
  setup(function() client = h.client() end)
  before_each(function() mock.reset() end)

  it("yields every user of every page, in order, with no duplicates or gaps", function()
    local users = h.collect(client:users { integrated_account_id = "acct-small" })
    assert.same(range("u", 1, 40, 3), ids(users))
    local log = mock.requests()
    assert.equal(4, #log)
    assert.equal("integrated_account_id=acct-small", log[1].raw_query)
    for i, req in ipairs(log) do
      assert.equal("GET", req.method)
      assert.equal("/unified/user-directory/users", req.path)
      if i > 1 then assert.is_string(req.args.next_cursor) end
    end
  end)

  it("asks for each page with the previous page's cursor", function()
    local cursors = {}
    for page in client:pages("user-directory", "users", { integrated_account_id = "acct-small", limit = 15 }) do
      cursors[#cursors + 1] = page.next_cursor
    end
    assert.equal(3, #cursors)
    assert.equal(require("cjson").null, cursors[3])
    local log = mock.requests()
    assert.equal(3, #log)
    assert.equal("integrated_account_id=acct-small&limit=15", log[1].raw_query)
    assert.equal(cursors[1], log[2].args.next_cursor)
    assert.equal(cursors[2], log[3].args.next_cursor)
    assert.equal("integrated_account_id=acct-small&limit=15&next_cursor=" .. escape(cursors[1]), log[2].raw_query)
  end)

  it("keeps going past an empty page that carries a cursor", function()
    local users = h.collect(client:users { integrated_account_id = "acct-empty-page" })
    assert.equal(25, #users)
    assert.equal(4, #mock.requests())
  end)

  it("ends on an empty-string cursor and on a missing one", function()
    local users = h.collect(client:users { integrated_account_id = "acct-nulls" })
    assert.is_true(#users > 0)
    local groups = h.collect(client:groups { integrated_account_id = "acct-nulls" })
    assert.is_true(#groups > 0)
  end)

  it("raises a loop error when a cursor repeats", function()
    local seen = 0
    local err = h.raised(function()
      for _ in client:users { integrated_account_id = "acct-loop" } do seen = seen + 1 end
    end)
    assert.is_true(require("truto").is_error(err))
    assert.equal("loop", err.kind)
    assert.equal("next_cursor repeats a cursor already seen: the remote side is looping", err.message)
    assert.equal(3, #mock.requests())
    assert.is_true(seen > 0)
  end)

  it("passes filters through and sorts the query", function()
    local users = h.collect(client:users { status = "active", integrated_account_id = "acct-small", limit = 100 })
    assert.is_true(#users > 0)
    for _, u in ipairs(users) do assert.equal("active", u.status) end
    assert.equal("integrated_account_id=acct-small&limit=100&status=active", mock.requests()[1].raw_query)
  end)

  it("yields item, key for truto_key_by answers", function()
    local items, keys = h.collect(client:users { integrated_account_id = "acct-small", truto_key_by = "id" })
    assert.equal(40, #items)
    for i, item in ipairs(items) do assert.equal(item.id, keys[i]) end
    assert.equal(1, #mock.requests())
  end)

  it("sends truto_exclude_fields as an array and honours it", function()
    local users = h.collect(client:users {
      integrated_account_id = "acct-small", truto_exclude_fields = { "emails", "remote_data" },
    })
    assert.equal(40, #users)
    for _, u in ipairs(users) do
      assert.is_nil(u.emails)
      assert.is_nil(u.remote_data)
    end
    assert.equal("integrated_account_id=acct-small&truto_exclude_fields%5B%5D=emails&truto_exclude_fields%5B%5D=remote_data",
      mock.requests()[1].raw_query)
  end)

  it("uses the client's default integrated_account_id", function()
    local c = h.client { integrated_account_id = "acct-small" }
    assert.equal(40, #h.collect(c:users()))
    assert.equal("integrated_account_id=acct-small", mock.requests()[1].raw_query)
  end)

  it("does not change the caller's params table", function()
    local params = { integrated_account_id = "acct-small", limit = 20 }
    h.collect(client:users(params))
    assert.same({ integrated_account_id = "acct-small", limit = 20 }, params)
  end)

  it("reads all 100,000 users of a large account", function()
    local n, last = 0, nil
    local fast = h.client { rate_limit = false } -- 1,000 pages would wait for the 500-per-10 s limit
    for user in fast:users { integrated_account_id = "acct-large" } do
      n = n + 1
      last = user.id
    end
    assert.equal(100000, n)
    assert.equal("L100000", last)
  end)
end)

describe("leaving a loop early", function()
  local client
  setup(function() client = h.client() end)
  before_each(function() mock.reset() end)

  it("closes the iterator on break and fetches nothing more", function()
    local iter, state, init, closer = client:users({ integrated_account_id = "acct-small" }, { prefetch = false })
    assert.equal(state, closer)
    for _ in iter, state, init, closer do break end -- luacheck: ignore 512
    if not compat.tbc then state:close() end
    assert.is_true(state.closed)
    assert.is_nil(state.items)
    assert.is_nil(iter(state))
    assert.equal(1, #mock.requests())
  end)

  it("closes the iterator when the loop body raises", function()
    local iter, state, init, closer = client:users { integrated_account_id = "acct-small" }
    pcall(function() for _ in iter, state, init, closer do error("boom") end end)
    if not compat.tbc then state:close() end
    assert.is_true(state.closed)
  end)

  it("can be closed explicitly", function()
    local iter, state = client:groups { integrated_account_id = "acct-small" }
    assert.is_table(iter(state))
    state:close()
    assert.is_nil(iter(state))
  end)
end)

describe("client:groups and client:list", function()
  local client
  setup(function() client = h.client() end)
  before_each(function() mock.reset() end)

  it("lists groups", function()
    local groups = h.collect(client:groups { integrated_account_id = "acct-small" })
    assert.same(range("g", 1, 6, 2), ids(groups))
    assert.equal("/unified/user-directory/groups", mock.requests()[1].path)
  end)

  it("lists any resource", function()
    local orgs = h.collect(client:list("user-directory", "organizations", { integrated_account_id = "acct-small" }))
    assert.same({ "org-1", "org-2", "org/with space:ü" }, ids(orgs))
    assert.equal("/unified/user-directory/organizations", mock.requests()[1].path)
  end)
end)
