--- truto.transport: which transport carries a call, and the contract they keep.
--
-- A transport performs fully built requests and knows nothing of Truto:
--
--     req = { method, url, headers = { "Name: value", ... }, body, timeout,
--             connect_timeout, max_body, reuse, ahead }
--     transport:start(req) -> handle; handle:wait() -> answer | nil, failure
--     answer  = { status, headers = { [lower name] = value }, body, sends }
--     failure = { kind = "transport" | "timeout", message, sends, too_large, stale,
--                 orphaned, aborted }
--     handle:done(), handle:cancel(); transport:perform(req), pump(),
--     wait_any(handles) -> index | nil, close()
--
-- The method and URL go on the wire exactly as given; the transport adds
-- only Host, Authorization, Content-Length and its own Accept-Encoding. It
-- never sends a request twice on its own (libcurl's re-send on a dead reused
-- connection is the one exception, reported as `sends = 2`); `sends = 0`
-- means the request provably never left. `reuse = false` asks for a new
-- connection. `ahead = true` (a read-ahead): `timeout` counts only the time
-- spent waiting for the answer (wait, wait_any), never the caller's own work
-- in between. `stale`: a reused idle connection failed before any answer
-- byte; `orphaned`: the send belonged to an nginx request that has ended;
-- `aborted`: the nginx client went away (truto.ngx.abort). Which failures
-- are sent again is decided by truto.attempt.
--
-- "curl" is the C one (src/transport_curl.c); "ngx" (module truto.ngx) runs
-- inside nginx on cosockets. Unless the client names one, each call picks
-- by the nginx phase it runs in: cosockets wherever nginx can yield,
-- libcurl elsewhere (which blocks the worker while it waits: logged once).
--
-- @module truto.transport
local core = require "truto.core"

local M = {}

--- nginx phases whose handlers may yield, so that cosockets, ngx.sleep and
-- light threads work there. The one list; truto.ngx uses it too.
M.YIELDABLE = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}

-- Request phases where a blocking libcurl call holds up every request of
-- the worker (not init, init_worker or exit_worker, where nothing else runs).
local REQUEST_PHASES = {
  set = true, header_filter = true, body_filter = true, log = true, balancer = true,
  ssl_session_store = true,
}

local function nginx()
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.get_phase) == "function" then return ngx end
  return nil
end

--- The nginx phase we run in, or nil outside nginx.
function M.phase()
  local ngx = nginx()
  return ngx and ngx.get_phase() or nil
end

--- Whether this call may yield to nginx (and so use cosockets).
function M.can_yield()
  local phase = M.phase()
  return phase ~= nil and M.YIELDABLE[phase] == true
end

--- Waits without blocking nginx where it can yield; blocks elsewhere.
-- Returns false when a signal (Ctrl-C) ended the wait early.
function M.sleep(seconds)
  if seconds <= 0 then return true end
  if M.can_yield() then
    nginx().sleep(seconds)
    return true
  end
  return core.sleep(seconds)
end

local warned_blocking = false

-- Logs once per worker that a libcurl call blocked a request phase.
local function warn_blocking(phase)
  if warned_blocking or not REQUEST_PHASES[phase] then return end
  warned_blocking = true
  local ngx = nginx()
  ngx.log(ngx.WARN, "lua-truto: a call in nginx's ", phase, " phase uses libcurl and blocks this worker ",
    "until it is answered; make Truto calls in content, access, rewrite or ngx.timer.at instead")
end

--- A client's transports. `make(kind)` creates the "curl" or "ngx" one
-- (holding the token, which stays in that closure and the transport);
-- `fixed` is the `transport` option (nil: pick per call).
function M.set(make, fixed)
  return { make = make, fixed = fixed, made = {} }
end

local function get(set, kind)
  local t = set.made[kind]
  if not t then
    t = set.make(kind)
    set.made[kind] = t
  end
  return t
end

--- The transport for a call made now, and its kind ("curl", "ngx" or "object").
function M.pick(set)
  local fixed = set.fixed
  if type(fixed) == "table" or type(fixed) == "userdata" then
    set.made.object = fixed
    return fixed, "object"
  end
  local kind = fixed or (M.can_yield() and "ngx" or "curl")
  if kind == "curl" then
    local phase = M.phase()
    if phase then warn_blocking(phase) end
  end
  return get(set, kind), kind
end

--- Closes every transport made so far. Never raises.
function M.close(set)
  for _, t in pairs(set.made) do
    if t.close then pcall(t.close, t) end
  end
  set.made = {}
end

return M
