-- Peer: plain Lua 5.4 with LuaSocket's socket.http and lua-cjson, a sequential page loop.
-- socket.http opens a new connection for every request (it has no keep-alive).
--
--   TRUTO_BASE_URL=... TRUTO_API_TOKEN=... lua5.4 bench/peers/luasocket.lua accounts=a,b limit=100 \
--     [max=N] [every=100 work_ms=50] [cursor=C]
--
-- Accounts are read one after another. Prints items=N (items with a string id).
local http = require "socket.http"
local socket = require "socket"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local opt = {}
for i = 1, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  if not k then error("bad argument: " .. arg[i]) end
  opt[k] = v
end

local base = assert(os.getenv("TRUTO_BASE_URL"), "TRUTO_BASE_URL")
local headers = { authorization = "Bearer " .. assert(os.getenv("TRUTO_API_TOKEN")), accept = "application/json" }
local limit = tonumber(opt.limit or "100")
local max = tonumber(opt.max or "0")
local every = tonumber(opt.every or "0")
local work = tonumber(opt.work_ms or "0") / 1000

local function escape(s)
  return (s:gsub("[^%w%-_.~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function get(url)
  local chunks = {}
  local ok, status = http.request { url = url, headers = headers, sink = ltn12.sink.table(chunks) }
  if not ok or status ~= 200 then error(string.format("GET %s: %s", url, tostring(status))) end
  return cjson.decode(table.concat(chunks))
end

-- The items of every page of one account, one page at a time.
local function users(account)
  return coroutine.wrap(function()
    local cursor = (opt.cursor or "") ~= "" and opt.cursor or nil
    repeat
      local url = base .. "/unified/user-directory/users?integrated_account_id=" .. escape(account)
        .. "&limit=" .. limit .. (cursor and "&next_cursor=" .. escape(cursor) or "")
      local page = get(url)
      for _, item in ipairs(page.result) do coroutine.yield(item) end
      cursor = page.next_cursor
      if cursor == cjson.null or cursor == "" then cursor = nil end
    until not cursor
  end)
end

local total = 0
for account in (opt.accounts or ""):gmatch("[^,]+") do
  local n = 0
  for user in users(account) do
    n = n + 1
    if type(user.id) == "string" then total = total + 1 end
    if every > 0 and n % every == 0 then socket.sleep(work) end
    if n == max then break end
  end
end
io.stdout:write("items=", total, "\n")
