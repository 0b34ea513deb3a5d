-- The decoding cost alone, for callgrind (bench/static.sh, BENCH_CALLGRIND=1): decodes the
-- pages in DIR once each, either with plain cjson.decode or with lua-truto's decoder
-- (truto.core.decode: on Debian's lua-cjson through json_compat.c, on the current one untouched).
--
--   lua5.4 bench/static/decode_cost.lua cjson|core DIR PAGES
local how, dir, pages = arg[1], arg[2], tonumber(arg[3] or "50")
local texts = {}
for p = 1, pages do
  local f = assert(io.open(string.format("%s/%s.json", dir, p == 1 and "p" or "pc" .. p)))
  texts[p] = f:read("a")
  f:close()
end
-- truto.core is loaded either way, so both runs pay the same start (libcurl, OpenSSL).
local core = require "truto.core"
local decode = how == "core" and core.decode or require("cjson").decode
local n = 0
for p = 1, pages do n = n + #decode(texts[p]).result end
print("items=" .. n)
