-- max_pages and max_items: a list ends normally at either bound, asks for
-- no page past it, and the state says it was cut and where to resume.
local h = require "spec.helpers.client"
local mock = h.mock

local function ids(items)
  local out = {}
  for i, item in ipairs(items) do out[i] = item.id end
  return out
end

local function range(from, to)
  local out = {}
  for i = from, to do out[#out + 1] = string.format("u%03d", i) end
  return out
end

-- Runs a generic for over (step, state) and returns the items and the state.
local function run(step, state)
  local items = {}
  for item in step, state do items[#items + 1] = item end
  return items, state
end

describe("list bounds", function()
  local client
  setup(function() client = h.client() end)
  before_each(function() mock.reset() end)

  it("max_pages = 2 gives two pages' items, asks for two pages only, and resumes at the third", function()
    local items, state = run(client:users({ integrated_account_id = "acct-small" }, { max_pages = 2 }))
    assert.same(range(1, 20), ids(items))
    assert.equal(2, #mock.requests()) -- no read-ahead past the bound
    assert.is_true(state.cut)
    assert.equal(0, state.resume.skip)
    local next_cursor = state.resume.cursor
    assert.is_string(next_cursor)
    mock.reset()
    local rest = run(client:users { integrated_account_id = "acct-small", next_cursor = next_cursor })
    assert.same(range(21, 40), ids(rest))
  end)

  it("max_items inside a page stops there, sends no read-ahead, and resumes that page with a skip", function()
    local items, state = run(client:users({ integrated_account_id = "acct-small" }, { max_items = 13 }))
    assert.same(range(1, 13), ids(items))
    assert.equal(2, #mock.requests())
    assert.is_true(state.cut)
    assert.equal(3, state.resume.skip)
    assert.equal(mock.requests()[2].args.next_cursor, state.resume.cursor)
    local rest = run(client:users { integrated_account_id = "acct-small", next_cursor = state.resume.cursor })
    local after = {}
    for i = state.resume.skip + 1, #rest do after[#after + 1] = rest[i] end
    assert.same(range(14, 40), ids(after))
  end)

  it("max_items at a page's end asks for no further page and resumes with the next cursor", function()
    local items, state = run(client:users({ integrated_account_id = "acct-small" }, { max_items = 10 }))
    assert.same(range(1, 10), ids(items))
    assert.equal(1, #mock.requests())
    assert.is_true(state.cut)
    assert.same({ cursor = state.resume.cursor, skip = 0 }, state.resume)
    local rest = run(client:users { integrated_account_id = "acct-small", next_cursor = state.resume.cursor })
    assert.same(range(11, 40), ids(rest))
  end)

  it("a bound the list never reaches is not a cut", function()
    local items, state = run(client:users({ integrated_account_id = "acct-small" }, { max_items = 40, max_pages = 4 }))
    assert.equal(40, #items)
    assert.equal(4, #mock.requests())
    assert.is_nil(state.cut)
    assert.is_nil(state.resume)
  end)

  it("pages() honours max_pages", function()
    local pages = {}
    local step, state = client:pages("user-directory", "users", { integrated_account_id = "acct-small" },
      { max_pages = 3 })
    for page in step, state do pages[#pages + 1] = page end
    assert.equal(3, #pages)
    assert.equal(3, #mock.requests())
    assert.is_true(state.cut)
    assert.same({ cursor = pages[3].next_cursor, skip = 0 }, state.resume)
  end)

  it("refuses bad values, naming the option", function()
    for _, bad in ipairs { 0, -1, 1.5, "2", true } do
      local ok, err = pcall(client.users, client, { integrated_account_id = "acct-small" }, { max_pages = bad })
      assert.is_false(ok)
      assert.matches("option 'max_pages'", tostring(err), 1, true)
      ok, err = pcall(client.users, client, { integrated_account_id = "acct-small" }, { max_items = bad })
      assert.is_false(ok)
      assert.matches("option 'max_items'", tostring(err), 1, true)
    end
    local ok, err = pcall(client.pages, client, "user-directory", "users", { integrated_account_id = "acct-small" },
      { max_items = 5 })
    assert.is_false(ok)
    assert.matches("max_items", tostring(err), 1, true)
  end)

  it("many accounts: max_pages bounds each account, and the state resumes each", function()
    local seen = {}
    local step, state = client:users({ integrated_account_id = { "acct-small", "acct-1k-b" } }, { max_pages = 1 })
    for user, account in step, state do
      seen[account] = (seen[account] or 0) + 1
      assert.is_not_nil(user.id)
    end
    assert.equal(10, seen["acct-small"])
    assert.equal(2, #mock.requests())
    assert.is_true(state.cut)
    assert.equal(0, state.resume["acct-small"].skip)
    assert.is_string(state.resume["acct-small"].cursor)
  end)

  it("many accounts: max_items ends the listing with each account's resume point", function()
    local count = 0
    local step, state = client:users({ integrated_account_id = { "acct-small", "acct-small" } },
      { max_items = 5, prefetch = false, concurrency = 1 })
    for _ in step, state do count = count + 1 end
    assert.equal(5, count)
    assert.is_true(state.cut)
    assert.equal(5, state.resume["acct-small"].skip)
  end)
end)
