--- truto.ngx.parser: an HTTP/1.1 response parser over a buffer, for the nginx transport.
--
-- Pure Lua (no ngx.*): it runs, and is tested (spec/ngx_parser_spec.lua), under plain Lua 5.4
-- and LuaJIT. It reads the status line (1xx answers skipped), the headers, and the body as they
-- frame it (Content-Length, chunked with extensions and trailers, or read to close), with the
-- limits of docs/openresty.md. The bytes come from a reader:
--
--     x = { buf = "", pos = 1, max_body = n, recv = function(x, max) -> data | nil, err }
--
-- `recv` returns at least one byte and at most `max`, or an error: "closed" when the peer
-- closed the connection (the end of a read-to-close body), anything else is passed through.
-- `buf:sub(pos)` is what has been received and not yet parsed.
--
-- @module truto.ngx.parser
local tonumber, pairs = tonumber, pairs
local format, lower, find, sub, concat = string.format, string.lower, string.find, string.sub, table.concat

local M = {}

M.PIECE = 1024 * 1024           -- the most one read asks for
M.MAX_HEADERS = 256 * 1024      -- status line, headers, or trailers of one answer
M.MAX_CHUNK_LINE = 4096         -- a chunk-size line (with extensions)

local PIECE, MAX_HEADERS, MAX_CHUNK_LINE = M.PIECE, M.MAX_HEADERS, M.MAX_CHUNK_LINE

--- Adds received bytes to the end of x's buffer (dropping what was parsed).
function M.append(x, data)
  local buf, pos = x.buf, x.pos
  if pos > #buf then
    x.buf = data
  else
    x.buf = sub(buf, pos) .. data
  end
  x.pos = 1
end

local append = M.append

-- Appends one read to the buffer: true | nil, err.
local function fill(x)
  local data, err = x.recv(x, PIECE)
  if not data then return nil, err end
  append(x, data)
  return true
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

--- Header lines -> `headers` (a table) by lower-case name; repeated names
-- joined by ", ", once at the end (linear in the lines, however often a name
-- repeats). A line without a colon (an obs-fold continuation among them) is
-- skipped.
function M.parse_headers(block, headers)
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

local parse_headers = M.parse_headers

--- The status line and headers of the answer (1xx answers but 101 skipped):
-- version ("1.1"), status, headers | nil, err.
function M.read_head(x)
  while true do
    local block, err = read_block(x, "the answer's headers are")
    if not block then return nil, err end
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

--- Whether an answer to `method` with `status` has a body to read.
function M.has_body(method, status)
  return method ~= "HEAD" and status ~= 204 and status ~= 304 and status ~= 101
end

--- The message of a body over max_body bytes.
function M.too_large(max_body)
  return format("response body larger than max_body (%d bytes)", max_body)
end

local too_large = M.too_large

-- Takes exactly n bytes from the buffer and the reader into parts.
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
  local recv = x.recv
  while n > 0 do
    local data, err = recv(x, n < PIECE and n or PIECE)
    if not data then return nil, err end
    parts[#parts + 1] = data
    n = n - #data
  end
  return true
end

-- The CRLF (or LF) after a chunk's data: true | nil, err.
local function chunk_end(x)
  while #x.buf - x.pos + 1 < 2 do
    local ok, err = fill(x)
    if not ok then return nil, err end
  end
  local pos = x.pos
  if sub(x.buf, pos, pos + 1) == "\r\n" then
    x.pos = pos + 2
  elseif sub(x.buf, pos, pos) == "\n" then
    x.pos = pos + 1
  else
    return nil, "bad chunk end"
  end
  return true
end

-- A chunked body: body, true | nil, err, too_large. Trailers are read and
-- dropped: they are not headers.
local function read_chunked(x)
  local parts, size, max_body = {}, 0, x.max_body
  while true do
    local buf, pos = x.buf, x.pos
    local e = find(buf, "\n", pos, true)
    if not e then
      if #buf - pos + 1 > MAX_CHUNK_LINE then return nil, "a chunk-size line longer than 4 KiB" end
      local ok, err = fill(x)
      if not ok then return nil, err end
    else
      local digits = sub(buf, pos, e):match("^[ \t]*(%x+)[ \t]*[;\r\n]")
      if not digits then return nil, "bad chunk size" end
      local n = tonumber(digits, 16)
      x.pos = e + 1
      if n == 0 then
        local _, err = read_block(x, "the answer's trailers are")
        if err then return nil, err end
        return concat(parts), true
      end
      size = size + n
      if size > max_body then return nil, too_large(max_body), true end
      local ok, err = take(x, n, parts)
      if not ok then return nil, err end
      ok, err = chunk_end(x)
      if not ok then return nil, err end
    end
  end
end

-- A body of Content-Length `length`: body, true | nil, err, too_large.
local function read_length(x, length)
  local n = tonumber(length:match("^%s*(%d+)%s*$"))
  if not n then return nil, "bad Content-Length" end
  if n > x.max_body then return nil, too_large(x.max_body), true end
  local parts = {}
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

-- No length: the body ends when the server closes the connection. body,
-- false | nil, err, too_large.
local function read_to_close(x)
  local parts, size, max_body = {}, 0, x.max_body
  if x.pos <= #x.buf then
    parts[1] = sub(x.buf, x.pos)
    size = #parts[1]
    x.buf, x.pos = "", 1
  end
  local recv = x.recv
  while true do
    if size > max_body then return nil, too_large(max_body), true end
    local data, err = recv(x, PIECE)
    if not data then
      if err == "closed" then return concat(parts), false end
      return nil, err
    end
    size = size + #data
    if size > max_body then return nil, too_large(max_body), true end
    parts[#parts + 1] = data
  end
end

--- The answer's body, as its headers frame it: body, reusable (the
-- connection is at the end of the answer) | nil, err, too_large.
function M.read_body(x, headers)
  local te = headers["transfer-encoding"]
  if te and find(lower(te), "chunked", 1, true) then return read_chunked(x) end
  local length = headers["content-length"]
  if length then return read_length(x, length) end
  return read_to_close(x)
end

--- Whether the answer lets the connection be used again (Connection, else
-- the version).
function M.keep_alive(version, headers)
  local connection = headers["connection"]
  if connection then
    connection = lower(connection)
    if find(connection, "close", 1, true) then return false end
    if find(connection, "keep-alive", 1, true) then return true end
  end
  return version == "1.1"
end

local read_head, has_body, read_body, keep_alive = M.read_head, M.has_body, M.read_body, M.keep_alive

--- One whole answer to `method`: status, headers, body, keep (the
-- connection may be used again: framed, keep-alive, no byte past the
-- answer) | nil, err, too_large, in_head (the status line or headers
-- failed).
function M.read_response(x, method)
  local version, status, headers = read_head(x)
  if not version then return nil, status, false, true end
  local body, reusable = "", true
  if has_body(method, status) then
    local big
    body, reusable, big = read_body(x, headers)
    if not body then return nil, reusable, big or false, false end
  end
  return status, headers, body, reusable and x.pos > #x.buf and keep_alive(version, headers)
end

return M
