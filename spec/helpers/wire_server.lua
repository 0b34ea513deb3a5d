-- A scripted raw HTTP/1.1 server on 127.0.0.1 for the wire conformance
-- suite: it records every request exactly as it arrived (request line,
-- header lines in order, body, connection number) and answers each one as
-- the current script says, including the rude answers (dropping a
-- connection after reading a request, closing a reused one).
--
--   lua5.4 spec/helpers/wire_server.lua PORT PARENT_PID
--
-- Control lines, on a connection of their own (spec/helpers/wire.lua):
--   "WIRE SCRIPT step,step,...\n"  clears the log and sets the script
--   "WIRE LOG\n"                   the log, one JSON object per line
-- Steps, one per request (past the end of the script: "ok"):
--   ok            200, a small JSON object, keep-alive
--   list          200, a one-item list page with no next cursor
--   no_content    204
--   error_500     500 with Truto's error body
--   trailer       200, chunked, with a trailer "X-Trailer: yes"
--   drop          reads the request, then closes without an answer
--   drop_reused   like drop on a connection's second or later request,
--                 like ok on its first
--   retry_after_huge  429 with "Retry-After: 99999999999999999999"
--   huge_cursor   200, an empty list page whose next cursor is 9,000 bytes
--   empty_page    200, an empty list page with a new cursor each time
--   trickle       200 announcing 100 bytes of body, then one byte every 0.5 s
--   body_null, body_empty, body_string, body_array
--                 200 with the body null, nothing, "oops", [1,2]
--   list_nul      200, a list page, a NUL byte and a second page after it
--   length_conflict  200 with Content-Length: 12 and Content-Length: 14
--   nul_header    200 with a NUL byte inside a header value
--   huge_trailers 200, chunked, with 800 KB of trailers
--   repeated_N    200 with N header lines "a:b" (one name repeated)
--   big_number    200, an object holding the integer 9007199254740993
-- A step ending in "*" is never used up: it answers every later request.
local socket = require "socket"
local cjson = require "cjson"

local port, parent = tonumber(arg[1]), tonumber(arg[2])
local server = assert(socket.bind("127.0.0.1", port))
server:settimeout(0)

local script, log, next_conn = {}, {}, 0
local clients = {} -- socket -> state

local function parent_alive()
  local f = io.open("/proc/" .. parent .. "/stat")
  if f then f:close() end
  return f ~= nil
end

local JSON_OBJECT = '{"id":"wire","ok":true}'
local JSON_LIST = '{"result":[{"id":"a"}],"next_cursor":null}'
local JSON_ERROR = '{"statusCode":500,"error":"Internal Server Error","message":"boom"}'

