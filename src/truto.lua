--- lua-truto: Truto's unified User Directory API for Lua.
--
-- The policy half of the module: clients, iterators and argument checks.
-- Everything that encodes, decodes or talks to the network is C, in
-- `truto.core` (see src/truto.c): this file only decides what to call.
--
-- @module truto
local core = require "truto.core"

local M = { VERSION = core.VERSION }

local MODEL = "user-directory"
local DEFAULT_BASE_URL = "https://api.truto.one"
-- No server takes a longer request line (nginx: 8 KiB by default); refuse
-- it before sending rather than send what can only fail.
local MAX_QUERY = 64 * 1024

local error, type, tostring, pairs, next = error, type, tostring, pairs, next
-- Lua 5.1 and LuaJIT have no integer subtype: there an integral number
-- counts as an integer.
local math_type = math.type or function(v)
  if type(v) ~= "number" then return nil end
  return v == math.floor(v) and v >= -2 ^ 63 and v < 2 ^ 63 and "integer" or "float"
end
local setmetatable, getmetatable = setmetatable, getmetatable
local format, sort, concat = string.format, table.sort, table.concat

-- ------------------------------------------------------------------------
-- Argument checks. Misuse raises at once, naming the argument, in the form
-- Lua's own luaL_argerror uses; nothing has been sent when it does.
-- ------------------------------------------------------------------------

-- Raises for the caller of the public function `fname`. `level` counts
-- frames from this function: 3 when called from the public function itself.
local function argerror(fname, n, msg, level)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), level or 3)
end

local function typeerror(fname, n, expected, value, level)
  argerror(fname, n, format("%s expected, got %s", expected, type(value)), (level or 3) + 1)
end

local function check_optional_table(fname, n, value, level)
  if value ~= nil and type(value) ~= "table" then
    typeerror(fname, n, "table", value, (level or 3) + 1)
  end
end

-- Model, resource and custom method names are path words, never escaped.
local function check_name(fname, n, value, what, level)
  if type(value) ~= "string" or not value:match("^[%w_%-]+$") then
    local got = type(value) == "string" and format("%q", value) or type(value)
    argerror(fname, n, format("%s name expected (letters, digits, '-', '_'), got %s", what, got),
      (level or 3) + 1)
  end
end

local HEADER_NAME = "^[!#$%%&'*+%-.^_`|~%w]+$"
local RESERVED_HEADERS = { authorization = true, host = true, ["content-length"] = true }

