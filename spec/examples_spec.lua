-- The scripts in examples/: each runs against the mock server, configured
-- the documented way (TRUTO_API_TOKEN, TRUTO_BASE_URL, TRUTO_ACCOUNT), and
-- prints what the mock's data says it should.
local mock = require "spec.helpers.mock"
local fixtures = require "spec.mock.truto_mock.fixtures"
local compat = require "spec.helpers.compat"
local run_helper = require "spec.helpers.run"

local quote, read_file, ROOT = run_helper.quote, run_helper.read, run_helper.ROOT
local m, tmp

-- Runs examples/<name>.lua with `args`; o.account (default acct-small, false:
-- unset), o.base_url. Returns stdout, stderr, exit code.
local function run(name, args, o)
  o = o or {}
  local parts = { "cd", quote(tmp), "&&", "env", "-u TRUTO_ACCOUNT -u TRUTO_ACCOUNTS",
    "LUA_PATH=" .. quote(ROOT .. "/build/?.lua;" .. ROOT .. "/build/?/init.lua;;"),
    "LUA_CPATH=" .. quote(ROOT .. "/build/?.so;;"),
    "TRUTO_API_TOKEN=" .. quote(m.token), "TRUTO_BASE_URL=" .. quote(o.base_url or m.url) }
  if o.account ~= false then parts[#parts + 1] = "TRUTO_ACCOUNT=" .. quote(o.account or "acct-small") end
  parts[#parts + 1] = "lua5.4"
  parts[#parts + 1] = quote(ROOT .. "/examples/" .. name .. ".lua")
  for _, a in ipairs(args or {}) do parts[#parts + 1] = quote(a) end
  local p = assert(compat.popen(table.concat(parts, " ") .. " </dev/null 2>" .. quote(tmp .. "/stderr")))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, read_file(tmp .. "/stderr"), code
end

local function lines(list)
  if #list == 0 then return "" end
  return table.concat(list, "\n") .. "\n"
end

local function in_group(user, id)
  for _, g in ipairs(user.groups) do
    if g.id == id then return true end
  end
  return false
end

describe("examples", function()
  setup(function()
    m = mock.start()
    tmp = run_helper.tmpdir()
  end)
  teardown(function() mock.reset() end)
  before_each(function() mock.reset() end)

  it("active_users_csv.lua writes the active users as CSV", function()
    local expected = { "id,name,email,last_login_at" }
    for _, u in ipairs(fixtures.users()) do
      if u.status == "active" then
        local name = u.name:find('[,"]') and '"' .. u.name:gsub('"', '""') .. '"' or u.name
        expected[#expected + 1] = table.concat({ u.id, name, u.emails and u.emails[1].email or "",
          u.last_login_at or "" }, ",")
      end
    end
    local out, err, code = run("active_users_csv")
    assert.equal(table.concat(expected, "\r\n") .. "\r\n", out)
    assert.equal("24 active users\n", err)
    assert.equal(0, code)
    local first = mock.requests()[1]
    assert.equal("active", first.args.status)
    assert.equal("true", first.args.truto_ignore_remote_data)
  end)

  it("users_without_group.lua lists the users in no group", function()
    local expected = {}
    for _, u in ipairs(fixtures.users()) do
      if #u.groups == 0 then expected[#expected + 1] = u.id .. "\t" .. u.name .. "\t" .. u.status end
    end
    assert.equal(4, #expected)
    expected[#expected + 1] = "4 of 40 users are in none of the 6 groups"
    local out, err, code = run("users_without_group")
    assert.equal("", err)
    assert.equal(lines(expected), out)
    assert.equal(0, code)
  end)

  it("group_members.lua reports who joined and who left since the last run", function()
    local members = {}
    for _, u in ipairs(fixtures.users()) do
      if in_group(u, "g04") then members[#members + 1] = u end
    end
    local added, snapshot = {}, {}
    for i, u in ipairs(members) do
      added[i] = "+ " .. u.id .. "\t" .. u.name
      snapshot[i] = u.id .. "\t" .. u.name
    end
    local summary = "Design Ünit (g04): " .. #members .. " members, %d joined, %d left"

    added[#added + 1] = summary:format(#members, 0)
    local out, err, code = run("group_members", { "g04", "g04.members" })
    assert.equal("", err)
    assert.equal(lines(added), out)
    assert.equal(0, code)
    assert.equal(lines(snapshot), read_file(tmp .. "/g04.members"))
    assert.equal("g04", mock.requests()[2].args.group_id)

    out = run("group_members", { "g04", "g04.members" })
    assert.equal(lines { summary:format(0, 0) }, out)

    -- Someone left the snapshot, someone who is gone from the group is in it.
    local f = assert(io.open(tmp .. "/g04.members", "w"))
    f:write(table.concat(snapshot, "\n", 2), "\nu999\tGone Person\n")
    f:close()
    out = run("group_members", { "g04", "g04.members" })
    assert.equal(lines { added[1], "- u999\tGone Person", summary:format(1, 1) }, out)
    assert.equal(lines(snapshot), read_file(tmp .. "/g04.members"))

    local _, err2, code2 = run("group_members", { "g99", "g99.members" })
    assert.equal("truto: http 404 Not Found: No group with id 'g99' (GET " .. m.url
      .. "/unified/user-directory/groups/g99?integrated_account_id=acct-small)\n", err2)
    assert.equal(1, code2)
  end)

  it("offboard_by_email.lua plans, then applies against the mock", function()
    local plan = {
      "user u004: Ada Lovelace <ada@acme.example>, status active",
      "groups: Design Ünit (g04), Engineering (g01)",
    }
    local dry = { plan[1], plan[2], "would set status to inactive and remove from every group",
      "would free the paid seat (users/downgrade)", "dry run: nothing changed (pass --apply to do it)" }
    local out, err, code = run("offboard_by_email", { "ada@acme.example" })
    assert.equal("", err)
    assert.equal(lines(dry), out)
    assert.equal(0, code)
    assert.equal(1, #mock.requests())
    assert.equal("ada@acme.example", mock.requests()[1].args.email)

    mock.reset()
    out, err, code = run("offboard_by_email", { "ada@acme.example", "--apply" })
    assert.equal("", err)
    assert.equal(lines { plan[1], plan[2], "done: set status to inactive and remove from every group",
      "done: free the paid seat (users/downgrade)" }, out)
    assert.equal(0, code)
    local log = mock.requests()
    assert.equal(3, #log)
    assert.equal("PATCH", log[2].method)
    assert.equal("/unified/user-directory/users/u004", log[2].path)
    assert.equal('{"groups":[],"status":"inactive"}', log[2].body)
    assert.equal("offboard-u004-update", log[2].headers["idempotency-key"])
    assert.equal("POST", log[3].method)
    assert.equal("/unified/user-directory/users/downgrade", log[3].path)
    assert.equal('{"id":"u004"}', log[3].body)

    out, err, code = run("offboard_by_email", { "nobody@acme.example" })
    assert.equal("", out)
    assert.equal("no user has the address nobody@acme.example\n", err)
    assert.equal(1, code)

    mock.reset()
    out, err, code = run("offboard_by_email", { "ada@acme.example", "--apply" },
      { base_url = "https://api.truto.one" })
    assert.equal("", out)
    assert.equal("--apply changes data: this example only does it against a local mock server\n", err)
    assert.equal(2, code)
    assert.equal(0, #mock.requests())
  end)

  it("many_accounts.lua reads each account in turn and reports failures", function()
    local out, err, code = run("many_accounts", { "acct-small", "fault-remote", "no-such-account", "acct-nulls" })
    assert.equal("", err)
    assert.equal(lines {
      "account           users  active  groups",
      "acct-small           40      24       6",
      "fault-remote     error: 401 Bad credentials",
      "no-such-account  error: 404 Integrated account not found",
      "acct-nulls           40      24       6",
    }, out)
    assert.equal(1, code)
    -- One client: every request on the same keep-alive connection.
    local log = mock.requests()
    for _, r in ipairs(log) do assert.equal(log[1].connection, r.connection) end

    out, err, code = run("many_accounts", nil, { account = "acct-small" })
    assert.equal("", err)
    assert.equal(lines { "account      users  active  groups", "acct-small      40      24       6" }, out)
    assert.equal(0, code)
  end)

  it("each example says what it needs when TRUTO_ACCOUNT is missing", function()
    for _, name in ipairs { "active_users_csv", "users_without_group", "group_members",
      "offboard_by_email", "many_accounts" } do
      local out, err, code = run(name, nil, { account = false })
      assert.equal("", out)
      assert.truthy(err:find("TRUTO_ACCOUNT", 1, true), name .. ": " .. err)
      assert.equal(2, code)
    end
  end)
end)