local function answer(status, reason, body, extra)
  local head = { "HTTP/1.1 " .. status .. " " .. reason }
  if body then
    head[#head + 1] = "Content-Type: application/json"
    head[#head + 1] = "Content-Length: " .. #body
  end
  for _, line in ipairs(extra or {}) do head[#head + 1] = line end
  return table.concat(head, "\r\n") .. "\r\n\r\n" .. (body or "")
end

local pages = 0

local function reply(step, req, st)
  if step == "drop" or (step == "drop_reused" and st.requests > 1) then return nil end
  if step == "retry_after_huge" then
    return answer(429, "Too Many Requests", '{"statusCode":429,"error":"Too Many Requests","message":"slow down"}',
      { "Retry-After: 99999999999999999999" })
  end
  if step == "huge_cursor" then
    return answer(200, "OK", '{"result":[],"next_cursor":"' .. string.rep("x", 9000) .. '"}')
  end
  if step == "trickle" then
    local body = '{"id":"wire","pad":"' .. string.rep("x", 100 - 22) .. '"}'
    st.trickle = { data = body, at = socket.gettime() + 0.5 }
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body .. "\r\n\r\n"
  end
  if step == "empty_page" then
    pages = pages + 1
    return answer(200, "OK", '{"result":[],"next_cursor":"c' .. pages .. '"}')
  end
  if step == "list" then return answer(200, "OK", JSON_LIST) end
  local canned = ({ big_number = '{"id":"wire","n":9007199254740993}', body_null = "null", body_empty = "",
    body_string = '"oops"', body_array = "[1,2]",
    list_nul = JSON_LIST .. "\0" .. '{"result":[{"id":"b"}],"next_cursor":null}' })[step]
  if canned then return answer(200, "OK", canned) end
  if step == "length_conflict" then
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n"
      .. 'Content-Length: 14\r\n\r\n{"id":"wire1"}'
  end
  if step == "nul_header" then return answer(200, "OK", JSON_OBJECT, { "X-Odd: a\0b" }) end
  if step == "huge_trailers" then
    local trailer = "X-T: " .. string.rep("t", 995) .. "\r\n"
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. string.format("%x\r\n%s\r\n", #JSON_OBJECT, JSON_OBJECT)
      .. "0\r\n" .. string.rep(trailer, 800) .. "\r\n"
  end
  local repeated = tonumber(step:match("^repeated_(%d+)$"))
  if repeated then
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #JSON_OBJECT .. "\r\n"
      .. string.rep("a:b\r\n", repeated) .. "\r\n" .. JSON_OBJECT
  end
  if step == "no_content" then return answer(204, "No Content") end
  if step == "error_500" then return answer(500, "Internal Server Error", JSON_ERROR) end
  if step == "trailer" then
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
      .. "Trailer: X-Trailer\r\n\r\n" .. string.format("%x\r\n%s\r\n", #JSON_OBJECT, JSON_OBJECT)
      .. "0\r\nX-Trailer: yes\r\n\r\n"
  end
  if req.method == "HEAD" then
    -- the headers a GET would have, and no body
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 133\r\n\r\n"
  end
  return answer(200, "OK", JSON_OBJECT)
end

-- Parses one request out of st.buf; returns it or nil when incomplete.
local function parse(st)
  local head_end = st.buf:find("\r\n\r\n", 1, true)
  if not head_end then return nil end
  local head = st.buf:sub(1, head_end - 1)
  local line, rest = head:match("^([^\r\n]*)\r\n?(.*)$")
  local headers, length = {}, 0
  for h in (rest .. "\r\n"):gmatch("([^\r\n]*)\r\n") do
    if h ~= "" then
      headers[#headers + 1] = h
      local name, value = h:match("^([^:]+):%s*(.-)%s*$")
      if name and name:lower() == "content-length" then length = tonumber(value) end
    end
  end
  if #st.buf < head_end + 3 + length then return nil end
  local body = st.buf:sub(head_end + 4, head_end + 3 + length)
  st.buf = st.buf:sub(head_end + 4 + length)
  return { line = line, method = line:match("^(%S+)"), headers = headers, body = body }
end

local function close(sock)
  clients[sock] = nil
  sock:close()
end

local function control(sock, line)
  local cmd, argument = line:match("^WIRE (%u+) ?(.*)$")
  if cmd == "SCRIPT" then
    script, log, pages = {}, {}, 0
    for step in argument:gmatch("[%w_*]+") do script[#script + 1] = step end
    sock:send("OK\n")
  elseif cmd == "LOG" then
    for _, entry in ipairs(log) do sock:send(cjson.encode(entry) .. "\n") end
  end
  close(sock)
end

local function serve(sock, st)
  while true do
    if st.buf:sub(1, 5) == "WIRE " then
      local line = st.buf:match("^([^\n]*)\n")
      if line then control(sock, line) end
      return
    end
    local req = parse(st)
    if not req then return end
    st.requests = st.requests + 1
    local step = script[1] or "ok"
    if step:sub(-1) == "*" then
      step = step:sub(1, -2)
    else
      table.remove(script, 1)
    end
    log[#log + 1] = { conn = st.id, line = req.line, headers = req.headers, body = req.body, step = step }
    local out = reply(step, req, st)
    if not out then return close(sock) end
    sock:settimeout(1)
    sock:send(out)
    sock:settimeout(0)
  end
end

-- Sends one byte of each trickling answer that is due.
local function trickle()
  local now, busy = socket.gettime(), false
  for sock, st in pairs(clients) do
    local t = st.trickle
    if t then
      busy = true
      if now >= t.at then
        sock:send(t.data:sub(1, 1))
        t.data, t.at = t.data:sub(2), now + 0.5
        if t.data == "" then st.trickle = nil end
      end
    end
  end
  return busy
end

local last_check = socket.gettime()
while true do
  local readers = { server }
  for sock in pairs(clients) do readers[#readers + 1] = sock end
  local ready = socket.select(readers, nil, trickle() and 0.05 or 0.2)
  for _, sock in ipairs(ready) do
    if sock == server then
      local c = server:accept()
      if c then
        c:settimeout(0)
        next_conn = next_conn + 1
        clients[c] = { id = next_conn, buf = "", requests = 0 }
      end
    elseif clients[sock] then
      local st = clients[sock]
      local data, err, partial = sock:receive(65536)
      data = data or partial
      if data and data ~= "" then st.buf = st.buf .. data end
      if data and data ~= "" then serve(sock, st) end
      if err == "closed" and clients[sock] then close(sock) end
    end
  end
  if socket.gettime() - last_check > 1 then
    last_check = socket.gettime()
    if not parent_alive() then os.exit(0) end
  end
end
