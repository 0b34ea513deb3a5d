--- truto.metrics: the `on_request` / `on_response` hooks, and a collector that counts what they
-- report and renders it as Prometheus text.
--
-- A client (or one call) may set `on_request` and `on_response`: functions of one table, called
-- before each attempt goes on the wire and after its answer (or its transport failure) came
-- back, on either transport, in any nginx phase. A hook must not yield (no cosocket, no
-- ngx.sleep): it runs inside the call. An error a hook raises never fails the call: it is
-- reported through `debug` (and, in nginx, error.log at WARN) and the call goes on.
--
--   on_request  { method, url, account, attempt, held }
--   on_response { method, url, account, attempt, status, kind, message, seconds, headers, sends }
--
-- `held`: seconds the rate budget held the attempt before it started (0: none). `status`: the
-- HTTP status (nil when no answer came: then `kind` and `message` say why). `seconds`: from the
-- start of the attempt to its answer. `url` carries the query, never the token.
--
-- The collector (`metrics.collector { shared_dict = "name" }` in nginx, `metrics.collector()`
-- elsewhere) keeps counters in a lua_shared_dict (every worker adds to the same ones) or in a
-- Lua table, and `truto.ngx.metrics("name")` serves them from a location.
--
-- @module truto.metrics
local M = {}

local format, concat, sort, tostring, type, pairs, pcall = string.format, table.concat, table.sort, tostring, type,
  pairs, pcall
local tonumber, floor = tonumber, math.floor

-- ------------------------------------------------------------------------
-- Calling a hook.
-- ------------------------------------------------------------------------

local function ngx_warn(message)
  local ngx = rawget(_G, "ngx")
  if ngx and type(ngx.log) == "function" then ngx.log(ngx.WARN, message) end
end

--- Calls `policy[name](info)` when the hook is set; an error it raises is reported, not raised.
function M.call(policy, name, info)
  local hook = policy[name]
  if not hook then return end
  local ok, err = pcall(hook, info)
  if not ok then
    local message = format("truto: the %s hook raised: %s", name, tostring(err))
    if policy.debug then pcall(policy.debug, message) end
    ngx_warn(message)
  end
end

-- ------------------------------------------------------------------------
-- Stores: a lua_shared_dict, or a Lua table with the same methods.
-- ------------------------------------------------------------------------

local TableStore = {}
TableStore.__index = TableStore

function TableStore:incr(key, n) self.values[key] = (self.values[key] or 0) + n end
function TableStore:set(key, value) self.values[key] = value end
function TableStore:get(key) return self.values[key] end
function TableStore:get_keys()
  local keys = {}
  for k in pairs(self.values) do keys[#keys + 1] = k end
  return keys
end

local function shared_store(name)
  local ngx = rawget(_G, "ngx")
  local dict = ngx and ngx.shared and ngx.shared[name]
  if not dict then
    error(format("truto.metrics: no lua_shared_dict %q (add `lua_shared_dict %s 1m;` to the http block)", name, name),
      3)
  end
  return {
    incr = function(_, key, n) dict:incr(key, n, 0) end,
    set = function(_, key, value) dict:set(key, value) end,
    get = function(_, key) return dict:get(key) end,
    get_keys = function() return dict:get_keys(0) end,
  }
end

-- ------------------------------------------------------------------------
-- The metrics.
-- ------------------------------------------------------------------------

--- Upper bounds (seconds) of the latency histogram's buckets.
M.BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 }

-- name -> { type, help }, in the order they are rendered.
local FAMILIES = {
  { "truto_requests_total", "counter", "HTTP answers from Truto, by integrated account and status class" },
  { "truto_attempts_total", "counter", "Requests sent (every attempt), by integrated account" },
  { "truto_retries_total", "counter", "Attempts after the first of a call, by integrated account" },
  { "truto_rate_limited_total", "counter", "429 answers, by integrated account" },
  { "truto_rate_limit_holds_total", "counter", "Attempts the rate budget held before sending" },
  { "truto_rate_limit_hold_seconds_total", "counter", "Seconds attempts were held by the rate budget" },
  { "truto_ratelimit_remaining", "gauge", "The last ratelimit-remaining Truto sent, by integrated account" },
  { "truto_request_duration_seconds", "histogram", "Seconds from the start of an attempt to its answer" },
}

