-- The lua-truto command: runs the real script (a process, as a user runs it)
-- against the mock server and checks its exact stdout, stderr and exit code.
-- The specs of issue 13 (spec/cli_*_spec.lua) drive it in-process.
local mock = require "spec.helpers.mock"
local fixtures = require "spec.mock.truto_mock.fixtures"
local compat = require "spec.helpers.compat"
local encode_json = require("truto.core").encode_json
local truto = require "truto"
local socket = require "socket"

local helper = require "spec.helpers.run"
local quote, read_file, write_file, ROOT = helper.quote, helper.read, helper.write, helper.ROOT
local function shell_line(cmd) return (helper.shell(cmd):match("^[^\n]*")) end
local LUA_ENV = "LUA_PATH=" .. quote(ROOT .. "/build/?.lua;" .. ROOT .. "/build/?/init.lua;;")
  .. " LUA_CPATH=" .. quote(ROOT .. "/build/?.so;;")

-- The message of the JSON decoder lua-truto uses (the module's, or its
-- fallback while the module's decoder loses []), for a text it refuses.
local function decode_error(text)
  local e = helper.shell("cd " .. quote(ROOT) .. " && " .. LUA_ENV .. " lua5.4 -e "
    .. quote(("local j = require('truto.cli.json') local _, e = j.decode(%q) "
      .. "io.write(j.explain(type(e) == 'table' and e.message or e, %q))"):format(text, text)))
  assert(e:match("%d"), "no position in the decoder's message: " .. e)
  return e
end

local m, tmp

-- The shell command that runs lua-truto with `args` (a list) and the
-- environment of `o`: token/base_url (false: unset), home, env (a table).
local function command(args, o)
  o = o or {}
  local parts = { "cd", quote(ROOT), "&&", "exec", "env",
    "-u TRUTO_ACCOUNT -u TRUTO_ACCOUNTS -u TRUTO_API_TOKEN -u TRUTO_BASE_URL -u XDG_CONFIG_HOME",
    "-u LUA_TRUTO_MOCK", LUA_ENV, "HOME=" .. quote(o.home or tmp .. "/empty-home") }
  if o.token ~= false then parts[#parts + 1] = "TRUTO_API_TOKEN=" .. quote(o.token or m.token) end
  if o.base_url ~= false then parts[#parts + 1] = "TRUTO_BASE_URL=" .. quote(o.base_url or m.url) end
  for k, v in pairs(o.env or {}) do parts[#parts + 1] = k .. "=" .. quote(v) end
  parts[#parts + 1] = "./lua-truto"
  for _, a in ipairs(args) do parts[#parts + 1] = quote(a) end
  return table.concat(parts, " ")
end

-- Runs lua-truto; returns stdout, stderr and the exit code.
local function run(args, o)
  o = o or {}
  local input = "/dev/null"
  if o.stdin then
    input = tmp .. "/stdin"
    write_file(input, o.stdin)
  end
  local p = assert(compat.popen(command(args, o) .. " <" .. quote(input) .. " 2>" .. quote(tmp .. "/stderr")))
  local out = p:read("a")
  local _, how, code = p:close()
  assert.equal("exit", how)
  return out, read_file(tmp .. "/stderr"), code
end

-- Asserts a run's exact stdout, stderr and code.
local function expect(args, o, out, err, code)
  local got_out, got_err, got_code = run(args, o)
  if err ~= nil then assert.equal(err, got_err) end
  assert.equal(out, got_out)
  assert.equal(code, got_code)
end

-- JSON of an item as lua-truto writes it: id first, then the other keys.
local function item_json(v)
  local rest = {}
  for k, x in pairs(v) do if k ~= "id" then rest[k] = x end end
  return '{"id":' .. encode_json(v.id) .. "," .. encode_json(rest):sub(2)
end

-- What stderr says when --max-items N cuts the list inside its first page.
local function cut(n)
  return "lua-truto: stopped at --max-items " .. n .. " inside the first page: the list was cut "
    .. "(run it again with a larger --max-items for more)\n"
end

local usage = helper.usage

local function crlf(lines)
  return table.concat(lines, "\r\n") .. "\r\n"
end

local function lines(list)
  return table.concat(list, "\n") .. "\n"
end

local function list_requests()
  local n = 0
  for _, r in ipairs(mock.requests()) do
    if r.method == "GET" then n = n + 1 end
  end
  return n
end

describe("lua-truto", function()
  setup(function()
    m = mock.start()
    tmp = shell_line("mktemp -d")
    os.execute("mkdir -p " .. quote(tmp .. "/empty-home"))
  end)
  teardown(function()
    os.execute("rm -rf " .. quote(tmp))
    mock.reset()
  end)
  before_each(function() mock.reset() end)

  describe("help", function()
    it("prints the usage for --help, help and every action", function()
      local out, err, code = run { "--help" }
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("Usage: lua-truto RESOURCE [ACTION [ID|METHOD]] -a ACCOUNT [options]\n",
        out:match("^[^\n]*\n"))
      assert.truthy(out:find("Exit codes: 0 ok, 1 API error, 2 usage error, 3 network failure,\n130 interrupted.", 1, true))
      assert.equal(out, (run { "help" }))

      local firsts = {
        list = "Usage: lua-truto RESOURCE [list] -a ACCOUNT [-q KEY=VALUE]... [--limit N]\n",
        get = "Usage: lua-truto RESOURCE get ID -a ACCOUNT [-q KEY=VALUE]... [--fields A,B] [-o FORMAT] [--dry-run]\n",
        create = "Usage: lua-truto RESOURCE create -a ACCOUNT --body JSON|-|@FILE [-q KEY=VALUE]...\n",
        update = "Usage: lua-truto RESOURCE update ID -a ACCOUNT --body JSON|-|@FILE [-q KEY=VALUE]...\n",
        delete = "Usage: lua-truto RESOURCE delete ID -a ACCOUNT [-q KEY=VALUE]... [--yes] [--dry-run] [-o FORMAT]\n",
        call = "Usage: lua-truto RESOURCE call METHOD -a ACCOUNT [--body JSON|-|@FILE] [-q KEY=VALUE]...\n",
      }
      for action, first in pairs(firsts) do
        local text, e, c = run { "users", action, "--help" }
        assert.equal("", e)
        assert.equal(0, c)
        assert.equal(first, text:match("^[^\n]*\n"))
        assert.equal(text, (run { "help", action }))
        assert.equal(text, (run { "groups", action, "-h" }))
      end
    end)

    it("prints the help of a resource and of mock", function()
      local out, err, code = run { "organizations", "--help" }
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("Usage: lua-truto organizations [ACTION [ID|METHOD]] -a ACCOUNT [options]\n",
        out:match("^[^\n]*\n"))
      out, err, code = run { "mock", "--help" }
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal("Usage: lua-truto mock --port N [--dir DIR] [--latency MS] [--limits truto|JSON]\n",
        out:match("^[^\n]*\n"))
    end)

    it("prints the version", function()
      expect({ "--version" }, nil, "lua-truto " .. truto.VERSION .. "\n", "", 0)
    end)
  end)

  describe("list", function()
    it("writes a JSON array, one item per line, when stdout is not a terminal", function()
      local items = {}
      for i, g in ipairs(fixtures.groups()) do items[i] = item_json(g) end
      expect({ "groups", "-a", "acct-small" }, nil, "[\n" .. table.concat(items, ",\n") .. "\n]\n", "", 0)
    end)

    it("writes ndjson page after page, and follows the cursor", function()
      local items = {}
      for i, g in ipairs(fixtures.groups()) do items[i] = item_json(g) end
      expect({ "groups", "list", "-a", "acct-small", "-o", "ndjson", "--limit", "4" }, nil,
        lines(items), "", 0)
      local log = mock.requests()
      assert.equal(2, #log)
      assert.equal("integrated_account_id=acct-small&limit=4", log[1].raw_query)
      assert.truthy(log[2].raw_query:match("^integrated_account_id=acct%-small&limit=4&next_cursor=."))
    end)

    it("projects --fields in their order, null when missing, a.b reaching inside", function()
      expect({ "users", "-a", "acct-small", "-o", "ndjson", "--max-items", "2",
        "--fields", "name,id,emails.1.email,title" }, nil, lines {
        '{"name":"Zoë Ångström","id":"u001","emails.1.email":"zoe.angstrom@acme.example","title":"Engineer"}',
        '{"name":"李雷","id":"u002","emails.1.email":"li.lei@acme.example","title":null}',
      }, cut(2), 0)
      expect({ "groups", "-a", "acct-small", "-o", "json", "--fields", "id", "--max-items", "2" }, nil,
        '[\n{"id":"g01"},\n{"id":"g02"}\n]\n', cut(2), 0)
    end)

    it("writes an aligned table", function()
      expect({ "groups", "-a", "acct-small", "-o", "table" }, nil, lines {
        "ID   NAME         TYPE        MEMBERS",
        "g01  Engineering  department  10",
        "g02  Sales        department  7",
        "g03  Support      team        8",
        "g04  Design Ünit  team        7",
        "g05  Admins       group       8",
        "g06  Contractors  group       6",
      }, "", 0)
      expect({ "users", "-a", "acct-small", "-otable", "--max-items=3", "--fields", "id,name" }, nil, lines {
        "ID    NAME",
        "u001  Zoë Ångström",
        "u002  李雷",
        "u003  José Núñez",
      }, cut(3), 0)
    end)

    it("writes CSV with CRLF, the header from the first page's scalar fields", function()
      expect({ "groups", "-a", "acct-small", "-o", "csv" }, nil, crlf {
        "id,created_at,description,members,name,type,updated_at",
        "g01,2022-07-06T09:00:00Z,Engineering (department),10,Engineering,department,2022-07-17T09:00:00Z",
        "g02,2022-08-05T09:00:00Z,Sales (department),7,Sales,department,2022-08-27T09:00:00Z",
        "g03,2022-09-04T09:00:00Z,Support (team),8,Support,team,2022-10-07T09:00:00Z",
        "g04,2022-10-04T09:00:00Z,Design Ünit (team),7,Design Ünit,team,2022-11-17T09:00:00Z",
        "g05,2022-11-03T09:00:00Z,Admins (group),8,Admins,group,2022-12-28T09:00:00Z",
        "g06,2022-12-03T09:00:00Z,Contractors (group),6,Contractors,group,2023-02-07T09:00:00Z",
      }, "lua-truto: CSV columns are the fields of the first page; --fields A,B,... fixes them\n", 0)
    end)

    it("quotes CSV fields with a comma, a quote or a line break (RFC 4180)", function()
      expect({ "users", "-a", "acct-small", "-q", "status=deleted", "-o", "csv", "--fields", "id,name,groups" },
        nil, crlf {
          "id,name,groups",
          'u007,Amélie Dubois,"[{""id"":""g01"",""name"":""Engineering""}]"',
          'u017,"Robert ""Bobby"" Tables","[{""id"":""g05"",""name"":""Admins""}]"',
          'u027,Aarav Patel,"[{""id"":""g03"",""name"":""Support""}]"',
          'u037,Diego Ramírez,"[{""id"":""g01"",""name"":""Engineering""}]"',
        }, "", 0)
      local _, _, code = run { "organizations", "update", "org-1", "-a", "acct-small", "-o", "json",
        "--body", '{"name":"Acme, Inc. \\"West\\"\\nDivision"}' }
      assert.equal(0, code)
      expect({ "organizations", "-a", "acct-small", "-o", "csv", "--fields", "id,name" }, nil, crlf {
        "id,name",
        'org-1,"Acme, Inc. ""West""\nDivision"',
        "org-2,Globex",
        "org/with space:ü,Ünïcode & Sons",
      }, "", 0)
    end)

    it("stops after --max-items without asking for more pages", function()
      expect({ "users", "-a", "acct-small", "-o", "ndjson", "--fields", "id", "--max-items", "3" }, nil,
        lines { '{"id":"u001"}', '{"id":"u002"}', '{"id":"u003"}' }, cut(3), 0)
      assert.equal(1, list_requests())
      mock.reset()
      local out, _, code = run { "users", "-a", "acct-small", "-o", "ndjson", "--fields", "id",
        "--limit", "5", "--max-items", "12" }
      assert.equal(0, code)
      assert.equal(12, select(2, out:gsub("\n", "")))
      assert.equal(3, list_requests())
    end)

    it("handles an empty list in every format", function()
      local none = { "users", "-a", "acct-small", "-q", "status=nobody" }
      local function with(...)
        local args = { compat.unpack(none) }
        for _, a in ipairs { ... } do args[#args + 1] = a end
        return args
      end
      expect(with "-ojson", nil, "[]\n", "", 0)
      expect(with "-ondjson", nil, "", "", 0)
      expect(with "-otable", nil, "no users\n", "", 0)
      expect(with "-ocsv", nil, "", "", 0)
      expect(with("-ocsv", "--fields", "id,name"), nil, "id,name\r\n", "", 0)
      expect(with("-otable", "--fields", "id,name"), nil, "ID  NAME\n", "", 0)
    end)

    it("lists every page of a big account", function()
      -- pages of 1000 keep it to 100 requests, under the client's rate limit
      local out, err, code = run { "users", "-a", "acct-large", "-o", "csv", "--fields", "id", "--limit", "1000" }
      assert.equal("", err)
      assert.equal(0, code)
      assert.equal(100001, select(2, out:gsub("\r\n", "")))
      assert.equal("L100000\r\n", out:sub(-9))
    end)

    it("sends -q nesting, --limit and --response-format as the module encodes them", function()
      local _, err, code = run { "users", "-a", "acct-small", "--max-items", "1",
        "-q", "remote_query[foo]=bar", "-q", "truto_exclude_fields[]=remote_data",
        "-q", "truto_exclude_fields[]=roles", "-q", "created_at[gt]=2024-01-01T00:00:00Z",
        "-q", "foo[]=a", "-q", "foo[][b]=c", "-q", "x=a=b c&d", "-q", "deep[a][b][]=1",
        "--limit", "5", "--response-format", "normalized" }
      assert.equal(cut(1), err)
      assert.equal(0, code)
      assert.equal("created_at%5Bgt%5D=2024-01-01T00%3A00%3A00Z&deep%5Ba%5D%5Bb%5D%5B%5D=1"
        .. "&foo%5B%5D=a&foo%5B%5D%5Bb%5D=c&integrated_account_id=acct-small&limit=5"
        .. "&remote_query%5Bfoo%5D=bar&truto_exclude_fields%5B%5D=remote_data"
        .. "&truto_exclude_fields%5B%5D=roles&truto_response_format=normalized&x=a%3Db%20c%26d",
        mock.last().raw_query)
    end)

    it("takes the account from TRUTO_ACCOUNT", function()
      expect({ "groups", "-o", "ndjson", "--fields", "id", "--max-items", "1" },
        { env = { TRUTO_ACCOUNT = "acct-small" } }, '{"id":"g01"}\n', cut(1), 0)
    end)
  end)

  describe("single objects", function()
    it("gets one item in every format", function()
      local args = { "users", "get", "u004", "-a", "acct-small", "--fields", "id,name,status,login_count" }
      local function with(o)
        local a = { compat.unpack(args) }
        a[#a + 1] = "-o"
        a[#a + 1] = o
        return a
      end
      local json = '{"id":"u004","name":"Ada Lovelace","status":"active","login_count":47}\n'
      expect(with "json", nil, json, "", 0)
      expect(with "ndjson", nil, json, "", 0)
      expect(with "csv", nil, crlf { "id,name,status,login_count", "u004,Ada Lovelace,active,47" }, "", 0)
      expect(with "table", nil, lines {
        "id           u004",
        "name         Ada Lovelace",
        "status       active",
        "login_count  47",
      }, "", 0)
      assert.equal("/unified/user-directory/users/u004", mock.last().path)
    end)

    it("gets the whole object with sorted keys and exact integers", function()
      local out, err, code = run { "users", "get", "u040", "-a", "acct-small" }
      assert.equal("", err)
      assert.equal(0, code)
      assert.truthy(out:find('"employee_number":9007199254740993,', 1, true))
      assert.equal('{"id":"u040","created_at":"', out:sub(1, 27))
    end)

    it("percent-encodes an id", function()
      expect({ "organizations", "get", "org/with space:ü", "-a", "acct-small", "--fields", "id,name" },
        nil, '{"id":"org/with space:ü","name":"Ünïcode & Sons"}\n', "", 0)
      assert.equal("/unified/user-directory/organizations/org%2Fwith%20space%3A%C3%BC", mock.last().path)
    end)

    it("updates with a body from the command line, stdin or a file, [] kept", function()
      expect({ "organizations", "update", "org-2", "-a", "acct-small", "--fields", "id,name,licenses",
        "--body", '{"name":"Globex, Intl","licenses":[{"id":"l1"}],"seats":9007199254740993}' }, nil,
        '{"id":"org-2","name":"Globex, Intl","licenses":[{"id":"l1"}]}\n', "", 0)
      local r = mock.last()
      assert.equal("PATCH", r.method)
      assert.equal('{"licenses":[{"id":"l1"}],"name":"Globex, Intl","seats":9007199254740993}', r.body)

      expect({ "organizations", "update", "org-2", "-a", "acct-small", "--fields", "id,name",
        "--body", "-" }, { stdin = ' { "name" : "Globex\\u00e9 \\ud83d\\ude00", "licenses": [], "x": {} } ' },
        '{"id":"org-2","name":"Globexé 😀"}\n', "", 0)
      assert.equal('{"licenses":[],"name":"Globexé 😀","x":{}}', mock.last().body)

      write_file(tmp .. "/body.json", '{"pricing_plan":"team","n":[1,2.5,-3e2,true,false,null]}')
      expect({ "organizations", "update", "org-2", "-a", "acct-small", "--fields", "pricing_plan",
        "--body", "@" .. tmp .. "/body.json" }, nil, '{"pricing_plan":"team"}\n', "", 0)
      assert.equal('{"n":[1,2.5,-300,true,false,null],"pricing_plan":"team"}', mock.last().body)
    end)

    it("creates, deletes and calls a custom method", function()
      expect({ "users", "create", "-a", "acct-small", "--body", '{"name":"New Person"}' }, nil,
        '{"id":"u-new-1","name":"New Person"}\n', "", 0)
      assert.equal("POST", mock.last().method)
      assert.equal("/unified/user-directory/users", mock.last().path)

      expect({ "organizations", "delete", "org-1", "-a", "acct-small", "-o", "table", "--yes" }, nil,
        lines { "deleted  true", "id       org-1" }, "", 0)
      assert.equal("DELETE", mock.last().method)
      expect({ "organizations", "delete", "org-2", "-a", "acct-small", "-y" }, nil, "{}\n", "", 0)

      expect({ "users", "call", "downgrade", "-a", "acct-small", "--body", '{"id":"u004"}' }, nil,
        '{"result":{"body":{"id":"u004"},"method":"downgrade"}}\n', "", 0)
      assert.equal("/unified/user-directory/users/downgrade", mock.last().path)
      expect({ "users", "call", "downgrade", "-a", "acct-small" }, nil,
        '{"result":{"body":{},"method":"downgrade"}}\n', "", 0)
    end)
  end)

  describe("failures", function()
    it("exits 1 with the status and Truto's message on an API error", function()
      expect({ "users", "-a", "no-such-account" }, nil, "",
        "lua-truto: 404 Not Found: Integrated account not found\n", 1)
      expect({ "users", "get", "u999", "-a", "acct-small" }, nil, "",
        "lua-truto: 404 Not Found: No user with id 'u999'\n", 1)
      expect({ "users", "-a", "acct-small" }, { token = "wrong" }, "",
        "lua-truto: 401 Unauthorized: Invalid API token\n", 1)
      expect({ "users", "-a", "fault-remote" }, nil, "",
        "lua-truto: 401 Unauthorized: Bad credentials (from the remote API)\n"
        .. 'lua-truto: insight: {"forbidden_error":{"missing_scopes":["admin:org"]}}\n', 1)
      expect({ "users", "-a", "fault-500", "--retries", "0" }, nil, "",
        "lua-truto: 500 Internal Server Error: Internal server error\n", 1)
      expect({ "users", "-a", "fault-malformed" }, nil, "", "lua-truto: decode error: response is not "
        .. "valid JSON (Expected object key string but found T_END at character 26)\n", 1)
    end)

    it("tells each retry with --verbose", function()
      local out, err, code = run { "users", "-a", "flaky-500-1", "-v", "-o", "ndjson", "--fields", "id",
        "--max-items", "1" }
      assert.equal('{"id":"u001"}\n', out)
      assert.truthy(err:match("^lua%-truto: HTTP 500; retry 1 in %d+%.%d s\n"), err)
      assert.equal(cut(1), err:match("\n(.*)$"))
      assert.equal(0, code)
    end)

    it("exits 3 when the network fails", function()
      local url = "http://127.0.0.1:9/unified/user-directory/users?integrated_account_id=acct-small"
      for _, retries in ipairs { "0", "1" } do
        local out, err, code = run({ "users", "-a", "acct-small", "--retries", retries },
          { base_url = "http://127.0.0.1:9" })
        assert.equal("", out)
        assert.equal(3, code)
        local first, second = err:match("^([^\n]*)\n([^\n]*)\n$")
        assert.truthy(first:match("^lua%-truto: network failure %(transport%): .*onnect"), err)
        assert.equal("lua-truto: while GET " .. url, second)
      end
      local _, err, code = run { "users", "-a", "fault-close", "--retries", "0" }
      assert.equal(3, code)
      assert.truthy(err:match("^lua%-truto: network failure %(transport%): Empty reply from server\n"), err)
    end)

    it("exits 3 on a timeout", function()
      local _, err, code = run { "users", "-a", "fault-slow", "--timeout", "0.5", "--retries", "0" }
      assert.equal(3, code)
      assert.truthy(err:match("^lua%-truto: network failure %(timeout%): "), err)
    end)

    it("exits 2 on usage errors, having sent nothing", function()
      local cases = {
        { {}, "Usage: lua-truto RESOURCE [ACTION [ID|METHOD]] -a ACCOUNT [options]\n"
          .. "       lua-truto mock --port N\n       lua-truto completion bash|zsh|fish\n"
          .. "       lua-truto help [RESOURCE|ACTION|mock]\n"
          .. usage("a resource is required, e.g. users, groups or organizations") },
        { { "users" }, usage("an account is required: -a ACCOUNT (or set TRUTO_ACCOUNT)", "list") },
        { { "users", "-a", "" }, usage("-a must not be empty", "list") },
        { { "users", "frob", "-a", "x" }, usage("unknown action 'frob' (list, get, create, update, delete, call)", "users") },
        { { "users", "mock", "-a", "x" }, usage("unknown action 'mock' (list, get, create, update, delete, call)", "users") },
        { { "us/ers", "-a", "x" }, usage("'us/ers' is not a resource name (letters, digits, '-', '_')") },
        { { "users", "-a", "x", "--model", "a b" }, usage("'a b' is not a model name (letters, digits, '-', '_')") },
        { { "users", "get", "-a", "x" }, usage("get needs ID", "get") },
        { { "users", "get", "", "-a", "x" }, usage("ID must not be empty", "get") },
        { { "users", "get", "a", "b", "-a", "x" }, usage("unexpected argument 'b'", "get") },
        { { "users", "call", "a/b", "-a", "x" }, usage("'a/b' is not a method name (letters, digits, '-', '_')", "call") },
        { { "users", "update", "u1", "-a", "x" }, usage("update needs --body JSON (or --body - to read stdin)", "update") },
        { { "users", "create", "-a", "x", "--body", "[1," }, usage("--body: " .. decode_error("[1,"), "create") },
        { { "users", "create", "-a", "x", "--body", '{"a":01}' }, usage("--body: " .. decode_error('{"a":01}'), "create") },
        { { "users", "create", "-a", "x", "--body", '{"a":1} x' }, usage("--body: " .. decode_error('{"a":1} x'), "create") },
        { { "users", "create", "-a", "x", "--body", '"text"' }, usage("--body must be a JSON object or array", "create") },
        { { "users", "create", "-a", "x", "--body", "@/nonexistent.json" },
          usage("--body: /nonexistent.json: No such file or directory", "create") },
        { { "users", "-a", "x", "--body", "{}" }, usage("option '--body' does not apply to list", "list") },
        { { "users", "get", "u1", "-a", "x", "--limit", "3" }, usage("option '--limit' does not apply to get", "get") },
        { { "users", "-a", "x", "--port", "3" }, usage("option '--port' does not apply to list", "list") },
        { { "mock", "-a", "x" }, usage("option '-a' does not apply to mock", "mock") },
        { { "users", "-a", "x", "--frob" }, usage("unknown option '--frob'") },
        { { "users", "-a" }, usage("option '-a' needs a value") },
        { { "users", "-a", "x", "--help=yes" }, usage("option '--help' takes no value") },
        { { "users", "-a", "x", "-o", "xml" }, usage("-o must be table, json, ndjson or csv, got 'xml'", "list") },
        { { "users", "-a", "x", "--limit", "0" }, usage("--limit expects a positive integer, got '0'") },
        { { "users", "-a", "x", "--max-items", "1.5" }, usage("--max-items expects a positive integer, got '1.5'") },
        { { "users", "-a", "x", "--timeout", "-1" }, usage("--timeout expects a positive number of seconds, got '-1'") },
        { { "users", "-a", "x", "--retries", "x" }, usage("--retries expects an integer >= 0, got 'x'") },
        { { "users", "-a", "x", "--fields", "id,,name" }, usage("--fields: empty field name in 'id,,name'") },
        { { "users", "-a", "x", "--fields", "id,id" }, usage("--fields: 'id' given twice") },
        { { "users", "-a", "x", "--response-format", "xml" },
          usage("--response-format must be unified, raw, normalized, stream or debug, got 'xml'", "list") },
        { { "users", "-a", "x", "-q", "limit=3", "--limit", "3" }, usage("--limit and -q limit=... given both", "list") },
        { { "users", "-a", "x", "-q", "novalue" }, usage("-q expects KEY=VALUE, got 'novalue'") },
        { { "users", "-a", "x", "-q", "=v" }, usage("-q expects KEY=VALUE, got '=v'") },
        { { "users", "-a", "x", "-q", "[a]=v" }, usage("-q '[a]=v': the key must start with a name") },
        { { "users", "-a", "x", "-q", "a[b=v" }, usage("-q 'a[b=v': expected [NAME] or [] after 'a'") },
        { { "users", "-a", "x", "-q", "a=1", "-q", "a=2" }, usage("-q 'a=2': a given twice (use a[]=VALUE for a list)") },
        { { "users", "-a", "x", "-q", "a=1", "-q", "a[b]=2" }, usage("-q 'a[b]=2': a already has a plain value") },
        { { "users", "-a", "x", "-q", "a[]=1", "-q", "a[b]=2" },
          usage("-q 'a[b]=2': a is used both as a list (a[]=...) and with names") },
        { { "users", "-a", "x", "--base-url", "http://example.com" }, usage("--base-url must use https:// "
          .. "(http:// only for 127.0.0.1, ::1 or localhost)") },
        { { "users", "-a", "x" }, { token = false },
          usage("no API token: set TRUTO_API_TOKEN, pass --token-file FILE, or put 'token = ...' in " .. tmp
            .. "/empty-home/.config/lua-truto/config") },
        { { "mock" }, usage("mock needs --port N (0: any free port)", "mock") },
        { { "mock", "--port", "70000" }, usage("--port must be at most 65535", "mock") },
        { { "mock", "--port", "80", "extra" }, usage("mock takes no arguments", "mock") },
      }
      for _, case in ipairs(cases) do
        local args, o, err = case[1], case[2], case[3]
        if err == nil then o, err = nil, o end
        local got_out, got_err, got_code = run(args, o)
        assert.equal(err, got_err)
        assert.equal("", got_out)
        assert.equal(2, got_code)
      end
      assert.equal(0, #mock.requests())
    end)
  end)

  describe("settings", function()
    local home, config

    before_each(function()
      home = tmp .. "/home"
      config = home .. "/.config/lua-truto/config"
      os.execute("rm -rf " .. quote(home) .. " && mkdir -p " .. quote(home .. "/.config/lua-truto"))
      write_file(config, "# lua-truto\n\ntoken = " .. m.token .. '\nbase_url = "' .. m.url .. '"\n')
      os.execute("chmod 600 " .. quote(config))
    end)

    local groups = { "groups", "-a", "acct-small", "-o", "ndjson", "--fields", "id", "--max-items", "1" }

    it("reads the token and base URL from the profile", function()
      expect(groups, { home = home, token = false, base_url = false }, '{"id":"g01"}\n', cut(1), 0)
    end)

    it("honours XDG_CONFIG_HOME", function()
      expect(groups, { token = false, base_url = false, env = { XDG_CONFIG_HOME = home .. "/.config" } },
        '{"id":"g01"}\n', cut(1), 0)
    end)

    it("lets the environment and flags win over the profile", function()
      expect(groups, { home = home, token = "wrong", base_url = false }, "",
        "lua-truto: 401 Unauthorized: Invalid API token\n", 1)
      local args = { compat.unpack(groups) }
      args[#args + 1] = "--token=" .. m.token
      expect(args, { home = home, token = "wrong", base_url = false }, '{"id":"g01"}\n',
        "lua-truto: warning: --token is visible to other processes (/proc/PID/cmdline); "
        .. "use $TRUTO_API_TOKEN, --token-file FILE or the config file\n" .. cut(1), 0)
      expect({ "groups", "-a", "acct-small", "--base-url", "http://127.0.0.1:9", "--retries", "0" },
        { home = home }, "", nil, 3)
    end)

    it("refuses a profile that group or others can read", function()
      os.execute("chmod 644 " .. quote(config))
      expect(groups, { home = home, token = false, base_url = false }, "",
        "lua-truto: refusing to use " .. config .. ": it holds the API token and group or others can read it "
        .. "(mode 644); run: chmod 600 " .. quote(config) .. "\n", 2)
      -- Not read at all when the environment gives everything.
      expect(groups, { home = home }, '{"id":"g01"}\n', cut(1), 0)
    end)

    it("refuses a malformed profile", function()
      write_file(config, "token: abc\n")
      expect(groups, { home = home, token = false }, "",
        "lua-truto: " .. config .. ":1: expected 'token = ...', 'base_url = ...', 'account = ...' or '[profile]'\n", 2)
    end)
  end)

  describe("on a terminal", function()
    local has_script = compat.execute("command -v script >/dev/null 2>&1")

    it("defaults to a table, and shows no progress line while stdout is that terminal", function()
      if not has_script then
        pending("needs script(1) from util-linux")
        return
      end
      local cmd = command { "groups", "-a", "acct-small", "--limit", "4" }
      local p = assert(compat.popen("script -qec " .. quote(cmd) .. " /dev/null </dev/null"))
      local out = p:read("a")
      local _, _, code = p:close()
      assert.equal(0, code)
      assert.equal("ID   NAME         TYPE        MEMBERS\r\n", out:match("^.-\r\n"))
      assert.equal("g06  Contractors  group       6\r\n", out:sub(-33))
    end)
  end)

  describe("mock", function()
    it("runs the bundled mock server in the foreground until stopped", function()
      local server = assert(socket.bind("127.0.0.1", 0))
      local _, port = server:getsockname()
      server:close()
      local log, pidfile = tmp .. "/mock.out", tmp .. "/mock.pid"
      os.execute(command { "mock", "--port", tostring(port) } .. " >" .. quote(log) .. " 2>&1 </dev/null & echo $! >"
        .. quote(pidfile))
      local pid = assert(tonumber(read_file(pidfile):match("%d+")))
      local base = "http://127.0.0.1:" .. port
      local out, code
      for _ = 1, 100 do
        out, _, code = run({ "groups", "-a", "acct-small", "-o", "ndjson", "--fields", "id", "--max-items", "1" },
          { base_url = base, token = "test-token" })
        if code == 0 then break end
        socket.sleep(0.1)
      end
      assert.equal('{"id":"g01"}\n', out)
      os.execute("kill -TERM " .. pid)
      local stopped = false
      for _ = 1, 100 do
        local conn = socket.connect("127.0.0.1", port)
        if not conn then
          stopped = true
          break
        end
        conn:close()
        socket.sleep(0.1)
      end
      assert.is_true(stopped)
      local first = read_file(log):match("^[^\n]*")
      assert.equal("mock Truto on " .. base .. " (token: test-token)", first)
    end)

    it("says when LUA_TRUTO_MOCK names no file", function()
      expect({ "mock", "--port", "8089" }, { env = { LUA_TRUTO_MOCK = "/nonexistent/serve" } }, "",
        "lua-truto: LUA_TRUTO_MOCK=/nonexistent/serve: no such file\n", 2)
    end)
  end)
end)
