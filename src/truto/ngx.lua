--- truto.ngx: the nginx transport, for OpenResty and nginx with lua-nginx-module.
--
-- The same C core (queries, requests, answers, pages, retries) runs inside
-- nginx; only the lines that move bytes are here, in Lua, because a C
-- function may not yield inside nginx and nginx must never block.
--
-- Why cosockets and not subrequests. `ngx.socket.tcp` works wherever the
-- handler may yield: rewrite, access, content, `ngx.timer.at` and the SSL
-- phases. `ngx.location.capture` does not work in timers (background sync,
-- the main use of a directory client), needs a proxy location in every
-- server block, and buffers each answer as a subrequest. With cosockets we
-- speak HTTP/1.1 ourselves: keep-alive through nginx's connection pool
-- (`setkeepalive`), TLS through `sslhandshake` with verification,
-- Content-Length and chunked bodies, and our own timeouts and size limit.
--
-- What the nginx configuration must give:
-- * `lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;` for
--   https (verification is on unless the client says `verify_tls = false`);
--   `lua_ssl_verify_depth 5;` or so for public CAs' chains. The `ca_file`
--   option cannot be honoured per socket, so it is refused here.
-- * `resolver 127.0.0.53 ipv6=off;` (or any DNS server) for a host name such
--   as api.truto.one; IP addresses and `localhost` (connected as 127.0.0.1)
--   need none.
-- * lua_package_path / lua_package_cpath reaching truto.lua, truto/ngx.lua,
--   truto/core.so (built for LuaJIT) and cjson.
--
-- gzip: answers are asked for gzip-compressed and inflated with zlib through
-- LuaJIT's FFI (nginx is linked with zlib); without the FFI or zlib, or with
-- `require("truto.ngx").gzip = false`, no Accept-Encoding is sent. max_body
-- applies to the inflated body, as with libcurl.
--
-- Not done here: `proxy` (refused; use transport = "curl"), `low_speed_limit`
-- beyond "no byte for low_speed_time seconds aborts".
--
-- Where nginx cannot yield (init_by_lua, init_worker_by_lua, set_by_lua,
-- header_filter, body_filter, log, balancer), truto.new() picks the libcurl
-- transport, which blocks the worker while it waits: use it there only for
-- short work, or move the work into `ngx.timer.at(0, ...)`. A client made in
-- init_by_lua with `transport = "ngx"` may be used later by handlers; used in
-- a phase that cannot yield, it answers with a transport error.
--
-- The interface is the one src/truto.lua documents under "Transports":
-- new(settings) -> transport with perform, start, pump, wait_any, close;
-- start() -> request with wait, done, cancel; and sleep(seconds).
--
-- The token is kept only in the closures of one transport: in no table a
-- caller can reach, no error and no message.
--
-- @module truto.ngx
-- luacheck: std luajit+ngx_lua
local core = require "truto.core"

local ngx = ngx -- luacheck: ignore 113 (the nginx API, global inside nginx)
local type, tostring, tonumber, error, pcall, select, ipairs = type, tostring, tonumber, error, pcall, select, ipairs
local setmetatable, getmetatable = setmetatable, getmetatable
local format, lower, concat = string.format, string.lower, table.concat
local min, floor = math.min, math.floor
local unpack = table.unpack or unpack -- luacheck: ignore 113 143

local M = {}

--- Idle connections kept per host (nginx's pool for this worker) ...
M.pool_size = 32
--- ... and for how long, in seconds.
M.keepalive_timeout = 60

local DEFAULT_MAX_BODY = 64 * 1024 * 1024
local READ_PIECE = 64 * 1024
local MAX_HEADERS = 256 * 1024

-- Phases whose handlers may yield, so cosockets and light threads work.
local YIELDABLE = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}

--- Waits `seconds` without blocking nginx. Where nginx cannot yield this
-- transport cannot send anything either, so there is nothing to wait for.
function M.sleep(seconds)
  if YIELDABLE[ngx.get_phase()] then ngx.sleep(seconds) end
end

-- ------------------------------------------------------------------------
-- gzip: zlib through LuaJIT's FFI (nginx itself is linked with zlib). When
-- it cannot be loaded, or M.gzip is false, no Accept-Encoding is sent and
-- answers come plain.
-- ------------------------------------------------------------------------

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

-- A failed exchange: what transport:perform returns.
local function failure(kind, message, never_sent, too_large)
  return nil, kind, message, never_sent or false, too_large or false
end

