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
--     wait_any(handles [, timeout]) -> index | false (timeout first) | nil, close(),
--     and optionally pause(seconds) -> true | false, "interrupted" (the driver's
--     wait: it keeps reading the requests in flight and ends on SIGINT)
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
-- "curl" is the C one (src/transport_curl.c and src/curl_*.c); "ngx" (truto.ngx) runs
-- inside nginx on cosockets. Unless the client or the call names one, each
-- call picks by where it runs: libcurl outside nginx, cosockets wherever
-- nginx can yield; in a phase that cannot yield (set, header_filter, log,
-- init_worker, ...) the call is refused, as OpenResty's own APIs refuse
-- there, since libcurl would block the worker. `transport = "curl"` named
-- outright blocks it on purpose (error.log says so once per phase).
--
-- @module truto.transport
local core = require "truto.core"
local options = require "truto.options"

local M = {}

local format = string.format

-- The phase sets, by name: the one registry of nginx phases (truto.ngx and
-- truto.rate read them here).

--- nginx phases whose handlers may yield, so that cosockets, ngx.sleep and
-- light threads work there: where the ngx transport runs.
M.YIELDABLE = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}

--- nginx phases that cannot yield and run while the worker serves requests:
-- a blocking libcurl call there holds up every request of the worker (not
-- init or exit_worker, where nothing else runs), and error.log says so once.
M.BLOCKS_WORKER = {
  set = true, header_filter = true, body_filter = true, log = true, balancer = true,
  ssl_session_store = true, init_worker = true,
}

--- nginx phases that run for a downstream request whose client may go away:
-- where truto.ngx.abort() marks the request (in its ngx.ctx), and so every
-- exchange the request starts.
M.ABORTABLE = { rewrite = true, access = true, content = true }

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
-- Returns false when a signal (Ctrl-C) ended the wait early. `via`, when
-- given, is the call's transport: one with a `pause` (curl) waits in it,
-- reading the answers of its requests in flight meanwhile.
function M.sleep(seconds, via)
  if seconds <= 0 then return true end
  if via and via.pause and not M.can_yield() then return via:pause(seconds) end
  if M.can_yield() then
    -- nginx counts whole milliseconds: under 1 ms would be ngx.sleep(0), which
    -- logs a warning on every nginx without the delayed-events patch
    nginx().sleep(seconds < 0.001 and 0.001 or seconds)
    return true
  end
  return core.sleep(seconds)
end

local warned = {} -- phase -> true, in this worker

-- Whether this is the first warning for `phase` in this nginx: once per
-- worker, and once in all when the shared dict truto_rate is declared.
local function first_warning(ngx, phase)
  if warned[phase] then return false end
  warned[phase] = true
  local dict = ngx.shared and ngx.shared.truto_rate
  if not dict then return true end
  local ok, added = pcall(dict.add, dict, "truto:warned:" .. phase, true)
  return not ok or added == true
end

-- Logs once per phase that a libcurl call named outright blocks a request
-- phase.
local function warn_blocking(phase)
  if not M.BLOCKS_WORKER[phase] then return end
  local ngx = nginx()
  if not first_warning(ngx, phase) then return end
  ngx.log(ngx.WARN, "lua-truto: a call in nginx's ", phase, " phase uses libcurl (transport = \"curl\") and ",
    "blocks this worker until it is answered; make Truto calls in content, access, rewrite or a zero-delay ",
    "ngx.timer.at instead")
end

--- The refusal of a call made where nginx cannot yield, naming the phase
-- the way OpenResty's own APIs do.
function M.refusal(phase)
  return format("API disabled in the context of %s_by_lua* (lua-truto: nginx cannot yield there, and waiting for "
    .. "Truto would block the worker): make the call in a zero-delay ngx.timer.at(0, handler) or in "
    .. "rewrite/access/content, or pass transport = \"curl\" to block the worker on purpose", phase)
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

--- The transport for a call made now, and its kind ("curl", "ngx" or
-- "object"). `call_kind`: the call's own `transport` option, or nil.
-- Raises the refusal (a string) for a call that names none in an nginx
-- phase that cannot yield.
function M.pick(set, call_kind)
  local fixed = set.fixed
  if call_kind == nil and (type(fixed) == "table" or type(fixed) == "userdata") then
    set.made.object = fixed
    return fixed, "object"
  end
  local kind = call_kind or fixed
  local phase = M.phase()
  if kind == nil then
    if phase and not M.YIELDABLE[phase] then options.raise(M.refusal(phase)) end
    kind = phase and "ngx" or "curl"
  end
  if kind == "curl" and phase then warn_blocking(phase) end
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
