--- The command line's view of its process: standard streams, environment,
-- terminals, exit. Everything that touches the outside world goes through a
-- `sys` table, so specs can run the command line in-process with their own
-- streams and environment (spec/cli_*_spec.lua).
local M = {}

local format = string.format

M.PROG = "lua-truto"
M.EXIT_OK, M.EXIT_API, M.EXIT_USAGE, M.EXIT_NETWORK, M.EXIT_INTERRUPTED = 0, 1, 2, 3, 130

--- An exit request, raised by `sys:exit(code)` and caught by `main`.
local Exit = {}
Exit.__index = Exit
Exit.__tostring = function(e) return "exit " .. e.code end
M.Exit = Exit

function M.is_exit(v) return getmetatable(v) == Exit end

function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The output of a shell command (stderr dropped), or nil. The command runs
-- in the C locale: its output is parsed (stat says "directory", not
-- "Verzeichnis", under LC_ALL=de_DE.UTF-8).
function M.capture(cmd)
  local p = io.popen("export LC_ALL=C; " .. cmd .. " 2>/dev/null")
  if not p then return nil end
  local text = p:read("a")
  p:close()
  return text
end

function M.command_line(cmd)
  local text = M.capture(cmd)
  return text and text:match("^([^\n]*)") or nil
end

--- Standard descriptors 0-2 that were closed when the process started
-- ({ [1] = true } after `lua-truto >&-`), filled by guard_fds.
M.closed_fds = {}
local fillers = {} -- the /dev/null files that hold them, kept open

