-- The specs run on Lua 5.4 and on LuaJIT (Lua 5.1): what differs between
-- them, in one place. Every assertion still runs on 5.4; the few that need
-- an integer subtype are guarded with `compat.integers`.
--
--   local compat = require "spec.helpers.compat"
--   if compat.integers then assert.equal("integer", math.type(v)) end
--   if not compat.tbc then state:close() end -- `break` closes nothing before 5.4
--   compat.popen(cmd)   -- io.popen whose :close() gives ok, "exit"|"signal", code (as 5.2+)
--   compat.execute(cmd) -- os.execute giving ok, "exit"|"signal", code (as 5.2+)

local compat = {}

--- Whether numbers have an integer subtype (Lua 5.3 and later).
compat.integers = math.type ~= nil

--- Whether a generic for closes its fourth value when the loop is left
-- (to-be-closed variables, Lua 5.4). Elsewhere the caller closes it.
compat.tbc = _VERSION >= "Lua 5.4"

--- math.tointeger where it exists; else an integral number as it is.
compat.tointeger = math.tointeger or function(x)
  if type(x) == "number" and x == math.floor(x) then return x end
  return nil
end

compat.unpack = table.unpack or unpack -- luacheck: ignore 113

--- collectgarbage("incremental", pause, stepmul, stepsize) on 5.4; before
-- it, the same pause and step multiplier (the step size has no knob).
function compat.incremental(pause, stepmul, stepsize)
  if _VERSION >= "Lua 5.4" then return collectgarbage("incremental", pause, stepmul, stepsize) end
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", stepmul)
end

-- Lua 5.1 returns the raw wait status from os.execute and only `true`
-- from a pipe's close: turn both into 5.2's ok, how, code.
local function exit_status(status)
  if status == true or status == 0 then return true, "exit", 0 end
  if type(status) ~= "number" then return nil, "exit", 1 end
  if status % 256 == 0 then
    local code = math.floor(status / 256)
    return code == 0 or nil, "exit", code
  end
  return nil, "signal", status % 128
end

local FIVE_TWO = _VERSION ~= "Lua 5.1" -- LuaJIT says 5.1 too (unless built with 5.2 compat)
  or select("#", io.popen("true"):close()) > 1

function compat.execute(cmd)
  if FIVE_TWO then return os.execute(cmd) end
  return exit_status(os.execute(cmd))
end

-- A pipe from `cmd` whose close() tells how the command ended: the shell
-- writes $? to a file that close() reads.
function compat.popen(cmd, mode)
  if FIVE_TWO then return io.popen(cmd, mode) end
  local status_file = os.tmpname()
  -- a subshell, so that `exec` in cmd cannot skip the echo
  local f, err = io.popen("( " .. cmd .. "\n); echo $? >" .. status_file, mode)
  if not f then return nil, err end
  local wrapper = {}
  function wrapper.read(_, ...) return f:read(...) end
  function wrapper.write(_, ...) return f:write(...) end
  function wrapper.lines(_, ...) return f:lines(...) end
  function wrapper.close()
    f:close()
    local s = io.open(status_file, "r")
    local code = s and tonumber(s:read("*l"))
    if s then s:close() end
    os.remove(status_file)
    if not code then return nil, "exit", 1 end
    if code > 128 then return nil, "signal", code - 128 end
    return code == 0 or nil, "exit", code
  end
  return wrapper
end

return compat
