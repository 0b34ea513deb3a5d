--- truto.options: argument checks, client and call options, header lines.
--
-- Misuse raises at once, before anything is sent, a string as
-- luaL_argerror does: "file:line: bad argument #1 to 'new' (...)", the
-- position being the caller's (outside the module), so that nginx's
-- error.log (which logs a table as "unknown reason") says what was wrong.
--
-- The defaults are in truto.defaults; truto.client fills them in, once,
-- so that the transports are given complete values (see truto.transport).
--
-- @module truto.options
local core = require "truto.core"

local M = {}

local error, type, tostring, pairs = error, type, tostring, pairs
local format, lower, sort = string.format, string.lower, table.sort
local huge = math.huge

-- Lua 5.1 and LuaJIT have no integer subtype: there an integral number
-- counts as an integer.
local math_type = math.type or function(v)
  if type(v) ~= "number" then return nil end
  return v == math.floor(v) and v >= -2 ^ 63 and v < 2 ^ 63 and "integer" or "float"
end
M.math_type = math_type

-- ------------------------------------------------------------------------
-- Misuse errors.
-- ------------------------------------------------------------------------

-- The pattern of a misuse message; the capture is what was wrong.
local MISUSE = "bad argument #%d+ to '[^']*' %((.*)%)$"

--- What was wrong, from a misuse error ("... (what)"), or nil when e is none.
function M.misuse_message(e)
  if type(e) ~= "string" then return nil end
  return e:match(MISUSE)
end

-- Whether a chunk is one of the module's own files (truto.lua, truto/*.lua).
local function own_source(source)
  return source:find("[/\\]truto%.lua$") ~= nil or source:find("[/\\]truto[/\\][^/\\]+%.lua$") ~= nil
    or source == "=[C]"
end

-- "file:line: " of the first caller outside the module, as error() would
-- put it at the right level.
local function caller_position()
  for level = 3, 40 do
    local info = debug.getinfo(level, "Sl")
    if not info then return nil end
    if not own_source(info.source) and info.currentline and info.currentline > 0 then
      return format("%s:%d: ", info.short_src, info.currentline)
    end
  end
  return nil
end

--- Raises `msg` (a string) at the first caller's position outside the module.
function M.raise(msg)
  error((caller_position() or "") .. msg, 0)
end

--- Raises a misuse error for argument `n` of the public function `fname`:
-- "file:line: bad argument #n to 'fname' (msg)", the position being the
-- first caller's outside the module.
function M.argerror(fname, n, msg)
  error(format("%sbad argument #%d to '%s' (%s)", caller_position() or "", n, fname, msg), 0)
end
local argerror = M.argerror

function M.typeerror(fname, n, expected, value)
  argerror(fname, n, format("%s expected, got %s", expected, type(value)))
end
local typeerror = M.typeerror

function M.check_optional_table(fname, n, value)
  if value ~= nil and type(value) ~= "table" then typeerror(fname, n, "table", value) end
end

--- Model, resource and custom method names are path words, never escaped.
function M.check_name(fname, n, value, what)
  if type(value) ~= "string" or not value:match("^[%w_%-]+$") then
    local got = type(value) == "string" and format("%q", value) or type(value)
    argerror(fname, n, format("%s name expected (letters, digits, '-', '_'), got %s", what, got))
  end
end

-- ------------------------------------------------------------------------
-- Header lines. Names merge case-insensitively: a call's header replaces
-- the client's, which replaces the library's default; each goes out once.
-- ------------------------------------------------------------------------

local HEADER_NAME = "^[!#$%%&'*+%-.^_`|~%w]+$"
-- Set by the transport (Host, Authorization, Content-Length, compression)
-- or by an option (Idempotency-Key): a header of the caller's cannot.
local RESERVED_HEADERS = {
  authorization = "it is set from the token", host = "it is set from base_url",
  ["content-length"] = "it is set from the body", ["accept-encoding"] = "the transport sets it",
  ["transfer-encoding"] = "the transport sets it", connection = "the transport sets it",
  ["idempotency-key"] = "use the idempotency_key option",
}

--- A header table -> { [lower name] = "Name: value" }. Raises on anything
-- that could split a header or replace one the library owns.
function M.headers(fname, n, headers)
  local set = {}
  if headers == nil then return set end
  if type(headers) ~= "table" then typeerror(fname, n, "table of headers", headers) end
  for name, value in pairs(headers) do
    if type(name) ~= "string" or not name:match(HEADER_NAME) then
      argerror(fname, n, format("invalid header name %q", tostring(name)))
    end
    local key = lower(name)
    if RESERVED_HEADERS[key] then
      argerror(fname, n, format("header %q cannot be set: %s", name, RESERVED_HEADERS[key]))
    end
    if set[key] then argerror(fname, n, format("header %q given twice (names are case-insensitive)", name)) end
    if math_type(value) == "integer" then value = format("%d", value) end
    if type(value) ~= "string" or value:find("[%z\r\n]") then
      argerror(fname, n, format("header %q must be a string without CR, LF or NUL", name))
    end
    set[key] = name .. ": " .. value
  end
  return set
