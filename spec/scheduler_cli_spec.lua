-- lua-truto and time (issue 16): Ctrl-C during a rate hold exits 130 at once and prints where
-- to resume; -v tells each wait; --rate N/S sets a fixed budget.
local mock = require "spec.helpers.mock"
local run = require "spec.helpers.run"
local socket = require "socket"

local quote = run.quote

local function wait_for(path, tries)
  for _ = 1, tries do
    local f = io.open(path)
    local v = f and f:read("*a")
    if f then f:close() end
    if v and v:match("%d") then return tonumber(v:match("%d+")) end
    socket.sleep(0.02)
  end
end

describe("lua-truto and time", function()
  local m
  setup(function() m = mock.start() end)
  before_each(function() mock.reset() end)
  after_each(function() mock.reset() end)

  it("exits 130 within 0.5 s of Ctrl-C during a 50 s rate hold, telling the wait and the cursor to resume at", function()
    mock.limits { accounts = { ["acct-1k-sig"] = { requests = 1, per = 50 } } }
    local dir = run.tmpdir()
    local script = ("cd %s && env TRUTO_API_TOKEN=%s TRUTO_BASE_URL=%s HOME=%s lua5.4 ./lua-truto users "
      .. "-a acct-1k-sig --limit 100 -v -o ndjson --fields id >%s/out 2>%s/err & echo $! >%s/pid; wait $!; "
      .. "echo $? >%s/code")
      :format(quote(run.ROOT), quote(m.token), quote(m.url), quote(dir), dir, dir, dir, dir)
    run.spawn("sh -c " .. quote(script))
    local pid = wait_for(dir .. "/pid", 100)
    assert.truthy(pid)
    -- Stopped whatever happens below, so a failure here leaves no CLI sending to the next test.
    finally(function() run.kill(pid, "KILL") end)
    for _ = 1, 200 do -- the shell creates err after it has written pid: it may not be there yet
      if run.slurp(dir .. "/err"):find("waiting", 1, true) then break end
      socket.sleep(0.02)
    end
    socket.sleep(0.2)
    local sent = socket.gettime()
    run.kill(pid, "INT")
    local code = wait_for(dir .. "/code", 500)
    local took = socket.gettime() - sent
    print(("\n  Ctrl-C during a rate hold: exit %s after %.3f s"):format(tostring(code), took))
    assert.equal(130, code)
    assert.is_true(took < 2, ("took %.1f s to stop"):format(took))
    assert.equal(1, #mock.requests()) -- the second page was never sent
    local _, lines = run.read(dir .. "/out"):gsub("\n", "")
    assert.equal(100, lines)
    local err = run.read(dir .. "/err")
    assert.matches("waiting %d+%.%d s: account acct%-1k%-sig, ratelimit%-reset\n", err)
    assert.matches("interrupted; the rest of the list: %-%-cursor '?[%w%-_=]+'?\n$", err)
  end)

  it("keeps to --rate N/S, and refuses one that is not", function()
    local out, err, code = run.cli({ "users", "-a", "acct-1k-rate", "--limit", "10", "--max-items", "30",
      "--rate", "2/1", "-v", "-o", "ndjson", "--fields", "id" },
      { process = true, env = { TRUTO_API_TOKEN = m.token, TRUTO_BASE_URL = m.url } })
    assert.equal(0, code, err)
    local _, lines = out:gsub("\n", "")
    assert.equal(30, lines)
    local to_account = 0
    for _, r in ipairs(mock.requests()) do
      if r.raw_query:find("integrated_account_id=acct-1k-rate", 1, true) then to_account = to_account + 1 end
    end
    assert.equal(3, to_account)
    assert.matches("waiting %d%.%d s: account acct%-1k%-rate, rate_limit\n", err)
    local _, err2, code2 = run.cli({ "users", "-a", "acct-small", "--rate", "fast" },
      { process = true, env = { TRUTO_API_TOKEN = m.token, TRUTO_BASE_URL = m.url } })
    assert.equal(2, code2)
    assert.matches("%-%-rate expects REQUESTS/SECONDS %(like 50/10%), got 'fast'", err2)
  end)
end)
