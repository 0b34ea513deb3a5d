-- Busted helper, with TRUTO_FORCE_GC=1 (make test-gc): the collector of the
-- busted process never pauses between cycles, steps four times as far as by
-- default, and a full collection (two, so that finalizers run and what they
-- freed goes too) ends every test. An object freed while C still uses it, a
-- __gc or __close that frees too much or twice, or a request that relies on
-- a table nothing holds shows in the suite instead of in a user's process,
-- as luv's forced-GC CI run does. nginx's and subprocesses' Lua are not
-- touched.
if not os.getenv("TRUTO_FORCE_GC") then return end
local busted = require "busted"

if _VERSION == "Lua 5.4" and not rawget(_G, "jit") then
  collectgarbage("incremental", 100, 400)
else
  collectgarbage("setpause", 100)
  collectgarbage("setstepmul", 400)
end

busted.subscribe({ "test", "end" }, function()
  collectgarbage("collect")
  collectgarbage("collect")
  return nil, true
end)