-- Prometheus label value: backslash, double quote and newline escaped.
local function label(value)
  return (tostring(value):gsub('[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

local function account_of(info)
  return info.account ~= nil and label(info.account) or "(none)"
end

-- The status class of an answer ("2xx" .. "5xx"), or the failure's kind.
local function class_of(info)
  if info.status then return format("%dxx", floor(info.status / 100)) end
  return label(info.kind or "error")
end

local function bucket_label(le) return le == math.huge and "+Inf" or format("%g", le) end

local Collector = {}
Collector.__index = Collector

--- A collector. `opts.shared_dict`: the name of a lua_shared_dict (nginx); none: a Lua table.
-- Its `on_request` and `on_response` are the hooks to give truto.new (or a call).
function M.collector(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("truto.metrics.collector: table of options expected", 2) end
  local store
  if opts.shared_dict ~= nil then
    if type(opts.shared_dict) ~= "string" then error("truto.metrics.collector: shared_dict must be a name", 2) end
    store = shared_store(opts.shared_dict)
  else
    store = setmetatable({ values = {} }, TableStore)
  end
  local self = setmetatable({ store = store }, Collector)
  self.on_request = function(info) self:request(info) end
  self.on_response = function(info) self:response(info) end
  return self
end

--- Counts one attempt about to be sent (the on_request hook).
function Collector:request(info)
  local store, account = self.store, account_of(info)
  local labels = format('{account="%s"}', account)
  store:incr("truto_attempts_total" .. labels, 1)
  if (info.attempt or 1) > 1 then store:incr("truto_retries_total" .. labels, 1) end
  local held = info.held
  if held and held > 0 then
    store:incr("truto_rate_limit_holds_total" .. labels, 1)
    store:incr("truto_rate_limit_hold_seconds_total" .. labels, held)
  end
end

--- Counts one answer or failure (the on_response hook).
function Collector:response(info)
  local store, account = self.store, account_of(info)
  store:incr(format('truto_requests_total{account="%s",class="%s"}', account, class_of(info)), 1)
  local resent = (info.sends or 1) - 1 -- libcurl's own re-sends on a new connection
  if resent > 0 then
    store:incr(format('truto_attempts_total{account="%s"}', account), resent)
    store:incr(format('truto_retries_total{account="%s"}', account), resent)
  end
  if info.status == 429 then store:incr(format('truto_rate_limited_total{account="%s"}', account), 1) end
  local remaining = info.headers and tonumber(info.headers["ratelimit-remaining"])
  if remaining then store:set(format('truto_ratelimit_remaining{account="%s"}', account), remaining) end
  local seconds = info.seconds
  if seconds then
    for _, le in ipairs(M.BUCKETS) do
      if seconds <= le then
        store:incr(format('truto_request_duration_seconds_bucket{le="%s"}', bucket_label(le)), 1)
      end
    end
    store:incr('truto_request_duration_seconds_bucket{le="+Inf"}', 1)
    store:incr("truto_request_duration_seconds_sum", seconds)
    store:incr("truto_request_duration_seconds_count", 1)
  end
end

local function family_of(key)
  local name = key:match("^([%w_]+)")
  return (name:gsub("_bucket$", ""):gsub("_sum$", ""):gsub("_count$", ""))
end

local function number_text(v)
  if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
  return format("%.17g", v)
end

-- A histogram's keys in exposition order: buckets by bound, then +Inf, sum, count.
local function histogram_keys(name)
  local keys = {}
  for _, le in ipairs(M.BUCKETS) do keys[#keys + 1] = format('%s_bucket{le="%s"}', name, bucket_label(le)) end
  keys[#keys + 1] = name .. '_bucket{le="+Inf"}'
  keys[#keys + 1] = name .. "_sum"
  keys[#keys + 1] = name .. "_count"
  return keys
end

--- The collected metrics as Prometheus text (exposition format 0.0.4).
function Collector:text()
  local store = self.store
  local by_family = {}
  for _, key in ipairs(store:get_keys()) do
    local family = family_of(key)
    by_family[family] = by_family[family] or {}
    local list = by_family[family]
    list[#list + 1] = key
  end
  local out = {}
  for _, f in ipairs(FAMILIES) do
    local name, kind, help = f[1], f[2], f[3]
    out[#out + 1] = format("# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
    local keys = by_family[name] or {}
    if kind == "histogram" then keys = histogram_keys(name) else sort(keys) end
    for _, key in ipairs(keys) do
      local v = store:get(key)
      if v then out[#out + 1] = format("%s %s\n", key, number_text(v)) end
    end
  end
  return concat(out)
end

--- Serves the collector's text from an nginx content handler (`truto.ngx.metrics`).
function M.serve(shared_dict)
  local ngx = rawget(_G, "ngx")
  if not ngx then error("truto.ngx.metrics: needs nginx (a content_by_lua handler)", 2) end
  local c = M.collector { shared_dict = shared_dict or "truto_metrics" }
  ngx.header["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
  ngx.print(c:text())
end

return M
