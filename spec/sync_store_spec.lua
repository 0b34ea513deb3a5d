-- The sync state stores: the JSON state file (atomic, its lock and stale-lock takeover), the
-- SQLite mirror (rows equal to the mock's data, checkpoint in the same transaction), and a run
-- killed with SIGKILL in its middle: the next run yields every change again, none twice.
local helper = require "spec.helpers.client"
local run = require "spec.helpers.run"
local sync_helper = require "spec.helpers.sync"
local truto = require "truto"
local cjson = require "cjson"

local mock = helper.mock
local has_sqlite = pcall(require, "luasql.sqlite3")

local n = 0
local function fresh(family)
  n = n + 1
  return string.format("%s%d%d", family or "acct-sync-st", os.time() % 100000, n), run.tmpdir()
end

local summary, changes_of = sync_helper.summary, sync_helper.changes_of

local SIX = { "created K-new-1", "deleted K0002", "deleted K0003", "updated K0011", "updated K0500", "updated K0900" }
local function change_six(account)
  mock.changes { account = account, resource = "users",
    update = { { id = "K0011", title = "CTO" }, { id = "K0500", status = "inactive" }, { id = "K0900", title = "VP" } },
    delete = { "K0002", "K0003" }, create = { { id = "K-new-1", name = "Newcomer" } } }
end

local function hostname()
  local f = io.open("/proc/sys/kernel/hostname")
  local name = f and f:read("l") or os.getenv("HOSTNAME") or "?"
  if f then f:close() end
  return name
end

local function dead_pid()
  return tonumber((run.shell("sh -c 'echo $$'"):match("%d+")))
end

local function requests_of(account)
  local k = 0
  for _, r in ipairs(mock.requests()) do
    if r.account == account then k = k + 1 end
  end
  return k
end

describe("the core's file primitives", function()
  local core = require "truto.core"
  it("creates a file whole and only once, and writes durably", function()
    local dir = run.tmpdir()
    assert.is_true(core.create_exclusive(dir .. "/a.lock", "first"))
    local ok, msg, why = core.create_exclusive(dir .. "/a.lock", "second")
    assert.is_nil(ok)
    assert.equal("create " .. dir .. "/a.lock: File exists", msg)
    assert.equal("exists", why)
    assert.equal("first", run.read(dir .. "/a.lock"))
    assert.is_true(core.write_durable(dir .. "/b", "text"))
    assert.equal("text", run.read(dir .. "/b"))
    assert.is_true(core.fsync_dir(dir))
    assert.equal("a.lock\nb\n", (run.shell("ls " .. run.quote(dir))))
    ok, msg = core.write_durable(dir .. "/no/such/dir", "x")
    assert.is_nil(ok)
    assert.truthy(msg:find("No such file or directory", 1, true))
    assert.is_true(core.pid_alive(core.getpid()))
    assert.is_false(core.pid_alive(dead_pid()))
    assert.is_false(core.pid_alive(0))
  end)
end)

describe("the JSON state file", function()
  local client
  before_each(function() client = helper.client() end)

  it("is written whole, with no temporary file left", function()
    local account, dir = fresh()
    local path = dir .. "/state.json"
    changes_of(client, "users", { integrated_account_id = account }, { state = path })
    local state = cjson.decode(run.read(path))
    local entry = state.resources.users[account]
    local count = 0
    for _, hash in pairs(entry.ids) do
      count = count + 1
      assert.truthy(hash:match("^%x+$"))
    end
    assert.equal(1000, count)
    assert.is_number(entry.hwm)
    assert.equal("", (run.shell("ls " .. run.quote(dir) .. " | grep -v '^state.json$'")))
  end)

  it("refuses a second sync on the same state with `locked`, until the first ends", function()
    local account, dir = fresh()
    local path = dir .. "/state.json"
    local params = { integrated_account_id = account }
    local it, st = client:sync("users", params, { state = path })
    assert.equal("created", it(st).op)
    local err = helper.raised(client.sync, client, "users", params, { state = path })
    assert.is_true(truto.is_error(err))
    assert.equal("locked", err.kind)
    assert.truthy(err.message:find("is locked by process", 1, true))
    st:close()
    local all = changes_of(client, "users", params, { state = path })
    assert.equal(1000, #all) -- the first run committed nothing
  end)

  it("takes over a stale lock: its process is gone", function()
    local account, dir = fresh()
    local path = dir .. "/state.json"
    run.write(path .. ".lock", cjson.encode { pid = dead_pid(), host = hostname(), token = "old", expires = os.time() + 3600 })
    local lines = {}
    local all = changes_of(client, "users", { integrated_account_id = account },
      { state = require("truto.sync.file").new(path, { debug = function(l) lines[#lines + 1] = l end }) })
    assert.equal(1000, #all)
    assert.truthy(table.concat(lines, "\n"):find("taking over the stale lock .* is gone%)"))
    assert.is_nil(io.open(path .. ".lock"))
  end)

  it("takes over a stale lock: its ttl passed, though its process runs", function()
    local account, dir = fresh()
    local path = dir .. "/state.json"
    run.write(path .. ".lock", cjson.encode { pid = 1, host = hostname(), token = "old", expires = os.time() - 5 })
    assert.equal(1000, #changes_of(client, "users", { integrated_account_id = account }, { state = path }))
  end)

  it("keeps a live lock: a running process within its ttl", function()
    local account, dir = fresh()
    local path = dir .. "/state.json"
    run.write(path .. ".lock", cjson.encode { pid = 1, host = hostname(), token = "other", expires = os.time() + 3600 })
    local err = helper.raised(client.sync, client, "users", { integrated_account_id = account }, { state = path })
    assert.equal("locked", err.kind)
    assert.equal(0, requests_of(account))
  end)
end)

-- Starts `lua-truto sync` on a slow account (500 ms a page: under valgrind, reading the mock's
-- log to count is slow) and kills it with SIGKILL once the mock has answered 3 of its 10 pages.
local function kill_mid_run(account, state_args)
  local m = mock.start()
  local before = requests_of(account)
  local parts = { "cd", run.quote(run.ROOT), "&& exec env TRUTO_API_TOKEN=test-token",
    "TRUTO_BASE_URL=" .. m.url, "lua5.4 ./lua-truto sync users -a", run.quote(account), "--no-incremental" }
  for _, a in ipairs(state_args) do parts[#parts + 1] = run.quote(a) end
  local pid = run.spawn(table.concat(parts, " "))
  local socket = require "socket"
  local deadline = socket.gettime() + 30
  while requests_of(account) - before < 3 and socket.gettime() < deadline do socket.sleep(0.02) end
  assert.is_true(run.alive(pid), "the sync ended before it could be killed")
  run.kill(pid, "KILL")
  while run.alive(pid) do socket.sleep(0.02) end
  assert.is_true(requests_of(account) - before < 10, "the run was not killed in its middle")
end

describe("a sync killed with SIGKILL in its middle", function()
  local client
  before_each(function() client = helper.client() end)

  it("leaves the JSON state of the last run: the next run yields all 6", function()
    local account, dir = fresh("acct-sync-kill")
    account = account .. "@500"
    local path = dir .. "/state.json"
    local opts = { state = path, incremental = false }
    changes_of(client, "users", { integrated_account_id = account }, opts)
    change_six(account)
    kill_mid_run(account, { "--state", path })
    assert.same(SIX, summary((changes_of(client, "users", { integrated_account_id = account }, opts))))
  end)

  local sqlite_it = has_sqlite and it or pending
  sqlite_it("leaves the SQLite mirror equal to the mock's data, no change applied twice"
    .. (has_sqlite and "" or " (LuaSQL's SQLite driver is not installed for " .. _VERSION .. ")"), function()
    local sqlite = require "truto.sync.sqlite"
    local account, dir = fresh("acct-sync-kill")
    account = account .. "@500"
    local db = dir .. "/mirror.db"
    local params = { integrated_account_id = account }
    local store = sqlite.new(db)
    changes_of(client, "users", params, { state = store, incremental = false })
    store:close()
    change_six(account)
    kill_mid_run(account, { "--into", "sqlite:" .. db })
    store = sqlite.new(db)
    assert.same(SIX, summary((changes_of(client, "users", params, { state = store, incremental = false }))))
    store:close()

    -- the table against a plain listing, row for row
    local expected = {}
    for user in client:users { integrated_account_id = account, limit = 1000 } do
      expected[#expected + 1] = { id = user.id, json = truto.encode_json(user) }
    end
    table.sort(expected, function(a, b) return a.id < b.id end)
    local env = require("luasql.sqlite3").sqlite3()
    local conn = env:connect(db)
    local rows = {}
    local cur = conn:execute(string.format(
      "SELECT id, json FROM users WHERE account_id = '%s' AND deleted_at IS NULL ORDER BY id", conn:escape(account)))
    local row = cur:fetch({}, "a")
    while row do
      rows[#rows + 1] = { id = row.id, json = row.json }
      row = cur:fetch({}, "a")
    end
    cur:close()
    assert.equal(999, #rows)
    assert.same(expected, rows)
    cur = conn:execute(string.format("SELECT deleted_at FROM users WHERE account_id = '%s' AND id IN ('K0002', 'K0003')",
      conn:escape(account)))
    assert.truthy(cur:fetch():match("^%d%d%d%d%-"))
    cur:close()
    -- what the committed runs applied: the first run's 1,000, then the 6, once
    cur = conn:execute("SELECT COUNT(*), SUM(created), SUM(updated), SUM(deleted) FROM truto_sync_runs WHERE final = 1")
    local runs, created, updated, deleted = cur:fetch()
    cur:close()
    assert.same({ 2, 1001, 3, 2 }, { math.floor(runs), math.floor(created), math.floor(updated), math.floor(deleted) })
    conn:close()
    env:close()
  end)
end)

describe("the SQLite mirror", function()
  local client
  before_each(function() client = helper.client() end)
  local sqlite_it = has_sqlite and it or pending
  local why = has_sqlite and "" or " (LuaSQL's SQLite driver is not installed for " .. _VERSION .. ")"

  sqlite_it("refuses a second sync on the same database with `locked`" .. why, function()
    local sqlite = require "truto.sync.sqlite"
    local account, dir = fresh()
    local a, b = sqlite.new(dir .. "/m.db"), sqlite.new(dir .. "/m.db")
    local it, st = client:sync("users", { integrated_account_id = account }, { state = a })
    it(st)
    local err = helper.raised(client.sync, client, "users", { integrated_account_id = account }, { state = b })
    assert.equal("locked", err.kind)
    st:close()
    assert.equal(1000, #changes_of(client, "users", { integrated_account_id = account }, { state = b }))
    a:close()
    b:close()
  end)

  sqlite_it("stores hostile ids and values through the driver's escaping" .. why, function()
    local sqlite = require "truto.sync.sqlite"
    local account, dir = fresh()
    changes_of(client, "users", { integrated_account_id = account }, { state = sqlite.new(dir .. "/m.db") })
    mock.changes { account = account, resource = "users",
      create = { { id = "x'); DROP TABLE users; --", name = "O'Brien \"quoted\"" } } }
    local store = sqlite.new(dir .. "/m.db")
    assert.same({ "created x'); DROP TABLE users; --" },
      summary((changes_of(client, "users", { integrated_account_id = account }, { state = store }))))
    store:close()
    local out = run.shell("sqlite3 " .. run.quote(dir .. "/m.db")
      .. [[ "SELECT COUNT(*), json_extract(json, '$.name') FROM users WHERE id LIKE 'x''%'"]])
    assert.equal([[1|O'Brien "quoted"]] .. "\n", out)
  end)
end)
