-- Busted helper (loaded by .busted for every run): `finally` inside a test
-- keeps every function it is given, not only the last one. Debian's busted
-- 2.1 stores one (`finally = fn`), so a test that stops a server and then a
-- mock, or calls a helper that registers its own cleanup, silently lost the
-- earlier ones: examples/webhook-nginx.conf's nginx was left running after
-- every run. They run last first, each even when an earlier one raised; the
-- first error is raised after all have run.
local busted = require "busted"

busted.subscribe({ "test", "start" }, function(element)
  local env = element.env
  local set = env and env.finally
  if type(set) ~= "function" then return nil, true end
  local cleanups = {}
  env.finally = function(fn) cleanups[#cleanups + 1] = fn end
  set(function()
    local first_error
    for i = #cleanups, 1, -1 do
      local ok, err = pcall(cleanups[i])
      if not ok and first_error == nil then first_error = err end
    end
    if first_error ~= nil then error(first_error, 0) end
  end)
  return nil, true
end)

-- the forced-GC run's settings (a no-op unless TRUTO_FORCE_GC is set)
require "spec.helpers.gc"
