-- lua-truto under benchmark: one process per measured run (bench/run calls it).
--
--   lua5.4 bench/clients/truto.lua MODE key=value ...
--
-- TRUTO_BASE_URL and TRUTO_API_TOKEN point it at the mock. MODE:
--   list       read `accounts` one after another (client:users per account)
--   multi      read all `accounts` in one client:users{ integrated_account_id = { ... } }
--   memory     read `accounts` (one), sampling RSS after `sample_pages` pages and at the end
--   keepalive  `calls` get_organization calls with one client
--   fresh      `calls` get_organization calls, a new client for each
-- Keys: accounts (comma-separated), limit (page size), max (items per account, 0 = all),
-- every + work_ms (sleep work_ms after every `every`-th item), cursor (where each account's
-- walk starts), prefetch (on / off: the client option; default: not passed), rate_limit (off:
-- rate_limit = false; default: not passed), calls, org, sample_pages, page_size, ca_file (the
-- client option, for https).
--
-- Prints key=value lines on stdout: items=N always, and what the mode measures. A feature the
-- module does not have yet (an option or call it rejects as misuse) prints na=<why>, exits 3.
local truto = require "truto"
local core = require "truto.core"

local mode = arg[1]
local opt = {}
for i = 2, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  if not k then error("bad argument: " .. arg[i]) end
  opt[k] = v
end

local function out(k, v)
  io.stdout:write(k, "=", tostring(v), "\n")
end

local function na(why)
  out("na", (tostring(why):gsub("\n", " ")))
  io.stdout:flush()
  os.exit(3)
end

-- Misuse raises a plain string ("bad argument #1 to 'users' (...)"); runtime failures raise
-- lua-truto error objects. Only the first means "this lua-truto cannot do that yet".
local function is_misuse(err)
  return type(err) == "string" and err:find("bad argument", 1, true) ~= nil
end

local accounts = {}
for a in (opt.accounts or ""):gmatch("[^,]+") do accounts[#accounts + 1] = a end
local limit = math.tointeger(tonumber(opt.limit or "100"))
local max = math.tointeger(tonumber(opt.max or "0"))
local every = math.tointeger(tonumber(opt.every or "0"))
local work = tonumber(opt.work_ms or "0") / 1000
local cursor = (opt.cursor or "") ~= "" and opt.cursor or nil

-- rate_limit=off turns the client-side rate limit off (the peers have none, and the mock does
-- not limit); a module without that option is used as it is.
local function new_client()
  local o = {}
  if opt.prefetch == "off" then o.prefetch = false elseif opt.prefetch == "on" then o.prefetch = true end
  if opt.rate_limit == "off" then o.rate_limit = false end
  if opt.ca_file then o.ca_file = opt.ca_file end
  local ok, client = pcall(truto.new, o)
  if not ok and is_misuse(client) and client:find('"rate_limit"', 1, true) then
    o.rate_limit = nil
    ok, client = pcall(truto.new, o)
  end
  if not ok then
    if is_misuse(client) then na("feature missing: " .. client) end
    error(client, 0)
  end
  return client
end

local function params(account, with_cursor)
  return { integrated_account_id = account, limit = limit, next_cursor = with_cursor and cursor or nil }
end

-- The caller's work: sleep `work` after every `every`-th item.
local function after_item(n)
  if every > 0 and n % every == 0 then core.sleep(work) end
end

local function page_size() return tonumber(opt.page_size or "4096") end

local function rss_kb() -- resident set now, from /proc/self/statm (pages)
  local f = assert(io.open("/proc/self/statm"))
  local line = f:read("l")
  f:close()
  return tonumber(line:match("^%d+%s+(%d+)")) * page_size() // 1024
end

local function status_kb(field) -- VmHWM (peak RSS) or VmRSS from /proc/self/status
  for line in io.lines("/proc/self/status") do
    local v = line:match("^" .. field .. ":%s+(%d+) kB")
    if v then return tonumber(v) end
  end
end

if mode == "list" or mode == "memory" then
  local client = new_client()
  local total, bad = 0, 0
  local sample_at = (math.tointeger(tonumber(opt.sample_pages or "10")) or 10) * limit
  local sampled, max_seen = nil, 0
  for _, account in ipairs(accounts) do
    local n = 0
    for user in client:users(params(account, true)) do
      n = n + 1
      if type(user.id) ~= "string" then bad = bad + 1 end
      after_item(n)
      if mode == "memory" and n % limit == 0 then
        local r = rss_kb()
        if r > max_seen then max_seen = r end
        if n == sample_at then sampled = r end
      end
      if n == max then break end
    end
    total = total + n
  end
  out("items", total - bad)
  if mode == "memory" then
    out("rss_after_pages_kb", sampled or "nan")
    out("rss_end_kb", rss_kb())
    out("rss_max_sampled_kb", max_seen)
    out("rss_peak_kb", status_kb("VmHWM"))
  end
elseif mode == "multi" then
  local client = new_client()
  local wanted = {}
  for _, a in ipairs(accounts) do wanted[a] = 0 end
  local function run(with_cursor)
    local it = table.pack(pcall(client.users, client,
      { integrated_account_id = accounts, limit = limit, next_cursor = with_cursor and cursor or nil }))
    if not it[1] then
      if is_misuse(it[2]) then return nil, it[2] end
      error(it[2], 0)
    end
    local total, full, bad = 0, 0, 0
    -- Each account stops counting at `max`; the loop ends once every account is full (or the
    -- iterator ends, when each account's list is exactly `max` long).
    for user, account in it[2], it[3], it[4], it[5] do
      local n = wanted[account]
      if n == nil then na("feature missing: the multi-account iterator does not yield the account id") end
      if max == 0 or n < max then
        n = n + 1
        wanted[account] = n
        if type(user.id) == "string" then total = total + 1 else bad = bad + 1 end
        after_item(n)
        if n == max then
          full = full + 1
          if full == #accounts then break end
        end
      end
    end
    return total
  end
  local ok, total, why = pcall(run, cursor ~= nil)
  if ok and total == nil and cursor ~= nil and tostring(why):find("cursor", 1, true) then
    -- Refused with a start cursor: read from the start and count each account up to `max`.
    out("note", "start cursor refused with several accounts; counted to max instead")
    ok, total, why = pcall(run, false)
  end
  if not ok then
    if is_misuse(total) then na("feature missing: " .. total) end
    error(total, 0)
  end
  if total == nil then na("feature missing: " .. tostring(why)) end
  out("items", total)
elseif mode == "keepalive" or mode == "fresh" then
  local gettime = require("socket").gettime
  local calls = math.tointeger(tonumber(opt.calls or "1000"))
  local p = { integrated_account_id = accounts[1] or "acct-small" }
  local org = opt.org or "org-1"
  local got = 0
  local t0 = gettime()
  local client = mode == "keepalive" and new_client() or nil
  for i = 1, calls do
    local c = client or new_client()
    local o, err = c:get_organization(org, p)
    if not o then error(tostring(err), 0) end
    if o.id == org then got = got + 1 end
    if not client then
      -- A client that is dropped keeps its connection until it is collected: close it now if
      -- the module can, else let a collection every 100 clients bound the open sockets.
      if c.close then c:close() elseif i % 100 == 0 then collectgarbage() end
    end
  end
  out("loop_s", string.format("%.4f", gettime() - t0))
  out("items", got)
else
  io.stderr:write("usage: lua5.4 bench/clients/truto.lua list|multi|memory|keepalive|fresh key=value...\n")
  os.exit(2)
end
