-- The nginx transport's HTTP/1.1 response parser (truto.ngx.parser) on its own, under plain
-- Lua 5.4 and LuaJIT (`make test`, `make test-luajit`), without nginx. Each answer is fed
-- to it whole, split at every byte boundary, and one byte at a time, and must give the same
-- exact result every way; then seeded random answers are checked against what built them, and
-- random header blocks against what libcurl and the libcurl transport (src/curl_request.c, src/curl_answer.c) read from the same bytes.
local parser = require "truto.ngx.parser"

local MAX_BODY = 64 * 1024 * 1024

-- A reader over `pieces` (each handed out as it is, or in parts no larger than asked for),
-- then the error `after` ("closed" unless given).
local function reader(pieces, max_body, after)
  local queue, i = {}, 0
  for k = 1, #pieces do queue[k] = pieces[k] end
  local x = { buf = "", pos = 1, max_body = max_body or MAX_BODY }
  function x.recv(_, max)
    assert(max >= 1, "the parser asked for no bytes")
    i = i + 1
    local piece = queue[i]
    if piece == nil then
      i = i - 1
      return nil, after or "closed"
    end
    if #piece > max then
      queue[i] = piece:sub(max + 1)
      i = i - 1
      piece = piece:sub(1, max)
    end
    return piece
  end
  return x
end

-- What read_response gave, as one table, with the bytes left unparsed.
local function outcome(x, method)
  local status, headers, body, keep = parser.read_response(x, method or "GET")
  local rest = x.buf:sub(x.pos)
  if status then return { status = status, headers = headers, body = body, keep = keep, rest = rest } end
  return { err = headers, too_large = body, in_head = keep }
end

local function read(pieces, method, max_body, after)
  return outcome(reader(pieces, max_body, after), method)
end

