--- truto.raise: how an iterator raises its error object, so that both a script and nginx's
-- error.log learn what happened.
--
-- A loop over a list has no `nil, err` to return: it raises the error object (kind, status,
-- message, ... see truto.core.error). ngx_lua logs what a handler raises with lua_tostring,
-- which knows no tables: an uncaught error object reaches error.log as "runtime error: unknown
-- reason". So inside nginx, when no pcall or xpcall on this coroutine's stack will catch it,
-- the iterator raises the object's one line instead ("truto: http 404 Not Found: Integrated
-- account not found (GET https://...)": kind, status, message and request, never the token),
-- which nginx logs as it is. Where a protected call will catch it, and everywhere outside
-- nginx, the object itself is raised. Either way the object stays on the iterator as
-- `it.error`.
--
-- @module truto.raise
local transport = require "truto.transport"

local M = {}

local getinfo, pcall, xpcall, tostring, error = debug.getinfo, pcall, xpcall, tostring, error

-- Frames looked at: far more than any handler's call depth.
local MAX_LEVELS = 200

--- Whether a pcall or xpcall on the running coroutine's stack, above the caller, will catch
-- an error raised now.
function M.caught()
  for level = 3, MAX_LEVELS do
    local info = getinfo(level, "f")
    if not info then return false end
    if info.func == pcall or info.func == xpcall then return true end
  end
  return true -- deeper than any handler: assume a protected call
end

--- Raises err (an error object): as its one line inside nginx when nothing on this coroutine
-- catches it, else as it is.
function M.raise(err)
  if transport.phase() ~= nil and not M.caught() then error(tostring(err), 0) end
  error(err, 0)
end

return M
