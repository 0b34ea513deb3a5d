-- Use after free in error.c header(), shown without sanitizers:
--   make && LUA_CPATH="build/?.so;;" valgrind -q lua5.4 fuzz/findings/numeric-header-uaf/repro.lua
-- header() calls lua_tostring on a number header value, which converts the
-- copy on the stack; it pops the copy and keeps the pointer, and the next
-- conversion can collect the string before tr_retry_after reads it.
local core = require "truto.core"
collectgarbage("incremental", 1, 100, 63) -- pause 0: a whole GC cycle at every check
collectgarbage()
-- retry-after -1 is not a valid wait, so ratelimit-reset's (freed) string is read.
local _, err = core.read_response(429, { ["retry-after"] = -1, ["ratelimit-reset"] = 5 }, "")
print(err.retry_after)
