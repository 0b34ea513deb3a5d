-- CPU of decoding one page of bench/nginx_cpu.sh (180 generated users, about 81 KB of JSON):
-- lua-truto's decoder (core.decode, as read_response runs it for every page) against
-- cjson.decode, in the same process, alternating. Where lua-truto's worker CPU inside nginx
-- goes beyond the transport's.
--
--   LUA_PATH="build-luajit/?.lua;./?.lua;;" LUA_CPATH="build-luajit/?.so;;" luajit bench/decode_page.lua [N]
--
-- Prints milliseconds per page (the least of 5 rounds of N pages each, default 300) and the ratio.
-- With a second argument, `cjson` or `core`, decodes the page N times with that one only and
-- prints nothing: for counting instructions (bench/decode_cost.sh runs it under callgrind).
local cjson = require "cjson"
local core = require "truto.core"
local fixtures = require "spec.mock.truto_mock.fixtures"

local n = tonumber(arg[1]) or 300
local series = { prefix = "B", digits = 6, count = 20000, domain = "bench.example" }
local result = {}
for i = 1, 180 do result[#result + 1] = fixtures.generated_user(series, i) end
local page = cjson.encode { result = result, next_cursor = "2", result_count = 180 }
local headers = { ["content-type"] = "application/json" }
local opts = { max_values = 10000000 } -- what truto.new passes by default

local function ms_per_page(f)
  collectgarbage()
  collectgarbage()
  local c0 = os.clock()
  for _ = 1, n do f() end
  return (os.clock() - c0) / n * 1000
end

local peers = {
  { "cjson.decode", function() return cjson.decode(page) end },
  { "core.read_response", function() return core.read_response(200, headers, page, "GET", "http://x/u", opts) end },
}
if arg[2] then
  local f = assert(arg[2] == "cjson" and peers[1][2] or arg[2] == "core" and peers[2][2], "cjson or core")
  for _ = 1, n do f() end
  return
end
local best = {}
for _ = 1, 5 do
  for _, p in ipairs(peers) do
    local t = ms_per_page(p[2])
    best[p[1]] = math.min(best[p[1]] or math.huge, t)
  end
end
local jit = rawget(_G, "jit")
print(("%d-byte page, %s, least of 5 x %d pages"):format(#page, jit and jit.version or _VERSION, n))
for _, p in ipairs(peers) do print(("  %-20s %.3f ms/page"):format(p[1], best[p[1]])) end
print(("  read_response / cjson.decode: %.2f x"):format(best["core.read_response"] / best["cjson.decode"]))