-- Header table -> sorted "Name: value" lines. Raises on anything that could
-- split a header or replace the token. `level` counts this function as 1
-- (3 when called from a public function).
local function header_lines(fname, n, headers, level)
  local lines = {}
  if headers == nil then return lines end
  if type(headers) ~= "table" then typeerror(fname, n, "table of headers", headers, level + 1) end
  for name, value in pairs(headers) do
    if type(name) ~= "string" or not name:match(HEADER_NAME) then
      argerror(fname, n, format("invalid header name %q", tostring(name)), level + 1)
    end
    if RESERVED_HEADERS[name:lower()] then
      argerror(fname, n, format("header %q is set by lua-truto", name), level + 1)
    end
    if type(value) == "number" then value = tostring(value) end
    if type(value) ~= "string" or value:find("[%z\r\n]") then
      argerror(fname, n, format("header %q must be a string without CR, LF or NUL", name), level + 1)
    end
    lines[#lines + 1] = name .. ": " .. value
  end
  sort(lines)
  return lines
end

-- ------------------------------------------------------------------------
-- Client options.
-- ------------------------------------------------------------------------

-- Option name -> expected type. "id" is a string or integer; "count" an
-- integer >= 0; "seconds" a number >= 0 ("positive" > 0).
local CLIENT_OPTIONS = {
  token = "string", base_url = "string", integrated_account_id = "id",
  timeout = "positive", connect_timeout = "positive", user_agent = "string",
  headers = "table", ca_file = "string", proxy = "string", verify_tls = "boolean",
  allow_insecure = "boolean", max_body = "positive",
  low_speed_limit = "seconds", low_speed_time = "seconds",
  max_retries = "count", max_retry_wait = "seconds", retry_statuses = "statuses",
  on_retry = "function", sleep = "function", debug = "function",
  prefetch = "boolean", concurrency = "positive_count", rate_limit = "rate_limit",
  transport = "transport",
}

-- Options a single call may override (a trailing table after params).
local CALL_OPTIONS = {
  timeout = "positive", connect_timeout = "positive",
  max_retries = "count", max_retry_wait = "seconds", retry_statuses = "statuses",
  on_retry = "function", idempotency_key = "string",
  prefetch = "boolean", concurrency = "positive_count", on_error = "on_error",
}

local EXPECTED = {
  id = "string or integer", count = "integer >= 0", seconds = "number >= 0",
  positive = "number > 0", statuses = "array of HTTP statuses", positive_count = "integer >= 1",
  on_error = '"raise" or "skip"', transport = '"curl", "ngx" or a transport object',
  rate_limit = "false or { requests = n, per = seconds }",
}

local function valid_option(kind, value)
  local t = type(value)
  if kind == "id" then return t == "string" or t == "number" end
  if kind == "count" then return math_type(value) == "integer" and value >= 0 end
  if kind == "positive_count" then return math_type(value) == "integer" and value >= 1 end
  if kind == "on_error" then return value == "raise" or value == "skip" end
  if kind == "transport" then return value == "curl" or value == "ngx" or t == "table" or t == "userdata" end
  if kind == "rate_limit" then
    return value == false or (t == "table" and math_type(value.requests) == "integer" and value.requests >= 1
      and type(value.per) == "number" and value.per > 0)
  end
  if kind == "seconds" then return t == "number" and value >= 0 and value < math.huge end
  if kind == "positive" then return t == "number" and value > 0 and value < math.huge end
  if kind == "statuses" then
    if t ~= "table" then return false end
    for i, v in pairs(value) do
      if math_type(i) ~= "integer" or math_type(v) ~= "integer" or v < 100 or v > 599 then return false end
    end
    return true
  end
  if kind == "string" and t == "string" and value:find("[%z\r\n]") then return false end
  return t == kind
end

-- Raises on an unknown option or a value of the wrong type. `level`
-- counts this function as 1.
local function check_options(fname, n, opts, known, level)
  for key, value in pairs(opts) do
    local kind = known[key]
    if not kind then
      argerror(fname, n, format("unknown option %q", tostring(key)), level + 1)
    end
    if not valid_option(kind, value) then
      argerror(fname, n, format("option '%s': %s expected, got %s",
        key, EXPECTED[kind] or kind, type(value) == "number" and tostring(value) or type(value)), level + 1)
    end
  end
end

local function is_loopback(host)
  host = host:lower()
  return host == "localhost" or host == "[::1]" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

-- Returns the base URL without trailing slashes, or nil and why not.
local function normalize_base_url(url, allow_insecure)
  local scheme, authority = url:match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme or authority == "" then
    return nil, "base_url must be an absolute http(s) URL"
  end
  scheme = scheme:lower()
  if scheme ~= "https" and scheme ~= "http" then
    return nil, "base_url must use https://"
  end
  if url:find("[%s%c]") or url:find("[?#]") or authority:find("@", 1, true) then
    return nil, "base_url must not contain spaces, control bytes, a query, a fragment or credentials"
  end
  local host = authority:match("^(%[[^%]]*%])") or authority:match("^[^:]+")
  if scheme == "http" and not allow_insecure and not is_loopback(host or "") then
    return nil, "base_url must use https:// (http:// is allowed for loopback hosts, or with allow_insecure = true)"
  end
  return (url:gsub("/+$", ""))
end

-- ------------------------------------------------------------------------
-- Requests and retries.
-- ------------------------------------------------------------------------

-- Retries. Which failures are retried, and how long to wait, is policy:
-- it lives here so that every transport (libcurl, nginx) shares it.

local DEFAULT_RETRY_STATUSES = { 429, 500, 502, 504 }
local BACKOFF_BASE, BACKOFF_CAP, DEFAULT_429_WAIT = 0.5, 10, 10
-- Truto allows 500 requests per 10 s per API token.
local DEFAULT_RATE_LIMIT = { requests = 500, per = 10 }

local function status_set(list)
  local set = {}
  for _, status in ipairs(list) do set[status] = true end
  return set
end

-- The client's policy with a call's options on top.
local function call_policy(self, opts)
  local base = self._policy
  if not opts then return base end
  local p = setmetatable({}, { __index = base })
  for k, v in pairs(opts) do p[k] = v end
  if opts.retry_statuses then p.retry_statuses = status_set(opts.retry_statuses) end
  return p
end

-- Seconds to wait before attempt `attempt` + 1, or nil to give up now.
-- `err` describes the failure: kind, status, retry_after, never_sent, too_large.
local function retry_wait(policy, method, err, attempt)
  if attempt > policy.max_retries then return nil end
  if err.kind == "http" then
    if not policy.retry_statuses[err.status] then return nil end
  elseif err.too_large or (err.kind ~= "transport" and err.kind ~= "timeout") then
    return nil -- an answer over max_body will be as large next time
  end
  -- A POST or PATCH may have taken effect: send it again only when the
  -- server can tell a replay (Idempotency-Key) or never saw it.
  if method ~= "GET" and method ~= "DELETE" and not policy.idempotency_key and not err.never_sent then
    return nil
  end
  if err.status == 429 then
    local wait = err.retry_after or DEFAULT_429_WAIT
    if wait > policy.max_retry_wait then return nil end
    return wait
  end
  -- Exponential backoff with full jitter.
  return math.random() * math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ^ (attempt - 1))
end

-- An error object for a failure that has no HTTP answer to read (a
-- transport failure, or a page the pager refused).
local function request_error(kind, message, method, url)
  return core.error { kind = kind, message = message, method = method, url = url, remote = false }
end

