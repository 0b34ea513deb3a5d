-- Busted helper shared by the specs that start processes (cli, examples,
-- tls): the checkout's root, shell quoting, temp dirs, free ports, running a
-- command for its output, background processes, and lua-truto itself.
--
--   local run = require "spec.helpers.run"
--   run.ROOT, run.OWN_PID (this process), run.quote(s), run.read(path), run.write(path, text)
--   run.exists(path)              -- whether a file can be opened (and closes it: no fd is left
--                                 -- open for every process started after to inherit)
--   run.tmpdir()                  -- a fresh directory, removed at exit
--   run.free_port()               -- a free TCP port on 127.0.0.1
--   run.shell(cmd)                -- stdout, exit code (stderr to stdout with o.merge)
--   run.spawn(cmd, log) -> pid    -- in the background; run.kill(pid, sig), run.alive(pid)
--   run.wait_port(port[, secs])   -- true once something accepts there
--   run.cli(argv, o)              -- lua-truto: stdout, stderr, exit code (see below)
--   run.cli_mock(m, argv, o)      -- run.cli with the mock m's token and URL in o.env
--   run.usage(msg[, topic])       -- the stderr of a usage error
local compat = require "spec.helpers.compat"
local socket = require "socket"

local run = {}

function run.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
local quote = run.quote

function run.shell(cmd, o)
  local p = assert(compat.popen(cmd .. ((o and o.merge) and " 2>&1" or "")))
  local out = p:read("*a")
  local _, _, code = p:close()
  return out, code
end

-- A command's output with its stderr, and whether it exited with 0.
function run.sh(cmd)
  local out, code = run.shell(cmd, { merge = true })
  return out, code == 0
end

run.ROOT = (run.shell("pwd"):gsub("\n$", ""))

-- The id of this Lua process: the parent of the shell io.popen starts.
run.OWN_PID = assert(tonumber((run.shell("echo $PPID"))), "cannot find the process id")

function run.read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

-- A file's text, or "" when there is none (yet).
function run.slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local text = f:read("*a")
  f:close()
  return text
end

function run.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local made = {}
function run.tmpdir()
  local dir = (run.shell("mktemp -d /tmp/truto-spec.XXXXXX"):gsub("\n$", ""))
  assert(dir ~= "", "mktemp failed")
  made[#made + 1] = dir
  return dir
end
-- Removes the temp dirs when the Lua state goes away (end of the run).
run._cleanup = setmetatable({}, { __gc = function()
  for _, dir in ipairs(made) do os.execute("rm -rf " .. quote(dir)) end
end })

function run.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

function run.wait_port(port, secs)
  local deadline = socket.gettime() + (secs or 5)
  repeat
    local c = socket.connect("127.0.0.1", port)
    if c then c:close() return true end
    socket.sleep(0.05)
  until socket.gettime() > deadline
  return false
end

function run.spawn(cmd, log)
  local out = run.shell("(" .. cmd .. ") >" .. quote(log or "/dev/null") .. " 2>&1 </dev/null & echo $!")
  return assert(tonumber(out:match("%d+")), "no pid")
end

function run.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

function run.alive(pid)
  return (compat.execute("kill -0 " .. pid .. " 2>/dev/null"))
end

function run.kill(pid, sig)
  compat.execute("kill -" .. (sig or "TERM") .. " " .. pid .. " 2>/dev/null")
end

--- A stand-in for /dev/tty: reads come from `input`, writes go to the
-- list `echo` (the captured stderr).
function run.fake_terminal(input, echo)
  local lines = input:gmatch("([^\n]*)\n")
  return {
    read = function() return lines() end,
    write = function(self, ...)
      for i = 1, select("#", ...) do echo[#echo + 1] = tostring((select(i, ...))) end
      return self
    end,
    flush = function(self) return self end,
  }
end

--- lua-truto with `argv`, in-process on Lua 5.4 (require("truto.cli").main
-- with streams of its own), else through `lua5.4 lua-truto`. o: env (the
-- whole environment it sees; HOME defaults to an empty dir), stdin (text),
-- tty = { [0]=, [1]=, [2]= } (default: none is a terminal), columns,
-- terminal (what is typed on the controlling terminal; default: none),
-- stty (a function(mode) called instead of `stty MODE`),
-- stdout (a file to write to instead of capturing, e.g. /dev/full),
-- process = true (always a separate process). Returns stdout, stderr, code.
local empty_home
function run.cli(argv, o)
  o = o or {}
  empty_home = empty_home or run.tmpdir()
  local env = {}
  for k, v in pairs(o.env or {}) do env[k] = v end
  env.HOME = env.HOME or empty_home
  if _VERSION == "Lua 5.4" and not o.process then
    local sys_mod = require "truto.cli.sys"
    local cli = require "truto.cli"
    local out, err = {}, {}
    local stdin_path = os.tmpname()
    run.write(stdin_path, o.stdin or "")
    local stdin = assert(io.open(stdin_path, "rb"))
    local sink = o.stdout and assert(io.open(o.stdout, "wb")) or {
      write = function(self, ...)
        for i = 1, select("#", ...) do out[#out + 1] = tostring((select(i, ...))) end
        return self
      end,
      flush = function(self) return self end,
    }
    local sys = sys_mod.new {
      stdout = sink, stdin = stdin,
      stderr = { write = function(self, ...)
        for i = 1, select("#", ...) do err[#err + 1] = tostring((select(i, ...))) end
        return self
      end },
      getenv = function(k) return env[k] end,
      tty = { [0] = o.tty and o.tty[0] or false, [1] = o.tty and o.tty[1] or false,
        [2] = o.tty and o.tty[2] or false },
      columns = o.columns or false,
      script = run.ROOT .. "/lua-truto",
      terminal = o.terminal and run.fake_terminal(o.terminal, err) or false,
      stty = o.stty,
    }
    local code = cli.main(argv, sys)
    stdin:close()
    if o.stdout then sink:close() end
    os.remove(stdin_path)
    return table.concat(out), table.concat(err), code
  end
  local dir = run.tmpdir()
  local parts = { "cd", quote(run.ROOT), "&&", "exec", "env", "-i", "PATH=" .. quote(os.getenv("PATH")) }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. quote(v) end
  parts[#parts + 1] = "lua5.4 ./lua-truto"
  for _, a in ipairs(argv) do parts[#parts + 1] = quote(a) end
  run.write(dir .. "/stdin", o.stdin or "")
  local cmd = table.concat(parts, " ") .. " <" .. quote(dir .. "/stdin") .. " 2>" .. quote(dir .. "/stderr")
    .. " >" .. quote(o.stdout or dir .. "/stdout")
  local _, code = run.shell(cmd)
  local out = o.stdout and "" or run.read(dir .. "/stdout")
  return out, run.read(dir .. "/stderr"), code
end

--- run.cli against the mock `m` (spec.helpers.mock): its token and URL in
-- the environment, unless o.env names them already.
function run.cli_mock(m, argv, o)
  o = o or {}
  o.env = o.env or {}
  o.env.TRUTO_API_TOKEN = o.env.TRUTO_API_TOKEN or m.token
  o.env.TRUTO_BASE_URL = o.env.TRUTO_BASE_URL or m.url
  return run.cli(argv, o)
end

--- What lua-truto writes on stderr for a usage error: msg, then where to
-- find help (`lua-truto [topic] --help`).
function run.usage(msg, topic)
  return "lua-truto: " .. msg .. "\nTry 'lua-truto" .. (topic and " " .. topic or "") .. " --help'.\n"
end

return run
