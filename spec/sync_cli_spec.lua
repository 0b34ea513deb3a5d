-- `lua-truto sync` and the mock's change flags (`lua-truto mock --port N -a ACC --update ...`).
local helper = require "spec.helpers.client"
local run = require "spec.helpers.run"
local cjson = require "cjson"

local mock = helper.mock
local has_sqlite = pcall(require, "luasql.sqlite3")

local n = 0
local function fresh()
  n = n + 1
  return string.format("acct-sync-cli%d%d", os.time() % 100000, n), run.tmpdir()
end

local function env()
  local m = mock.start()
  return { TRUTO_API_TOKEN = "test-token", TRUTO_BASE_URL = m.url, PATH = os.getenv("PATH") }
end

local function cli(argv)
  return run.cli(argv, { env = env() })
end

local function lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = (line:gsub("\r$", "")) end
  return out
end

describe("lua-truto sync", function()
  it("prints every user as created, then exactly the changes, with a summary on stderr", function()
    local account, dir = fresh()
    local state = dir .. "/state.json"
    local out, err, code = cli { "sync", "users", "-a", account, "--state", state }
    assert.equal(0, code)
    assert.equal("lua-truto: created 1000, updated 0, deleted 0, unchanged 0 in 10 requests\n", err)
    local first = lines(out)
    assert.equal(1000, #first)
    local c = cjson.decode(first[1])
    assert.same({ "created", account, "K0001", "K0001" }, { c.op, c.account_id, c.id, c.item.id })

    local port = tostring(mock.start().port)
    local said
    said, err, code = cli { "mock", "--port", port, "-a", account, "--update", "users/K0011", "--delete", "users/K0002",
      "--delete", "users/K0003" }
    assert.equal(0, code, err)
    local touched = cjson.decode(said)
    assert.same({ { "K0011" }, { "K0002", "K0003" } }, { touched.updated, touched.deleted })
    local _
    _, err, code = cli { "mock", "--port", port, "-a", account, "--create", "users", "--body",
      '{"id":"K-new-1","name":"Newcomer"}' }
    assert.equal(0, code, err)

    out, err, code = cli { "sync", "users", "-a", account, "--state", state, "--full" }
    assert.equal(0, code)
    assert.equal("lua-truto: created 1, updated 1, deleted 2, unchanged 997 in 10 requests\n", err)
    local ops = {}
    for _, line in ipairs(lines(out)) do
      local change = cjson.decode(line)
      ops[#ops + 1] = change.op .. " " .. change.id
    end
    table.sort(ops)
    assert.same({ "created K-new-1", "deleted K0002", "deleted K0003", "updated K0011" }, ops)

    out, err, code = cli { "sync", "users", "-a", account, "--state", state }
    assert.equal(0, code)
    assert.equal("", out)
    assert.truthy(err:match("^lua%-truto: created 0, updated 0, deleted 0, unchanged %d+ in 1 request\n$"))
  end)

  it("writes csv and table rows", function()
    local account, dir = fresh()
    local out, _, code = cli { "sync", "groups", "-a", account, "--state", dir .. "/s.json", "-o", "csv" }
    assert.equal(0, code)
    local rows = lines(out)
    assert.equal("op,account_id,id,name,email", rows[1])
    assert.equal("created," .. account .. ",g01,Engineering,", rows[2])
    assert.equal(7, #rows)
    mock.changes { account = account, resource = "groups", delete = { "g02" } }
    out = cli { "sync", "groups", "-a", account, "--state", dir .. "/s.json", "-o", "table", "--full" }
    assert.truthy(out:match("^OP%s+ACCOUNT_ID%s+ID%s+NAME%s+EMAIL%s*\ndeleted%s+" .. account:gsub("%-", "%%-") .. "%s+g02"))
  end)

  it("reads several accounts at once, from -a and from --all-accounts", function()
    local a, dir = fresh()
    local b, c = fresh(), fresh()
    run.write(dir .. "/accounts", "# the accounts\n" .. b .. "\n\n" .. c .. "\n")
    local out, err, code = cli { "sync", "users", "-a", a, "--all-accounts", dir .. "/accounts", "--state",
      dir .. "/s.json" }
    assert.equal(0, code, err)
    local per = {}
    for _, line in ipairs(lines(out)) do
      local change = cjson.decode(line)
      per[change.account_id] = (per[change.account_id] or 0) + 1
    end
    assert.same({ [a] = 1000, [b] = 1000, [c] = 1000 }, per)
    assert.equal("lua-truto: created 3000, updated 0, deleted 0, unchanged 0 in 30 requests\n", err)
  end)

  local sqlite_it = has_sqlite and it or pending
  sqlite_it("mirrors into SQLite with --into sqlite:FILE", function()
    local account, dir = fresh()
    local db = dir .. "/m.db"
    local _, err, code = cli { "sync", "users", "-a", account, "--into", "sqlite:" .. db, "-o", "csv" }
    assert.equal(0, code, err)
    local count = run.shell("sqlite3 " .. run.quote(db) .. [[ "SELECT COUNT(*) FROM users WHERE deleted_at IS NULL AND
      json_extract(json, '$.is_2fa_enabled') = 0"]])
    assert.equal("500\n", count)
  end)

  it("fails with `locked` while another sync holds the state", function()
    local account, dir = fresh()
    local f = io.open("/proc/sys/kernel/hostname")
    local host = f:read("l")
    f:close()
    run.write(dir .. "/s.json.lock", cjson.encode { pid = 1, host = host, token = "t", expires = os.time() + 3600 })
    local out, err, code = cli { "sync", "users", "-a", account, "--state", dir .. "/s.json" }
    assert.equal(1, code)
    assert.equal("", out)
    assert.truthy(err:find("locked error: the sync state " .. dir .. "/s.json is locked by process 1", 1, true))
  end)

  it("says what is missing", function()
    local _, err, code = cli { "sync", "users", "-a", "acct-sync-x" }
    assert.equal(2, code)
    assert.truthy(err:find("sync needs --state FILE or --into sqlite:FILE", 1, true))
    _, err, code = cli { "sync", "users", "--state", "/tmp/x.json" }
    assert.equal(2, code)
    assert.truthy(err:find("an account is required", 1, true))
    _, err, code = cli { "sync", "users", "-a", "x", "--state", "/tmp/x.json", "-o", "json" }
    assert.equal(2, code)
    assert.truthy(err:find("-o must be ndjson, table or csv, got 'json'", 1, true))
    _, err, code = cli { "sync", "users", "-a", "x", "--into", "mysql:x" }
    assert.equal(2, code)
    assert.truthy(err:find("--into expects sqlite:FILE", 1, true))
  end)
end)
