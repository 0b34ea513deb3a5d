-- lua-truto, the findings of issue 19 (items 11-20 and the small points of
-- 18): --response-format stream, delete without a terminal, comments in the
-- config file, permission messages, terminal escapes in every format, a
-- closed stdout, "did you mean", repeated options, and the others. Run
-- in-process through spec.helpers.run where a terminal is simulated, as a
-- process where the process itself matters (file descriptors, /dev/tty).
local mock = require "spec.helpers.mock"
local run = require "spec.helpers.run"

local it54 = _VERSION == "Lua 5.4" and it or function(name) pending(name .. " (Lua 5.4 only)") end -- luacheck: ignore 211
local quote = run.quote
local unpack = table.unpack or unpack -- luacheck: ignore 113

local m
local function cli(argv, o) return run.cli_mock(m, argv, o) end

local usage = run.usage

local function methods()
  local list = {}
  for _, r in ipairs(mock.requests()) do list[#list + 1] = r.method end
  return list
end

describe("lua-truto (issue 19)", function()
  setup(function() m = mock.start() end)
  before_each(function() mock.reset() end)

  describe("--response-format stream (item 11)", function()
    it("writes the server's NDJSON lines as they came, for list and get", function()
      local out, err, code = cli { "users", "-a", "acct-small", "--response-format", "stream" }
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal(40, select(2, out:gsub("\n", "")))
      local first = out:match("^[^\n]*")
      assert.equal("u001", require("truto").decode_json(first).id)
      local req = mock.requests()[1]
      assert.equal("stream", req.args.truto_response_format)
      out, err, code = cli { "users", "get", "u002", "-a", "acct-small", "--response-format", "stream" }
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("u002", require("truto").decode_json(out:match("^[^\n]*")).id)
      assert.equal(1, select(2, out:gsub("\n", "")))
    end)

    it("reports an API error as one; refuses what cannot apply to raw lines", function()
      local out, err, code = cli { "users", "get", "nobody", "-a", "acct-small", "--response-format", "stream" }
      assert.equal("", out)
      assert.equal("lua-truto: 404 Not Found: No user with id 'nobody'\n", err)
      assert.equal(1, code)
      mock.reset()
      err, code = select(2, cli { "users", "-a", "acct-small", "--response-format", "stream", "-o", "csv" })
      assert.equal(usage("-o does not apply to --response-format stream (its lines are written as they come)",
        "list"), err)
      assert.equal(2, code)
      out, err, code = cli { "users", "delete", "u1", "-a", "acct-small", "--response-format", "stream", "--yes" }
      assert.equal(usage("--response-format stream applies to list and get", "delete"), err)
      assert.equal(2, code)
      assert.equal("", out)
      assert.same({}, methods())
    end)
  end)

  describe("delete (item 12)", function()
    -- lua-truto as a process in a session of its own (setsid): no
    -- controlling terminal, whatever terminal busted itself runs in.
    local function detached(args, redirections)
      local cmd = ("cd %s && env TRUTO_API_TOKEN=%s TRUTO_BASE_URL=%s HOME=/nonexistent setsid -w lua5.4 ./lua-truto %s %s")
        :format(quote(run.ROOT), quote(m.token), quote(m.url), args, redirections)
      return run.shell(cmd)
    end

    it("refuses without --yes when no terminal can answer, whatever stdin and stderr are", function()
      local dir = run.tmpdir()
      for _, redirections in ipairs { "</dev/null 2>" .. dir .. "/err", "<&- 2>" .. dir .. "/err" } do
        mock.reset()
        local out, code = detached("users delete u003 -a acct-small", redirections)
        assert.equal("", out)
        assert.equal(usage("--yes required when not running interactively (no terminal to ask)", "delete"),
          run.read(dir .. "/err"))
        assert.equal(2, code)
        assert.same({}, methods())
      end
      local out, code = detached("users delete u003 -a acct-small --yes -o json", "</dev/null 2>" .. dir .. "/err")
      assert.equal(0, code, run.read(dir .. "/err"))
      assert.equal("", run.read(dir .. "/err"))
      assert.truthy(out:find("u003", 1, true))
      assert.same({ "DELETE" }, methods())
    end)

    it("asks on the controlling terminal though stdin is /dev/null and stderr a file", function()
      local dir = run.tmpdir()
      run.write(dir .. "/answer", "n\n")
      -- script(1) gives the command a pseudo-terminal of its own and types
      -- what it reads from its stdin there.
      local inner = ("cd %s && env TRUTO_API_TOKEN=%s TRUTO_BASE_URL=%s HOME=/nonexistent lua5.4 ./lua-truto "
        .. "users delete u003 -a acct-small </dev/null 2>%s/err >%s/out; echo $? >%s/code")
        :format(quote(run.ROOT), quote(m.token), quote(m.url), dir, dir, dir)
      local typed = run.shell("cat " .. quote(dir .. "/answer") .. " | script -qec " .. quote(inner)
        .. " /dev/null")
      assert.equal("2\n", run.read(dir .. "/code"))
      assert.truthy(typed:find("Delete users u003 of account acct-small? [y/N] ", 1, true), typed)
      assert.equal("lua-truto: not deleted\n", run.read(dir .. "/err"))
      assert.same({}, methods())
    end)
  end)

  describe("the config file", function()
    local home, dir, config
    before_each(function()
      home = run.tmpdir()
      dir = home .. "/.config/lua-truto"
      config = dir .. "/config"
      run.shell("mkdir -p " .. quote(dir) .. " && chmod 700 " .. quote(dir))
    end)
    local function write_config(text, mode)
      run.write(config, text)
      run.shell("chmod " .. (mode or "600") .. " " .. quote(config))
    end
    local GET = { "users", "get", "u001", "-o", "json", "--fields", "id" }
    local function get(extra, env)
      local argv = { unpack(GET) }
      for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
      env = env or {}
      env.HOME = home
      return cli(argv, { env = env })
    end

    it("takes comments after values and sections; the example of docs/cli.md parses (item 13)", function()
      local page = run.read(run.ROOT .. "/docs/cli.md")
      local example = page:match("The config file is[^\n]*\n\n(.-)\n\n")
      assert.truthy(example and example:find("[work]", 1, true), "no config example in docs/cli.md")
      write_config((example:gsub("^    ", ""):gsub("\n    ", "\n")))
      -- The example's token and base URL are placeholders: the environment gives the real ones.
      -- (The mock knows no account acct_456: what matters is what was asked.)
      local out, err, code = get({ "--profile", "work" })
      assert.equal("", out)
      assert.equal("lua-truto: 404 Not Found: Integrated account not found\n", err)
      assert.equal(1, code)
      assert.equal("acct_456", mock.last().args.integrated_account_id)
      mock.reset()
      get()
      assert.equal("acct_123", mock.last().args.integrated_account_id)
      mock.reset()
      write_config("account = acct-small   # the small one\n[work]  # a profile\naccount = acct#1   # kept: a#b\n"
        .. "[quoted]\naccount = 'acct #2' # a comment\n")
      out, err, code = get()
      assert.equal('{"id":"u001"}\n', out)
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("integrated_account_id=acct-small", mock.last().raw_query)
      mock.reset()
      get({ "--profile", "work" })
      assert.equal("acct#1", mock.last().args.integrated_account_id)
      get({ "--profile", "quoted" })
      assert.equal("acct #2", mock.last().args.integrated_account_id)
    end)

    it("states one rule for files that hold a token or say where it goes (item 14)", function()
      -- No token in a 644 file: its settings are used.
      write_config("account = acct-small\n", "644")
      local out, err, code = get()
      assert.equal('{"id":"u001"}\n', out)
      assert.equal("", err)
      assert.equal(0, code)
      -- A token in it, but the token comes from the environment: the file's is not used.
      write_config("token = secret\naccount = acct-small\n", "644")
      out, err, code = get()
      assert.equal('{"id":"u001"}\n', out)
      assert.equal("", err)
      assert.equal(0, code)
      -- Its token would be used: refused, saying why truthfully.
      out, err, code = get({}, { TRUTO_API_TOKEN = "" })
      assert.equal("", out)
      assert.equal("lua-truto: refusing to use " .. config .. ": it holds the API token and group or others "
        .. "can read it (mode 644); run: chmod 600 " .. quote(config) .. "\n", err)
      assert.equal(2, code)
      -- Writable by others: refused even without a token (it says where the token goes).
      write_config("account = acct-small\n", "666")
      err, code = select(2, get())
      assert.equal("lua-truto: refusing to use " .. config .. ": group or others can change it (mode 666), "
        .. "and so where the API token is sent; run: chmod 600 " .. quote(config) .. "\n", err)
      assert.equal(2, code)
      -- A sticky directory is shown with its sticky bit.
      write_config("account = acct-small\n")
      run.shell("chmod 1777 " .. quote(dir))
      err, code = select(2, get())
      assert.equal("lua-truto: refusing to use " .. config .. ": group or others can write to its directory "
        .. "(mode 1777)\n", err)
      assert.equal(2, code)
      run.shell("chmod 700 " .. quote(dir))
      -- --token-file follows the token rule; a pipe is read as it is.
      run.write(home .. "/token", m.token .. "\n")
      run.shell("chmod 644 " .. quote(home .. "/token"))
      out, err, code = get({ "-a", "acct-small", "--token-file", home .. "/token" }, { TRUTO_API_TOKEN = "" })
      assert.equal("", out)
      assert.equal("lua-truto: refusing to use --token-file " .. home .. "/token: group or others can read it "
        .. "(mode 644); run: chmod 600 " .. quote(home .. "/token") .. "\n", err)
      assert.equal(2, code)
      assert.same({ "GET", "GET" }, methods())
    end)

    it("refuses a FIFO as the config file at once instead of waiting on it (item 14)", function()
      run.shell("mkfifo -m 600 " .. quote(config))
      local cmd = ("cd %s && exec env -u TRUTO_API_TOKEN HOME=%s TRUTO_BASE_URL=%s timeout 10 lua5.4 ./lua-truto "
        .. "users get u001 -a acct-small </dev/null 2>&1"):format(quote(run.ROOT), quote(home), quote(m.url))
      local out, code = run.shell(cmd)
      assert.equal("lua-truto: refusing to use " .. config .. ": it is not a regular file (fifo)\n", out)
      assert.equal(2, code)
      assert.same({}, methods())
    end)
  end)

  it54("cleans every format on a terminal and keeps the bytes exact in a file (item 15)", function()
    local evil = "\27]52;c;cm0gLXJmIH4=\7\27[2J\194\155" .. "31mX"
    local body = require("truto").encode_json { name = evil }
    local _, err, code = cli { "organizations", "update", "org-1", "-a", "acct-small", "--body", body }
    assert.equal(0, code, err)
    local argv = { "organizations", "get", "org-1", "-a", "acct-small", "--fields", "id,name" }
    local function as(format, tty)
      local a = { unpack(argv) }
      a[#a + 1] = "-o"
      a[#a + 1] = format
      local out, e, c = cli(a, { tty = { [1] = tty } })
      assert.equal(0, c, e)
      return out
    end
    -- Into a file: exact.
    assert.equal('id,name\r\norg-1,' .. evil .. '\r\n', as("csv", false))
    assert.truthy(as("json", false):find("\194\155", 1, true))
    -- On a terminal: no ESC, BEL or CSI reaches it, in any format.
    for _, format in ipairs { "csv", "json", "ndjson", "table" } do
      local out = as(format, true)
      assert.falsy(out:find("[\27\7]"), format)
      assert.falsy(out:find("\194\155", 1, true), format)
      assert.truthy(out:find("31mX", 1, true), format)
    end
    assert.equal('id,name\r\norg-1,]52;c;cm0gLXJmIH4=[2J31mX\r\n', as("csv", true))
    assert.equal('{"id":"org-1","name":"\\u001b]52;c;cm0gLXJmIH4=\\u0007\\u001b[2J\\u009b31mX"}\n',
      as("json", true))
    -- The list writers too.
    local out = cli({ "organizations", "-a", "acct-small", "-o", "csv", "--fields", "id,name" }, { tty = { [1] = true } })
    assert.falsy(out:find("[\27\7]"))
    assert.falsy(out:find("\194\155", 1, true))
  end)

  it("fails with a write error when stdout is closed, instead of writing into libcurl's socket (item 16)", function()
    local dir = run.tmpdir()
    local cmd = ("cd %s && env TRUTO_API_TOKEN=%s TRUTO_BASE_URL=%s HOME=/nonexistent lua5.4 ./lua-truto "
      .. "users get u001 -a acct-small -o json >&- 2>%s/err </dev/null"):format(quote(run.ROOT), quote(m.token),
      quote(m.url), dir)
    local _, code = run.shell(cmd)
    assert.equal("lua-truto: cannot write the output: Bad file descriptor\n", run.read(dir .. "/err"))
    assert.equal(1, code)
    assert.same({ "GET" }, methods())
    -- With stdin and stderr closed as well, the answer still goes nowhere else, and the code says so.
    _, code = run.shell((cmd:gsub(">&%- 2>%S+ </dev/null", ">&- 2>&- <&-")))
    assert.equal(1, code)
  end)

  describe("the mock as a tool (item 19)", function()
    local socket = require "socket"
    local function mock_command(args)
      return ("cd %s && exec env HOME=/nonexistent lua5.4 ./lua-truto mock %s </dev/null"):format(quote(run.ROOT), args)
    end

    it("--port 0 picks a free port and says which; --latency and --limits pass through", function()
      local dir = run.tmpdir()
      local pid = run.spawn(mock_command("--port 0 --latency 300 --limits truto"), dir .. "/log")
      local port
      for _ = 1, 200 do
        port = run.slurp(dir .. "/log"):match("^mock Truto on http://127%.0%.0%.1:(%d+) %(token: test%-token%)\n")
        if port then break end
        socket.sleep(0.05)
      end
      finally(function() run.kill(pid, "TERM") end)
      assert.truthy(port, run.slurp(dir .. "/log"))
      local url = "http://127.0.0.1:" .. port
      local started = socket.gettime()
      local out, err, code = cli({ "users", "get", "u001", "-a", "acct-small", "-o", "json", "--fields", "id" },
        { env = { TRUTO_BASE_URL = url } })
      assert.equal('{"id":"u001"}\n', out)
      assert.equal("", err)
      assert.equal(0, code)
      assert.is_true(socket.gettime() - started >= 0.3) -- a lower bound: the latency asked for
      local limits = run.shell("curl -s " .. url .. "/__mock/limits")
      local report = require("truto").decode_json(limits)
      assert.equal(500, report.token.requests, limits)
      assert.equal(50, report.account.requests, limits)
    end)

    it("a taken port fails at once, with one message and no announcement", function()
      local out, code = run.shell(mock_command("--port " .. m.port) .. " 2>&1")
      assert.equal("serve: port " .. m.port .. " on 127.0.0.1 is taken (something accepts connections there): "
        .. "choose another, or --port 0 for a free one\n", out)
      assert.equal(1, code)
    end)

    it("stores and echoes a PATCH of 9007199254740993 exactly", function()
      local out, err, code = cli { "organizations", "update", "org-2", "-a", "acct-small", "-o", "json",
        "--fields", "id,seats", "--body", '{"seats":9007199254740993}' }
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal('{"id":"org-2","seats":9007199254740993}\n', out)
      out = cli { "organizations", "get", "org-2", "-a", "acct-small", "-o", "json", "--fields", "id,seats" }
      assert.equal('{"id":"org-2","seats":9007199254740993}\n', out)
    end)
  end)

  describe("the small points of item 18", function()
    local function refused(argv, err, topic, o)
      local out, got, code = cli(argv, o)
      assert.equal(usage(err, topic), got)
      assert.equal("", out)
      assert.equal(2, code)
      assert.same({}, methods())
    end

    it("says 'did you mean' for a mistyped resource, action or flag instead of asking Truto", function()
      refused({ "usres", "-a", "acct-small" }, "unknown resource 'usres' of user-directory; did you mean 'users'?")
      refused({ "users", "lsit", "-a", "acct-small" },
        "unknown action 'lsit' (list, get, create, update, delete, call); did you mean 'list'?", "users")
      refused({ "users", "-a", "acct-small", "--acount", "x" }, "unknown option '--acount'; did you mean '--account'?")
      -- Any other resource name goes to Truto as it is.
      local _, _, code = cli { "frobnicators", "-a", "acct-small" }
      assert.equal(1, code)
      assert.equal("/unified/user-directory/frobnicators", mock.last().path)
    end)

    it("lets a repeated option override; does not take an option name as a value", function()
      local out, err, code = cli { "users", "get", "u001", "-a", "nobody", "-a", "acct-small", "-o", "csv", "-o", "json",
        "--fields", "name", "--fields", "id" }
      assert.equal('{"id":"u001"}\n', out)
      assert.equal("", err)
      assert.equal(0, code)
      mock.reset()
      refused({ "users", "--fields", "-a", "x" },
        "option '--fields' needs a value, got the option '-a' (write --fields=-a if that is the value)")
    end)

    it("gives JSON errors as line and column", function()
      refused({ "users", "create", "-a", "acct-small", "--body", '{"name":"x",\n "email":}' },
        "--body: invalid JSON at line 2, column 10: expected a value, found '}'", "create")
      refused({ "users", "create", "-a", "acct-small", "--body", '{"name" "x"}' },
        "--body: invalid JSON at line 1, column 9: expected ':', found a string", "create")
    end)

    it("names CLI flags and where a setting came from, not the module's options", function()
      refused({ "users", "get", "u001", "-a", "acct-small", "--retries", "5000" },
        "--retries: integer from 0 to 1000 expected, got 5000", "get")
      refused({ "users", "-a", "acct-small" }, "$TRUTO_BASE_URL must use https:// (http:// only for 127.0.0.1, "
        .. "::1 or localhost)", nil, { env = { TRUTO_BASE_URL = "http://example.com" } })
      local home = run.tmpdir()
      run.shell("mkdir -p " .. home .. "/.config/lua-truto && chmod 700 " .. home .. "/.config/lua-truto")
      local config = home .. "/.config/lua-truto/config"
      run.write(config, "[work]\nbase_url = http://example.com\n")
      run.shell("chmod 600 " .. config)
      local out, err, code = run.cli({ "users", "-a", "acct-small", "--profile", "work" },
        { env = { HOME = home, TRUTO_API_TOKEN = m.token } })
      assert.equal(usage("base_url in " .. config .. " [work] must use https:// (http:// only for 127.0.0.1, "
        .. "::1 or localhost)"), err)
      assert.equal("", out)
      assert.equal(2, code)
    end)

    it("says the list was cut when --max-items stops inside the first page", function()
      local out, err, code = cli { "groups", "-a", "acct-small", "-o", "ndjson", "--fields", "id", "--max-items", "2" }
      assert.equal('{"id":"g01"}\n{"id":"g02"}\n', out)
      assert.equal("lua-truto: stopped at --max-items 2 inside the first page: the list was cut "
        .. "(run it again with a larger --max-items for more)\n", err)
      assert.equal(0, code)
      -- A whole list within the limit says nothing.
      out, err = cli { "groups", "-a", "acct-small", "-o", "ndjson", "--fields", "id", "--max-items", "6" }
      assert.equal(6, select(2, out:gsub("\n", "")))
      assert.equal("", err)
    end)

    it54("asks for --token-file - on a terminal without echo", function()
      local modes = {}
      local out, err, code = cli({ "users", "get", "u001", "-a", "acct-small", "-o", "json", "--fields", "id",
        "--token-file", "-" }, { tty = { [0] = true }, stdin = m.token .. "\n", env = { TRUTO_API_TOKEN = "" },
        stty = function(mode) modes[#modes + 1] = mode return true end })
      assert.equal('{"id":"u001"}\n', out)
      assert.equal("Truto API token (not shown): \n", err)
      assert.equal(0, code)
      assert.same({ "-echo", "echo" }, modes)
      assert.equal("Bearer " .. m.token, mock.last().headers.authorization)
    end)

    it("says that --fields indexes start at 1", function()
      local out, err, code = cli { "users", "get", "u001", "-a", "acct-small", "-o", "json", "--fields", "emails.0.email" }
      assert.equal('{"emails.0.email":null}\n', out)
      assert.equal("lua-truto: warning: --fields emails.0.email: list indexes start at 1 (emails.1.email is the "
        .. "first item)\n", err)
      assert.equal(0, code)
      local help = cli { "users", "list", "--help" }
      assert.truthy(help:find("list indexes starting at 1", 1, true), help)
    end)

    it("--dry-run works for list and get, and shows the headers lua-truto really sends", function()
      local out, err, code = cli { "users", "-a", "acct-small", "--limit", "5", "--dry-run" }
      assert.equal("", err)
      assert.equal(0, code)
      assert.same({}, methods())
      local first = out:match("^[^\n]*")
      assert.equal("GET " .. m.url .. "/unified/user-directory/users?integrated_account_id=acct-small&limit=5", first)
      local get = cli { "users", "get", "u 1", "-a", "acct-small", "--dry-run", "-H", "X-Trace: 7" }
      assert.equal("GET " .. m.url .. "/unified/user-directory/users/u%201?integrated_account_id=acct-small",
        get:match("^[^\n]*"))
      assert.same({}, methods())
      -- The same get, sent: every header the dry run printed reached the server as printed.
      cli { "users", "get", "u 1", "-a", "acct-small", "-H", "X-Trace: 7" }
      local received = mock.last().headers
      local n = 0
      for name, value in get:gmatch("\n([%w-]+): ([^\n]*)") do
        if name ~= "Authorization" then
          assert.equal(value, received[name:lower()], name)
          n = n + 1
        end
      end
      assert.is_true(n >= 5) -- Host, Accept, User-Agent, Accept-Encoding, X-Trace
      -- libcurl's own Accept-Encoding, as the server received it
      assert.truthy(get:find("\nAccept-Encoding: " .. received["accept-encoding"] .. "\n", 1, true), get)
    end)

    it54("does not cut a later page's longer values in the last table column to the first page's width", function()
      for _, columns in ipairs { 80, false } do
        local out, err, code = cli({ "users", "-a", "acct-small", "-o", "table", "--limit", "2", "--fields", "id,name" },
          { columns = columns })
        assert.equal(0, code, err)
        assert.equal("ID    NAME\nu001  Zoë Ångström\n", out:sub(1, #"ID    NAME\nu001  Zoë Ångström\n"))
        assert.truthy(out:find('\nu017  Robert "Bobby" Tables\n', 1, true), out)
      end
      -- Still within the terminal: at 20 columns the name is cut at its edge.
      local out = cli({ "users", "-a", "acct-small", "-o", "table", "--limit", "2", "--fields", "id,name" },
        { columns = 20 })
      assert.truthy(out:find('\nu017  Robert "Bobby…\n', 1, true), out)
    end)

    it("-v says when an answer was an idempotent replay", function()
      local argv = { "users", "create", "-a", "acct-small", "-o", "json", "--fields", "name", "-v",
        "--idempotency-key", "k-19", "--body", '{"name":"Replay Me"}' }
      local out, err, code = cli(argv)
      assert.equal('{"name":"Replay Me"}\n', out)
      assert.equal("", err)
      assert.equal(0, code)
      out, err, code = cli(argv)
      assert.equal('{"name":"Replay Me"}\n', out)
      assert.equal("lua-truto: the answer is a replay (Idempotent-Replayed: true): Truto had already done this "
        .. "request with the same Idempotency-Key\n", err)
      assert.equal(0, code)
      assert.same({ "POST", "POST" }, methods())
    end)
  end)

  it54("runs a command module registered with one table entry", function()
    local cli_mod = require "truto.cli"
    package.loaded["spec.fake_command"] = { run = function(sys, words)
      sys:write("fake ", table.concat(words, "|"), "\n")
      return 7
    end }
    cli_mod.COMMANDS.fake = "spec.fake_command"
    finally(function()
      cli_mod.COMMANDS.fake = nil
      package.loaded["spec.fake_command"] = nil
    end)
    local out, err, code = cli { "fake", "-a", "x", "--unknown" }
    assert.equal("fake -a|x|--unknown\n", out)
    assert.equal("", err)
    assert.equal(7, code)
  end)
end)
