--- truto.ngx: the nginx transport, for OpenResty and nginx with lua-nginx-module.
--
-- The same C core (queries, answers, pages, retries) runs inside nginx; only
-- the lines that move bytes are here, in Lua, because a C function may not
-- yield inside nginx and nginx must never block.
--
-- Why cosockets and not subrequests. `ngx.socket.tcp` works wherever the
-- handler may yield: rewrite, access, content, `ngx.timer.at` and the SSL
-- phases. `ngx.location.capture` does not work in timers, needs a proxy
-- location in every server block and buffers each answer as a subrequest.
-- With cosockets we speak HTTP/1.1 ourselves: keep-alive through nginx's
-- connection pool (`setkeepalive`), TLS through `sslhandshake`,
-- Content-Length, chunked and read-to-close bodies, our own deadline and
-- size limits.
--
-- The transport contract (v2, src/truto/transport.lua). The client gives
-- fully built requests:
--   req = { method, url, headers = { "Name: value", ... }, body, timeout,
--           connect_timeout, max_body, reuse }
-- This transport adds only Host, Authorization, Content-Length (when there
-- is a body, or for POST/PUT/PATCH) and Accept-Encoding: gzip (when zlib
-- is there to undo it). It never sends a request twice on its own:
--   transport:start(req) -> handle; handle:wait() -> answer | nil, failure
--   answer  = { status, headers = { ["lower-name"] = "v1, v2" }, body, sends = 1 }
--   failure = { kind = "transport" | "timeout", message, sends = 0 | 1,
--               too_large, stale, orphaned, aborted }
-- * sends = 0: provably never on the wire (connect refused or timed out,
--   DNS, backlog full, TLS handshake failed, a phase that cannot yield, a
--   request already aborted).
-- * stale = true: written on a reused idle pooled connection that failed
--   before any byte of an answer (the server had closed it meanwhile). The
--   caller's retry rule decides whether to send again.
-- * reuse = false: a fresh connection, not one from the pool (for a write
--   that must not go on a connection the server may have closed).
-- * HEAD, 1xx, 204 and 304 have no body: HEAD returns at once with status
--   and headers. Trailers of a chunked answer are read and dropped: they
--   are never merged into the headers.
-- * orphaned = true: the handle was waited for in another nginx request
--   than the one that started it (see "Lifetime").
-- * aborted = true: M.abort() was called for the request (its downstream
--   client went away).
--
-- Settings of new(settings), per transport (truto.new passes the client
-- options of the same names through):
--   token            required; kept only in this transport's closures
--   verify_tls       true
--   timeout          30 s: the deadline of one send, from start to the last
--                    byte, on every read (a server trickling bytes is cut
--                    at the deadline)
--   connect_timeout  10 s (also how long a connect waits in the backlog)
--   send_timeout     nil: at most this long for one write to progress
--   read_timeout     nil: at most this long without a byte of the answer
--                    (low_speed_time > 0 with low_speed_limit > 0 sets it
--                    when read_timeout is not given)
--   max_body         64 MiB, after decompression
--   pool_size        32: idle connections nginx keeps per pool and worker
--   keepalive_timeout 60 s: how long an idle connection stays pooled (0: no
--                    limit)
--   backlog          nil: no cap. A number caps the connections of a pool
--                    at pool_size; up to `backlog` more connects wait (at
--                    most connect_timeout) for a free one, the rest fail
--                    at once (sends = 0).
-- A request may carry its own timeout and connect_timeout.
--
-- Pools. The pool key is scheme, host, port and, for https, the
-- verification flag and the TLS server name. nginx's pool is per worker and
-- keyed by name only; its size is fixed by the first connect that names it.
-- `lua_ssl_trusted_certificate` cannot be read from Lua, so two locations
-- with different CA files share a pool: a connection verified under one CA
-- file may be reused under another. Give such locations different hosts,
-- or keep one CA file per http{} block.
--
-- Lifetime. start() connects and sends at once (the request is on the wire
-- when it returns) and wait() reads the answer in the caller's coroutine:
-- no light thread runs on its own, so nothing a caller started holds the
-- response of its nginx request after the handler returned (LuaJIT runs no
-- `__gc` on tables, so an iterator left by `break` is never closed), and
-- nginx closes the request's sockets when it ends. A handle carried into
-- another nginx request fails at wait() with orphaned = true (its socket
-- belongs to the first request); a GET may be sent again. wait_any() waits
-- in light threads for the first bytes only, and stops them before it
-- returns (see "Waiters" below): a fan-out left early holds the response
-- at most 0.1 s.
--
-- Downstream abort. With `lua_check_client_abort on;` and no on_abort
-- handler, nginx ends the request (and every light thread) when the client
-- leaves. An application that registers its own `ngx.on_abort` handler
-- calls require("truto.ngx").abort() from it: an exchange in flight for
-- the request ends at its next read, later ones fail without sending, all
-- with aborted = true.
--
-- What the nginx configuration must give:
-- * `lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;` for
--   https (verification is on unless verify_tls = false); `lua_ssl_verify_depth 5;`
--   for public CAs' chains. `ca_file` cannot be honoured per socket and is
--   refused.
-- * `resolver ...;` for a host name such as api.truto.one; IP addresses and
--   `localhost` (connected as 127.0.0.1) need none.
--
-- gzip: answers are asked for gzip-compressed and inflated with zlib through
-- LuaJIT's FFI (nginx is linked with zlib); without the FFI or zlib, or with
-- `require("truto.ngx").gzip = false`, no Accept-Encoding is sent.
--
-- The token: a Lua string in this transport's closures, reachable from no
-- table, error or message. Lua strings cannot be wiped; it stays in the
-- worker's memory until collected.
--
-- Not done here: `proxy` (refused; use the libcurl transport).
--
-- @module truto.ngx
-- luacheck: std luajit+ngx_lua
local ngx = ngx -- luacheck: ignore 113 (the nginx API, global inside nginx)
local type, tostring, tonumber, error, pcall, ipairs, next = type, tostring, tonumber, error, pcall, ipairs, next
local setmetatable = setmetatable
local format, lower, find, sub, concat = string.format, string.lower, string.find, string.sub, table.concat
local min, floor, huge = math.min, math.floor, math.huge

