-- bench/webhook.lua: verifying 10,000 webhook deliveries of 4 KiB, per verify, side by side
-- with the same loop calling OpenSSL through lua-luaossl (`openssl.hmac`) as the reference:
--
--   signature only   truto.core.hmac_sha256_equal (C, CRYPTO_memcmp)  vs  luaossl's HMAC, hex, ==
--   whole verify     truto.webhook.verify: header, HMAC, JSON decode, created_at, dedupe
--
-- Runs on the Lua that runs it (lua5.4: build/, luajit: build-luajit/), from the checkout root:
--   lua5.4 bench/webhook.lua [N] [BYTES]      (make bench runs both)
-- Prints one line per scenario: microseconds per verify, wall (the median of 5 runs) and CPU
-- (all runs; the steadier figure on a shared machine).
local build = os.getenv("TRUTO_BUILD") or (rawget(_G, "jit") and "build-luajit" or "build")
package.path = build .. "/?.lua;" .. build .. "/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local truto = require "truto"
local core = require "truto.core"
local webhook = truto.webhook

local N = tonumber(arg and arg[1]) or 10000
local BYTES = tonumber(arg and arg[2]) or 4096
local RUNS = 5
local SECRET = "d5fac1cb-1820-4da7-bfd8-a6b758bcf8ff"

-- N distinct deliveries of about BYTES bytes each, signed, with a fresh created_at.
local function deliveries()
  local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local list = {}
  for i = 1, N do
    local head = assert(truto.encode_json { id = "evt-" .. i, event = "record:updated", created_at = now,
      environment_id = "env-1", webhook_id = "wh-1", payload = { resource = "user-directory/users",
        integrated_account_id = "acct-1", record = { id = "u-" .. i, name = "User " .. i } } })
    local pad = string.rep("x", math.max(0, BYTES - #head - 10))
    local body = head:sub(1, -2) .. ',"pad":"' .. pad .. '"}'
    list[i] = { body = body, header = webhook.sign(body, SECRET) }
  end
  return list
end

local function median(t)
  table.sort(t)
  return t[math.ceil(#t / 2)]
end

-- Runs fn over the list RUNS times: microseconds per call (median wall time), CPU seconds in all.
local function measure(list, fn)
  local walls, cpu0 = {}, os.clock()
  for r = 1, RUNS do
    local t0 = core.now()
    for i = 1, #list do
      if not fn(list[i], r) then error("verify failed at " .. i) end
    end
    walls[r] = (core.now() - t0) / #list * 1e6
  end
  return median(walls), os.clock() - cpu0
end

local scenarios = {}

scenarios[#scenarios + 1] = { "signature only, truto.core (C, libcrypto)", function(d)
  return core.hmac_sha256_equal(SECRET, d.body, d.header:sub(17))
end }

local ok_ossl, ossl_hmac = pcall(require, "openssl.hmac")
if ok_ossl then
  local function to_hex(s)
    return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
  end
  scenarios[#scenarios + 1] = { "signature only, lua-luaossl (reference)", function(d)
    local mac = ossl_hmac.new(SECRET, "sha256"):final(d.body)
    return to_hex(mac) == d.header:sub(17):lower()
  end }
end

local stores = {}
scenarios[#scenarios + 1] = { "whole verify, truto.webhook.verify", function(d, run)
  stores[run] = stores[run] or webhook.memory_store { size = N }
  return webhook.verify(d.body, d.header, SECRET, { seen = stores[run] }) ~= nil
end }

if ok_ossl then
  local cjson = require "cjson"
  local function to_hex(s)
    return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
  end
  scenarios[#scenarios + 1] = { "whole verify, lua-luaossl + cjson (reference)", function(d)
    local mac = ossl_hmac.new(SECRET, "sha256"):final(d.body)
    if to_hex(mac) ~= d.header:sub(17):lower() then return false end
    return cjson.decode(d.body) ~= nil
  end }
end

local list = deliveries()
print(("webhook verify: %d deliveries of %d bytes, %s, median of %d runs"):format(N, #list[1].body,
  rawget(_G, "jit") and jit.version or _VERSION, RUNS))
for _, s in ipairs(scenarios) do
  local us, cpu = measure(list, s[2])
  print(("  %-48s %7.2f us per verify (wall, median)  %7.2f us CPU"):format(s[1], us, cpu / (N * RUNS) * 1e6))
end
if not ok_ossl then print("  (lua-luaossl not installed: no reference)") end
