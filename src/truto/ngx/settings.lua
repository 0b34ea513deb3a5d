--- truto.ngx.settings: the settings of new() and the requests of the nginx transport, checked.
--
-- Misuse raises, naming the argument as luaL_argerror does; what the
-- transport cannot honour (ca_file, proxy) is refused.
--
-- @module truto.ngx.settings
local type, error, ipairs = type, error, ipairs
local format, find = string.format, string.find
local huge = math.huge

local M = {}

--- The defaults of new()'s settings (truto.ngx.DEFAULTS).
local D = require "truto.defaults"
M.DEFAULTS = {
  timeout = D.timeout, connect_timeout = D.connect_timeout, max_body = D.max_body,
  pool_size = D.pool_size, keepalive_timeout = D.keepalive_timeout,
}

local DEFAULTS = M.DEFAULTS

-- settings[name], checked, or `default`; raises at the caller of new().
local function number_setting(settings, name, default, positive_integer, zero_ok)
  local v = settings[name]
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v < 0 or (v == 0 and not zero_ok) or v == huge
    or (positive_integer and v % 1 ~= 0) then
    error(format("bad argument #1 to 'new' (option '%s': %s expected)", name,
      positive_integer and "positive integer" or "positive finite number"), 4)
  end
  return v
end

--- The transport's conf from new()'s settings (the token left out); misuse
-- raises at the caller of new().
function M.conf(settings)
  local low_speed_time = settings.low_speed_time
  local read_timeout = number_setting(settings, "read_timeout", nil)
  if not read_timeout and type(low_speed_time) == "number" and low_speed_time > 0
    and type(settings.low_speed_limit) == "number" and settings.low_speed_limit > 0 then
    read_timeout = low_speed_time
  end
  local conf = {
    verify_tls = settings.verify_tls ~= false,
    timeout = number_setting(settings, "timeout", DEFAULTS.timeout),
    connect_timeout = number_setting(settings, "connect_timeout", DEFAULTS.connect_timeout),
    send_timeout = number_setting(settings, "send_timeout", nil),
    read_timeout = read_timeout,
    max_body = number_setting(settings, "max_body", DEFAULTS.max_body),
    pool_size = number_setting(settings, "pool_size", DEFAULTS.pool_size, true),
    keepalive_timeout = number_setting(settings, "keepalive_timeout", DEFAULTS.keepalive_timeout, false, true),
    backlog = number_setting(settings, "backlog", nil, true),
  }
  return conf
end

--- Why the nginx transport cannot honour these settings ("option 'x': ..."),
-- or nil.
function M.refused(settings)
  if settings.ca_file ~= nil then
    return "option 'ca_file': the nginx transport cannot set a CA file per connection; "
      .. "set lua_ssl_trusted_certificate in nginx.conf, or use transport = \"curl\""
  end
  if settings.proxy ~= nil and settings.proxy ~= false then
    return "option 'proxy': not supported by the nginx transport; use transport = \"curl\""
  end
  return nil
end

--- Checks a request table of `fname` (perform or start); misuse raises at
-- the caller of the transport's method.
function M.check_request(fname, req)
  if type(req) ~= "table" then error(format("bad argument #1 to '%s' (request table expected)", fname), 3) end
  if type(req.method) ~= "string" or not req.method:match("^[!#$%%&'*+.^_`|~%w-]+$") then
    error(format("bad argument #1 to '%s' (field 'method': an HTTP method expected)", fname), 3)
  end
  if type(req.url) ~= "string" or req.url:find("[%c ]") then
    error(format("bad argument #1 to '%s' (field 'url': a URL without spaces or controls expected)", fname), 3)
  end
  local lines = req.headers
  if lines ~= nil then
    if type(lines) ~= "table" then
      error(format("bad argument #1 to '%s' (field 'headers': table expected)", fname), 3)
    end
    for i = 1, #lines do
      local line = lines[i]
      if type(line) ~= "string" or find(line, "[%z\r\n]") or not find(line, ":", 1, true) then
        error(format("bad argument #1 to '%s' (field 'headers': invalid header line #%d)", fname, i), 3)
      end
    end
  end
  if req.body ~= nil and type(req.body) ~= "string" then
    error(format("bad argument #1 to '%s' (field 'body': string expected)", fname), 3)
  end
  for _, name in ipairs { "timeout", "connect_timeout", "max_body" } do
    local v = req[name]
    if v ~= nil and (type(v) ~= "number" or v ~= v or v <= 0 or v == huge) then
      error(format("bad argument #1 to '%s' (field '%s': positive finite number expected)", fname, name), 3)
    end
  end
end

return M
