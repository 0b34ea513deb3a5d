--- truto.ngx.exchange: one request and its answer on a cosocket.
--
-- `send` connects (or takes a pooled connection) and writes the request at
-- once; `read` reads the answer in the caller's coroutine, through
-- truto.ngx.parser, within the attempt's deadline and read_timeout, and puts
-- the connection back in the pool when the answer allows. Failures are the
-- transport contract's (truto.transport): { kind, message, sends, too_large,
-- stale, orphaned, aborted }.
--
-- @module truto.ngx.exchange
-- luacheck: std luajit+ngx_lua
local ngx = ngx -- luacheck: ignore 113 (the nginx API, global inside nginx)
local tostring, pcall, next = tostring, pcall, next
local format, lower, find = string.format, string.lower, string.find
local min, floor, huge = math.min, math.floor, math.huge

local parser = require "truto.ngx.parser"
local connect = require "truto.ngx.connect"
local request = require "truto.ngx.request"
local YIELDABLE = require("truto.transport").YIELDABLE

local M = {}

--- nil, a failure of `kind` (extra: more fields).
function M.failure(kind, message, sends, extra)
  local f = { kind = kind, message = message, sends = sends or 0, too_large = false, stale = false }
  if extra then for k, v in next, extra do f[k] = v end end
  return nil, f
end

local failure = M.failure

local function now()
  return ngx.now()
end

-- Receives at most `max` bytes (at least one): data | nil, err where err is
-- "timeout" (deadline), "stall" (read_timeout), "aborted" or the socket's
-- error. Past the deadline, only bytes already there are taken (a page read
-- ahead that arrived while the caller was busy is not lost). The parser's
-- reader (x.recv).
local function recv(x, max)
  local state = x.request
  if state and state.aborted then return nil, "aborted" end
  local t = now()
  local wait, why = x.deadline - t, "timeout"
  local stall = x.conf.read_timeout
  if stall then
    local stall_left = x.last_byte + stall - t
    if stall_left < wait then wait, why = stall_left, "stall" end
  end
  local sock = x.sock
  sock:settimeout(wait > 0.001 and floor(wait * 1000) or 1)
  local data, err = sock:receiveany(max)
  if data then
    x.last_byte = now()
    x.answered = true
    return data
  end
  if err == "timeout" then return nil, why end
  return nil, err
end

-- A read error -> kind, message.
local function read_failure(x, what, err)
  if err == "timeout" then
    return "timeout", format("%s: timed out (%g s)", what, x.total)
  elseif err == "stall" then
    return "timeout", format("%s: no data for %g s (read_timeout)", what, x.conf.read_timeout)
  elseif err == "aborted" then
    return "transport", what .. ": the downstream client went away (truto.ngx.abort)"
  elseif err == "closed" then
    return "transport", what .. ": the server closed the connection"
  end
  return "transport", format("%s: %s", what, tostring(err))
end

-- Fails the exchange after the request went out (sends = 1).
local function fail_read(x, what, err, too_large)
  local kind, message = read_failure(x, what, err)
  return failure(kind, message, 1, {
    too_large = too_large or false,
    aborted = err == "aborted" or nil,
  })
end

-- The request's bytes: a table of strings for sock:send.
local function wire(req, to, auth, gzip)
  local method, body, lines = req.method, req.body, req.headers
  local out = { method, " ", to.target, " HTTP/1.1\r\nHost: ", to.authority, "\r\n", auth, "\r\n" }
  local n = #out
  if gzip then n = n + 1; out[n] = "Accept-Encoding: gzip\r\n" end
  if body or method == "POST" or method == "PUT" or method == "PATCH" then
    n = n + 1; out[n] = "Content-Length: " .. #(body or "") .. "\r\n"
  end
  if lines then
    for i = 1, #lines do
      out[n + 1] = lines[i]
      out[n + 2] = "\r\n"
      n = n + 2
    end
  end
  out[n + 1] = "\r\n"
  if body and body ~= "" then out[n + 2] = body end
  return out
end

-- Why nothing may be sent now (a phase that cannot yield, a request already
-- aborted): nil, failure | nil.
local function refused_now(state)
  local phase = ngx.get_phase()
  if not YIELDABLE[phase] then
    return failure("transport", format("the ngx transport cannot run in nginx's %s phase "
      .. "(it cannot yield there); use transport = \"curl\" or ngx.timer.at", phase), 0)
  end
  if state and state.aborted then
    return failure("transport", "the downstream client went away (truto.ngx.abort)", 0, { aborted = true })
  end
  return nil
end