local unpack = table.unpack or unpack -- luacheck: ignore 113 143

local M = {}

local DEFAULTS = {
  timeout = 30, connect_timeout = 10, max_body = 64 * 1024 * 1024,
  pool_size = 32, keepalive_timeout = 60,
}
M.DEFAULTS = DEFAULTS

local PIECE = 1024 * 1024     -- the most one read asks for
local MAX_HEADERS = 256 * 1024 -- status line, headers, or trailers of one answer
local MAX_CHUNK_LINE = 4096   -- a chunk-size line (with extensions)

-- Phases whose handlers may yield, so cosockets and light threads work: the
-- one list, in truto.transport.
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

-- Per-request state (abort), in ngx.ctx under a key nobody else has.
local CTX_KEY = {}
local REQUEST_PHASES = { rewrite = true, access = true, content = true }

local function request_state(create)
  if not REQUEST_PHASES[ngx.get_phase()] then return nil end
  local ctx = ngx.ctx
  local state = ctx[CTX_KEY]
  if not state and create then
    state = { aborted = false }
    ctx[CTX_KEY] = state
  end
  return state
end

--- Marks the current nginx request as abandoned by its client: an exchange
-- in flight ends at its next read and later ones fail unsent (aborted).
-- Call it from your `ngx.on_abort` handler. Never raises.
function M.abort()
  local ok, state = pcall(request_state, true)
  if ok and state then state.aborted = true end
end

local gunzip -- function(data, max_body) -> text | nil, message, too_large

