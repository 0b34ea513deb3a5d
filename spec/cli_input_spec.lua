-- lua-truto's input (issue 13): the account given twice, --body messages
-- and bounds, integers that cannot be sent exactly, headers, idempotency
-- keys, --dry-run, --cursor and resuming after --max-items, delete
-- confirmation.
local mock = require "spec.helpers.mock"
local run = require "spec.helpers.run"

-- Terminals are simulated in-process only (Lua 5.4, the command line's language).
local it54 = _VERSION == "Lua 5.4" and it or function(name) pending(name .. " (Lua 5.4 only)") end

local m, tmp
local function cli(argv, o) return run.cli_mock(m, argv, o) end

local usage = run.usage

local function expect_usage(argv, err, o)
  local out, got_err, code = cli(argv, o)
  assert.equal(err, got_err)
  assert.equal("", out)
  assert.equal(2, code)
  assert.equal(0, #mock.requests())
end

describe("lua-truto input", function()
  setup(function()
    m = mock.start()
    tmp = run.tmpdir()
  end)
  before_each(function() mock.reset() end)

  it("refuses -q integrated_account_id=X together with -a Y", function()
    expect_usage({ "users", "-a", "acct-small", "-q", "integrated_account_id=acct-other" },
      usage("-a and -q integrated_account_id=... given both", "list"))
  end)

  it("says what is wrong with --body: a directory, a file name without @, a base URL", function()
    expect_usage({ "users", "create", "-a", "x", "--body", "@" .. tmp }, usage("--body @" .. tmp .. ": is a directory", "create"))
    run.write(tmp .. "/user.json", '{"name":"x"}')
    local _, err, code = cli { "users", "create", "-a", "x", "--body", tmp .. "/user.json" }
    assert.equal(2, code)
    assert.truthy(err:find("(to send the file, write --body @" .. tmp .. "/user.json)", 1, true), err)
    expect_usage({ "users", "-a", "x", "--base-url", "ftp://example.com" },
      usage("--base-url must be an https:// URL (http:// only for 127.0.0.1, ::1 or localhost), got 'ftp://example.com'"))
    expect_usage({ "users", "-a", "x", "--timeout", "0" }, usage("--timeout expects a positive number of seconds, got '0'"))
  end)

  it("bounds the body: /dev/zero, a FIFO and a file over 10 MiB end at once with exit 2", function()
    local started = os.time()
    expect_usage({ "users", "create", "-a", "x", "--body", "@/dev/zero" },
      usage("--body @/dev/zero: not a regular file (character special file); use --body - to read a pipe", "create"))
    run.shell("mkfifo " .. run.quote(tmp .. "/fifo"))
    expect_usage({ "users", "create", "-a", "x", "--body", "@" .. tmp .. "/fifo" },
      usage("--body @" .. tmp .. "/fifo: not a regular file (fifo); use --body - to read a pipe", "create"))
    run.shell("truncate -s 11M " .. run.quote(tmp .. "/big.json"))
    expect_usage({ "users", "create", "-a", "x", "--body", "@" .. tmp .. "/big.json" },
      usage("--body @" .. tmp .. "/big.json: 11534336 bytes, more than the 10 MiB a body may have", "create"))
    expect_usage({ "users", "create", "-a", "x", "--body", "-" },
      usage("--body: standard input holds more than the 10 MiB a body may have", "create"),
      { stdin = string.rep(" ", 10 * 1024 * 1024 + 1) })
    assert.is_true(os.time() - started < 20)
  end)

  it("refuses a body integer that cannot be sent exactly", function()
    expect_usage({ "users", "create", "-a", "x", "--body", '{"n":12345678901234567890}' },
      usage("--body: the integer 12345678901234567890 cannot be sent exactly (beyond 64 bits); send it as a string",
        "create"))
    local out, _, code = cli { "organizations", "update", "org-1", "-a", "acct-small", "-o", "json",
      "--body", '{"seats":9223372036854775807,"s":"12345678901234567890"}' }
    assert.equal(0, code, out)
    assert.equal('{"s":"12345678901234567890","seats":9223372036854775807}', mock.last().body)
  end)

  it("sends -H headers and --idempotency-key", function()
    local _, err, code = cli { "users", "create", "-a", "acct-small", "-o", "json", "--body", '{"name":"N"}',
      "-H", "X-Team: it", "--header", "X-Trace:  abc ", "--idempotency-key", "key-1" }
    assert.equal("", err)
    assert.equal(0, code)
    local h = mock.last().headers
    assert.equal("it", h["x-team"])
    assert.equal("abc", h["x-trace"])
    assert.equal("key-1", h["idempotency-key"])
    mock.reset()
    expect_usage({ "users", "-a", "x", "-H", "no colon" }, usage("-H expects 'Name: value', got 'no colon'"))
    expect_usage({ "users", "-a", "x", "-H", "Authorization: x" }, usage("-H: Authorization is set by lua-truto itself"))
  end)

  it("prints the request of --dry-run, token masked, and sends nothing", function()
    local out, err, code = cli { "organizations", "update", "org-1", "-a", "acct-small", "--dry-run",
      "--body", '{"name":"Acme"}', "-H", "X-Team: it" }
    assert.equal("", err)
    assert.equal(0, code)
    assert.equal(0, #mock.requests())
    local first = out:match("^[^\n]*")
    assert.equal("PATCH " .. m.url .. "/unified/user-directory/organizations/org-1?integrated_account_id=acct-small", first)
    assert.truthy(out:find("\nAuthorization: Bearer ***\n", 1, true))
    assert.truthy(out:find("\nX-Team: it\n", 1, true))
    assert.truthy(out:find("\nContent-Length: 15\n", 1, true))
    assert.equal('\n\n{"name":"Acme"}\n', out:sub(-18))
    assert.is_nil(out:find(m.token, 1, true))
  end)

  it("tells the cursor that resumes a list stopped by --max-items, and --cursor starts there", function()
    local out, err, code = cli { "users", "-a", "acct-small", "-o", "ndjson", "--fields", "id", "--max-items", "10" }
    assert.equal(0, code)
    assert.equal(10, select(2, out:gsub("\n", "")))
    local cursor = err:match("^lua%-truto: stopped at %-%-max%-items 10; the rest of the list: %-%-cursor '([^']+)'\n$")
    assert.truthy(cursor, err)
    out, err, code = cli { "users", "-a", "acct-small", "-o", "ndjson", "--fields", "id", "--cursor", cursor,
      "--max-items", "2" }
    assert.equal('{"id":"u011"}\n{"id":"u012"}\n', out)
    assert.equal("lua-truto: stopped at --max-items 2 inside a page; --cursor '" .. cursor
      .. "' lists that page again (its first 2 items were printed)\n", err)
    assert.equal(0, code)
    assert.truthy(mock.last().raw_query:find("next_cursor=", 1, true))
    -- Stopped inside a later page: the cursor of that page, and how much of it was printed.
    out, err = cli { "users", "-a", "acct-small", "-o", "ndjson", "--fields", "id", "--max-items", "13" }
    assert.equal(13, select(2, out:gsub("\n", "")))
    assert.equal("lua-truto: stopped at --max-items 13 inside a page; --cursor '" .. cursor
      .. "' lists that page again (its first 3 items were printed)\n", err)
  end)

  it54("asks before delete on the controlling terminal, unless --yes", function()
    local out, err, code = cli({ "users", "delete", "u003", "-a", "acct-small" }, { terminal = "n\n" })
    assert.equal("", out)
    assert.equal("Delete users u003 of account acct-small? [y/N] lua-truto: not deleted\n", err)
    assert.equal(2, code)
    assert.equal(0, #mock.requests())
    out, err, code = cli({ "users", "delete", "u003", "-a", "acct-small", "-o", "json" }, { terminal = "y\n" })
    assert.equal("Delete users u003 of account acct-small? [y/N] ", err)
    assert.equal(0, code, out)
    assert.equal("DELETE", mock.last().method)
    mock.reset()
    out, err, code = cli({ "users", "delete", "u004", "-a", "acct-small", "-o", "json", "--yes" }, { terminal = "n\n" })
    assert.equal("", err)
    assert.equal(0, code, out)
    assert.equal("DELETE", mock.last().method)
  end)
end)
