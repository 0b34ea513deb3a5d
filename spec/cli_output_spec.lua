-- lua-truto's output (issue 13): false is not null, streaming tables, CSV
-- columns, widths and control characters, empty lists, JSON items, the
-- progress line, debug objects, CSV formulas, $COLUMNS. Run in-process
-- through spec.helpers.run (a lua5.4 process where the specs run on LuaJIT).
local mock = require "spec.helpers.mock"
local run = require "spec.helpers.run"

-- The specs that call the command line's modules directly need Lua 5.4 (the
-- command line's language); on LuaJIT they are skipped, the rest runs
-- lua-truto as a lua5.4 process.
local it54 = _VERSION == "Lua 5.4" and it or function(name) pending(name .. " (Lua 5.4 only)") end
local unpack = table.unpack or unpack -- luacheck: ignore 113

local function crlf(list) return table.concat(list, "\r\n") .. "\r\n" end
local function lines(list) return table.concat(list, "\n") .. "\n" end

local m
local function cli(argv, o) return run.cli_mock(m, argv, o) end

local function gets()
  local n = 0
  for _, r in ipairs(mock.requests()) do if r.method == "GET" then n = n + 1 end end
  return n
end

describe("lua-truto output", function()
  setup(function() m = mock.start() end)
  before_each(function() mock.reset() end)

  it("prints false as false in CSV and list tables, not as an empty cell", function()
    local out, err, code = cli { "users", "-a", "acct-small", "-o", "csv", "--fields", "id,is_2fa_enabled",
      "--max-items", "2" }
    assert.equal(crlf { "id,is_2fa_enabled", "u001,false", "u002,true" }, out)
    assert.equal("lua-truto: stopped at --max-items 2 inside the first page: the list was cut "
      .. "(run it again with a larger --max-items for more)\n", err)
    assert.equal(0, code)
    out = cli { "users", "-a", "acct-small", "-o", "table", "--fields", "id,is_2fa_enabled", "--max-items", "2" }
    assert.equal(lines { "ID    IS_2FA_ENABLED", "u001  false", "u002  true" }, out)
  end)

  it54("streams the table: the first rows are written before the last page is asked for", function()
    local first_write_gets
    local out, _, code = cli { "users", "-a", "acct-small", "-o", "table", "--limit", "10" }
    assert.equal(0, code)
    assert.equal(41, select(2, out:gsub("\n", ""))) -- header + 40 rows
    -- The same run, watching when stdout is first written.
    mock.reset()
    local sys_mod = require "truto.cli.sys"
    local cli_mod = require "truto.cli"
    local text = {}
    local sys = sys_mod.new {
      stdout = { write = function(self, ...)
        first_write_gets = first_write_gets or gets()
        for i = 1, select("#", ...) do text[#text + 1] = select(i, ...) end
        return self
      end, flush = function(self) return self end },
      stderr = { write = function(self) return self end },
      getenv = function(k) return ({ TRUTO_API_TOKEN = m.token, TRUTO_BASE_URL = m.url, HOME = "/nonexistent" })[k] end,
      tty = { [0] = false, [1] = false, [2] = false }, columns = false,
    }
    assert.equal(0, cli_mod.main({ "users", "-a", "acct-small", "-o", "table", "--limit", "10" }, sys))
    assert.equal(4, gets())
    assert.is_true(first_write_gets <= 2, "first row written after " .. first_write_gets .. " pages")
    assert.equal(out, table.concat(text))
  end)

  it("takes CSV columns from the whole first page and says how to fix them", function()
    local out, err, code = cli { "users", "-a", "acct-small", "-o", "csv", "--limit", "40" }
    assert.equal(0, code)
    local header = out:match("^[^\r]*")
    assert.truthy(("," .. header .. ","):find(",employee_number,", 1, true), header) -- only u040 has it
    assert.equal("id,", header:sub(1, 3))
    assert.truthy(out:find("\r\nu040,", 1, true))
    assert.equal("lua-truto: CSV columns are the fields of the first page; --fields A,B,... fixes them\n", err)
  end)

  it54("measures cells in terminal columns and strips control characters", function()
    local text = require "truto.cli.text"
    assert.equal(2, text.width("☕"))
    assert.equal(2, text.width("⌚"))
    assert.equal(2, text.width("👩\u{200D}💻"))
    assert.equal("ab", text.clean("a\u{202E}b"))
    assert.equal("xy", text.clean("x\u{9B}y"))
    assert.equal("\\n lua-truto: ]0;x", text.clean("\n lua-truto: \27]0;x\7"))
    local output = require "truto.cli.output"
    local sys = require("truto.cli.sys").new { columns = false }
    local buf = {}
    sys.stdout = { write = function(self, ...) for i = 1, select("#", ...) do buf[#buf + 1] = select(i, ...) end
      return self end, flush = function(self) return self end }
    local w = output.list_writer(sys, "table", { fields = { "id", "name" } })
    w.item { id = "a", name = "☕ tea" }
    w.item { id = "b", name = "x\u{9B}\27[31mred" }
    w.page_done()
    w.finish()
    assert.equal(lines { "ID  NAME", "a   ☕ tea", "b   x[31mred" }, table.concat(buf))
  end)

  it("prints a header or 'no users' for an empty list on the terminal, a CSV header when columns are known", function()
    local none = { "users", "-a", "acct-small", "-q", "status=nobody" }
    local function with(...)
      local a = { unpack(none) }
      for _, x in ipairs { ... } do a[#a + 1] = x end
      return a
    end
    assert.equal("no users\n", (cli(with("-o", "table"))))
    assert.equal("ID  NAME\n", (cli(with("-o", "table", "--fields", "id,name"))))
    assert.equal("id,name\r\n", (cli(with("-o", "csv", "--fields", "id,name"))))
  end)

  it("writes JSON items with id first and newlines as \\n", function()
    local out, _, code = cli { "organizations", "update", "org-1", "-a", "acct-small", "-o", "json",
      "--body", '{"name":"Two\\nLines\\tTab"}' }
    assert.equal(0, code)
    assert.equal('{"id":"org-1",', out:sub(1, 14))
    assert.truthy(out:find('"name":"Two\\nLines\\tTab"', 1, true), out)
  end)

  it54("shows no progress line while stdout is the terminal too, and one while only stderr is", function()
    local out, err = cli({ "groups", "-a", "acct-small", "-o", "ndjson", "--fields", "id" }, { tty = { [1] = true, [2] = true } })
    assert.equal(6, select(2, out:gsub("\n", "")))
    assert.equal("", err)
    out, err = cli({ "groups", "-a", "acct-small", "-o", "ndjson", "--fields", "id", "--limit", "4" }, { tty = { [2] = true } })
    assert.equal(6, select(2, out:gsub("\n", "")))
    assert.equal("\r\27[Klua-truto: 4 items, 1 page\r\27[Klua-truto: 6 items, 2 pages\r\27[K", err)
  end)

  it54("prints each page's debug object on stderr", function()
    local commands = require "truto.cli.commands"
    local sys = require("truto.cli.sys").new { tty = { [0] = false, [1] = false, [2] = false } }
    local out, err = {}, {}
    sys.stdout = { write = function(self, ...) for i = 1, select("#", ...) do out[#out + 1] = select(i, ...) end
      return self end, flush = function(self) return self end }
    sys.stderr = { write = function(self, ...) for i = 1, select("#", ...) do err[#err + 1] = select(i, ...) end
      return self end }
    local pages = { { result = { { id = "u1" } }, next_cursor = "c", debug = { query = "a\nb" } },
      { result = { { id = "u2" } }, debug = { took = 3 } } }
    local client = { pages = function()
      local i = 0
      return function() i = i + 1 return pages[i] end
    end }
    local code = commands.list(sys, client, { model = "user-directory", resource = "users", query = {},
      output = "ndjson" })
    assert.equal(0, code)
    assert.equal('{"id":"u1"}\n{"id":"u2"}\n', table.concat(out))
    assert.equal('lua-truto: debug (page 1): {"query":"a\\nb"}\nlua-truto: debug (page 2): {"took":3}\n',
      table.concat(err))
  end)

  it54("strips control characters from what the server says", function()
    local core = require "truto.core"
    local commands = require "truto.cli.commands"
    local _, e = core.read_response(400, { ["content-type"] = "application/json" },
      '{"error":"Bad\\u001b[2J","message":"no\\n lua-truto: \\u001b]0;pwned\\u0007 ok"}', "GET",
      "http://127.0.0.1/x")
    local err = {}
    local sys = require("truto.cli.sys").new {}
    sys.stderr = { write = function(self, ...) for i = 1, select("#", ...) do err[#err + 1] = select(i, ...) end
      return self end }
    assert.equal(1, commands.report_error(sys, e))
    assert.equal("lua-truto: 400 Bad[2J: no\\n lua-truto: ]0;pwned ok\n", table.concat(err))
  end)

  it("prefixes CSV cells that could run as formulas with --csv-safe", function()
    local _, _, code = cli { "organizations", "update", "org-2", "-a", "acct-small", "-o", "json",
      "--body", '{"name":"=HYPERLINK(\\"x\\")"}' }
    assert.equal(0, code)
    local args = { "organizations", "get", "org-2", "-a", "acct-small", "-o", "csv", "--fields", "id,name" }
    assert.equal(crlf { "id,name", 'org-2,"=HYPERLINK(""x"")"' }, (cli(args)))
    args[#args + 1] = "--csv-safe"
    assert.equal(crlf { "id,name", [[org-2,"'=HYPERLINK(""x"")"]] }, (cli(args)))
    assert.truthy((cli { "--help" }):find("--csv-safe", 1, true))
  end)

  it54("fits tables to $COLUMNS", function()
    local out = cli({ "users", "-a", "acct-small", "-o", "table", "--max-items", "5",
      "--fields", "id,name,emails.1.email" }, { columns = 40 })
    for line in out:gmatch("[^\n]+") do
      assert.is_true(require("truto.cli.text").width(line) <= 40, line)
    end
    assert.equal("ID    NAME          EMAILS.1.EMAIL", out:match("^[^\n]+"))
    out = cli({ "users", "-a", "acct-small", "-o", "table", "--max-items", "5",
      "--fields", "id,name,emails.1.email" }, { env = { COLUMNS = "200" } })
    assert.truthy(out:find("zoe.angstrom@acme.example", 1, true))
  end)
end)
