-- One measured run for bench/sync.sh: `lua5.4 bench/sync_run.lua URL ACCOUNT MODE [PATH] [full]`,
-- MODE = list (a plain complete listing), file (client:sync with the JSON state file PATH) or
-- sqlite (client:sync into the SQLite mirror PATH). Prints one line:
-- `items=N created=N updated=N deleted=N unchanged=N wall=SECONDS cpu=SECONDS rss_kb=PEAK` (cpu: this
-- process only; the mock's own time is in wall).
package.path = "build/?.lua;build/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local truto = require "truto"
local core = require "truto.core"

local url, account, mode, path, full = arg[1], arg[2], arg[3], arg[4], arg[5] == "full"
local client = truto.new { token = "test-token", base_url = url }
local params = { integrated_account_id = account, limit = 1000 }
local t0 = core.now()
local counts = { items = 0, created = 0, updated = 0, deleted = 0, unchanged = 0 }
if mode == "list" then
  for _ in client:users(params) do counts.items = counts.items + 1 end
else
  local state = mode == "sqlite" and require("truto.sync.sqlite").new(path) or path
  local it, st, init, closer = client:sync("users", params, { state = state, full = full or nil })
  for change in it, st, init, closer do
    counts.items = counts.items + 1
    counts[change.op] = counts[change.op] + 1
  end
  counts.unchanged = st.stats.unchanged
  if type(state) == "table" then state:close() end
end
local wall, cpu = core.now() - t0, os.clock()
local rss = io.open("/proc/self/status"):read("a"):match("VmHWM:%s*(%d+)")
print(string.format("items=%d created=%d updated=%d deleted=%d unchanged=%d wall=%.2f cpu=%.2f rss_kb=%s",
  counts.items, counts.created, counts.updated, counts.deleted, counts.unchanged, wall, cpu, rss))