end

--- Merges an array of header sets, later ones winning by lower-case name,
-- into sorted lines. Each set is one from M.headers.
function M.merge_headers(sets)
  local merged = {}
  for i = 1, #sets do
    for key, line in pairs(sets[i]) do merged[key] = line end
  end
  local lines = {}
  for _, line in pairs(merged) do lines[#lines + 1] = line end
  sort(lines)
  return lines
end

-- ------------------------------------------------------------------------
-- Option values.
-- ------------------------------------------------------------------------

-- Seconds beyond this are refused: libcurl takes milliseconds in a long,
-- nginx in an int; 23 days is far past any sensible wait.
local MAX_SECONDS = 2000000
-- Bytes: what a double holds exactly, and more than any answer.
local MAX_BYTES = 2 ^ 53

local function finite(v) return type(v) == "number" and v == v and v > -huge and v < huge end

local function nonblank_string(v)
  return type(v) == "string" and v:find("%S") ~= nil and not v:find("[%z\r\n]")
end

-- kind -> { test, what is expected }
local KINDS = {
  string = { function(v)
    if type(v) ~= "string" then return false end
    if v:find("[%z\r\n]") then return false, "must not contain CR, LF or NUL" end
    return true
  end, "string" },
  ["function"] = { function(v) return type(v) == "function" end, "function" },
  boolean = { function(v) return type(v) == "boolean" end, "boolean" },
  table = { function(v) return type(v) == "table" end, "table" },
  id = { function(v) return type(v) == "string" or math_type(v) == "integer" end, "string or integer" },
  count = { function(v) return math_type(v) == "integer" and v >= 0 and v <= 1000 end,
    "integer from 0 to 1000" },
  positive_count = { function(v) return math_type(v) == "integer" and v >= 1 and v <= 1000 end,
    "integer from 1 to 1000" },
  seconds = { function(v) return finite(v) and v >= 0 and v <= MAX_SECONDS end,
    format("number of seconds from 0 to %d", MAX_SECONDS) },
  positive = { function(v) return finite(v) and v > 0 and v <= MAX_SECONDS end,
    format("number of seconds > 0 and <= %d", MAX_SECONDS) },
  bytes = { function(v) return math_type(v) == "integer" and v >= 1 and v <= MAX_BYTES end,
    "integer number of bytes >= 1" },
  statuses = { function(v)
    if type(v) ~= "table" then return false end
    for i, s in pairs(v) do
      if math_type(i) ~= "integer" or math_type(s) ~= "integer" or s < 100 or s > 599 then return false end
    end
    return true
  end, "array of HTTP statuses" },
  on_error = { function(v) return v == "raise" or v == "skip" end, '"raise" or "skip"' },
  transport = { function(v) return v == "curl" or v == "ngx" or type(v) == "table" or type(v) == "userdata" end,
    '"curl", "ngx" or a transport object' },
  transport_name = { function(v) return v == "curl" or v == "ngx" end, '"curl" or "ngx"' },
  proxy = { function(v) return v == false or (type(v) == "string" and not v:find("[%z\r\n%s]")) end,
    "false or a proxy URL" },
  key = { function(v) return v == false or (nonblank_string(v) and #v <= 255) end,
    "false or a non-blank string of at most 255 bytes without CR, LF or NUL" },
  big_integers = { function(v) return v == "number" or v == "string" or v == "int64" end,
    '"number", "string" or "int64"' },
  rate_limit = { function(v) return require("truto.rate").check(v) end,
    "false or { requests = n, per = seconds, account = ..., shared_dict = ..., store = ... }" },
}

--- Option name -> kind, for `truto.new`.
M.CLIENT = {
  token = "string", base_url = "string", integrated_account_id = "id",
  timeout = "positive", connect_timeout = "positive", user_agent = "string",
  headers = "table", ca_file = "string", proxy = "proxy", verify_tls = "boolean",
  allow_insecure = "boolean", max_body = "bytes", max_values = "positive_count_big",
  big_integers = "big_integers",
  low_speed_limit = "seconds", low_speed_time = "seconds",
  max_retries = "count", max_retry_wait = "seconds", retry_statuses = "statuses",
  on_retry = "function", on_wait = "function", sleep = "function", debug = "function",
  on_request = "function", on_response = "function", -- hooks of every attempt (truto.metrics)
  prefetch = "boolean", concurrency = "positive_count", rate_limit = "rate_limit",
  transport = "transport", deadline = "positive", wrap_transport = "function",
  -- nginx transport: passed to it as they are (see truto.ngx)
  pool_size = "positive_count", keepalive_timeout = "seconds", backlog = "positive_count",
  send_timeout = "positive", read_timeout = "positive",
}
KINDS.positive_count_big = { function(v) return math_type(v) == "integer" and v >= 1 and v <= MAX_BYTES end,
  "integer >= 1" }

--- Options a single call may set (a trailing table after params).
M.CALL = {
  timeout = "positive", connect_timeout = "positive",
  max_retries = "count", max_retry_wait = "seconds", retry_statuses = "statuses",
  on_retry = "function", idempotency_key = "key",
  on_request = "function", on_response = "function", -- hooks of every attempt (truto.metrics)
  prefetch = "boolean", concurrency = "positive_count", on_error = "on_error", deadline = "positive",
  transport = "transport_name",
  max_pages = "positive_count_big", max_items = "positive_count_big", -- bounds of a list (truto.iterate)
}

--- Raises on an unknown option or a value of the wrong kind.
function M.check(fname, n, opts, known)
  for key, value in pairs(opts) do
    local kind = known[key]
    if not kind then argerror(fname, n, format("unknown option %q", tostring(key))) end
    local test, expected = KINDS[kind][1], KINDS[kind][2]
    local ok, why = test(value)
    if not ok then
      local got = type(value) == "number" and tostring(value) or type(value)
      if why and (why:sub(1, #key + 1) == key .. "." or why:sub(1, #key + 1) == key .. ":") then
        argerror(fname, n, format("option %s", why)) -- the checker named the field
      end
      argerror(fname, n, format("option '%s': %s", key, why or format("%s expected, got %s", expected, got)))
    end
  end
end

--- The token: the option, else TRUTO_API_TOKEN; checked the same way.
function M.token(opts)
  local token = opts.token
  if token == nil then
    token = os.getenv("TRUTO_API_TOKEN")
    if token ~= nil and token:find("[%z\r\n]") then
      argerror("new", 1, "TRUTO_API_TOKEN must not contain CR, LF or NUL")
    end
  end
  if token == nil or not token:find("%S") then
    argerror("new", 1, "token required: pass token = ... or set TRUTO_API_TOKEN")
  end
  return token
end

-- ------------------------------------------------------------------------
-- The base URL.
-- ------------------------------------------------------------------------

function M.is_loopback(host)
  host = lower(host)
  return host == "localhost" or host == "[::1]" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

local function valid_host(host)
  if host:match("^%[[%x:.]+%]$") then return true end -- IPv6 literal
  if #host > 253 then return false end
  for label in (host .. "."):gmatch("([^.]*)%.") do
    if #label < 1 or #label > 63 or not label:match("^[%w_%-]+$") or label:match("^%-") or label:match("%-$") then
      return false
    end
  end
  return true
end

--- Returns scheme, host, the base URL without trailing slashes; or nil and
-- why not. Host and port are checked here, not on the first request.
function M.base_url(url, allow_insecure)
  local scheme, authority = url:match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme or authority == "" then
    return nil, "base_url must be an absolute http(s) URL"
  end
  scheme = lower(scheme)
  if scheme ~= "https" and scheme ~= "http" then
    return nil, format("base_url must use https:// (or http:// for loopback hosts), not %s://", scheme)
  end
  if url:find("[%s%c]") or url:find("[?#]") or authority:find("@", 1, true) then
    return nil, "base_url must not contain spaces, control bytes, a query, a fragment or credentials"
  end
  local host, port = authority:match("^(%[[^%]]*%])(.*)$")
  if not host then host, port = authority:match("^([^:]*)(.*)$") end
  if port ~= "" then
    local digits = port:match("^:(%d+)$")
    if not digits or tonumber(digits) < 1 or tonumber(digits) > 65535 then
      return nil, format("base_url has an invalid port %q", port:sub(2))
    end
  end
  if not valid_host(host) then return nil, format("base_url has an invalid host %q", host) end
  if scheme == "http" and not allow_insecure and not M.is_loopback(host) then
    return nil, "base_url must use https:// (http:// is allowed for loopback hosts, or with allow_insecure = true)"
  end
  return scheme, lower(host), (url:gsub("/+$", ""))
end

--- The default User-Agent: lua-truto/<version> <Lua version>.
function M.user_agent()
  return format("lua-truto/%s %s", core.VERSION, _VERSION)
end

return M
