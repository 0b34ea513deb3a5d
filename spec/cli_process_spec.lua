-- lua-truto as a process (issue 13): Ctrl-C during a request, a full disk,
-- the launcher that never loads ./truto.lua and says "run make", --version,
-- the examples in --help, completion scripts.
local mock = require "spec.helpers.mock"
local run = require "spec.helpers.run"
local socket = require "socket"

local m
local quote = run.quote

describe("lua-truto process", function()
  setup(function() m = mock.start() end)
  before_each(function() mock.reset() end)

  it("exits 130 quietly on Ctrl-C, at once, cancelling the request in flight", function()
    local dir = run.tmpdir()
    local script = ("cd %s && env TRUTO_API_TOKEN=%s TRUTO_BASE_URL=%s HOME=%s lua5.4 ./lua-truto users get u001 "
      .. "-a acct-small@8000 -o json >%s/out 2>%s/err & echo $! >%s/pid; wait $!; echo $? >%s/code")
      :format(quote(run.ROOT), quote(m.token), quote(m.url), quote(dir), dir, dir, dir, dir)
    run.spawn("sh -c " .. quote(script))
    local pid
    for _ = 1, 100 do
      local f = io.open(dir .. "/pid")
      pid = f and tonumber(f:read("*a"):match("%d+"))
      if f then f:close() end
      if pid and #mock.requests() > 0 then break end
      socket.sleep(0.05)
    end
    assert.truthy(pid)
    assert.equal(1, #mock.requests()) -- the request is in flight
    socket.sleep(0.3)
    local sent = socket.gettime()
    run.kill(pid, "INT")
    local code
    for _ = 1, 200 do
      local f = io.open(dir .. "/code")
      code = f and tonumber(f:read("*a"):match("%d+"))
      if f then f:close() end
      if code then break end
      socket.sleep(0.02)
    end
    local took = socket.gettime() - sent
    assert.equal(130, code)
    assert.is_true(took < 2, ("took %.1f s to stop"):format(took))
    assert.equal("", run.read(dir .. "/err"))
    assert.equal("", run.read(dir .. "/out"))
  end)

  it("exits 1 with a message when the output cannot be written (full disk)", function()
    for _, process in ipairs { false, true } do
      local out, err, code = run.cli({ "users", "get", "u001", "-a", "acct-small", "-o", "json" },
        { stdout = "/dev/full", process = process,
          env = { TRUTO_API_TOKEN = m.token, TRUTO_BASE_URL = m.url } })
      assert.equal("", out)
      assert.equal("lua-truto: cannot write the output: No space left on device\n", err)
      assert.equal(1, code)
    end
    local out, err, code = run.cli({ "--version" }, { stdout = "/dev/full" })
    assert.equal("", out)
    assert.equal("lua-truto: cannot write the output: No space left on device\n", err)
    assert.equal(1, code)
  end)

  it("never loads a truto.lua from the current directory", function()
    local dir = run.tmpdir()
    run.write(dir .. "/truto.lua", "io.write('PWNED') os.exit(9)")
    local out, code = run.shell("cd " .. quote(dir) .. " && lua5.4 " .. quote(run.ROOT .. "/lua-truto") .. " --version")
    assert.equal(0, code)
    assert.equal("lua-truto " .. require("truto").VERSION .. "\n", out)
  end)

  it("says 'run make' in a checkout that has no build, without dumping the search path", function()
    local dir = run.tmpdir()
    run.shell("cp -r " .. quote(run.ROOT .. "/lua-truto") .. " " .. quote(run.ROOT .. "/src") .. " " .. quote(dir))
    local out, code = run.shell("cd / && env -u LUA_PATH -u LUA_CPATH lua5.4 " .. quote(dir .. "/lua-truto")
      .. " --help 2>&1")
    assert.equal(2, code)
    assert.equal("lua-truto: cannot load the truto module (truto.cli): run make in " .. dir
      .. " first, or install lua-truto (make install, or luarocks)\n", out:match("^[^\n]*\n"))
    assert.equal(2, select(2, out:gsub("\n", "")))
  end)

  it("prints the version for --version and -V, and examples in --help", function()
    local version = "lua-truto " .. require("truto").VERSION .. "\n"
    assert.equal(version, (run.cli { "--version" }))
    assert.equal(version, (run.cli { "-V" }))
    local help = run.cli { "--help" }
    assert.truthy(help:find("\nExamples:\n  lua-truto users -a ACCOUNT ", 1, true))
  end)

  it("prints bash, zsh and fish completion scripts, made by argparse from the one declaration", function()
    local bash, err, code = run.cli { "completion", "bash" }
    assert.equal("", err)
    assert.equal(0, code)
    assert.truthy(bash:find("complete -F _lua-truto -o bashdefault -o default lua-truto", 1, true))
    assert.truthy(bash:find("--idempotency-key", 1, true))
    local dir = run.tmpdir()
    run.write(dir .. "/c.bash", bash)
    local function complete(...)
      local words = {}
      for i, w in ipairs { ... } do words[i] = quote(w) end
      local out, ok = run.shell("bash -c " .. quote("source " .. dir .. "/c.bash && COMP_WORDS=(lua-truto "
        .. table.concat(words, " ") .. ") && COMP_CWORD=" .. select("#", ...) .. " && _lua-truto && echo ${COMPREPLY[*]}"))
      assert.equal(0, ok)
      return out
    end
    assert.equal("get\n", complete("users", "g"))
    assert.equal("users\n", complete("use"))
    -- The choices of -o are truto.cli.output's registry, those of completion the grammar's shells.
    assert.equal("table json ndjson csv\n", complete("users", "list", "-o", ""))
    assert.equal("unified raw normalized stream debug\n", complete("groups", "--response-format", ""))
    assert.equal("bash zsh fish\n", complete("completion", ""))
    assert.equal("--account\n", complete("users", "get", "--acc"))
    assert.equal("--port\n", complete("mock", "--po"))
    local zsh = run.cli { "completion", "zsh" }
    assert.equal("#compdef lua-truto\n", zsh:match("^[^\n]*\n"))
    assert.truthy(zsh:find("--max-items", 1, true))
    local fish, e, c = run.cli { "completion", "fish" }
    assert.equal("", e)
    assert.equal(0, c)
    assert.truthy(fish:find("complete -c lua-truto", 1, true), fish)
    local _, e2, c2 = run.cli { "completion", "tcsh" }
    assert.equal("lua-truto: completion needs bash, zsh or fish\nTry 'lua-truto completion --help'.\n", e2)
    assert.equal(2, c2)
  end)
end)
