--- truto.ngx.connect: where a request goes, and the connection it goes on.
--
-- The URL's parts and the pool name (scheme, host, port and, for https, the
-- verification flag and the TLS server name: docs/openresty.md, "Pools"),
-- the connect through nginx's pool with its backlog, and the TLS handshake
-- of a new connection.
--
-- @module truto.ngx.connect
-- luacheck: std luajit+ngx_lua
local ngx = ngx -- luacheck: ignore 113 (the nginx API, global inside nginx)
local tonumber, tostring, pcall = tonumber, tostring, pcall
local format, lower, find, sub = string.format, string.lower, string.find, string.sub
local min, floor, huge = math.min, math.floor, math.huge

local M = {}

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

--- Where `url` goes: { tls, host, port, authority, target, address,
-- server_name, pool } | nil (not an http or https URL). `reuse = false`: a
-- pool of its own, so the connection is a fresh one.
function M.destination(url, verify_tls, reuse)
  local scheme, host, port, authority, target = parse_url(url)
  if not scheme then return nil end
  local tls = scheme == "https"
  local address = host
  if sub(address, 1, 1) == "[" then address = sub(address, 2, -2) end
  local server_name = address
  if lower(address) == "localhost" then address = "127.0.0.1" end -- no resolver needed
  local pool = tls and format("truto:https:%s:%d:%s:%s", lower(host), port,
      verify_tls and "verify" or "noverify", lower(server_name))
    or format("truto:http:%s:%d", lower(host), port)
  if not reuse then pool = pool .. ":fresh" end
  return {
    tls = tls, host = host, port = port, authority = authority, target = target,
    address = address, server_name = server_name, pool = pool,
  }
end

--- Whether a send or read error says the server had closed the connection.
function M.closed_by_peer(err)
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

--- Connects to `to` (a destination), or takes a pooled connection, with
-- the handshake of a new TLS one: sock, reused | nil, kind, message (nothing
-- was sent). `total`: the attempt's timeout.
function M.open(conf, to, reuse, connect_timeout, total)
  local sock = ngx.socket.tcp()
  sock:settimeouts(floor(connect_timeout * 1000) + 1, floor(min(conf.send_timeout or huge, total) * 1000) + 1,
    floor(total * 1000) + 1)
  local options = { pool = to.pool, pool_size = conf.pool_size }
  if conf.backlog and reuse then options.backlog = conf.backlog end
  local host, port = to.host, to.port
  local ok, err = sock:connect(to.address, port, options)
  if not ok then
    if err == "timeout" then
      return nil, "timeout", format("connect to %s:%d: timed out (%g s)", host, port, connect_timeout)
    end
    return nil, "transport", format("connect to %s:%d: %s", host, port, tostring(err))
  end
  local reused = sock:getreusedtimes() > 0
  if to.tls and not reused then
    local session, serr = handshake(sock, to.server_name, conf.verify_tls)
    if not session then
      sock:close()
      if serr == "timeout" then return nil, "timeout", format("TLS handshake with %s: timed out", host) end
      return nil, "transport", tls_failure(host, serr)
    end
  end
  return sock, reused
end

return M
