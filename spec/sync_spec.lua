-- client:sync against the mock whose data changes over time: created / updated / deleted,
-- groups, many accounts at once, incremental reads and their fallback, deletions only from
-- complete listings, and a state that advances only when the loop ends or commits.
local helper = require "spec.helpers.client"
local run = require "spec.helpers.run"
local sync_helper = require "spec.helpers.sync"
local truto = require "truto"
local sync = require "truto.sync"

local mock = helper.mock

local n = 0
-- A fresh account of a family (acct-sync-<tag>, acct-sync-nofilter-<tag>, ...) and a state path.
local function fresh(family)
  n = n + 1
  local tag = string.format("s%d%d", os.time() % 100000, n)
  return (family or "acct-sync-") .. tag, run.tmpdir() .. "/state.json"
end

local changes_of = sync_helper.changes_of

local summary = sync_helper.summary

local function requests_of(account)
  local out = {}
  for _, r in ipairs(mock.requests()) do
    if r.account == account then out[#out + 1] = r end
  end
  return out
end

local function with_filter(reqs)
  local k = 0
  for _, r in ipairs(reqs) do
    if r.args["updated_at[gt]"] ~= nil then k = k + 1 end
  end
  return k
end

local SIX_USERS = {
  update = { { id = "K0011", title = "CTO" }, { id = "K0500", status = "inactive" }, { id = "K0900", title = "VP" } },
  delete = { "K0002", "K0003" },
  create = { { id = "K-new-1", name = "Newcomer" } },
}
local SIX_EXPECTED = { "created K-new-1", "deleted K0002", "deleted K0003", "updated K0011", "updated K0500",
  "updated K0900" }

local function change_six(account)
  local body = { account = account, resource = "users" }
  for k, v in pairs(SIX_USERS) do body[k] = v end
  mock.changes(body)
end

describe("client:sync", function()
  local client
  before_each(function()
    client = helper.client()
  end)

  it("yields every user as created on the first run, exactly the 6 changes next, then none", function()
    local account, state = fresh()
    local opts = { state = state, incremental = false }
    local first = changes_of(client, "users", { integrated_account_id = account }, opts)
    assert.equal(1000, #first)
    for _, c in ipairs(first) do
      assert.equal("created", c.op)
      assert.equal(account, c.account_id)
      assert.equal(c.id, c.item.id)
    end
    change_six(account)
    local second = changes_of(client, "users", { integrated_account_id = account }, opts)
    assert.same(SIX_EXPECTED, summary(second))
    for _, c in ipairs(second) do
      if c.op == "deleted" then assert.is_nil(c.item) end
      if c.id == "K0011" then assert.equal("CTO", c.item.title) end
      if c.id == "K-new-1" then assert.equal("Newcomer", c.item.name) end
    end
    local third, st = changes_of(client, "users", { integrated_account_id = account }, opts)
    assert.same({}, third)
    assert.equal(999, st.stats.unchanged)
  end)

  it("does the same for groups", function()
    local account, state = fresh()
    local opts = { state = state, incremental = false }
    local first = changes_of(client, "groups", { integrated_account_id = account }, opts)
    assert.same({ "created g01", "created g02", "created g03", "created g04", "created g05", "created g06" },
      summary(first))
    mock.changes { account = account, resource = "groups", update = { { id = "g01", name = "Eng" },
      { id = "g02", members = 99 }, { id = "g03", description = "x" } }, delete = { "g04", "g05" },
      create = { { id = "g-new", name = "Night shift" } } }
    local second = changes_of(client, "groups", { integrated_account_id = account }, opts)
    assert.same({ "created g-new", "deleted g04", "deleted g05", "updated g01", "updated g02", "updated g03" },
      summary(second))
    assert.same({}, (changes_of(client, "groups", { integrated_account_id = account }, opts)))
  end)

  it("reads three accounts at once and names the account of each change", function()
    local a, state = fresh()
    local b, c = fresh(), fresh()
    local params = { integrated_account_id = { a, b, c } }
    local opts = { state = state, incremental = false }
    local first = changes_of(client, "users", params, opts)
    assert.equal(3000, #first)
    for _, account in ipairs { a, b, c } do change_six(account) end
    local second = changes_of(client, "users", params, opts)
    local expected = {}
    for _, account in ipairs { a, b, c } do
      for _, line in ipairs(SIX_EXPECTED) do expected[#expected + 1] = line .. " " .. account end
    end
    table.sort(expected)
    assert.same(expected, summary(second, true))
    assert.same({}, (changes_of(client, "users", params, opts)))
  end)

  it("reads incrementally where updated_at[gt] is supported: 1 change, 1 request", function()
    local account, state = fresh()
    changes_of(client, "users", { integrated_account_id = account }, { state = state })
    mock.changes { account = account, resource = "users", update = { { id = "K0042", title = "Boss" } } }
    local before = #requests_of(account)
    local second = changes_of(client, "users", { integrated_account_id = account }, { state = state })
    assert.same({ "updated K0042" }, summary(second))
    local reqs = requests_of(account)
    assert.equal(1, #reqs - before)
    local since = reqs[#reqs].args["updated_at[gt]"]
    assert.is_string(since)
    assert.truthy(since:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$"))
  end)

  it("never reports a deletion from an incremental run; the next complete listing does", function()
    local account, state = fresh()
    changes_of(client, "users", { integrated_account_id = account }, { state = state })
    mock.changes { account = account, resource = "users", update = { { id = "K0007", title = "T" } },
      delete = { "K0008", "K0009" } }
    local inc = changes_of(client, "users", { integrated_account_id = account }, { state = state })
    assert.same({ "updated K0007" }, summary(inc))
    local full = changes_of(client, "users", { integrated_account_id = account }, { state = state, full = true })
    assert.same({ "deleted K0008", "deleted K0009" }, summary(full))
  end)

  it("lists completely every full_every runs", function()
    local account, state = fresh()
    local opts = { state = state, full_every = { runs = 2 } }
    local params = { integrated_account_id = account }
    changes_of(client, "users", params, opts)
    local base = #requests_of(account)
    assert.equal(10, base) -- 1,000 users in pages of 100
    changes_of(client, "users", params, opts)
    local reqs = requests_of(account)
    assert.equal(1, #reqs - base)
    assert.equal(1, with_filter(reqs))
    changes_of(client, "users", params, opts)
    reqs = requests_of(account)
    assert.equal(11 + 10, #reqs)
    assert.equal(1, with_filter(reqs))
  end)

  it("falls back once to complete listings on a vendor that refuses updated_at[gt] (400)", function()
    local account, state = fresh("acct-sync-nofilter-")
    local lines = {}
    local opts = { state = state, debug = function(line) lines[#lines + 1] = line end }
    local params = { integrated_account_id = account }
    changes_of(client, "users", params, opts)
    change_six(account)
    local second, st = changes_of(client, "users", params, opts)
    assert.same(SIX_EXPECTED, summary(second))
    assert.equal(1, st.stats.fallbacks)
    local said = table.concat(lines, "\n")
    assert.truthy(said:find("refused updated_at[gt] (HTTP 400); falling back to complete listings", 1, true))
    local reqs = requests_of(account)
    assert.equal(10 + 1 + 10, #reqs)
    assert.equal(1, with_filter(reqs))
    local _, st3 = changes_of(client, "users", params, opts)
    assert.equal(0, st3.stats.fallbacks)
    reqs = requests_of(account)
    assert.equal(31, #reqs)
    assert.equal(1, with_filter(reqs)) -- the fallback is remembered: no filter again
  end)

  it("falls back once on a vendor that ignores updated_at[gt]", function()
    local account, state = fresh("acct-sync-ignore-")
    local params = { integrated_account_id = account }
    changes_of(client, "users", params, { state = state })
    change_six(account)
    local second, st = changes_of(client, "users", params, { state = state })
    assert.same(SIX_EXPECTED, summary(second)) -- the first item was old: the listing is complete
    assert.equal(1, st.stats.fallbacks)
    assert.equal(10, with_filter(requests_of(account))) -- the vendor paged on, filter and all
    local _, st3 = changes_of(client, "users", params, { state = state })
    assert.equal(0, st3.stats.fallbacks)
    assert.equal(10, with_filter(requests_of(account)))
  end)

  it("leaves the state as it was after a break: the next run yields the changes again", function()
    local account, state = fresh()
    local opts = { state = state, incremental = false }
    local params = { integrated_account_id = account }
    changes_of(client, "users", params, opts)
    change_six(account)
    local seen = 0
    local it, st, init, closer = client:sync("users", params, opts)
    for _ in it, st, init, closer do
      seen = seen + 1
      if seen == 2 then break end
    end
    -- Lua 5.4 closed it on break (the fourth value); LuaJIT has no closing value
    if _VERSION ~= "Lua 5.4" then st:close() end
    assert.same(SIX_EXPECTED, summary((changes_of(client, "users", params, opts))))
  end)

  it("keeps what state:commit() covered after a break", function()
    local account, state = fresh()
    local opts = { state = state, incremental = false }
    local params = { integrated_account_id = account }
    changes_of(client, "users", params, opts)
    change_six(account)
    local it, st, _, closer = client:sync("users", params, opts)
    local first = {}
    for change in it, st, nil, closer do
      first[#first + 1] = change
      if #first == 2 then
        st:commit()
        break
      end
    end
    if _VERSION ~= "Lua 5.4" then st:close() end
    local rest = changes_of(client, "users", params, opts)
    local all = {}
    for _, c in ipairs(first) do all[#all + 1] = c end
    for _, c in ipairs(rest) do all[#all + 1] = c end
    assert.equal(4, #rest)
    assert.same(SIX_EXPECTED, summary(all))
  end)

  it("raises the error of a failing page and commits nothing", function()
    local _, state = fresh()
    local err = helper.raised(function()
      for _ in client:sync("users", { integrated_account_id = "fault-500" }, { state = state, max_retries = 0 }) do
      end
    end)
    assert.equal(500, err.status)
    assert.equal("", run.slurp(state))
  end)

  it("hashes the canonical encoding: key order does not matter, content does", function()
    local a = truto.decode_json('{"id":"1","name":"A","emails":[{"type":"work","email":"a@x"}]}')
    local b = truto.decode_json('{"emails":[{"email":"a@x","type":"work"}],"name":"A","id":"1"}')
    local c = truto.decode_json('{"emails":[{"email":"a@y","type":"work"}],"name":"A","id":"1"}')
    assert.equal(sync.hash(a), sync.hash(b))
    assert.not_equal(sync.hash(a), sync.hash(c))
  end)

  it("refuses misuse at once", function()
    assert.has_error(function() client:sync("users", { integrated_account_id = "a" }) end)
    local e = helper.raised(client.sync, client, "users", { integrated_account_id = "a" }, { state = 42 })
    assert.truthy(tostring(e):find("option 'state'", 1, true))
    e = helper.raised(client.sync, client, "users", { integrated_account_id = "a" },
      { state = "/tmp/x", full_every = "daily" })
    assert.truthy(tostring(e):find("full_every", 1, true))
  end)
end)

describe("require 'truto'", function()
  it("loads neither the sync stores nor LuaSQL nor a Redis client", function()
    -- a fresh process of this very interpreter (lua5.4, luajit, or the sanitizer host)
    local interpreter = run.shell("readlink /proc/$PPID/exe"):gsub("\n$", "")
    -- under valgrind that is valgrind's tool (memcheck-amd64-linux), which runs Lua 5.4 there
    if interpreter:find("/valgrind/", 1, true) then interpreter = "lua5.4" end
    local build = os.getenv("TRUTO_BUILD") or "build"
    local script = run.tmpdir() .. "/require.lua"
    run.write(script, string.format([[package.path = %q
      package.cpath = %q
      require "truto"
      for name in pairs(package.loaded) do
        if name:match("sync") or name:match("luasql") or name:match("redis") then print(name) end
      end
      print("ok")]], build .. "/?.lua;" .. package.path, build .. "/?.so;" .. package.cpath))
    local out = run.shell(run.quote(interpreter) .. " " .. run.quote(script))
    assert.equal("ok\n", out)
  end)
end)