-- "https://host:port/path?q" -> scheme, host, port, host header, target.
local function parse_url(url)
  local scheme, authority, target = url:match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  if not scheme then return nil end
  scheme = lower(scheme)
  if scheme ~= "http" and scheme ~= "https" then return nil end
  local host, port = authority:match("^(%[[^%]]+%]):?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host or host == "" then return nil end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if target == "" then target = "/" end
  if target:sub(1, 1) == "?" then target = "/" .. target end
  return scheme, host, port, authority, target
end

-- Header lines of an answer (up to the empty line) -> table of lower-case
-- names; repeated headers are joined with ", ".
local function read_headers(sock)
  local headers, size = {}, 0
  while true do
    local line, err = sock:receive("*l")
    if not line then return nil, err end
    if line == "" then return headers end
    size = size + #line
    if size > MAX_HEADERS then return nil, "the answer's headers are larger than 256 KiB" end
    local name, value = line:match("^([^:]+):[ \t]*(.-)[ \t]*$")
    if name then
      name = lower(name)
      local old = headers[name]
      headers[name] = old and old .. ", " .. value or value
    end
  end
end

-- The exchange's clock and its limits, in milliseconds for settimeouts.
local function new_clock(conf, timeout, connect_timeout)
  ngx.update_time()
  local total = (timeout or conf.timeout) * 1000
  return {
    deadline = ngx.now() * 1000 + total, total = total,
    connect = (connect_timeout or conf.connect_timeout) * 1000,
    stall = conf.low_speed_time > 0 and conf.low_speed_limit > 0 and conf.low_speed_time * 1000 or nil,
  }
end

local function left_ms(clock)
  return clock.deadline - ngx.now() * 1000
end

-- Sets the socket's timeouts for the next operation; false once the
-- exchange is out of time.
local function arm(sock, clock)
  local left = floor(left_ms(clock))
  if left < 1 then return false end
  local read = clock.stall and min(left, clock.stall) or left
  sock:settimeouts(min(left, clock.connect), left, read)
  return true
end

-- A socket error -> kind, message.
local function socket_failure(clock, what, err)
  if err == "timeout" then
    if clock.stall and left_ms(clock) > 1 then
      return "timeout", format("%s: no data for %g s (low_speed_time)", what, clock.stall / 1000)
    end
    return "timeout", format("%s: timed out (%g s)", what, clock.total / 1000)
  end
  return "transport", format("%s: %s", what, tostring(err))
end

-- Whether a send or read error says the server had closed the connection.
local function closed_by_peer(err)
  err = tostring(err)
  return err == "closed" or err:find("reset", 1, true) ~= nil or err:find("broken pipe", 1, true) ~= nil
end

-- Reads `n` bytes into parts; returns true, or nil and the socket error.
local function read_exactly(sock, clock, n, parts)
  while n > 0 do
    if not arm(sock, clock) then return nil, "timeout" end
    local piece = min(n, READ_PIECE)
    local data, err, partial = sock:receive(piece)
    if not data then
      if partial and partial ~= "" then parts[#parts + 1] = partial end
      return nil, err
    end
    parts[#parts + 1] = data
    n = n - piece
  end
  return true
end

-- Reads the answer's body as its headers frame it. Returns body, reusable
-- (whether the connection may be kept) or nil, kind, message, too_large.
local function read_body(sock, clock, conf, method, status, headers)
  if method == "HEAD" or status == 204 or status == 304 or status < 200 then return "", true end
  local parts, size = {}, 0
  local te = headers["transfer-encoding"]
  if te and lower(te):find("chunked", 1, true) then
    while true do
      if not arm(sock, clock) then return nil, socket_failure(clock, "reading the answer", "timeout") end
      local line, err = sock:receive("*l")
      if not line then return nil, socket_failure(clock, "reading the answer", err) end
      local n = tonumber(line:match("^%s*(%x+)"), 16)
      if not n then return nil, "transport", "reading the answer: bad chunk size" end
      if n == 0 then
        local _, terr = read_headers(sock) -- trailers
        if terr then return nil, socket_failure(clock, "reading the answer", terr) end
        return concat(parts), true
      end
      size = size + n
      if size > conf.max_body then
        return nil, "transport", format("response body larger than max_body (%d bytes)", conf.max_body), true
      end
      local ok, rerr = read_exactly(sock, clock, n, parts)
      if not ok then return nil, socket_failure(clock, "reading the answer", rerr) end
      if not arm(sock, clock) then return nil, socket_failure(clock, "reading the answer", "timeout") end
      local crlf, cerr = sock:receive(2)
      if crlf ~= "\r\n" then return nil, socket_failure(clock, "reading the answer", cerr or "bad chunk end") end
    end
  end
  local length = headers["content-length"]
  if length then
    local n = tonumber(length:match("^%s*(%d+)%s*$"))
    if not n then return nil, "transport", "reading the answer: bad Content-Length" end
    if n > conf.max_body then
      return nil, "transport", format("response body larger than max_body (%d bytes)", conf.max_body), true
    end
    local ok, err = read_exactly(sock, clock, n, parts)
    if not ok then
      if err == "closed" then
        local got = 0
        for i = 1, #parts do got = got + #parts[i] end
        return nil, "transport", format("reading the answer: connection closed after %d of %d bytes", got, n)
      end
      return nil, socket_failure(clock, "reading the answer", err)
    end
    return concat(parts), true
  end
  -- No length: the body ends when the server closes the connection.
  while true do
    if not arm(sock, clock) then return nil, socket_failure(clock, "reading the answer", "timeout") end
    local data, err = sock:receiveany(READ_PIECE)
    if not data then
      if err == "closed" then return concat(parts), false end
      return nil, socket_failure(clock, "reading the answer", err)
    end
    size = size + #data
    if size > conf.max_body then
      return nil, "transport", format("response body larger than max_body (%d bytes)", conf.max_body), true
    end
    parts[#parts + 1] = data
  end
end

-- Whether the answer lets the connection be used again.
local function keep_alive(version, headers)
  local connection = lower(headers["connection"] or "")
  if connection:find("close", 1, true) then return false end
  return version == "1.1" or connection:find("keep-alive", 1, true) ~= nil
end

-- Performs one request: connect (or reuse a pooled connection), TLS, send,
-- read. `auth` is the Authorization line. Returns what perform returns.
local function exchange(conf, auth, method, url, lines, body, timeout, connect_timeout)
  local scheme, host, port, authority, target = parse_url(url)
  if not scheme then return failure("transport", "unsupported URL", true) end
  local phase = ngx.get_phase()
  if not YIELDABLE[phase] then
    return failure("transport", format("the ngx transport cannot run in nginx's %s phase "
      .. "(it cannot yield there); use transport = \"curl\" or ngx.timer.at", phase), true)
  end
  local request = { method, " ", target, " HTTP/1.1\r\nHost: ", authority, "\r\n", auth,
    "\r\nUser-Agent: ", conf.user_agent, "\r\nAccept: application/json\r\n" }
  local gzip = M.gzip and gunzip
  if gzip then request[#request + 1] = "Accept-Encoding: gzip\r\n" end
  if body then
    request[#request + 1] = "Content-Type: application/json\r\n"
  end
  if body or method == "POST" or method == "PUT" or method == "PATCH" then
    request[#request + 1] = "Content-Length: " .. #(body or "") .. "\r\n"
  end
  for i = 1, #lines do
    request[#request + 1] = lines[i]
    request[#request + 1] = "\r\n"
  end
  request[#request + 1] = "\r\n"
  request[#request + 1] = body or ""

  local tls = scheme == "https"
  local address = host
  if address:sub(1, 1) == "[" then address = address:sub(2, -2) end
  local server_name = address
  if lower(address) == "localhost" then address = "127.0.0.1" end -- no resolver needed
  local pool = format("truto:%s:%s:%d:%s", scheme, lower(host), port, tls and tostring(conf.verify_tls) or "")
  local clock = new_clock(conf, timeout, connect_timeout)

  -- A pooled connection the server has closed meanwhile fails before any
  -- byte of the answer: then the request goes again on a new connection.
  for _ = 1, M.pool_size + 1 do
    local sock = ngx.socket.tcp()
    if not arm(sock, clock) then return failure(socket_failure(clock, "connect", "timeout")) end
    local ok, err = sock:connect(address, port, { pool = pool, pool_size = M.pool_size })
    if not ok then
      local kind, message = socket_failure(clock, format("connect to %s:%d", host, port), err)
      return failure(kind, message, kind ~= "timeout")
    end
    local reused = sock:getreusedtimes() > 0
    if tls and not reused then
      if not arm(sock, clock) then
        sock:close()
        return failure(socket_failure(clock, "TLS handshake", "timeout"))
      end
      local session, serr = sock:sslhandshake(nil, server_name, conf.verify_tls)
      if not session then
        sock:close()
        return failure(socket_failure(clock, "TLS handshake with " .. host, serr))
      end
    end
    if not arm(sock, clock) then
      sock:close()
      return failure(socket_failure(clock, "sending the request", "timeout"))
    end
    local sent, serr = sock:send(request)
    local status_line, rerr
    if sent then
      if arm(sock, clock) then
        status_line, rerr = sock:receive("*l")
      else
        rerr = "timeout"
      end
    end
    if not status_line then
      sock:close()
      local err2 = serr or rerr
      if not (reused and closed_by_peer(err2)) then
        if sent and err2 == "closed" then
          return failure("transport", "the server closed the connection without an answer")
        end
        return failure(socket_failure(clock, sent and "reading the answer" or "sending the request", err2))
      end
      -- else: a stale pooled connection; try the next one
    else
      local version, status = status_line:match("^HTTP/(%d%.%d) (%d%d%d)")
      status = tonumber(status)
      local headers, herr
      while status do
        headers, herr = read_headers(sock)
        if not headers then
          sock:close()
          return failure(socket_failure(clock, "reading the answer", herr))
        end
        if status >= 200 or status == 101 then break end
        -- 1xx: the real answer follows
        status_line, herr = sock:receive("*l")
        if not status_line then
          sock:close()
          return failure(socket_failure(clock, "reading the answer", herr))
        end
        version, status = status_line:match("^HTTP/(%d%.%d) (%d%d%d)")
        status = tonumber(status)
      end
      if not status then
        sock:close()
        return failure("transport", "reading the answer: not an HTTP/1.x status line")
      end
      local text, reusable, message, too_large = read_body(sock, clock, conf, method, status, headers)
      if not text then
        sock:close()
        return failure(reusable, message, false, too_large)
      end
      if reusable and keep_alive(version, headers) then
        sock:setkeepalive(M.keepalive_timeout * 1000, M.pool_size)
      else
        sock:close()
      end
      local encoding = headers["content-encoding"]
      if gzip and encoding and text ~= "" then
        encoding = lower(encoding)
        if encoding == "gzip" or encoding == "x-gzip" then
          local plain, gerr, gzip_too_large = gzip(text, conf.max_body)
          if not plain then return failure("transport", gerr, false, gzip_too_large) end
          text = plain
        end
      end
      return status, headers, text
    end
  end
  return failure("transport", "reading the answer: connection closed")
end

-- ------------------------------------------------------------------------
-- Requests in flight: light threads.
-- ------------------------------------------------------------------------

local Request = {}
Request.__index = Request
Request.__name = "truto.ngx.request"

local function pack(...)
  return { n = select("#", ...), ... }
end

local CANCELLED = { n = 0 }

-- Frees the light thread of a request whose answer is in (a finished
-- thread nobody waited for stays a zombie until its request ends).
local function reap(req)
  local co = req.co
  req.co = nil
  if co then pcall(ngx.thread.kill, co) end
end

--- request:wait() -> the answer, as transport:perform gives it. Once only.
function Request:wait()
  local res = self.res
  if res == CANCELLED or self.read then error("request was cancelled or already read", 2) end
  if not res then
    local co = self.co
    if pcall(ngx.thread.wait, co) then
      self.co = nil -- waited for: nginx has freed it
    else
      -- not the coroutine that started it: poll instead
      while not self.res and co and coroutine.status(co) ~= "dead" do ngx.sleep(0.001) end
    end
    res = self.res or pack(failure("transport", "the request's light thread ended without an answer"))
  end
  reap(self)
  self.read = true
  self.res = nil
  return unpack(res, 1, res.n)
end

--- request:done() -> whether the answer is in (never blocks)
function Request:done()
  return self.res ~= nil and self.res ~= CANCELLED and not self.read
end

--- request:cancel(): abandons the request; never raises.
function Request:cancel()
  if not self.read then
    if self.co then pcall(ngx.thread.kill, self.co) end
    self.co = nil
    self.res = CANCELLED
  end
end

-- ------------------------------------------------------------------------
-- The transport.
-- ------------------------------------------------------------------------

local function number_or(v, default)
  return type(v) == "number" and v or default
end

local function default_user_agent()
  local lua = rawget(_G, "jit") and jit.version or _VERSION -- luacheck: ignore 113
  local ngx_lua = ngx and ngx.config and ngx.config.ngx_lua_version
  return format("lua-truto/%s ngx_lua/%s %s", core.VERSION, tostring(ngx_lua or "?"), lua)
end

local Transport = {}
Transport.__index = Transport
Transport.__name = "truto.ngx"
Transport.__tostring = function(self) return format("truto.ngx (%s)", self.id) end

local function check_lines(lines)
  if lines == nil then return {} end
  if type(lines) ~= "table" then error("header lines must be a table", 3) end
  for i = 1, #lines do
    local line = lines[i]
    if type(line) ~= "string" or line:find("[%z\r\n]") or not line:find(":", 1, true) then
      error(format("invalid header line #%d", i), 3)
    end
  end
  return lines
end

--- Creates a transport. `settings`: token (required), user_agent,
-- verify_tls (true), timeout (30 s), connect_timeout (10 s), max_body
-- (64 MiB), low_speed_limit, low_speed_time. ca_file and proxy are refused
-- (see the header of this file).
function M.new(settings)
  if type(settings) ~= "table" then error("bad argument #1 to 'new' (table expected)", 2) end
  local token = settings.token
  if type(token) ~= "string" or token == "" then error("token required", 2) end
  if settings.ca_file ~= nil then
    error("truto.ngx: ca_file cannot be set per connection in nginx; set lua_ssl_trusted_certificate "
      .. "in nginx.conf (or use transport = \"curl\")", 2)
  end
  if settings.proxy ~= nil then
    error("truto.ngx: proxy is not supported by the nginx transport; use transport = \"curl\"", 2)
  end
  local conf = {
    user_agent = settings.user_agent or default_user_agent(),
    verify_tls = settings.verify_tls ~= false,
    timeout = number_or(settings.timeout, 30),
    connect_timeout = number_or(settings.connect_timeout, 10),
    max_body = number_or(settings.max_body, DEFAULT_MAX_BODY),
    low_speed_limit = number_or(settings.low_speed_limit, 0),
    low_speed_time = number_or(settings.low_speed_time, 0),
  }
  local auth = "Authorization: Bearer " .. token -- only ever in these closures
  token = nil -- luacheck: ignore 311
  local closed = false

  local self = setmetatable({}, Transport)
  self.id = tostring({}):match("0x%x+") or "?"

  local function check_open()
    if closed then error("transport is closed", 3) end
  end

  --- transport:perform(method, url, header_lines, body[, timeout, connect_timeout])
  -- -> status, headers, body | nil, kind, message, never_sent, too_large
  function self.perform(_, method, url, lines, body, timeout, connect_timeout)
    check_open()
    if type(method) ~= "string" or type(url) ~= "string" then error("method and url expected", 2) end
    lines = check_lines(lines)
    return exchange(conf, auth, method, url, lines, body, number_or(timeout, nil), number_or(connect_timeout, nil))
  end

  --- transport:start(...) -> request: the same, in a light thread.
  function self.start(_, method, url, lines, body, timeout, connect_timeout)
    check_open()
    if type(method) ~= "string" or type(url) ~= "string" then error("method and url expected", 2) end
    lines = check_lines(lines)
    timeout, connect_timeout = number_or(timeout, nil), number_or(connect_timeout, nil)
    local req = setmetatable({}, Request)
    local phase = ngx.get_phase()
    if not YIELDABLE[phase] then
      req.res = pack(exchange(conf, auth, method, url, lines, body, timeout, connect_timeout))
      return req
    end
    local co, err = ngx.thread.spawn(function()
      local res = pack(pcall(exchange, conf, auth, method, url, lines, body, timeout, connect_timeout))
      if res[1] then
        req.res = pack(unpack(res, 2, res.n))
      else
        req.res = pack(failure("transport", "truto.ngx: " .. tostring(res[2])))
      end
    end)
    if not co then
      req.res = pack(failure("transport", "ngx.thread.spawn: " .. tostring(err), true))
    end
    req.co = co
    return req
  end

  --- transport:pump(): lets requests in flight progress (yields once).
  function self.pump()
    check_open()
    if YIELDABLE[ngx.get_phase()] then ngx.sleep(0) end
  end

  --- transport:wait_any(requests) -> index of a finished request, waiting
  -- for one if need be; nil if none is in flight.
  function self.wait_any(_, requests)
    check_open()
    if type(requests) ~= "table" then error("bad argument #1 to 'wait_any' (table expected)", 2) end
    while true do
      local live = {}
      for i = 1, #requests do
        local req = requests[i]
        if getmetatable(req) == Request and not req.read and req.res ~= CANCELLED then
          if not req.res and (not req.co or coroutine.status(req.co) == "dead") then
            req.res = pack(failure("transport", "the request's light thread ended without an answer"))
          end
          if req.res then return i end
          live[#live + 1] = req.co
        end
      end
      if #live == 0 then return nil end
      -- Wakes up when one of them ends; its thread stored its answer.
      if not pcall(ngx.thread.wait, unpack(live)) then ngx.sleep(0.001) end
    end
  end

  --- transport:close(): later calls raise.
  function self.close()
    closed = true
  end

  return self
end

M.Request = Request
M.Transport = Transport
return M