--- Run by the launcher before libcurl is loaded: a standard descriptor that
-- is closed is opened on /dev/null, so that no socket of libcurl's lands
-- on fd 1 and takes the output; the command line then reports a write
-- error for a closed stdout, as `ls >&-` does. Linux: /proc/self/fd.
function M.guard_fds()
  local closed = M.closed_standard_fds()
  for fd = 0, 2 do
    if closed[fd] then
      M.closed_fds[fd] = true
      -- Takes the lowest free descriptor: this one, as those below it are open.
      fillers[#fillers + 1] = io.open("/dev/null", fd == 0 and "rb" or "wb")
    end
  end
end

--- Which of this process's descriptors 0-2 are closed: one child shell
-- looks for /proc/PID/fd/N without opening anything in this process.
function M.closed_standard_fds()
  local f = io.open("/proc/self/stat", "rb") -- closed at once: it may sit on a free 0-2 meanwhile
  local pid = f and f:read("l"):match("^(%d+)")
  if f then f:close() end
  if not pid then return {} end
  local d = "/proc/" .. pid .. "/fd/"
  local _, _, mask = os.execute(("c=0; test -h %s0 || c=$((c|1)); test -h %s1 || c=$((c|2)); "
    .. "test -h %s2 || c=$((c|4)); exit $c"):format(d, d, d))
  mask = tonumber(mask) or 0
  return { [0] = mask & 1 ~= 0, [1] = mask & 2 ~= 0, [2] = mask & 4 ~= 0 }
end

-- A stream standing for a descriptor that was closed: every write fails
-- (flushing nothing does not).
local CLOSED = {
  write = function() return nil, "Bad file descriptor", 9 end,
  flush = function(self) return self end,
}

local Sys = {}
Sys.__index = Sys

--- The process's sys: real streams, os.getenv, `test -t` for terminals.
-- `o` overrides any field (stdout, stderr, stdin, getenv, tty = {[0]=,[1]=,[2]=},
-- columns, uid, script, terminal: a file for /dev/tty, false for none,
-- stty: function(mode) standing for `stty MODE` on stdin).
function M.new(o)
  o = o or {}
  local self = setmetatable({
    stdout = o.stdout or (M.closed_fds[1] and CLOSED or io.stdout), stderr = o.stderr or io.stderr,
    stdin = o.stdin or io.stdin,
    getenv = o.getenv or os.getenv, tty = o.tty or {}, columns = o.columns, uid = o.uid,
    script = o.script, sleep = o.sleep, term = o.terminal, stty_hook = o.stty,
  }, Sys)
  return self
end

function Sys:env(name)
  local v = self.getenv(name)
  if v == "" then return nil end
  return v
end

-- Whether fd 0, 1 or 2 is a terminal (pure Lua has no isatty: `test -t`
-- in a child that inherits our descriptors answers it).
function Sys:is_tty(fd)
  if self.tty[fd] == nil then
    self.tty[fd] = os.execute("test -t " .. fd) == true
  end
  return self.tty[fd]
end

--- The controlling terminal (/dev/tty) opened for reading and writing, or
-- nil when the process has none: questions go there, whatever stdin and
-- stderr are redirected to.
function Sys:terminal()
  if self.term == nil then
    self.term = io.open("/dev/tty", "r+") or false
  end
  return self.term or nil
end

-- `stty MODE` on standard input (the terminal being read).
function Sys:stty(mode)
  if self.stty_hook then return self.stty_hook(mode) end
  return os.execute("stty " .. mode .. " 2>/dev/null")
end

--- Reads one line from standard input, a terminal, without echoing it:
-- `prompt` on stderr, echo off while reading, back on even when the read
-- is interrupted.
function Sys:read_secret(prompt)
  self.stderr:write(prompt)
  self:stty("-echo")
  local ok, line = pcall(self.stdin.read, self.stdin, "l")
  self:stty("echo")
  self.stderr:write("\n")
  if not ok then error(line, 0) end
  return line
end

function Sys.exit(_, code)
  error(setmetatable({ code = code }, Exit), 0)
end

function Sys:say(...)
  self.stderr:write(M.PROG, ": ", ...)
  self.stderr:write("\n")
end

--- Usage error: the message, where to read more, exit 2.
function Sys:usage(msg, topic)
  self.stderr:write(M.PROG, ": ", msg, "\n")
  self.stderr:write(format("Try '%s%s --help'.\n", M.PROG, topic and " " .. topic or ""))
  self:exit(M.EXIT_USAGE)
end

function Sys:fail(code, msg)
  self:say(msg)
  self:exit(code)
end

--- Writes to standard output; a failed write (full disk, closed pipe) ends
-- the run: quietly with 0 on a closed pipe, else with a message and 1.
function Sys:write(...)
  local ok, err = self.stdout:write(...)
  if not ok then self:write_failed(err) end
end

function Sys:write_failed(err)
  if tostring(err):find("Broken pipe", 1, true) then self:exit(M.EXIT_OK) end
  self:fail(M.EXIT_API, "cannot write the output: " .. tostring(err))
end

function Sys:flush()
  local ok, err = self.stdout:flush()
  if not ok then self:write_failed(err) end
end

--- Terminal width for tables: $COLUMNS, else the terminal's when stdout is
-- one, else nil (no limit).
function Sys:width()
  if self.columns ~= nil then return self.columns or nil end
  local n = tonumber(self:env("COLUMNS") or "")
  if not n and self:is_tty(1) then
    local size = M.command_line("stty size </dev/tty")
    n = size and tonumber(size:match("^%d+%s+(%d+)"))
  end
  self.columns = n and n >= 20 and math.floor(n) or false
  return self.columns or nil
end

function Sys:user_id()
  if self.uid == nil then self.uid = tonumber(M.command_line("id -u") or "") or -1 end
  return self.uid
end

-- This script's real path (symbolic links resolved), for finding the mock.
function Sys:script_path()
  if self.script == nil then
    local self_path = arg and arg[0] or M.PROG
    if not self_path:find("/", 1, true) then
      self_path = M.command_line("command -v " .. M.quote(self_path)) or self_path
    end
    self.script = M.command_line("readlink -f -- " .. M.quote(self_path)) or self_path
  end
  return self.script
end

return M