-- The ways of cutting `text` into pieces: whole, at every byte boundary, a byte at a time.
local function cuts(text)
  local ways = { { text } }
  for k = 1, #text - 1 do ways[#ways + 1] = { text:sub(1, k), text:sub(k + 1) } end
  local bytes = {}
  for k = 1, #text do bytes[k] = text:sub(k, k) end
  ways[#ways + 1] = bytes
  return ways
end

-- Asserts that `text`, however it is cut, gives `expected`.
local function every_cut(text, expected, method, max_body, after)
  for n, pieces in ipairs(cuts(text)) do
    local got = read(pieces, method, max_body, after)
    assert.same(expected, got, ("cut #%d (%d pieces)"):format(n, #pieces))
  end
end

-- A small linear congruential generator, so that a seed gives the same answers on every
-- runtime (math.random differs between Lua 5.4 and LuaJIT).
local function generator(seed)
  local state = seed
  return function(n)
    state = (state * 69069 + 1) % 4294967296 -- exact in a double, too
    return math.floor(state / 65536) % n + 1
  end
end

local function ok(status, headers, body, keep, rest)
  return { status = status, headers = headers, body = body, keep = keep, rest = rest or "" }
end

local function fail(err, too_large, in_head)
  return { err = err, too_large = too_large or false, in_head = in_head or false }
end

describe("truto.ngx.parser", function()
  describe("framing", function()
    it("reads a Content-Length body and keeps an HTTP/1.1 connection", function()
      every_cut("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}",
        ok(200, { ["content-type"] = "application/json", ["content-length"] = "7" }, '{"a":1}', true))
    end)

    it("keeps an HTTP/1.0 connection only when the answer says keep-alive", function()
      every_cut("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", ok(200, { ["content-length"] = "2" }, "hi", false))
      every_cut("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nhi",
        ok(200, { connection = "Keep-Alive", ["content-length"] = "2" }, "hi", true))
      every_cut("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
        ok(200, { connection = "close", ["content-length"] = "2" }, "hi", false))
    end)

    it("reads a body without a length up to the close, and never keeps that connection", function()
      every_cut("HTTP/1.1 200 OK\r\n\r\nhello, world", ok(200, {}, "hello, world", false))
      every_cut("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", ok(200, { ["content-length"] = "0" }, "", true))
    end)

    it("reads chunks with extensions, drops the trailers, and accepts LF-only lines", function()
      every_cut("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n"
        .. "6 ; x=\"y;z\"\r\n world\r\n0;last\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n",
        ok(200, { ["transfer-encoding"] = "chunked" }, "hello world", true))
      every_cut("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\nA\n0123456789\n0\n\n",
        ok(200, { ["transfer-encoding"] = "chunked" }, "0123456789", true))
      every_cut("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ok(200, { ["transfer-encoding"] = "chunked" }, "", true))
    end)

    it("reads chunked whenever Transfer-Encoding names it, before any Content-Length", function()
      every_cut("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\nContent-Length: 99\r\n\r\n2\r\nab\r\n0\r\n\r\n",
        ok(200, { ["transfer-encoding"] = "gzip, Chunked", ["content-length"] = "99" }, "ab", true))
    end)

    it("reads no body for HEAD, 204, 304 and 101, leaving what follows unread", function()
      every_cut("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", ok(200, { ["content-length"] = "100" }, "", true),
        "HEAD")
      every_cut("HTTP/1.1 204 No Content\r\n\r\n", ok(204, {}, "", true))
      every_cut("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", ok(304, { etag = '"x"' }, "", true))
      assert.same(ok(101, { upgrade = "websocket" }, "", false, "frames"),
        read { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nframes" })
    end)

    it("sees bytes past the answer that came with it, and then does not keep the connection", function()
      assert.same(ok(200, { ["content-length"] = "2" }, "hi", false, "HTTP/1.1 200"),
        read { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200" })
      -- bytes not yet received are not looked for
      assert.same(ok(200, { ["content-length"] = "2" }, "hi", true),
        read { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", "HTTP/1.1 200" })
    end)
  end)

  describe("headers", function()
    it("skips 1xx answers (100, 103) and keeps only the final answer's headers", function()
      every_cut("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        .. "HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx", ok(201, { ["content-length"] = "1" }, "x", true))
    end)

    it("lower-cases names, joins repeated ones with \", \" and trims values", function()
      every_cut("HTTP/1.1 200\r\nSet-Cookie: a\r\nset-cookie: b\r\nX-Pad: \t v a l \t\r\nSET-COOKIE: c\r\n"
        .. "X-Colon: a:b\r\nX-Empty:\r\nContent-Length: 0\r\n\r\n",
        ok(200, { ["set-cookie"] = "a, b, c", ["x-pad"] = "v a l", ["x-colon"] = "a:b", ["x-empty"] = "",
          ["content-length"] = "0" }, "", true))
    end)

    it("drops an obs-fold continuation line and any line without a colon", function()
      every_cut("HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\n\tthree\r\nnot a header\r\nX-B: b\r\nContent-Length: 0\r\n\r\n",
        ok(200, { ["x-a"] = "one", ["x-b"] = "b", ["content-length"] = "0" }, "", true))
    end)

    it("refuses a NUL byte in the headers and a status line that is not HTTP/1.x", function()
      every_cut("HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n", fail("a NUL byte in the answer's headers", false, true))
      every_cut("HTTP/2 200\r\n\r\n", fail("not an HTTP/1.x status line", false, true))
      every_cut("ICY 200 OK\r\n\r\n", fail("not an HTTP/1.x status line", false, true))
      every_cut("HTTP/1.1 20 OK\r\n\r\n", fail("not an HTTP/1.x status line", false, true))
    end)

    it("bounds a header block at 256 KiB while it waits for its end", function()
      local big = "HTTP/1.1 200 OK\r\nX-Big: " .. ("x"):rep(300 * 1024) .. "\r\nContent-Length: 0\r\n\r\n"
      local pieces = {}
      for k = 1, #big, 16 * 1024 do pieces[#pieces + 1] = big:sub(k, k + 16 * 1024 - 1) end
      assert.same(fail("the answer's headers are larger than 256 KiB", false, true), read(pieces))
      -- the bound is on what is buffered: a block that arrives in one read is taken
      assert.same(300 * 1024, #read({ big }).headers["x-big"])
      local fits = "HTTP/1.1 200 OK\r\nX-Big: " .. ("x"):rep(200 * 1024) .. "\r\nContent-Length: 0\r\n\r\n"
      pieces = {}
      for k = 1, #fits, 64 * 1024 do pieces[#pieces + 1] = fits:sub(k, k + 64 * 1024 - 1) end
      assert.same(200 * 1024, #read(pieces).headers["x-big"])
      -- trailers too
      local trailers = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: " .. ("t"):rep(300 * 1024)
      pieces = {}
      for k = 1, #trailers, 16 * 1024 do pieces[#pieces + 1] = trailers:sub(k, k + 16 * 1024 - 1) end
      assert.same(fail("the answer's trailers are larger than 256 KiB"), read(pieces))
    end)
  end)

  describe("bad framing and limits", function()
    it("refuses a Content-Length that is not one decimal number", function()
      for _, value in ipairs { "abc", "-1", "1e3", "0x10", "12, 14" } do
        assert.same(fail("bad Content-Length"),
          read { "HTTP/1.1 200 OK\r\nContent-Length: " .. value .. "\r\n\r\n0123456789abcdef" }, value)
      end
      -- two Content-Length lines are joined, and so refused
      every_cut("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Length: 14\r\n\r\n", fail("bad Content-Length"))
    end)

    it("refuses a bad chunk size, a bad chunk end and a chunk-size line past 4 KiB", function()
      every_cut("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", fail("bad chunk size"))
      every_cut("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", fail("bad chunk size"))
      every_cut("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n", fail("bad chunk end"))
      local head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      local line = "1;" .. ("e"):rep(5000) .. "\r\nx\r\n0\r\n\r\n"
      local pieces = { head }
      for k = 1, #line, 1000 do pieces[#pieces + 1] = line:sub(k, k + 999) end
      assert.same(fail("a chunk-size line longer than 4 KiB"), read(pieces))
      -- the bound is on what is buffered: a line that arrives in one read is taken
      assert.same(ok(200, { ["transfer-encoding"] = "chunked" }, "x", true), read { head .. line })
    end)

    it("cuts a body past max_body, however it is framed", function()
      local too_large = fail("response body larger than max_body (10 bytes)", true)
      every_cut("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", too_large, "GET", 10)
      every_cut("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n",
        too_large, "GET", 10)
      every_cut("HTTP/1.1 200 OK\r\n\r\n0123456789a", too_large, "GET", 10)
      every_cut("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
        ok(200, { ["content-length"] = "10" }, "0123456789", true), "GET", 10)
    end)

    it("says how much came when the connection closes early, and passes read errors on", function()
      every_cut("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", fail("connection closed after 3 of 10 bytes"))
      every_cut("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", fail("timeout"), "GET", nil, "timeout")
      every_cut("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", fail("closed"))
      every_cut("HTTP/1.1 200 OK\r\nContent-", fail("closed", false, true))
      assert.same(fail("closed", false, true), read {})
      assert.same(fail("stall", false, true), read({}, "GET", nil, "stall"))
    end)
  end)

  describe("random answers", function()
    local NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
    local VALUE_CHARS = NAME_CHARS .. " :;,=/\"'()\t"

    local function word(rand, chars, min_len, max_len)
      local out = {}
      for k = 1, min_len + rand(max_len - min_len + 1) - 1 do
        local i = rand(#chars)
        out[k] = chars:sub(i, i)
      end
      return table.concat(out)
    end

    -- An answer and what it must parse to (headers as a model of the rules: lower-case names,
    -- trimmed values, repeats joined).
    local function answer(rand)
      local eol = rand(4) == 1 and "\n" or "\r\n"
      local status = ({ 200, 201, 404, 429, 500 })[rand(5)]
      local lines, headers = { "HTTP/1.1 " .. status .. " Reason" }, {}
      for _ = 1, rand(8) - 1 do
        local name = "x-" .. word(rand, NAME_CHARS, 1, 12)
        local value = word(rand, VALUE_CHARS, 0, 40):gsub("^[ \t]+", ""):gsub("[ \t]+$", "")
        local pad = ({ "", " ", "  ", "\t" })[rand(4)]
        lines[#lines + 1] = name .. ":" .. pad .. value .. ({ "", " ", "\t " })[rand(3)]
        local key = name:lower()
        headers[key] = headers[key] and headers[key] .. ", " .. value or value
      end
      local body = word(rand, VALUE_CHARS .. "\r\n", 0, 300)
      local framed
      if rand(2) == 1 then
        lines[#lines + 1] = "Content-Length: " .. #body
        headers["content-length"] = tostring(#body)
        framed = body
      else
        lines[#lines + 1] = "Transfer-Encoding: chunked"
        headers["transfer-encoding"] = "chunked"
        local parts, at = {}, 1
        while at <= #body do
          local n = rand(64)
          local chunk = body:sub(at, at + n - 1)
          local ext = rand(3) == 1 and (";" .. word(rand, NAME_CHARS, 1, 8) .. "=" .. word(rand, NAME_CHARS, 0, 8)) or ""
          parts[#parts + 1] = ("%x"):format(#chunk) .. ext .. eol .. chunk .. eol
          at = at + n
        end
        local trailer = rand(2) == 1 and ("X-Trailer: " .. word(rand, NAME_CHARS, 1, 10) .. eol) or ""
        framed = table.concat(parts) .. "0" .. eol .. trailer .. eol
      end
      local text = table.concat(lines, eol) .. eol .. eol .. framed
      return text, ok(status, headers, body, true)
    end

    it("parse to what built them, cut at random places (seeded)", function()
      for seed = 1, 300 do
        local rand = generator(seed)
        local text, expected = answer(rand)
        local pieces, at = {}, 1
        while at <= #text do
          local n = rand(40)
          pieces[#pieces + 1] = text:sub(at, at + n - 1)
          at = at + n
        end
        assert.same(expected, read(pieces), "seed " .. seed)
        assert.same(expected, read { text }, "seed " .. seed .. ", whole")
      end
    end)
  end)
  describe("against the C transport", function()
    local run = require "spec.helpers.run"

    -- Serves the file DIR/N, as it is, to a request for /N, then closes; ends when no
    -- connection comes for 10 s.
    local SERVER = [==[
local socket = require "socket"
local dir, port = arg[1], tonumber(arg[2])
local server = assert(socket.bind("127.0.0.1", port))
server:settimeout(10)
while true do
  local c = server:accept()
  if not c then break end
  c:settimeout(5)
  local line = c:receive("*l") or ""
  repeat local more = c:receive("*l") until not more or more == ""
  local f = io.open(dir .. "/" .. (line:match("^GET /(%d+) ") or "none"), "rb")
  if f then c:send(f:read("*a")) f:close() end
  c:close()
end
]==]

    -- Header lines of token names (repeats among a few, in any case) and values with
    -- inner blanks, colons and quotes, padded with spaces and tabs.
    local function header_block(rand)
      local names = { "X-Rate", "x-id", "Set-Cookie", "Link", "X-A:B" }
      local lines = { "HTTP/1.1 200 OK" }
      for _ = 1, rand(12) - 1 do
        local name = names[rand(#names)]:match("^[^:]+")
        if rand(3) == 1 then name = name:upper() end
        local value = {}
        for k = 1, rand(30) - 1 do
          local chars = "abcXYZ019 \t:;,=/\"()"
          local i = rand(#chars)
          value[k] = chars:sub(i, i)
        end
        local pads = { "", " ", "\t", "  \t" }
        lines[#lines + 1] = name .. ":" .. pads[rand(4)] .. table.concat(value) .. pads[rand(4)]
      end
      lines[#lines + 1] = "Content-Length: 2"
      lines[#lines + 1] = "Connection: close"
      return table.concat(lines, "\r\n") .. "\r\n\r\n" .. "ok"
    end

    it("reads the same headers as the libcurl transport from seeded random blocks", function()
      local dir, port = run.tmpdir(), run.free_port()
      run.write(dir .. "/server.lua", SERVER)
      local answers = {}
      for seed = 1, 150 do
        answers[seed] = header_block(generator(seed))
        run.write(dir .. "/" .. seed, answers[seed])
      end
      local pid = run.spawn("exec lua5.4 " .. run.quote(dir .. "/server.lua") .. " " .. run.quote(dir) .. " " .. port)
      finally(function() run.kill(pid) end)
      assert.is_true(run.wait_port(port))
      local defaults = require "truto.defaults"
      local curl = require("truto.core").curl { token = "differential", timeout = defaults.timeout,
        connect_timeout = defaults.connect_timeout, max_body = defaults.max_body }
      for seed = 1, 150 do
        local answer, failure = curl:perform { method = "GET", url = ("http://127.0.0.1:%d/%d"):format(port, seed),
          headers = {}, timeout = 5 }
        assert(answer, failure and failure.message)
        local mine = read { answers[seed] }
        assert.same({ status = answer.status, headers = answer.headers, body = answer.body },
          { status = mine.status, headers = mine.headers, body = mine.body }, "seed " .. seed)
      end
      curl:close()
    end)
  end)
end)