do
  local has_ffi, ffi = pcall(require, "ffi")
  local zlib
  if has_ffi then
    -- Our own names (bound to zlib's symbols), so that another module's
    -- declarations of z_stream or inflate cannot clash with ours.
    if not pcall(ffi.typeof, "truto_z_stream") then
      pcall(ffi.cdef, [[
        typedef struct truto_z_stream {
          const char *next_in; unsigned int avail_in; unsigned long total_in;
          unsigned char *next_out; unsigned int avail_out; unsigned long total_out;
          const char *msg; void *state; void *zalloc; void *zfree; void *opaque;
          int data_type; unsigned long adler; unsigned long reserved;
        } truto_z_stream;
        const char *truto_zlibVersion(void) __asm__("zlibVersion");
        int truto_inflateInit2_(truto_z_stream *s, int bits, const char *version, int size)
          __asm__("inflateInit2_");
        int truto_inflate(truto_z_stream *s, int flush) __asm__("inflate");
        int truto_inflateEnd(truto_z_stream *s) __asm__("inflateEnd");
      ]])
    end
    for _, load in ipairs {
      function() return ffi.C end, -- zlib already in the process (nginx)
      function() return ffi.load("libz.so.1") end,
      function() return ffi.load("z") end,
    } do
      local ok, lib = pcall(load)
      if ok and pcall(function() return lib.truto_zlibVersion() ~= nil end) then
        zlib = lib
        break
      end
    end
  end
  if zlib then
    local Z_OK, Z_STREAM_END, Z_BUF_ERROR, OUT = 0, 1, -5, 64 * 1024
    local out_buf = ffi.new("unsigned char[?]", OUT)
    gunzip = function(data, max_body)
      local z = ffi.new("truto_z_stream")
      -- window bits 15 + 32: a gzip or a zlib header, told apart by zlib
      if zlib.truto_inflateInit2_(z, 47, zlib.truto_zlibVersion(), ffi.sizeof(z)) ~= Z_OK then
        return nil, "gzip: cannot start inflating"
      end
      ffi.gc(z, zlib.truto_inflateEnd) -- even if something below raises
      z.next_in, z.avail_in = data, #data
      local parts, size, ret = {}, 0, Z_OK
      while ret == Z_OK do
        z.next_out, z.avail_out = out_buf, OUT
        ret = zlib.truto_inflate(z, 0)
        local n = OUT - z.avail_out
        size = size + n
        if size > max_body then ret = "too large" break end
        if n > 0 then parts[#parts + 1] = ffi.string(out_buf, n) end
        if ret == Z_BUF_ERROR and n > 0 then ret = Z_OK end -- no progress only when really stuck
      end
      local message = z.msg ~= nil and ffi.string(z.msg) or nil
      zlib.truto_inflateEnd(z)
      ffi.gc(z, nil)
      if ret == Z_STREAM_END then return table.concat(parts) end
      if ret == "too large" then
        return nil, format("response body larger than max_body (%d bytes)", max_body), true
      end
      if ret == Z_BUF_ERROR then return nil, "gzip: the compressed body is cut short" end
      return nil, "gzip: " .. (message or "invalid compressed data (" .. tostring(ret) .. ")")
    end
  end
end


--- Whether answers may come gzip-compressed (when zlib could be loaded).
M.gzip = gunzip ~= nil

-- ------------------------------------------------------------------------
-- One exchange on a cosocket.
-- ------------------------------------------------------------------------

local function failure(kind, message, sends, extra)
  local f = { kind = kind, message = message, sends = sends or 0, too_large = false, stale = false }
  if extra then for k, v in next, extra do f[k] = v end end
  return nil, f
end

-- "https://host:port/path?q" -> scheme, host, port, authority, target.
local function parse_url(url)
  local scheme, authority, target = url:match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  if not scheme then return nil end
  scheme = lower(scheme)
  if scheme ~= "http" and scheme ~= "https" then return nil end
  local host, port = authority:match("^(%[[^%]]+%]):?(%d*)$")
  if not host then host, port = authority:match("^([^:@]+):?(%d*)$") end
  if not host or host == "" then return nil end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if target == "" then target = "/" end
  if sub(target, 1, 1) == "?" then target = "/" .. target end
  return scheme, host, port, authority, target
end

-- The state of one exchange: x = { sock, buf, pos, deadline, conf, watch,
-- answered (a byte of the answer came), ... }.

local function now()
  return ngx.now()
end

-- Receives at most `max` bytes (at least one): data | nil, err where err is
-- "timeout" (deadline), "stall" (read_timeout), "aborted" or the socket's
-- error. Past the deadline, only bytes already there are taken (a page read
-- ahead that arrived while the caller was busy is not lost).
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

-- Appends one read to the buffer: true | nil, err.
local function fill(x)
  local data, err = recv(x, PIECE)
  if not data then return nil, err end
  local buf, pos = x.buf, x.pos
  if pos > #buf then
    x.buf = data
  else
    x.buf = sub(buf, pos) .. data
  end
  x.pos = 1
  return true
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

-- Reads up to the empty line that ends a header block (at most MAX_HEADERS
-- bytes): the block's text without it | nil, err.
local function read_block(x, what)
  local from = x.pos
  while true do
    local buf, pos = x.buf, x.pos
    -- an empty line first: no header lines at all
    if sub(buf, pos, pos + 1) == "\r\n" then
      x.pos = pos + 2
      return ""
    elseif sub(buf, pos, pos) == "\n" then
      x.pos = pos + 1
      return ""
    end
    local s, e = find(buf, "\n\r?\n", from)
    if s then
      x.pos = e + 1
      return sub(buf, pos, s)
    end
    if #buf - pos + 1 > MAX_HEADERS then return nil, what .. " larger than 256 KiB" end
    from = #buf - 2
    if from < pos then from = pos end
    local ok, err = fill(x)
    if not ok then return nil, err end
    from = from - pos + 1
  end
end

-- Header lines -> table of lower-case names; repeated names joined by ", ",
-- once at the end (linear in the lines, however often a name repeats).
local function parse_headers(block, headers)
  local lists -- name -> its values, for the names seen more than once
  for name, value in block:gmatch("([^:\r\n]+):[ \t]*([^\r\n]-)[ \t]*\r?\n") do
    name = lower(name)
    local old = headers[name]
    if old == nil then
      headers[name] = value
    else
      lists = lists or {}
      local list = lists[name]
      if list then list[#list + 1] = value else lists[name] = { old, value } end
    end
  end
  for name, list in pairs(lists or {}) do headers[name] = concat(list, ", ") end
  return headers
end

-- The status line and headers of the answer (1xx answers skipped):
-- version, status, headers | nil, err, is_read_error.
local function read_head(x)
  while true do
    local block, err = read_block(x, "the answer's headers are")
    if not block then return nil, err, true end
    -- read as the end of the value by some, skipped by others: refused (libcurl agrees)
    if find(block, "\0", 1, true) then return nil, "a NUL byte in the answer's headers" end
    local line_end = find(block, "\n", 1, true)
    local version, status = sub(block, 1, line_end):match("^HTTP/(%d%.%d) (%d%d%d)")
    if not version then return nil, "not an HTTP/1.x status line" end
    status = tonumber(status)
    if status >= 200 or status == 101 then
      return version, status, parse_headers(sub(block, line_end + 1), {})
    end
  end
end

local function too_large(x)
  return format("response body larger than max_body (%d bytes)", x.max_body)
end

-- Takes exactly n bytes from the buffer and the socket into parts.
local function take(x, n, parts)
  local buf, pos = x.buf, x.pos
  local have = #buf - pos + 1
  if have >= n then
    parts[#parts + 1] = sub(buf, pos, pos + n - 1)
    x.pos = pos + n
    return true
  end
  if have > 0 then parts[#parts + 1] = pos == 1 and buf or sub(buf, pos) end
  x.buf, x.pos = "", 1
  n = n - have
  while n > 0 do
    local data, err = recv(x, n < PIECE and n or PIECE)
    if not data then return nil, err end
    parts[#parts + 1] = data
    n = n - #data
  end
  return true
end

-- The answer's body, as its headers frame it: body, reusable | nil, err,
-- too_large.
local function read_body(x, headers)
  local te = headers["transfer-encoding"]
  local parts, size, max_body = {}, 0, x.max_body
  if te and find(lower(te), "chunked", 1, true) then
    while true do
      local buf, pos = x.buf, x.pos
      local e = find(buf, "\n", pos, true)
      if not e then
        if #buf - pos + 1 > MAX_CHUNK_LINE then return nil, "a chunk-size line longer than 4 KiB" end
        local ok, err = fill(x)
        if not ok then return nil, err end
      else
        local n = tonumber(sub(buf, pos, e):match("^[ \t]*(%x+)[ \t]*[;\r\n]"), 16)
        if not n then return nil, "bad chunk size" end
        x.pos = e + 1
        if n == 0 then
          local _, err = read_block(x, "the answer's trailers are") -- dropped: trailers are not headers
          if err then return nil, err end
          return concat(parts), true
        end
        size = size + n
        if size > max_body then return nil, too_large(x), true end
        local ok, err = take(x, n, parts)
        if not ok then return nil, err end
        -- the chunk's CRLF
        while #x.buf - x.pos + 1 < 2 do
          local ok2, err2 = fill(x)
          if not ok2 then return nil, err2 end
        end
        local pos2 = x.pos
        if sub(x.buf, pos2, pos2 + 1) == "\r\n" then
          x.pos = pos2 + 2
        elseif sub(x.buf, pos2, pos2) == "\n" then
          x.pos = pos2 + 1
        else
          return nil, "bad chunk end"
        end
      end
    end
  end
  local length = headers["content-length"]
  if length then
    local n = tonumber(length:match("^%s*(%d+)%s*$"))
    if not n then return nil, "bad Content-Length" end
    if n > max_body then return nil, too_large(x), true end
    local ok, err = take(x, n, parts)
    if not ok then
      if err == "closed" then
        local got = 0
        for i = 1, #parts do got = got + #parts[i] end
        return nil, format("connection closed after %d of %d bytes", got, n)
      end
      return nil, err
    end
    return #parts == 1 and parts[1] or concat(parts), true
  end
  -- No length: the body ends when the server closes the connection.
  if x.pos <= #x.buf then
    parts[1] = sub(x.buf, x.pos)
    size = #parts[1]
    x.buf, x.pos = "", 1
  end
  while true do
    if size > max_body then return nil, too_large(x), true end
    local data, err = recv(x, PIECE)
    if not data then
      if err == "closed" then return concat(parts), false end
      return nil, err
    end
    size = size + #data
    if size > max_body then return nil, too_large(x), true end
    parts[#parts + 1] = data
  end
end

-- Whether the answer lets the connection be used again.
local function keep_alive(version, headers)
  local connection = headers["connection"]
  if connection then
    connection = lower(connection)
    if find(connection, "close", 1, true) then return false end
    if find(connection, "keep-alive", 1, true) then return true end
  end
  return version == "1.1"
end

-- Whether a send or read error says the server had closed the connection.
local function closed_by_peer(err)
  err = tostring(err)
  return err == "closed" or find(err, "reset", 1, true) ~= nil or find(err, "broken pipe", 1, true) ~= nil
end

local function tls_failure(host, err)
  local message = format("TLS handshake with %s: %s", host, tostring(err))
  if find(tostring(err), "certificate", 1, true) or find(tostring(err), "verify", 1, true) then
    message = message .. " (is lua_ssl_trusted_certificate set in nginx.conf, with the CA of this server?)"
  end
  return message
end

-- sock:sslhandshake, as `session | nil, err`. lua-resty-core can raise
-- ("resty/core/socket.lua:244: assertion failed!") when a handshake that
-- failed verification finished without waiting; that is a failure too.
local function handshake(sock, server_name, verify)
  local ok, session, err = pcall(sock.sslhandshake, sock, nil, server_name, verify)
  if ok then return session, err end
  return nil, "failed, and the certificate may not verify (lua-resty-core raised: "
    .. tostring(session) .. ")"
end

local function current_ctx()
  local ok, ctx = pcall(function() return ngx.ctx end)
  return ok and ctx or nil
end

-- The first half of an exchange: connect (or take a pooled connection),
-- TLS, send. Returns the exchange's state x | nil, failure. Never waits for
-- the answer.
local function send_request(conf, auth, req)
  local scheme, host, port, authority, target = parse_url(req.url)
  if not scheme then return failure("transport", "unsupported URL", 0) end
  local phase = ngx.get_phase()
  if not YIELDABLE[phase] then
    return failure("transport", format("the ngx transport cannot run in nginx's %s phase "
      .. "(it cannot yield there); use transport = \"curl\" or ngx.timer.at", phase), 0)
  end
  local state = request_state(false)
  if state and state.aborted then
    return failure("transport", "the downstream client went away (truto.ngx.abort)", 0, { aborted = true })
  end
  local method, body, lines = req.method, req.body, req.headers
  local wire = { method, " ", target, " HTTP/1.1\r\nHost: ", authority, "\r\n", auth, "\r\n" }
  local n = #wire
  local gzip = M.gzip and gunzip
  if gzip then n = n + 1; wire[n] = "Accept-Encoding: gzip\r\n" end
  if body or method == "POST" or method == "PUT" or method == "PATCH" then
    n = n + 1; wire[n] = "Content-Length: " .. #(body or "") .. "\r\n"
  end
  if lines then
    for i = 1, #lines do
      wire[n + 1] = lines[i]
      wire[n + 2] = "\r\n"
      n = n + 2
    end
  end
  wire[n + 1] = "\r\n"
  if body and body ~= "" then wire[n + 2] = body end

  local tls = scheme == "https"
  local address = host
  if sub(address, 1, 1) == "[" then address = sub(address, 2, -2) end
  local server_name = address
  if lower(address) == "localhost" then address = "127.0.0.1" end -- no resolver needed
  local pool = tls and format("truto:https:%s:%d:%s:%s", lower(host), port,
      conf.verify_tls and "verify" or "noverify", lower(server_name))
    or format("truto:http:%s:%d", lower(host), port)
  local reuse = req.reuse ~= false
  if not reuse then pool = pool .. ":fresh" end

  ngx.update_time()
  local start = ngx.now()
  local total = req.timeout or conf.timeout
  local x = {
    buf = "", pos = 1, conf = conf, total = total, deadline = start + total, last_byte = start,
    max_body = req.max_body or conf.max_body, request = state, answered = false,
    method = method, reuse = reuse, host = host, gzip = gzip,
  }
  local connect_timeout = min(req.connect_timeout or conf.connect_timeout, total)
  local sock = ngx.socket.tcp()
  x.sock = sock
  sock:settimeouts(floor(connect_timeout * 1000) + 1, floor(min(conf.send_timeout or huge, total) * 1000) + 1,
    floor(total * 1000) + 1)
  local options = { pool = pool, pool_size = conf.pool_size }
  if conf.backlog and reuse then options.backlog = conf.backlog end
  local ok, err = sock:connect(address, port, options)
  if not ok then
    if err == "timeout" then
      return failure("timeout", format("connect to %s:%d: timed out (%g s)", host, port, connect_timeout), 0)
    end
    return failure("transport", format("connect to %s:%d: %s", host, port, tostring(err)), 0)
  end
  local reused = sock:getreusedtimes() > 0
  if tls and not reused then
    local session, serr = handshake(sock, server_name, conf.verify_tls)
    if not session then
      sock:close()
      if serr == "timeout" then
        return failure("timeout", format("TLS handshake with %s: timed out", host), 0)
      end
      return failure("transport", tls_failure(host, serr), 0)
    end
  end
  local left = x.deadline - ngx.now()
  if left <= 0 then
    sock:close()
    return failure("timeout", format("sending the request: timed out (%g s)", total), 0)
  end
  sock:settimeout(floor(min(conf.send_timeout or huge, left) * 1000) + 1)
  local sent, serr = sock:send(wire)
  if not sent then
    sock:close()
    if reused and closed_by_peer(serr) then
      return failure("transport", "sending the request: a pooled connection the server had closed ("
        .. tostring(serr) .. ")", 1, { stale = true })
    end
    if serr == "timeout" then
      return failure("timeout", format("sending the request: timed out (%g s)", total), 1)
    end
    return failure("transport", "sending the request: " .. tostring(serr), 1)
  end
  x.reused, x.ctx = reused, current_ctx()
  return x
end

-- The second half: reads the answer of x. Returns answer | nil, failure.
-- Must run in the nginx request that sent it (cosockets are per request).
local function read_answer(x)
  local sock, method = x.sock, x.method
  local version, status, headers = read_head(x)
  if not version then
    local rerr = status
    sock:close()
    if x.reused and not x.answered and closed_by_peer(rerr) then
      return failure("transport", "reading the answer: a pooled connection the server had closed ("
        .. tostring(rerr) .. ")", 1, { stale = true })
    end
    if rerr == "closed" and not x.answered then
      return failure("transport", "the server closed the connection without an answer", 1)
    end
    return fail_read(x, "reading the answer", rerr)
  end
  local text, reusable = "", true
  if method ~= "HEAD" and status ~= 204 and status ~= 304 and status ~= 101 then
    local big
    text, reusable, big = read_body(x, headers)
    if not text then
      sock:close()
      return fail_read(x, "reading the answer", reusable, big)
    end
  end
  local conf = x.conf
  if x.reuse and reusable and x.pos > #x.buf and keep_alive(version, headers) then
    sock:setkeepalive(conf.keepalive_timeout * 1000, conf.pool_size)
  else
    sock:close()
  end
  local encoding, gzip = headers["content-encoding"], x.gzip
  if gzip and encoding and text ~= "" then
    encoding = lower(encoding)
    if encoding == "gzip" or encoding == "x-gzip" then
      local plain, gerr, gzip_too_large = gzip(text, x.max_body)
      if not plain then return failure("transport", gerr, 1, { too_large = gzip_too_large or false }) end
      text = plain
    end
  end
  return { status = status, headers = headers, body = text, sends = 1 }
end

-- Reads the answer of x from any coroutine or request: a socket of another
-- nginx request (an iterator carried over) raises inside ngx_lua; that, and
-- any other error, becomes a failure.
local function orphaned()
  return failure("transport", "reading the answer: the request was started in another nginx request "
    .. "(its connection belongs to that one)", 1, { orphaned = true })
end

local function read_guarded(x)
  if x.ctx and current_ctx() ~= x.ctx then return orphaned() end
  local ok, res, err = pcall(read_answer, x)
  if ok then return res, err end
  pcall(x.sock.close, x.sock)
  if find(tostring(res), "bad request", 1, true) or find(tostring(res), "no request", 1, true) then
    return orphaned()
  end
  return failure("transport", "truto.ngx: " .. tostring(res), 1)
end

-- One whole exchange: answer | nil, failure.
local function exchange(conf, auth, req)
  local x, err = send_request(conf, auth, req)
  if not x then return nil, err end
  return read_guarded(x)
end

-- ------------------------------------------------------------------------
-- Requests in flight. start() sends at once and returns; the answer is read
-- by wait() in the caller's own coroutine, so nothing runs on its own after
-- the handler: no light thread holds the response, and nginx closes the
-- request's sockets when it ends. wait_any() waits in light threads for the
-- first bytes only (see "Waiters").
-- ------------------------------------------------------------------------

-- Waiters. wait_any() waits in one light thread per handle for the first
-- bytes of its answer, in slices of at most SLICE seconds; when one has
-- them, the others are told to stop and end within a slice, taking no byte
-- (a light thread killed in a read would close its socket). A handler that
-- returns after a wait_any() is held at most one slice.
local SLICE = 0.1

local function wait_first(x)
  local sock = x.sock
  while not x.abandon do
    local left = x.deadline - now()
    if left <= 0 then break end -- wait() tells the timeout
    sock:settimeout(floor((left < SLICE and left or SLICE) * 1000) + 1)
    local data, err = sock:receiveany(PIECE)
    if data then
      local buf, pos = x.buf, x.pos
      x.buf = pos > #buf and data or sub(buf, pos) .. data
      x.pos = 1
      x.last_byte, x.answered = now(), true
      break
    end
    if err ~= "timeout" then break end -- the socket keeps its error: wait() meets it again
  end
  if not x.abandon then x.first_done = true end
end

-- Lets a waiter still reading x end before x is read or closed.
local function join_waiter(x)
  local co = x.waiter
  x.waiter = nil
  if co and coroutine.status(co) ~= "dead" then
    x.abandon = true
    if not pcall(ngx.thread.wait, co) then
      while coroutine.status(co) ~= "dead" do ngx.sleep(0.01) end
    end
  end
end

local Handle = {}
Handle.__index = Handle
Handle.__name = "truto.ngx.request"

local CANCELLED = {}

-- Finishes a handle: stores its outcome.
local function settle(h, res, err)
  h.x = nil
  h.res, h.err = res, err
end

--- handle:wait() -> answer | nil, failure. Once only.
function Handle:wait()
  if self.res == CANCELLED or self.read then error("request was cancelled or already read", 2) end
  local x = self.x
  if x then
    if x.waiter then join_waiter(x) end
    settle(self, read_guarded(x))
  end
  local res, err = self.res, self.err
  self.read = true
  self.res, self.err = nil, nil
  if res then return res end
  return nil, err
end

--- handle:done() -> whether wait() has something to give at once (never
-- blocks): the answer has begun to arrive (as wait_any() saw it), or the
-- request failed before the send.
function Handle:done()
  if self.read or self.res == CANCELLED then return false end
  local x = self.x
  if x then return x.pos <= #x.buf or x.first_done == true end
  return self.res ~= nil or self.err ~= nil
end

--- handle:cancel(): abandons the request; never raises.
function Handle:cancel()
  if not self.read and self.res ~= CANCELLED then
    local x = self.x
    self.x = nil
    if x then
      if x.waiter then pcall(join_waiter, x) end
      pcall(x.sock.close, x.sock)
    end
    self.res, self.err = CANCELLED, nil
  end
end

-- ------------------------------------------------------------------------
-- The transport.
-- ------------------------------------------------------------------------

local Transport = {}
Transport.__index = Transport
Transport.__name = "truto.ngx"
Transport.__tostring = function(self) return format("truto.ngx (%s)", self.id) end

local function number_setting(settings, name, default, positive_integer, zero_ok)
  local v = settings[name]
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v < 0 or (v == 0 and not zero_ok) or v == huge
    or (positive_integer and v % 1 ~= 0) then
    error(format("bad argument #1 to 'new' (option '%s': %s expected)", name,
      positive_integer and "positive integer" or "positive finite number"), 3)
  end
  return v
end

-- Checks a request table (misuse raises, naming the argument).
local function check_request(fname, req)
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

--- Why the nginx transport cannot honour these settings ("option 'x': ..."),
-- or nil. truto.new asks it inside nginx, so that the refusal comes from
-- new() and not from the first call.
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

--- Creates a transport. `settings`: see the top of this file (token,
-- verify_tls, timeout, connect_timeout, send_timeout, read_timeout,
-- max_body, pool_size, keepalive_timeout, backlog; low_speed_limit and
-- low_speed_time). ca_file and proxy are refused.
function M.new(settings)
  if type(settings) ~= "table" then error("bad argument #1 to 'new' (table expected)", 2) end
  local token = settings.token
  if type(token) ~= "string" or token == "" or find(token, "[%z\r\n]") then
    error("bad argument #1 to 'new' (option 'token': a non-empty string without CR, LF or NUL expected)", 2)
  end
  local refused = M.refused(settings)
  if refused then error("bad argument #1 to 'new' (" .. refused .. ")", 2) end
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
  local auth = "Authorization: Bearer " .. token -- only ever in these closures
  token = nil -- luacheck: ignore 311
  local closed = false

  local self = setmetatable({}, Transport)
  self.id = tostring({}):match("0x%x+") or "?"

  local function check_open(fname)
    if closed then error(format("bad argument #1 to '%s' (transport is closed)", fname), 3) end
  end

  local function start(req)
    local h = setmetatable({ truto_ngx = true }, Handle)
    local x, err = send_request(conf, auth, req)
    if x then h.x = x else h.err = err end
    return h
  end

  --- transport:perform(req) -> answer | nil, failure (start(req):wait()).
  function self.perform(_, req)
    check_open("perform")
    check_request("perform", req)
    return exchange(conf, auth, req, nil)
  end

  --- transport:start(req) -> handle: the request in a light thread.
  function self.start(_, req)
    check_open("start")
    check_request("start", req)
    return start(req)
  end

  --- transport:pump(): nothing to do: a request is on the wire when start()
  -- returns, and its answer waits in the socket's buffer until wait(). (An
  -- ngx.sleep(0) here would log a warning on every nginx build without the
  -- delayed-events patch, Debian's among them.)
  function self.pump()
    check_open("pump")
  end

  --- transport:wait_any(handles) -> index of a handle whose answer has
  -- begun to arrive (or that failed), waiting for one if need be; nil if
  -- none is in flight. See "waiters" above.
  function self.wait_any(_, handles, timeout)
    check_open("wait_any")
    if type(handles) ~= "table" then error("bad argument #1 to 'wait_any' (table expected)", 2) end
    local live, index = {}, {}
    for i = 1, #handles do
      local h = handles[i]
      if type(h) == "table" and h.truto_ngx and not h.read and h.res ~= CANCELLED then
        if h.res ~= nil or h.err ~= nil then return i end
        local x = h.x
        if x then
          if x.pos <= #x.buf or x.first_done then return i end
          -- a socket of another nginx request cannot be waited on here: its
          -- wait() says so (orphaned), as wait() does, and it is sent again
          if x.ctx and current_ctx() ~= x.ctx then return i end
          live[#live + 1] = x
          index[#live] = i
        end
      end
    end
    if #live == 0 then return nil end
    local threads = {}
    for k = 1, #live do
      local x = live[k]
      x.abandon = false
      local co = x.waiter
      if not co or coroutine.status(co) == "dead" then
        co = ngx.thread.spawn(wait_first, x)
        x.waiter = co
      end
      if x.first_done then -- answered at once
        for j = 1, #live do live[j].abandon = true end
        return index[k]
      end
      threads[#threads + 1] = co
    end
    -- timeout (seconds): a timer thread; false when it ends first
    local timer = timeout and ngx.thread.spawn(function() ngx.sleep(math.max(timeout, 0.001)) end)
    if timer then threads[#threads + 1] = timer end
    local found
    repeat
      if not pcall(ngx.thread.wait, unpack(threads)) then ngx.sleep(0.01) end
      if timer and coroutine.status(timer) == "dead" then
        local answered = false
        for k = 1, #live do answered = answered or live[k].first_done end
        if not answered then
          for k = 1, #live do live[k].abandon = true end
          return false
        end
      end
      local alive = false
      for k = 1, #live do
        if live[k].first_done then
          found = found or index[k]
        end
        local co = live[k].waiter
        if co and coroutine.status(co) ~= "dead" then alive = true end
      end
      -- every waiter ended without an answer (a socket error, a timeout):
      -- wait() on the first tells what happened; never spin
      if not found and not alive then found = index[1] end
    until found
    for k = 1, #live do live[k].abandon = true end -- the others stop within SLICE
    if timer and coroutine.status(timer) ~= "dead" then ngx.thread.kill(timer) end
    return found
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

M.Handle = Handle
M.Transport = Transport
return M
