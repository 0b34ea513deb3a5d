-- The "raw libcurl + cjson" limit for S1: the pages lua-truto's client:users reads, fetched with
-- lua-truto's own transport primitive (one libcurl easy handle, keep-alive, gzip) and decoded
-- with lua-cjson, in one process. No iterator, no error objects, no retries, no integer
-- handling: only what reading every page cannot do without.
--
--   TRUTO_BASE_URL=... TRUTO_API_TOKEN=... lua5.4 bench/raw_limit.lua accounts=acct-large limit=100 [max=N]
--
-- Prints items=N (the users read).
local core = require "truto.core"
local cjson = require "cjson"

local opt = {}
for i = 1, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  if not k then error("bad argument: " .. arg[i]) end
  opt[k] = v
end

local base = assert(os.getenv("TRUTO_BASE_URL"), "TRUTO_BASE_URL")
local defaults = require "truto.defaults"
local transport = core.curl { token = assert(os.getenv("TRUTO_API_TOKEN"), "TRUTO_API_TOKEN"),
  timeout = defaults.timeout, connect_timeout = defaults.connect_timeout, max_body = defaults.max_body }
local limit = tonumber(opt.limit or "100")
local max = tonumber(opt.max or "0")
local null = cjson.null

local function escape(s)
  return (s:gsub("[^%w%-_.~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local total = 0
for account in (opt.accounts or "acct-large"):gmatch("[^,]+") do
  local first = base .. "/unified/user-directory/users?integrated_account_id=" .. escape(account)
    .. "&limit=" .. limit
  local cursor = (opt.cursor or "") ~= "" and opt.cursor or nil
  local n = 0
  repeat
    local url = cursor and first .. "&next_cursor=" .. escape(cursor) or first
    local status, _, body = transport:perform("GET", url, {}, nil)
    if status ~= 200 then error(string.format("GET %s: %s %s", url, tostring(status), tostring(body))) end
    local page = cjson.decode(body)
    n = n + #page.result
    cursor = page.next_cursor
    if cursor == null or cursor == "" then cursor = nil end
  until not cursor or (max > 0 and n >= max)
  if max > 0 and n > max then n = max end
  total = total + n
end
io.stdout:write("items=", total, "\n")