-- Writes the request on x.sock: x | nil, failure.
local function send_on(x, bytes, reused)
  local sock, conf, total = x.sock, x.conf, x.total
  local left = x.deadline - ngx.now()
  if left <= 0 then
    sock:close()
    return failure("timeout", format("sending the request: timed out (%g s)", total), 0)
  end
  sock:settimeout(floor(min(conf.send_timeout or huge, left) * 1000) + 1)
  local sent, serr = sock:send(bytes)
  if not sent then
    sock:close()
    if reused and connect.closed_by_peer(serr) then
      return failure("transport", "sending the request: a pooled connection the server had closed ("
        .. tostring(serr) .. ")", 1, { stale = true })
    end
    if serr == "timeout" then
      return failure("timeout", format("sending the request: timed out (%g s)", total), 1)
    end
    return failure("transport", "sending the request: " .. tostring(serr), 1)
  end
  x.reused, x.ctx = reused, request.ctx()
  return x
end

--- The first half of an exchange: connect (or take a pooled connection),
-- TLS, send. Returns the exchange's state x (the parser's reader, and
-- answered: a byte of the answer came) | nil, failure. Never waits for the
-- answer. `gzip`: the inflate function when gzip is asked for.
function M.send(conf, auth, req, gzip)
  local reuse = req.reuse ~= false
  local to = connect.destination(req.url, conf.verify_tls, reuse)
  if not to then return failure("transport", "unsupported URL", 0) end
  local state = request.state(false)
  local _, refusal = refused_now(state)
  if refusal then return nil, refusal end
  local bytes = wire(req, to, auth, gzip)
  ngx.update_time()
  local start = ngx.now()
  local total = req.timeout or conf.timeout
  local x = {
    buf = "", pos = 1, recv = recv, conf = conf, total = total, deadline = start + total, last_byte = start,
    max_body = req.max_body or conf.max_body, request = state, answered = false,
    method = req.method, reuse = reuse, host = to.host, gzip = gzip,
  }
  local connect_timeout = min(req.connect_timeout or conf.connect_timeout, total)
  local sock, reused, message = connect.open(conf, to, reuse, connect_timeout, total)
  if not sock then return failure(reused, message, 0) end
  x.sock = sock
  return send_on(x, bytes, reused)
end

-- The body as sent (gzip undone): body | nil, failure.
local function decoded(x, headers, body)
  local encoding, gzip = headers["content-encoding"], x.gzip
  if gzip and encoding and body ~= "" then
    encoding = lower(encoding)
    if encoding == "gzip" or encoding == "x-gzip" then
      local plain, gerr, gzip_too_large = gzip(body, x.max_body)
      if not plain then return failure("transport", gerr, 1, { too_large = gzip_too_large or false }) end
      return plain
    end
  end
  return body
end

-- The second half: reads the answer of x. Returns answer | nil, failure.
-- Must run in the nginx request that sent it (cosockets are per request).
local function read_answer(x)
  local sock = x.sock
  local status, headers, body, keep = parser.read_response(x, x.method)
  if not status then
    local err, too_large, in_head = headers, body, keep
    sock:close()
    if in_head and x.reused and not x.answered and connect.closed_by_peer(err) then
      return failure("transport", "reading the answer: a pooled connection the server had closed ("
        .. tostring(err) .. ")", 1, { stale = true })
    end
    if in_head and err == "closed" and not x.answered then
      return failure("transport", "the server closed the connection without an answer", 1)
    end
    return fail_read(x, "reading the answer", err, too_large)
  end
  local conf = x.conf
  if x.reuse and keep then
    sock:setkeepalive(conf.keepalive_timeout * 1000, conf.pool_size)
  else
    sock:close()
  end
  local text, err = decoded(x, headers, body)
  if not text then return nil, err end
  return { status = status, headers = headers, body = text, sends = 1 }
end

local function orphaned()
  return failure("transport", "reading the answer: the request was started in another nginx request "
    .. "(its connection belongs to that one)", 1, { orphaned = true })
end

--- Reads the answer of x from any coroutine or request: answer | nil,
-- failure. A socket of another nginx request (an iterator carried over)
-- raises inside ngx_lua; that, and any other error, becomes a failure.
function M.read(x)
  if x.ctx and request.ctx() ~= x.ctx then return orphaned() end
  local ok, res, err = pcall(read_answer, x)
  if ok then return res, err end
  pcall(x.sock.close, x.sock)
  if find(tostring(res), "bad request", 1, true) or find(tostring(res), "no request", 1, true) then
    return orphaned()
  end
  return failure("transport", "truto.ngx: " .. tostring(res), 1)
end

--- One whole exchange: answer | nil, failure.
function M.perform(conf, auth, req, gzip)
  local x, err = M.send(conf, auth, req, gzip)
  if not x then return nil, err end
  return M.read(x)
end

return M
