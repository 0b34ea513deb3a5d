-- The CLI's registries and hooks (issue 20 items 3 and 4): output formats
-- in one table, commands in one table, the client's public wrap_transport
-- hook, and the CLI transport's wait_any(handles, timeout).
local mock = require "spec.helpers.mock"
local run = require "spec.helpers.run"

local it54 = _VERSION == "Lua 5.4" and it or function(name) pending(name .. " (Lua 5.4 only)") end -- luacheck: ignore 211

describe("lua-truto registries", function()
  local m
  setup(function() m = mock.start() end)
  before_each(function() mock.reset() end)
  local function cli(argv, o) return run.cli_mock(m, argv, o) end

  it54("takes a new output format from one entry of truto.cli.output's FORMATS", function()
    local output = require "truto.cli.output"
    local entry = {
      name = "ids", help = "the ids, one per line",
      list = function(sys) return {
        item = function(item) sys:write(item.id, "\n") end, page_done = function() end, finish = function() end,
      } end,
      single = function(sys, value) sys:write(value.id, "\n") end,
    }
    output.FORMATS[#output.FORMATS + 1] = entry
    output.FORMATS.ids = entry
    finally(function()
      output.FORMATS[#output.FORMATS] = nil
      output.FORMATS.ids = nil
    end)
    local out, err, code = cli { "groups", "-a", "acct-small", "-o", "ids" }
    assert.equal("", err)
    assert.equal(0, code)
    assert.equal("g01\n", out:match("^[^\n]*\n"))
    out = cli { "users", "get", "u001", "-a", "acct-small", "-o", "ids" }
    assert.equal("u001\n", out)
    local _, e = cli { "users", "-a", "acct-small", "-o", "xml" }
    assert.equal(run.usage("-o must be table, json, ndjson, csv or ids, got 'xml'", "list"), e)
    local bash = cli { "completion", "bash" }
    assert.truthy(bash:find('compgen -W "table json ndjson csv ids"', 1, true), bash)
  end)

  it54("runs `help NAME` of a command module as NAME --help", function()
    package.loaded["spec.fake_command"] = { run = function(sys, words)
      sys:write("fake ", table.concat(words, "|"), "\n")
      return 0
    end }
    local cli_mod = require "truto.cli"
    cli_mod.COMMANDS.fake = "spec.fake_command"
    finally(function()
      cli_mod.COMMANDS.fake = nil
      package.loaded["spec.fake_command"] = nil
    end)
    assert.equal("fake --help\n", (cli { "help", "fake" }))
    -- mock without change flags is the server, and `help mock` its help
    assert.equal("Usage: lua-truto mock --port N [--dir DIR] [--latency MS] [--limits truto|JSON]\n",
      (cli { "help", "mock" }):match("^[^\n]*\n"))
  end)
end)

describe("the client's wrap_transport hook", function()
  it("shows every transport the client makes to wrap_transport, and uses what it returns", function()
    local truto = require "truto"
    local seen, started = {}, 0
    local client = truto.new { token = "t", base_url = "http://127.0.0.1:1", max_retries = 0,
      wrap_transport = function(t, kind)
        seen[#seen + 1] = kind
        return setmetatable({ start = function(_, req) started = started + 1 return t:start(req) end },
          { __index = function(_, k)
            local f = t[k]
            if type(f) == "function" then return function(_, ...) return f(t, ...) end end
            return f
          end })
      end }
    assert.same({ "curl" }, seen)
    local value, err = client:get("user-directory", "users", "u1", { integrated_account_id = "a" })
    assert.is_nil(value)
    assert.equal("transport", err.kind)
    assert.equal(1, started)
    assert.same({ "curl" }, seen) -- made once
    client:close()
    assert.has_error(function() truto.new { token = "t", wrap_transport = 1 } end)
  end)
end)

describe("the CLI's interruptible transport", function()
  it54("honours wait_any's timeout: false when it passes first (the CLI runs on Lua 5.4)", function()
    local commands = require "truto.cli.commands"
    local clock, polls = 0, 0
    local inner_handle = { done = function() polls = polls + 1 return polls > 1000 end }
    local inner = { start = function() return inner_handle end }
    local function sleep(s) clock = clock + s end
    local t = commands.interruptible(inner, sleep, nil, function() return clock end)
    local h = t:start({ method = "GET", url = "http://127.0.0.1:1/" })
    assert.is_false(t:wait_any({ h }, 0.05))
    assert.is_true(polls < 100, polls)
    assert.is_true(clock >= 0.05 and clock < 0.07, clock)
    assert.equal(1, t:wait_any({ h })) -- no timeout: until done
    assert.is_nil(t:wait_any({}, 1))
  end)
end)