-- Client-side rate limit: at most `requests` request starts in any `per`
-- seconds (Truto allows 500 per 10 s per token). A ring of start times.
local function throttle(self)
  local limit = self._rate_limit
  if not limit then return end
  local ring, n = limit.ring, limit.requests
  local i = limit.next
  local oldest = ring[i]
  if oldest then
    local wait = oldest + limit.per - core.now()
    if wait > 0 then self._policy.sleep(wait) end
  end
  ring[i] = core.now()
  limit.next = i % n + 1
end

-- The debug log: each request line and its headers, the token masked
-- (it never leaves the transport, so it cannot be shown).
local function log_request(policy, method, url, lines, body)
  local out = { method .. " " .. url, "Authorization: Bearer ***" }
  for i = 1, #lines do out[#out + 1] = lines[i] end
  if body then out[#out + 1] = format("(body: %d bytes)", #body) end
  policy.debug(concat(out, "\n"))
end

-- Starts one attempt without waiting for it.
local function start(self, method, url, body, lines, policy)
  throttle(self)
  if policy.debug then log_request(policy, method, url, lines, body) end
  return self._transport:start(method, url, lines, body, policy.timeout, policy.connect_timeout)
end

-- Header lines a, then b (a itself when b is empty).
local function joined(a, b)
  if not b or #b == 0 then return a end
  local lines = {}
  for i = 1, #a do lines[i] = a[i] end
  for i = 1, #b do lines[#lines + 1] = b[i] end
  return lines
end

-- Performs a request with retries. Returns the final answer (status,
-- headers, body, attempts) whatever its status, or nil and an error object
-- when the last attempt failed in transport. `first`, when given, is the
-- first attempt already started (read-ahead); it is waited for, not sent.
local function exchange(self, method, url, body, lines, policy, first)
  if policy.idempotency_key then
    lines = joined({ "Idempotency-Key: " .. policy.idempotency_key }, lines)
  end
  local attempt = 0
  while true do
    attempt = attempt + 1
    local request = first or start(self, method, url, body, lines, policy)
    first = nil
    local status, headers, text, never_sent, too_large = request:wait()
    if policy.debug then
      policy.debug(status and format("<- %d (%d bytes)", status, #text) or format("<- %s: %s", headers, text))
    end
    local failure
    if status then
      if not policy.retry_statuses[status] then return status, headers, text, attempt end
      failure = { kind = "http", status = status,
        retry_after = core.retry_after(headers["retry-after"], headers["ratelimit-reset"]) }
    else
      failure = { kind = headers, message = text, never_sent = never_sent, too_large = too_large }
    end
    local wait = retry_wait(policy, method, failure, attempt)
    if not wait then
      if status then return status, headers, text, attempt end
      local err = request_error(headers, text, method, url)
      err.attempts = attempt
      return nil, err
    end
    if policy.on_retry then
      policy.on_retry { attempt = attempt, status = status, wait = wait, method = method, url = url,
        error = status and nil or request_error(headers, text, method, url) }
    end
    policy.sleep(wait)
  end
end

-- One request whose answer is JSON: the decoded value, or nil and an error.
local function call(self, method, url, body, policy, first)
  local status, headers, text, attempts = exchange(self, method, url, body, self._header_lines, policy, first)
  if not status then return nil, headers end
  local value, err = core.read_response(status, headers, text, method, url)
  if err then err.attempts = attempts end
  return value, err
end

-- Transports. A transport performs fully built requests and knows nothing
-- of Truto: perform(method, url, header_lines, body, timeout,
-- connect_timeout) -> status, headers, body | nil, kind, message,
-- never_sent, too_large; start(...) -> request with :wait(), :done(),
-- :cancel(); pump(); wait_any(requests) -> index. "curl" is the C one;
-- "ngx" (module truto.ngx) runs inside nginx without blocking it.

local make_transport

-- Whether we run inside nginx in a phase whose handlers may yield.
local function nginx_can_yield()
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.get_phase) ~= "function" then return false end
  local phase = ngx.get_phase()
  return phase == "rewrite" or phase == "access" or phase == "content" or phase == "timer"
    or phase == "ssl_cert" or phase == "ssl_session_fetch"
end

make_transport = function(kind, settings, policy)
  if kind == nil then kind = nginx_can_yield() and "ngx" or "curl" end
  -- The token goes into the transport and stays there: no Lua table of
  -- ours that a caller can reach holds it.
  if kind == "curl" then return core.curl(settings) end
  if kind == "ngx" then
    local ngx_transport = require "truto.ngx"
    if policy.sleep == core.sleep then policy.sleep = ngx_transport.sleep end
    return ngx_transport.new(settings)
  end
  return kind -- a transport object supplied by the caller
end

local Client = {}
Client.__index = Client
Client.__name = "truto.client"

--- Creates a client.
-- @tparam[opt] table opts `token` (default `TRUTO_API_TOKEN`), `base_url`
--   (default `TRUTO_BASE_URL`, else https://api.truto.one),
--   `integrated_account_id`, `timeout` (30 s), `connect_timeout` (10 s),
--   `low_speed_limit`, `low_speed_time`, `user_agent`, `headers`, `ca_file`,
--   `proxy`, `verify_tls` (true), `allow_insecure`, `max_body` (64 MiB),
--   `max_retries` (3), `max_retry_wait` (60 s), `retry_statuses`, `on_retry`,
--   `sleep`, `debug` (a function given each request and answer line),
--   `prefetch` (true), `concurrency` (8), `rate_limit`
--   (`{ requests = 500, per = 10 }`, or false), `transport` ("curl" | "ngx").
-- @treturn client
-- @raise on a missing token, a bad base URL or a bad option
function M.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then typeerror("new", 1, "table", opts) end
  check_options("new", 1, opts, CLIENT_OPTIONS, 2)
  local token = opts.token or os.getenv("TRUTO_API_TOKEN")
  if token == nil or token == "" then
    argerror("new", 1, "token required: pass token = ... or set TRUTO_API_TOKEN")
  end
  local base, why = normalize_base_url(opts.base_url or os.getenv("TRUTO_BASE_URL") or DEFAULT_BASE_URL,
    opts.allow_insecure)
  if not base then argerror("new", 1, why) end
  local account = opts.integrated_account_id
  if account ~= nil then
    local _, err = core.segment(account)
    if err then argerror("new", 1, "option 'integrated_account_id': " .. err) end
  end
  local self = setmetatable({
    base_url = base,
    integrated_account_id = account,
    _header_lines = header_lines("new", 1, opts.headers, 3),
    _policy = {
      max_retries = opts.max_retries or 3,
      max_retry_wait = opts.max_retry_wait or 60,
      retry_statuses = status_set(opts.retry_statuses or DEFAULT_RETRY_STATUSES),
      on_retry = opts.on_retry,
      debug = opts.debug,
      sleep = opts.sleep or core.sleep,
      prefetch = opts.prefetch ~= false,
      concurrency = opts.concurrency or 8,
      on_error = "raise",
    },
  }, Client)
  local limit = opts.rate_limit == nil and DEFAULT_RATE_LIMIT or opts.rate_limit
  if limit then
    self._rate_limit = { requests = limit.requests, per = limit.per, ring = {}, next = 1 }
  end
  local settings = {
    token = token, user_agent = opts.user_agent, ca_file = opts.ca_file, proxy = opts.proxy,
    verify_tls = opts.verify_tls, timeout = opts.timeout, connect_timeout = opts.connect_timeout,
    max_body = opts.max_body, low_speed_limit = opts.low_speed_limit, low_speed_time = opts.low_speed_time,
  }
  self._transport = make_transport(opts.transport, settings, self._policy)
  return self
end

function Client:__tostring()
  return format("truto.client (%s)", self.base_url)
end

--- Closes the client's connections now instead of at garbage collection.
-- The client cannot be used afterwards. Never raises.
function Client:close()
  local transport = self._transport
  if transport and transport.close then transport:close() end
end
Client.__close = Client.close

-- ------------------------------------------------------------------------
-- Unified calls.
-- ------------------------------------------------------------------------

-- Copies params, adds the default account, and checks it all encodes.
-- Returns the query table. `n` is the params argument's position.
local function prepare_query(self, fname, n, params)
  check_optional_table(fname, n, params, 4)
  local query = {}
  if params then
    for k, v in next, params do query[k] = v end
  end
  if query.integrated_account_id == nil then
    query.integrated_account_id = self.integrated_account_id
  end
  local account = query.integrated_account_id
  if account == nil then
    argerror(fname, n, "integrated_account_id required (in params, or truto.new{ integrated_account_id = ... })", 4)
  end
  local _, err = core.segment(account)
  if err then argerror(fname, n, "integrated_account_id: " .. err, 4) end
  local q, qerr = core.encode_query(query)
  if qerr then argerror(fname, n, "params." .. qerr, 4) end
  if #q > MAX_QUERY then
    argerror(fname, n, format("params: query of %d bytes is longer than %d", #q, MAX_QUERY), 4)
  end
  return query
end

local function with_query(path, query)
  local q = core.encode_query(query)
  return q == "" and path or path .. "?" .. q
end

-- "/unified/<model>/<resource>[/<id>]" under the client's base URL.
local function unified_path(self, fname, model, resource, id, id_arg)
  local path = self.base_url .. "/unified/" .. model .. "/" .. resource
  if id_arg then
    local segment, err = core.segment(id)
    if not segment then argerror(fname, id_arg, err, 4) end
    path = path .. "/" .. segment
  end
  return path
end

-- Checks and encodes a JSON body; `n` is its argument position.
local function encode_body(fname, n, body)
  if type(body) ~= "table" then typeerror(fname, n, "table", body, 4) end
  local text, err = core.encode_json(body)
  if not text then argerror(fname, n, "body: " .. err, 4) end
  return text
end

-- Checks a call's trailing options table and returns the policy to use.
local function call_options(self, fname, n, opts)
  if opts == nil then return self._policy end
  if type(opts) ~= "table" then typeerror(fname, n, "table of options", opts, 4) end
  check_options(fname, n, opts, CALL_OPTIONS, 3)
  return call_policy(self, opts)
end

-- One unified call that returns a single object. `a` gives the argument
-- positions: model, resource, id, body, params (nil when not an argument).
local function single(self, fname, method, a, model, resource, id, body, params, opts)
  local policy = call_options(self, fname, a.opts, opts)
  if a.model then check_name(fname, a.model, model, "model") end
  if a.resource then check_name(fname, a.resource, resource, "resource") end
  local path = unified_path(self, fname, model, resource, id, a.id)
  local text = a.body and encode_body(fname, a.body, body)
  local query = prepare_query(self, fname, a.params, params)
  return call(self, method, with_query(path, query), text, policy)
end

local GENERIC_GET = { model = 1, resource = 2, id = 3, params = 4, opts = 5 }
local GENERIC_CREATE = { model = 1, resource = 2, body = 3, params = 4, opts = 5 }
local GENERIC_UPDATE = { model = 1, resource = 2, id = 3, body = 4, params = 5, opts = 6 }
local CUSTOM_CALL = { body = 4, params = 5, opts = 6 }
local ORG_GET = { id = 1, params = 2, opts = 3 }
local ORG_UPDATE = { id = 1, body = 2, params = 3, opts = 4 }

--- Gets one object: `GET /unified/<model>/<resource>/<id>`.
-- @string model the unified model, e.g. "user-directory"
-- @string resource e.g. "users"
-- @tparam string|integer id one path segment, escaped
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn[1] table the decoded answer (integers as Lua integers; `{}` for 204)
-- @treturn[2] nil
-- @treturn[2] error the error object: `kind`, `status`, `message`, ...
-- @raise on misuse (argument types, missing account, unencodable params or body)
function Client:get(model, resource, id, params, opts)
  return single(self, "get", "GET", GENERIC_GET, model, resource, id, nil, params, opts)
end

--- Creates an object: `POST /unified/<model>/<resource>` with a JSON body.
-- @string model the unified model, e.g. "user-directory"
-- @string resource e.g. "users"
-- @tparam table body sent as JSON (see `array` for empty arrays)
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn[1] table the decoded answer (integers as Lua integers; `{}` for 204)
-- @treturn[2] nil
-- @treturn[2] error the error object: `kind`, `status`, `message`, ...
-- @raise on misuse (argument types, missing account, unencodable params or body)
function Client:create(model, resource, body, params, opts)
  return single(self, "create", "POST", GENERIC_CREATE, model, resource, nil, body, params, opts)
end

--- Updates an object: `PATCH /unified/<model>/<resource>/<id>` with a JSON body.
-- @string model the unified model, e.g. "user-directory"
-- @string resource e.g. "users"
-- @tparam string|integer id one path segment, escaped
-- @tparam table body sent as JSON (see `array` for empty arrays)
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn[1] table the decoded answer (integers as Lua integers; `{}` for 204)
-- @treturn[2] nil
-- @treturn[2] error the error object: `kind`, `status`, `message`, ...
-- @raise on misuse (argument types, missing account, unencodable params or body)
function Client:update(model, resource, id, body, params, opts)
  return single(self, "update", "PATCH", GENERIC_UPDATE, model, resource, id, body, params, opts)
end

--- Deletes an object: `DELETE /unified/<model>/<resource>/<id>`. A 204 gives `{}`.
-- @string model the unified model, e.g. "user-directory"
-- @string resource e.g. "users"
-- @tparam string|integer id one path segment, escaped
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn[1] table the decoded answer (integers as Lua integers; `{}` for 204)
-- @treturn[2] nil
-- @treturn[2] error the error object: `kind`, `status`, `message`, ...
-- @raise on misuse (argument types, missing account, unencodable params or body)
function Client:delete(model, resource, id, params, opts)
  return single(self, "delete", "DELETE", GENERIC_GET, model, resource, id, nil, params, opts)
end

--- Calls a custom method: `POST /unified/<model>/<resource>/<method>`.
-- `body` defaults to `{}`; the answer is Truto's `{ result = ... }`.
-- @string model the unified model, e.g. "user-directory"
-- @string resource e.g. "users"
-- @string method the custom method, e.g. "downgrade"
-- @tparam[opt] table body sent as JSON
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn[1] table the decoded answer (integers as Lua integers; `{}` for 204)
-- @treturn[2] nil
-- @treturn[2] error the error object: `kind`, `status`, `message`, ...
-- @raise on misuse (argument types, missing account, unencodable params or body)
function Client:call(model, resource, method, body, params, opts)
  check_name("call", 1, model, "model")
  check_name("call", 2, resource, "resource")
  check_name("call", 3, method, "method")
  if body == nil then body = {} end
  return single(self, "call", "POST", CUSTOM_CALL, model, resource .. "/" .. method, nil, body, params, opts)
end

--- Gets an organization: `GET /unified/user-directory/organizations/<id>`.
-- @tparam string|integer id one path segment, escaped
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn[1] table the decoded answer (integers as Lua integers; `{}` for 204)
-- @treturn[2] nil
-- @treturn[2] error the error object: `kind`, `status`, `message`, ...
-- @raise on misuse (argument types, missing account, unencodable params or body)
function Client:get_organization(id, params, opts)
  return single(self, "get_organization", "GET", ORG_GET, MODEL, "organizations", id, nil, params, opts)
end

--- Updates an organization (PATCH); `body` is a Lua table sent as JSON.
-- @tparam string|integer id one path segment, escaped
-- @tparam table body sent as JSON (see `array` for empty arrays)
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn[1] table the decoded answer (integers as Lua integers; `{}` for 204)
-- @treturn[2] nil
-- @treturn[2] error the error object: `kind`, `status`, `message`, ...
-- @raise on misuse (argument types, missing account, unencodable params or body)
function Client:update_organization(id, body, params, opts)
  return single(self, "update_organization", "PATCH", ORG_UPDATE, MODEL, "organizations", id, body, params, opts)
end

--- Deletes an organization. A 204 answer gives `{}`.
-- @tparam string|integer id one path segment, escaped
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn[1] table the decoded answer (integers as Lua integers; `{}` for 204)
-- @treturn[2] nil
-- @treturn[2] error the error object: `kind`, `status`, `message`, ...
-- @raise on misuse (argument types, missing account, unencodable params or body)
function Client:delete_organization(id, params, opts)
  return single(self, "delete_organization", "DELETE", ORG_GET, MODEL, "organizations", id, nil, params, opts)
end

--- The escape hatch: any request under the base URL.
-- @tparam table req `method` (default GET), `path` ("/..."), `query` (table),
--   `body` (table sent as JSON, or a string sent as is), `headers` (table)
-- @tparam[opt] table opts per-call options (see the README)
-- @treturn table `{ status, headers, body, json }` for any HTTP status
--   (`json` is the decoded body when it is JSON)
-- @treturn error on a transport failure
function Client:request(req, opts)
  if type(req) ~= "table" then typeerror("request", 1, "table", req) end
  local policy = call_options(self, "request", 2, opts)
  local method = req.method or "GET"
  if type(method) ~= "string" or not method:match("^%u+$") then
    argerror("request", 1, "method must be an upper-case HTTP method")
  end
  local path = req.path
  if type(path) ~= "string" or not path:match("^/[%w%-._~!$&'()*+,;=:@/%%]*$") then
    argerror("request", 1, "path must start with '/' and hold only URL path characters (escape the rest)")
  end
  check_optional_table("request", 1, req.query, 3)
  local url = self.base_url .. path
  if req.query then
    local q, err = core.encode_query(req.query)
    if not q then argerror("request", 1, "query." .. err) end
    if q ~= "" then url = url .. "?" .. q end
  end
  local body = req.body
  if type(body) == "table" then
    local err
    body, err = core.encode_json(body)
    if not body then argerror("request", 1, "body: " .. err) end
  elseif body ~= nil and type(body) ~= "string" then
    argerror("request", 1, "body must be a table or a string")
  end
  local lines = joined(self._header_lines, header_lines("request", 1, req.headers, 3))
  local status, headers, text = exchange(self, method, url, body, lines, policy)
  if not status then return nil, headers end
  return { status = status, headers = headers, body = text, json = core.decode(text) }
end

-- ------------------------------------------------------------------------
-- Lists: iterators over items and over pages.
-- ------------------------------------------------------------------------

-- A stream walks one account's list: the query, the pager and at most one
-- request in flight (the next page, when read-ahead is on).

local function new_stream(client, path, query, policy)
  return {
    client = client, path = path, query = query, policy = policy,
    account = query.integrated_account_id, pager = core.pager(query.next_cursor),
  }
end

-- The URL of the stream's next page.
local function next_url(st)
  st.query.next_cursor = st.pager:cursor()
  return with_query(st.path, st.query)
end

-- Starts the request for the stream's next page without waiting for it.
local function stream_start(st)
  st.url = next_url(st)
  st.pending = start(st.client, "GET", st.url, nil, st.client._header_lines, st.policy)
end

local function stream_cancel(st)
  if st.pending then
    st.pending:cancel()
    st.pending = nil
  end
end

-- Reads the stream's next page: takes the request in flight (or sends
-- one), retries as the policy says, feeds the pager. Returns page, result,
-- keyed; or nil and an error object.
local function stream_read(st)
  local url, pending = st.url, st.pending
  st.url, st.pending = nil, nil
  if not pending then url = next_url(st) end
  local page, err = call(st.client, "GET", url, nil, st.policy, pending)
  if page == nil then return nil, err end
  local result, keyed, message = st.pager:feed(page)
  if result == nil then
    return nil, request_error(keyed, message, "GET", url)
  end
  return page, result, keyed
end

local Iterator = {}
Iterator.__index = Iterator
Iterator.__name = "truto.iterator"

--- Releases the iterator and cancels any request in flight; later calls
-- end the loop. Never raises.
function Iterator:close()
  self.closed = true
  self.items = nil
  if self.stream then stream_cancel(self.stream) end
  for _, st in ipairs(self.active or {}) do stream_cancel(st) end
end
Iterator.__close = Iterator.close
Iterator.__gc = Iterator.close

-- Raises err from an iterator, after releasing it.
local function fail(it, err)
  it:close()
  error(err, 0)
end

-- Fetches the next page of a one-account iterator, and starts the one
-- after it (read-ahead) so that it arrives while the caller works.
local function fetch_page(it)
  local st = it.stream
  local page, result, keyed = stream_read(st)
  if page == nil then fail(it, result) end
  if st.policy.prefetch and not st.pager:done() then stream_start(st) end
  return page, result, keyed
end

-- Next item of the current page, or nil when it is used up.
local function take_item(it)
  local items = it.items
  if not items then return nil end
  if it.keyed then
    local key, item = next(items, it.key)
    if key ~= nil then
      it.key = key
      return item, key
    end
  else
    local i = it.index + 1
    local item = items[i]
    if item ~= nil then
      it.index = i
      return item
    end
  end
  it.items = nil
  return nil
end

local PUMP_EVERY = 32 -- items between nudges to a transfer in flight

-- Whether a one-account iterator has nothing more to give.
local function exhausted(it)
  return it.closed or (it.stream.pager:done() and not it.stream.pending)
end

-- The item iterator: yields item (or item, key for truto_key_by answers).
local function next_item(it)
  while true do
    local item, key = take_item(it)
    if item ~= nil then
      -- let the read-ahead request progress while the caller works
      if it.index % PUMP_EVERY == 0 and it.stream.pending then it.client._transport:pump() end
      return item, key
    end
    if exhausted(it) then return nil end
    local _, result, keyed = fetch_page(it)
    it.items, it.keyed, it.index, it.key = result, keyed, 0, nil
  end
end

-- The page iterator: yields each decoded page.
local function next_page(it)
  if exhausted(it) then return nil end
  return (fetch_page(it))
end

-- Many accounts at once. Each account is a stream with at most one request
-- in flight and at most MAX_READY pages read ahead. At most `concurrency`
-- requests are in flight in all, handed out round-robin over up to
-- ACTIVE_PER_SLOT x concurrency open streams, so that all accounts advance
-- together and the last ones do not run alone. Items come out as
-- `item, account_id`, each account's pages in order.

local MAX_READY = 2
local ACTIVE_PER_SLOT = 4

local function open_streams(it)
  local limit = it.policy.concurrency * ACTIVE_PER_SLOT
  while #it.active < limit and it.next_account <= #it.accounts do
    local query = {}
    for k, v in next, it.query do query[k] = v end
    query.integrated_account_id = it.accounts[it.next_account]
    it.next_account = it.next_account + 1
    local st = new_stream(it.client, it.path, query, it.policy)
    st.ready = {}
    it.active[#it.active + 1] = st
  end
end

local function wants_request(st)
  return not st.pending and not st.failed and not st.pager:done() and #st.ready < MAX_READY
end

-- Starts requests, round-robin over the open streams, until `concurrency`
-- are in flight.
local function refill(it)
  open_streams(it)
  local active, in_flight = it.active, 0
  for _, st in ipairs(active) do
    if st.pending then in_flight = in_flight + 1 end
  end
  local n = #active
  for k = 1, n do
    if in_flight >= it.policy.concurrency then break end
    local st = active[(it.turn + k - 1) % n + 1]
    if wants_request(st) then
      stream_start(st)
      in_flight = in_flight + 1
      it.turn = (it.turn + k) % n
    end
  end
end

-- Waits for one request in flight and stores its page (or its error).
local function receive(it)
  local requests, owners = {}, {}
  for _, st in ipairs(it.active) do
    if st.pending then
      requests[#requests + 1] = st.pending
      owners[#requests] = st
    end
  end
  local i = it.client._transport:wait_any(requests)
  if not i then return false end
  local st = owners[i]
  local page, result, keyed = stream_read(st)
  if page == nil then
    result.account_id = st.account
    if it.policy.on_error ~= "skip" then fail(it, result) end
    it.errors[#it.errors + 1] = { account_id = st.account, error = result }
    st.failed = true
    return true
  end
  st.ready[#st.ready + 1] = { items = result, keyed = keyed }
  refill(it) -- keep `concurrency` requests in flight while pages wait to be read
  return true
end

-- Drops streams that have nothing more to give.
local function retire(it)
  local kept = {}
  for _, st in ipairs(it.active) do
    local finished = st.failed or (st.pager:done() and not st.pending and #st.ready == 0)
    if not finished then kept[#kept + 1] = st end
  end
  it.active = kept
end

local function next_multi(it)
  while true do
    local item = take_item(it)
    if item ~= nil then return item, it.current end
    if it.closed then return nil end
    local ready
    for _, st in ipairs(it.active) do
      if #st.ready > 0 then
        ready = st
        break
      end
    end
    if ready then
      local page = table.remove(ready.ready, 1)
      it.items, it.keyed, it.index, it.key = page.items, page.keyed, 0, nil
      it.current = ready.account
    else
      retire(it)
      refill(it)
      if #it.active == 0 or not receive(it) then
        it.closed = true
        return nil
      end
    end
  end
end

local iterate_accounts -- below: many accounts at once

local function iterate(self, fname, step, model, resource, params, n, opts)
  local policy = call_options(self, fname, n + 1, opts)
  local accounts = type(params) == "table" and rawget(params, "integrated_account_id")
  if type(accounts) == "table" then
    if step ~= next_item then argerror(fname, n, "integrated_account_id: one account expected", 3) end
    return iterate_accounts(self, fname, model, resource, params, n, policy, accounts)
  end
  local query = prepare_query(self, fname, n, params)
  local path = self.base_url .. "/unified/" .. model .. "/" .. resource
  local it = setmetatable({ client = self, stream = new_stream(self, path, query, policy) }, Iterator)
  -- The fourth value is closed when a generic for ends, even by break.
  return step, it, nil, it
end

iterate_accounts = function(self, fname, model, resource, params, n, policy, accounts)
  local list = {}
  for i, account in ipairs(accounts) do
    local _, err = core.segment(account)
    if err then argerror(fname, n, format("integrated_account_id[%d]: %s", i, err), 3) end
    list[i] = account
  end
  local count = 0
  for _ in next, accounts do count = count + 1 end
  if #list == 0 or count ~= #list then
    argerror(fname, n, "integrated_account_id: a non-empty array of account ids expected", 3)
  end
  local one = {}
  for k, v in next, params do one[k] = v end
  one.integrated_account_id = list[1]
  local query = prepare_query(self, fname, n, one) -- checks the params once
  local it = setmetatable({
    client = self, policy = policy, query = query, accounts = list, next_account = 1, turn = 0,
    path = self.base_url .. "/unified/" .. model .. "/" .. resource, active = {}, errors = {},
  }, Iterator)
  return next_multi, it, nil, it
end

--- Iterates over every item of every page of a list.
-- With `integrated_account_id` an array of ids, reads the accounts at once
-- (at most `concurrency` requests in flight) and yields `item, account_id`;
-- `opts.on_error = "skip"` collects failing accounts in `state.errors`.
-- With `truto_key_by` it yields `item, key`.
-- @usage for user in client:list("user-directory", "users", { integrated_account_id = id }) do ... end
-- @string model the unified model, e.g. "user-directory"
-- @string resource e.g. "users"
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call (`prefetch`, `concurrency`, `on_error`, retries, ...)
-- @treturn function,table,nil,table a generic-for iterator; the fourth value closes it on `break`
-- @raise the error object when a page fails (inside the loop); misuse at once
function Client:list(model, resource, params, opts)
  check_name("list", 1, model, "model")
  check_name("list", 2, resource, "resource")
  return iterate(self, "list", next_item, model, resource, params, 3, opts)
end

--- Iterates over the pages of a list: `page.result`, `page.next_cursor`.
-- @string model the unified model, e.g. "user-directory"
-- @string resource e.g. "users"
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn function,table,nil,table a generic-for iterator; the fourth value closes it on `break`
-- @raise the error object when a page fails (inside the loop); misuse at once
function Client:pages(model, resource, params, opts)
  check_name("pages", 1, model, "model")
  check_name("pages", 2, resource, "resource")
  return iterate(self, "pages", next_page, model, resource, params, 3, opts)
end

--- Iterates over every user of the account (or accounts, see `list`).
-- @usage for user in client:users { integrated_account_id = id, status = "active" } do ... end
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn function,table,nil,table a generic-for iterator; the fourth value closes it on `break`
-- @raise the error object when a page fails (inside the loop); misuse at once
function Client:users(params, opts)
  return iterate(self, "users", next_item, MODEL, "users", params, 1, opts)
end

--- Iterates over every group of the account (or accounts, see `list`).
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn function,table,nil,table a generic-for iterator; the fourth value closes it on `break`
-- @raise the error object when a page fails (inside the loop); misuse at once
function Client:groups(params, opts)
  return iterate(self, "groups", next_item, MODEL, "groups", params, 1, opts)
end

-- ------------------------------------------------------------------------
-- The module-level default client, built from the environment.
-- ------------------------------------------------------------------------

local default_client

local function default()
  if not default_client then
    local ok, client = pcall(M.new)
    if not ok then
      error("truto: no default client (" .. tostring(client):gsub("^.-%(", "", 1), 3)
    end
    default_client = client
  end
  return default_client
end

--- Replaces the default client's options (the module functions use it).
-- @tparam table opts as for `new`
-- @treturn client the new default client
-- @raise as `new`
function M.configure(opts)
  default_client = M.new(opts)
  return default_client
end

for _, name in ipairs { "users", "groups", "get_organization", "update_organization",
  "delete_organization", "list", "pages", "get", "create", "update", "delete", "call", "request" } do
  local method = Client[name]
  M[name] = function(...) return method(default(), ...) end
end

--- Marks a table as a JSON array, so that an empty one is sent as `[]`.
-- @tparam[opt] table t the table (a new one when nil)
-- @treturn table t
-- @raise when t is not a table
function M.array(t)
  if t == nil then t = {} end
  if type(t) ~= "table" then typeerror("array", 1, "table", t) end
  return setmetatable(t, core.array_mt)
end

--- Whether v is a lua-truto error object.
-- @param v any value
-- @treturn boolean
function M.is_error(v)
  return getmetatable(v) == core.error_mt
end

M.Client = Client
M.null = require("cjson").null
return M
