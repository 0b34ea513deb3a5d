--- truto.ngx: the nginx transport, for OpenResty and nginx with lua-nginx-module.
--
-- The same C core (queries, answers, pages, retries) runs inside nginx; only
-- the lines that move bytes are in Lua, on cosockets, because a C function
-- may not yield inside nginx and nginx must never block. It keeps the
-- transport contract of truto.transport; why cosockets, the settings, pools,
-- lifetime, downstream abort and what nginx.conf must give are in
-- docs/openresty.md ("Inside the nginx transport"). The rooms:
--
--   truto/ngx/parser.lua    the HTTP/1.1 response parser (pure Lua, no ngx.*)
--   truto/ngx/gzip.lua      inflating answers with zlib through the FFI
--   truto/ngx/connect.lua   URL, pool name, connect, TLS
--   truto/ngx/exchange.lua  send a request, read its answer, the failures
--   truto/ngx/waiters.lua   handles, and wait_any's light threads
--   truto/ngx/request.lua   per nginx request: the abort flag, its ctx
--   truto/ngx/settings.lua  new()'s settings and the requests, checked
--
-- This file is the module's face: the factory, abort(), metrics() and the
-- settings a caller may read or set (DEFAULTS, gzip).
--
-- @module truto.ngx
-- luacheck: std luajit+ngx_lua
local ngx = ngx -- luacheck: ignore 113 (the nginx API, global inside nginx)
local type, tostring, error, setmetatable = type, tostring, error, setmetatable
local format, find = string.format, string.find

local settings_of = require "truto.ngx.settings"
local exchange = require "truto.ngx.exchange"
local waiters = require "truto.ngx.waiters"
local request = require "truto.ngx.request"
local gunzip = require("truto.ngx.gzip").inflate

local M = {}

--- The defaults of new()'s settings.
M.DEFAULTS = settings_of.DEFAULTS

--- nginx phases whose handlers may yield (truto.transport.YIELDABLE).
local YIELDABLE = require("truto.transport").YIELDABLE
M.YIELDABLE = YIELDABLE

--- Whether the current nginx phase lets this transport run (it may yield).
function M.can_yield()
  return YIELDABLE[ngx.get_phase()] == true
end

--- Waits `seconds` without blocking nginx. Where nginx cannot yield this
-- transport cannot send anything either, so there is nothing to wait for.
function M.sleep(seconds)
  if YIELDABLE[ngx.get_phase()] and seconds > 0 then ngx.sleep(seconds) end
end

--- Marks the current nginx request as abandoned by its client: an exchange
-- in flight ends at its next read and later ones fail unsent (aborted).
-- Call it from your `ngx.on_abort` handler. Never raises.
M.abort = request.abort

--- Whether answers may come gzip-compressed (when zlib could be loaded);
-- set it to false to ask for none.
M.gzip = gunzip ~= nil

-- The inflate function for a request sent now, or nil.
local function gzip()
  return M.gzip and gunzip or nil
end

--- Why the nginx transport cannot honour these settings ("option 'x': ..."),
-- or nil. truto.new asks it inside nginx, so that the refusal comes from
-- new() and not from the first call.
M.refused = settings_of.refused

local Transport = {}
Transport.__index = Transport
Transport.__name = "truto.ngx"
Transport.__tostring = function(self) return format("truto.ngx (%s)", self.id) end

--- Creates a transport. `settings`: token, verify_tls, timeout,
-- connect_timeout, send_timeout, read_timeout, max_body, pool_size,
-- keepalive_timeout, backlog; low_speed_limit and low_speed_time
-- (docs/openresty.md). ca_file and proxy are refused.
function M.new(settings)
  if type(settings) ~= "table" then error("bad argument #1 to 'new' (table expected)", 2) end
  local token = settings.token
  if type(token) ~= "string" or token == "" or find(token, "[%z\r\n]") then
    error("bad argument #1 to 'new' (option 'token': a non-empty string without CR, LF or NUL expected)", 2)
  end
  local refused = M.refused(settings)
  if refused then error("bad argument #1 to 'new' (" .. refused .. ")", 2) end
  local conf = settings_of.conf(settings)
  local auth = "Authorization: Bearer " .. token -- only ever in these closures
  token = nil -- luacheck: ignore 311
  local closed = false
  local check_request = settings_of.check_request

  local self = setmetatable({}, Transport)
  self.id = tostring({}):match("0x%x+") or "?"

  local function check_open(fname)
    if closed then error(format("bad argument #1 to '%s' (transport is closed)", fname), 3) end
  end

  --- transport:perform(req) -> answer | nil, failure (start(req):wait()).
  function self.perform(_, req)
    check_open("perform")
    check_request("perform", req)
    return exchange.perform(conf, auth, req, gzip())
  end

  --- transport:start(req) -> handle: the request on the wire when it returns.
  function self.start(_, req)
    check_open("start")
    check_request("start", req)
    return waiters.start(conf, auth, req, gzip())
  end

  --- transport:pump(): nothing to do: a request is on the wire when start()
  -- returns, and its answer waits in the socket's buffer until wait(). (An
  -- ngx.sleep(0) here would log a warning on every nginx build without the
  -- delayed-events patch, Debian's among them.)
  function self.pump()
    check_open("pump")
  end

  --- transport:wait_any(handles [, timeout]) -> index | false | nil
  -- (truto.ngx.waiters).
  function self.wait_any(_, handles, timeout)
    check_open("wait_any")
    if type(handles) ~= "table" then error("bad argument #1 to 'wait_any' (table expected)", 2) end
    return waiters.wait_any(handles, timeout)
  end

  --- transport:close(): later calls raise.
  function self.close()
    closed = true
  end

  self._conf = conf
  return self
end

--- Serves the Prometheus text of the metrics collector kept in the lua_shared_dict `shared_dict`
-- (default "truto_metrics") from a content handler: `content_by_lua_block {
-- require("truto.ngx").metrics() }`. See truto.metrics.
function M.metrics(shared_dict)
  return require("truto.metrics").serve(shared_dict)
end

M.Handle = waiters.Handle
M.Transport = Transport
return M
