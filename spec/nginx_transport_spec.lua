-- The nginx transport (truto.ngx) on its own, inside a real nginx (LuaJIT), held to the
-- transport contract v2: the exact bytes it puts on the wire, what it returns, what it never
-- does (send twice, wait past its deadline, read a line without bound, log warnings).
--
-- One nginx runs two servers: the client side (/t runs a list of requests through a fresh
-- transport, described by a JSON body) and a scripted raw-TCP server (ngx.req.socket(true)),
-- which logs every request it read, byte for byte, and answers as the named behaviour says.
local socket = require "socket"
local cjson = require "cjson"

local nginx = require "spec.helpers.nginx"

-- The scripted server, inside nginx: one handler per connection, which reads request after
-- request itself (raw socket) and answers as the behaviour in the shared dict says.
local SCRIPT = [==[
local cjson = require "cjson.safe"
local M = {}
local dict = ngx.shared.script
local FILL = string.rep("a", 64 * 1024)

local function log(conn, raw)
  local i = dict:incr("n", 1, 0)
  dict:set("req:" .. i, cjson.encode { conn = conn, raw = raw })
end

local function answer(sock, body, extra)
  return sock:send("HTTP/1.1 200 OK\r\nContent-Length: " .. #body .. "\r\n" .. (extra or "") .. "\r\n" .. body)
end

-- Sends `prefix`, then 64 KiB pieces of "a" (no line end) until `total` bytes or the client
-- closes.
local function flood(sock, prefix, total)
  if not sock:send(prefix) then return end
  local sent = 0
  while sent < total do
    if not sock:send(FILL) then return end
    sent = sent + #FILL
  end
end

local function trickle(sock, prefix, count)
  if not sock:send(prefix) then return end
  for _ = 1, count do
    ngx.sleep(0.5)
    if not sock:send("x") then return end
  end
end

local B = {}
function B.ok(sock, n) answer(sock, "hello " .. n) return true end
function B.close_after_answer(sock) answer(sock, "bye") return false end
function B.drop_second(sock, n)
  if n == 1 then answer(sock, "first") return true end
  return false -- read the request, then close without a byte of an answer
end
function B.head(sock) sock:send("HTTP/1.1 200 OK\r\nContent-Length: 133\r\nX-A: 1\r\n\r\n") return true end
function B.no_content(sock) sock:send("HTTP/1.1 204 No Content\r\nX-A: 2\r\n\r\n") return true end
function B.trailers(sock)
  sock:send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Retry-After\r\n\r\n"
    .. "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nRetry-After: 5\r\n\r\n")
  return true
end
function B.continue(sock)
  sock:send("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
  return true
end
function B.to_close(sock) sock:send("HTTP/1.0 200 OK\r\n\r\nuntil the end") return false end
function B.bare_lf(sock) sock:send("HTTP/1.1 200 OK\nContent-Length: 2\nX-B: 3\n\nok") return true end
function B.hostile_status(sock) flood(sock, "HTTP/1.1 200 OK", 200 * 1024 * 1024) end
function B.hostile_header(sock) flood(sock, "HTTP/1.1 200 OK\r\nX-Big: ", 200 * 1024 * 1024) end
function B.hostile_chunk(sock) flood(sock, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1", 200 * 1024 * 1024) end
function B.hostile_trailer(sock)
  flood(sock, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: ", 200 * 1024 * 1024)
end
function B.trickle_body(sock) trickle(sock, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 24) end
function B.trickle_header(sock) trickle(sock, "HTTP/1.1 200 OK\r\nX-Slow: ", 24) end
function B.trickle_chunked(sock)
  trickle(sock, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n", 24)
end
function B.stall_after_head(sock)
  sock:send("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
  ngx.sleep(1)
  sock:send("late")
end
function B.slow(sock, n) ngx.sleep(0.5) answer(sock, "slow " .. n) return true end
function B.slow2(sock, n) ngx.sleep(2) answer(sock, "slow " .. n) return true end
function B.self_signed(sock) answer(sock, "tls") return true end

function M.serve()
  local behaviour = dict:get("behaviour") or "ok"
  local conn = tonumber(ngx.var.connection)
  local sock = assert(ngx.req.socket(true))
  if behaviour == "no_read" then -- never reads: the client's send must time out
    ngx.sleep(3)
    return
  end
  local head = ngx.req.raw_header()
  local n = 0
  while true do
    n = n + 1
    local length = tonumber(head:lower():match("\r\ncontent%-length:%s*(%d+)")) or 0
    local body = length > 0 and sock:receive(length) or ""
    log(conn, head .. (body or ""))
    behaviour = dict:get("behaviour") or "ok"
    local keep = B[behaviour](sock, n)
    ngx.update_time()
    dict:set("answered:" .. head:match("^%S+ (%S+)"), ngx.now()) -- when the answer was sent
    if not keep then return end
    sock:settimeout(5000)
    local reader = sock:receiveuntil("\r\n\r\n")
    local more = reader()
    if not more then return end
    head = more .. "\r\n\r\n"
  end
end

-- When the answer to the request for ?path= was sent (waits for it), on nginx's clock.
function M.answered()
  for _ = 1, 400 do
    local at = dict:get("answered:" .. ngx.var.arg_path)
    if at then return ngx.say(cjson.encode { at = at }) end
    ngx.sleep(0.05)
  end
  ngx.say("{}")
end

function M.log()
  local out = {}
  for i = 1, dict:get("n") or 0 do out[i] = cjson.decode(dict:get("req:" .. i)) end
  dict:flush_all()
  dict:set("behaviour", ngx.var.arg_behaviour)
  ngx.say(cjson.encode(out))
end

return M
]==]

-- The client side: POST /t with { settings = {...}, requests = { {method, path, headers,
-- body, timeout, reuse, after}, ... }, concurrent = bool, base = "http(s)://..." }.
local CLIENT = [==[
local cjson = require "cjson.safe"
local M = {}

local function rss()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s*(%d+)")
    if kb then return tonumber(kb) end
  end
end

local function outcome(res, err, started)
  ngx.update_time()
  local out = { elapsed = ngx.now() - started }
  if res then
    out.status, out.headers, out.body, out.sends = res.status, res.headers, res.body, res.sends
  else
    out.failure = err
  end
  return out
end

-- Closes the idle connections nginx pools under `name` (connect takes one out, if any).
local function drain(name, port)
  while true do
    local sock = ngx.socket.tcp()
    if not sock:connect("127.0.0.1", port, { pool = name }) then return end
    local reused = sock:getreusedtimes() > 0
    sock:close()
    if not reused then return end
  end
end

function M.run()
  ngx.req.read_body()
  local spec = cjson.decode(ngx.req.get_body_data())
  local settings = spec.settings or {}
  settings.token = settings.token or "tok-123"
  local transport = require("truto.ngx").new(settings)
  local base = spec.base or ("http://127.0.0.1:" .. ngx.var.arg_port)
  if not spec.keep_pool then -- each case starts with no idle connection (the pool names of truto.ngx)
    local port = ngx.var.arg_port
    drain("truto:http:127.0.0.1:" .. port, port)
    drain("truto:https:localhost:" .. port .. ":verify:localhost", port)
    drain("truto:https:localhost:" .. port .. ":noverify:localhost", port)
  end
  local results = {}
  collectgarbage()
  local rss_before = rss()
  local reqs = {}
  for i, r in ipairs(spec.requests) do
    reqs[i] = { method = r.method or "GET", url = base .. (r.path or "/x"), headers = r.headers or {},
      body = r.body_size and string.rep("b", r.body_size) or r.body, timeout = r.timeout, connect_timeout = r.connect_timeout, reuse = r.reuse,
      max_body = r.max_body }
  end
  ngx.update_time()
  local started = ngx.now()
  if spec.concurrent then
    local handles = {}
    for i, req in ipairs(reqs) do handles[i] = transport:start(req) end
    for i, h in ipairs(handles) do
      local res, err = h:wait()
      results[i] = outcome(res, err, started)
    end
  else
    for i, req in ipairs(reqs) do
      if spec.requests[i].after then ngx.sleep(spec.requests[i].after) end
      ngx.update_time()
      local t = ngx.now()
      local res, err = transport:perform(req)
      results[i] = outcome(res, err, t)
    end
  end
  collectgarbage()
  ngx.say(cjson.encode { results = results, rss_before = rss_before, rss_after = rss(),
    started = started, pid = ngx.worker.pid() })
end

-- Concurrent requests: each result with its own elapsed time.
function M.run_concurrent()
  ngx.req.read_body()
  local spec = cjson.decode(ngx.req.get_body_data())
  local settings = spec.settings or {}
  settings.token = "tok-123"
  local transport = require("truto.ngx").new(settings)
  local base = "http://127.0.0.1:" .. ngx.var.arg_port
  ngx.update_time()
  local started = ngx.now()
  local threads = {}
  for i, r in ipairs(spec.requests) do
    threads[i] = ngx.thread.spawn(function()
      local res, err = transport:perform { method = r.method or "GET", url = base .. (r.path or "/x"),
        headers = {}, body = r.body, timeout = r.timeout }
      return outcome(res, err, started)
    end)
  end
  local results = {}
  for i, t in ipairs(threads) do results[i] = select(2, ngx.thread.wait(t)) end
  ngx.say(cjson.encode { results = results })
end

-- Starts a request and returns without waiting for it (a read-ahead left behind): the
-- handle is kept for /carried, another request.
local carried
function M.leave()
  local transport = require("truto.ngx").new { token = "tok-123" }
  carried = transport:start { method = "GET", url = "http://127.0.0.1:" .. ngx.var.arg_port .. "/left", headers = {} }
  carried.transport = transport
  ngx.update_time()
  ngx.say(cjson.encode { left = true, at = ngx.now() })
end

-- wait_any over a slow and a fast request on two connections: returns the fast one; the
-- handler then waits for both, or (?leave=1) only for the fast one.
function M.any()
  local transport = require("truto.ngx").new { token = "tok-123" }
  local base = "http://127.0.0.1:" .. ngx.var.arg_port
  local slow = transport:start { method = "GET", url = base .. "/slow", headers = {} }
  local fast = transport:start { method = "GET", url = ngx.unescape_uri(ngx.var.arg_fast), headers = {} }
  ngx.update_time()
  local started = ngx.now()
  local first = transport:wait_any { slow, fast }
  local out = { first = first, fast_done = fast:done(), slow_done = slow:done() }
  local res, err = fast:wait()
  out.fast = res and res.body or err
  if not ngx.var.arg_leave then
    out.second = transport:wait_any { slow, fast }
    res, err = slow:wait()
    out.slow = res and res.body or err
    out.none = transport:wait_any { slow, fast }
  end
  ngx.update_time()
  out.at = ngx.now()
  out.elapsed = out.at - started
  ngx.say(cjson.encode(out))
end

-- wait_any on a handle of another nginx request (issue 16): handed back at once, and wait()
-- says it is orphaned; the worker never spins.
function M.carried_any()
  ngx.update_time()
  local started = ngx.now()
  local i = carried.transport:wait_any { carried }
  local res, err = carried:wait()
  ngx.update_time()
  ngx.say(cjson.encode { index = i, res = res, err = err, at = ngx.now(), elapsed = ngx.now() - started })
end

function M.carried()
  ngx.update_time()
  local started = ngx.now()
  local res, err = carried:wait()
  ngx.update_time()
  ngx.say(cjson.encode { res = res, err = err, at = ngx.now(), elapsed = ngx.now() - started })
end

return M
]==]

local HTTP = [[
  lua_shared_dict script 8m;
  lua_ssl_trusted_certificate "${prefix}/other-ca.crt";

  server {
    listen 127.0.0.1:${port};
    client_body_buffer_size 1m;
    location = /t { content_by_lua_block { require("truto_client").run() } }
    location = /tc { content_by_lua_block { require("truto_client").run_concurrent() } }
    location = /leave { content_by_lua_block { require("truto_client").leave() } }
    location = /any { content_by_lua_block { require("truto_client").any() } }
    location = /carried { content_by_lua_block { require("truto_client").carried() } }
    location = /carried_any { content_by_lua_block { require("truto_client").carried_any() } }
    location = /log { content_by_lua_block { require("truto_script").log() } }
    location = /answered { content_by_lua_block { require("truto_script").answered() } }
  }

  server {
    listen 127.0.0.1:${script_port};
    listen 127.0.0.1:${tls_port} ssl;
    ssl_certificate "${prefix}/self.crt";
    ssl_certificate_key "${prefix}/self.key";
    lua_socket_buffer_size 4k;
    client_max_body_size 0;
    location / { content_by_lua_block { require("truto_script").serve() } }
  }
]]

local server = {}

local function http_request(method, path, body)
  local c = assert(socket.connect("127.0.0.1", server.port))
  c:settimeout(60)
  c:send(("%s %s HTTP/1.0\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"):format(method, path, #(body or ""), body or ""))
  local text = c:receive("*a")
  c:close()
  local status = tonumber(text:match("^HTTP/1%.%d (%d+)"))
  return status, text:match("\r\n\r\n(.*)$")
end

-- Sets the scripted server's behaviour and empties its log.
local function behave(name)
  local status = http_request("GET", "/log?behaviour=" .. name)
  assert.equal(200, status)
end

-- Everything the scripted server read since the last behave().
local function wire()
  local _, text = http_request("GET", "/log?behaviour=ok")
  return cjson.decode(text)
end

-- When the scripted server sent its answer to the request for `path` (nginx's clock, the one the
-- handlers' `at` is on): waits until it has.
local function answered(path)
  local status, text = http_request("GET", "/answered?path=" .. path)
  assert.equal(200, status, text)
  return assert(cjson.decode(text).at, "no answer to " .. path .. " was sent")
end

-- Runs spec (a table) through /t; returns the decoded result and the wire.
local function run(behaviour, spec, port)
  behave(behaviour)
  local status, text = http_request("POST", "/t?port=" .. (port or server.script_port), cjson.encode(spec))
  assert.equal(200, status, text)
  local value = cjson.decode(text)
  return value, wire()
end

local function the_only(value)
  assert.equal(1, #value.results)
  return value.results[1]
end

describe("the nginx transport (contract v2) #nginx", function()
  setup(function()
    server.nginx = nginx.start { http = HTTP, files = { ["truto_script.lua"] = SCRIPT, ["truto_client.lua"] = CLIENT },
      certs = { self = "localhost", ["other-ca"] = "other" }, ports = { "script_port", "tls_port" } }
    server.port, server.script_port, server.tls_port = server.nginx.port, server.nginx.ports.script_port,
      server.nginx.ports.tls_port
  end)

  teardown(function()
    if server.nginx then server.nginx:stop() end
  end)

  -- error.log: nothing at all but nginx's own start-up notices (no warnings, no errors).
  before_each(function() server.nginx:mark() end)
  after_each(function() assert.same({}, server.nginx:error_log_lines()) end)

  it("puts exactly the request asked for on the wire, adding only Host, Authorization, Accept-Encoding and Content-Length", function()
    local value, log = run("ok", { requests = {
      { method = "POST", path = "/unified/x/%2E%2E/a?b=%20c", headers = { "Accept: application/json", "X-Team: it" },
        body = '{"a":1}' },
      { method = "GET", path = "/y/./z", headers = { "User-Agent: ua/1" } },
      { method = "PUT", path = "/empty", headers = {} },
      { method = "PROPFIND", path = "/odd", headers = {}, body = "" },
    } })
    local host = "127.0.0.1:" .. server.script_port
    assert.same({
      "POST /unified/x/%2E%2E/a?b=%20c HTTP/1.1\r\nHost: " .. host .. "\r\nAuthorization: Bearer tok-123\r\n"
        .. "Accept-Encoding: gzip\r\nContent-Length: 7\r\nAccept: application/json\r\nX-Team: it\r\n\r\n{\"a\":1}",
      "GET /y/./z HTTP/1.1\r\nHost: " .. host .. "\r\nAuthorization: Bearer tok-123\r\n"
        .. "Accept-Encoding: gzip\r\nUser-Agent: ua/1\r\n\r\n",
      "PUT /empty HTTP/1.1\r\nHost: " .. host .. "\r\nAuthorization: Bearer tok-123\r\n"
        .. "Accept-Encoding: gzip\r\nContent-Length: 0\r\n\r\n",
      "PROPFIND /odd HTTP/1.1\r\nHost: " .. host .. "\r\nAuthorization: Bearer tok-123\r\n"
        .. "Accept-Encoding: gzip\r\nContent-Length: 0\r\n\r\n",
    }, { log[1].raw, log[2].raw, log[3].raw, log[4].raw })
    -- one keep-alive connection for all four
    assert.equal(log[1].conn, log[4].conn)
    for i, r in ipairs(value.results) do
      assert.same({ status = 200, body = "hello " .. i, sends = 1, headers = { ["content-length"] = tostring(#r.body) } },
        { status = r.status, body = r.body, sends = r.sends, headers = r.headers })
    end
  end)

  it("never sends a write twice: a pooled connection the server had closed is a stale failure, sent once", function()
    -- 11 idle connections in the pool, each of which the server drops after reading the next request
    local concurrent = {}
    for i = 1, 11 do concurrent[i] = { path = "/warm" .. i } end
    behave("drop_second")
    local status, text = http_request("POST", "/t?port=" .. server.script_port,
      cjson.encode { concurrent = true, requests = concurrent, settings = { pool_size = 16 } })
    assert.equal(200, status, text)
    local warm = wire()
    assert.equal(11, #warm)
    -- a new transport, the same pool (nginx's, per worker): one create, no retries of its own
    local value, log = run("drop_second", { keep_pool = true, settings = { pool_size = 16 }, requests = {
      { method = "POST", path = "/users", headers = { "Content-Type: application/json" }, body = "{}" } } })
    local r = the_only(value)
    assert.same({ kind = "transport", sends = 1, stale = true, too_large = false }, {
      kind = r.failure.kind, sends = r.failure.sends, stale = r.failure.stale, too_large = r.failure.too_large })
    assert.matches("pooled connection the server had closed", r.failure.message)
    assert.equal(1, #log) -- one POST on the wire, not 11
    assert.matches("^POST /users ", log[1].raw)
  end)

  it("sends reuse = false on a fresh connection, and does not pool it", function()
    local value, log = run("ok", { requests = {
      { path = "/a" }, { path = "/b", reuse = false }, { path = "/c" },
    } })
    assert.equal(3, #value.results)
    assert.equal(log[1].conn, log[3].conn) -- /a's connection, idle in the pool
    assert.not_equal(log[1].conn, log[2].conn)
    for _, r in ipairs(value.results) do assert.equal(200, r.status) end
  end)

  it("a server that closed after reading, or after an answer: the next request goes on a new connection", function()
    -- with reuse = false the POST goes on a new connection, which the server answers as its first
    local value, log = run("drop_second", { requests = { { path = "/a" }, { method = "POST", path = "/b", reuse = false } } })
    assert.same({ 200, 200 }, { value.results[1].status, value.results[2].status })
    assert.equal(2, #log)
    assert.not_equal(log[1].conn, log[2].conn)
    -- a close nginx saw while the connection was idle takes it out of the pool: a new one
    local v2, log2 = run("close_after_answer", { requests = { { path = "/a" }, { method = "DELETE", path = "/b", after = 0.1 } } })
    assert.same({ 200, 200 }, { v2.results[1].status, v2.results[2].status })
    assert.equal(2, #log2)
    assert.not_equal(log2[1].conn, log2[2].conn)
  end)

  it("returns HEAD at once with status and headers, and 204 and 1xx without a body", function()
    local value = run("head", { requests = { { method = "HEAD", path = "/h", timeout = 5 }, { method = "HEAD", path = "/h2" } } })
    local r = value.results[1]
    assert.same({ status = 200, body = "", sends = 1, headers = { ["content-length"] = "133", ["x-a"] = "1" } },
      { status = r.status, body = r.body, sends = r.sends, headers = r.headers })
    assert.is_true(r.elapsed < 1, "HEAD waited for a body")
    assert.equal(200, value.results[2].status) -- and the connection stayed usable
    value = run("no_content", { requests = { { method = "DELETE", path = "/d" }, { path = "/e" } } })
    assert.same({ 204, "", { ["x-a"] = "2" } }, { value.results[1].status, value.results[1].body, value.results[1].headers })
    assert.equal(204, value.results[2].status)
    value = run("continue", { requests = { { method = "POST", path = "/p", body = "x" } } })
    assert.same({ 201, "ok" }, { value.results[1].status, value.results[1].body })
  end)

  it("never merges trailers into headers", function()
    local value = run("trailers", { requests = { { path = "/t" }, { path = "/t2" } } })
    local r = value.results[1]
    assert.same({ status = 200, body = "hello world", headers = { ["transfer-encoding"] = "chunked", trailer = "Retry-After" } },
      { status = r.status, body = r.body, headers = r.headers })
    assert.equal("hello world", value.results[2].body) -- the trailers were consumed, the connection reused
  end)

  it("reads bodies framed by the connection's end, and bare LF line ends", function()
    local value = run("to_close", { requests = { { path = "/a" } } })
    assert.same({ 200, "until the end" }, { value.results[1].status, value.results[1].body })
    -- max_body holds there too: 13 bytes are more than 12
    value = run("to_close", { requests = { { path = "/a", max_body = 12 } } })
    assert.same({ kind = "transport", too_large = true, message = "reading the answer: response body larger than max_body (12 bytes)" },
      { kind = value.results[1].failure.kind, too_large = value.results[1].failure.too_large,
        message = value.results[1].failure.message })
    value = run("to_close", { requests = { { path = "/a", max_body = 13 } } })
    assert.equal("until the end", value.results[1].body)
    value = run("bare_lf", { requests = { { path = "/a" } } })
    assert.same({ 200, "ok", { ["content-length"] = "2", ["x-b"] = "3" } },
      { value.results[1].status, value.results[1].body, value.results[1].headers })
  end)

  for _, case in ipairs {
    { "hostile_status", "the answer's headers are larger than 256 KiB" },
    { "hostile_header", "the answer's headers are larger than 256 KiB" },
    { "hostile_chunk", "a chunk%-size line longer than 4 KiB" },
    { "hostile_trailer", "the answer's trailers are larger than 256 KiB" },
  } do
    it("bounds every line while reading it: " .. case[1], function()
      local value = run(case[1], { requests = { { path = "/x", timeout = 20 } } })
      local r = the_only(value)
      assert.equal("transport", r.failure.kind)
      assert.matches(case[2], r.failure.message)
      assert.equal(1, r.failure.sends)
      assert.is_true(r.elapsed < 5, "it read on for " .. r.elapsed .. " s")
      -- the worker did not take in the 200 MB (it would be hundreds of MB)
      assert.is_true(value.rss_after - value.rss_before < 16 * 1024,
        ("worker RSS %d kB -> %d kB"):format(value.rss_before, value.rss_after))
    end)
  end

  for _, case in ipairs { "trickle_body", "trickle_header", "trickle_chunked" } do
    it("keeps the timeout as a deadline against a server trickling bytes: " .. case, function()
      local value = run(case, { requests = { { path = "/x", timeout = 2 } } })
      local r = the_only(value)
      assert.equal("timeout", r.failure.kind)
      assert.equal(1, r.failure.sends)
      assert.matches("timed out %(2 s%)", r.failure.message)
      assert.is_true(r.elapsed >= 1.9 and r.elapsed < 3, "stopped after " .. r.elapsed .. " s")
    end)
  end

  it("takes read_timeout: no byte for that long ends the exchange", function()
    local value = run("stall_after_head", { settings = { read_timeout = 0.3 }, requests = { { path = "/x", timeout = 5 } } })
    local r = the_only(value)
    assert.equal("timeout", r.failure.kind)
    assert.matches("no data for 0.3 s %(read_timeout%)", r.failure.message)
    assert.is_true(r.elapsed >= 0.25 and r.elapsed < 0.9, "stopped after " .. r.elapsed .. " s")
    -- without it, the whole timeout is the only limit: the late body arrives
    value = run("stall_after_head", { requests = { { path = "/x", timeout = 5 } } })
    assert.equal("late", the_only(value).body)
  end)

  it("takes send_timeout: a server that does not read ends the send", function()
    local value = run("no_read", { settings = { send_timeout = 0.3 },
      requests = { { method = "POST", path = "/x", body_size = 16 * 1024 * 1024, timeout = 10 } } })
    local r = the_only(value)
    assert.equal("timeout", r.failure.kind)
    assert.equal(1, r.failure.sends)
    assert.matches("^sending the request", r.failure.message)
    assert.is_true(r.elapsed < 1.5, "stopped after " .. r.elapsed .. " s")
  end)

  it("takes pool_size and backlog: connections capped, the rest wait or fail unsent", function()
    behave("slow")
    local status, text = http_request("POST", "/tc?port=" .. server.script_port, cjson.encode {
      settings = { pool_size = 1, backlog = 1, connect_timeout = 5 },
      requests = { { path = "/1" }, { path = "/2" }, { path = "/3" } } })
    assert.equal(200, status, text)
    local results = cjson.decode(text).results
    local log = wire()
    assert.equal(200, results[1].status)
    assert.equal(200, results[2].status) -- waited in the backlog for /1's connection
    assert.same({ kind = "transport", sends = 0 }, { kind = results[3].failure.kind, sends = results[3].failure.sends })
    assert.matches("too many waiting connect operations", results[3].failure.message)
    assert.is_true(results[3].elapsed < 0.3)
    assert.equal(2, #log)
    assert.equal(log[1].conn, log[2].conn) -- one connection at a time
    assert.is_true(results[2].elapsed >= 0.9, "the second did not wait: " .. results[2].elapsed)
  end)

  it("takes keepalive_timeout: an idle connection leaves the pool after it", function()
    local _, log = run("ok", { settings = { keepalive_timeout = 0.2 }, requests = {
      { path = "/a" }, { path = "/b", after = 0.5 } } })
    assert.not_equal(log[1].conn, log[2].conn)
    _, log = run("ok", { requests = { { path = "/a" }, { path = "/b", after = 0.5 } } })
    assert.equal(log[1].conn, log[2].conn)
  end)

  -- The slow answer (slow2) is sent 2 s after the request arrives: a handler that waited for it
  -- would finish after it was sent, whatever the load; these compare the times nginx recorded.
  it("a request left behind does not hold its handler's response, nor fail oddly in another request", function()
    behave("slow2")
    local status, text = http_request("GET", "/leave?port=" .. server.script_port)
    assert.equal(200, status)
    local left = cjson.decode(text)
    assert.is_true(left.left)
    -- ... and another request waiting for it learns at once that it was cut
    status, text = http_request("GET", "/carried")
    assert.equal(200, status)
    local value = cjson.decode(text)
    assert.same({ kind = "transport", sends = 1, orphaned = true, stale = false, too_large = false,
      message = "reading the answer: the request was started in another nginx request (its connection belongs to that one)" },
      value.err)
    local answer_sent = answered("/left")
    assert.is_true(left.at < answer_sent, "the response waited for the request left behind")
    assert.is_true(value.at < answer_sent, "the other request waited for the answer")
    -- the request was on the wire (start sends at once)
    local log = wire()
    assert.equal(1, #log)
    assert.matches("^GET /left ", log[1].raw)
  end)

  it("wait_any on a handle of another request hands it back at once (orphaned), and the worker keeps answering", function()
    behave("slow2")
    local status = http_request("GET", "/leave?port=" .. server.script_port)
    assert.equal(200, status)
    local text
    status, text = http_request("GET", "/carried_any")
    assert.equal(200, status)
    local value = cjson.decode(text)
    assert.equal(1, value.index)
    assert.is_true(value.err.orphaned)
    assert.is_true(value.at < answered("/left"), "wait_any waited for the answer")
    status, text = http_request("GET", "/leave?port=" .. server.script_port) -- the worker answers
    assert.same({ 200, true }, { status, cjson.decode(text).left })
  end)

  it("wait_any gives the first answer to arrive, and leaves no thread behind", function()
    -- the fast request goes to the client server's /log, which answers at once
    local fast = "http://127.0.0.1:" .. server.port .. "/log%3Fbehaviour%3Dslow2"
    behave("slow2")
    local status, text = http_request("GET", "/any?port=" .. server.script_port .. "&fast=" .. fast)
    assert.equal(200, status, text)
    local value = cjson.decode(text)
    assert.same({ first = 2, fast_done = true, slow_done = false, second = 1, slow = "slow 1" },
      { first = value.first, fast_done = value.fast_done, slow_done = value.slow_done, second = value.second,
        slow = value.slow })
    assert.is_nil(value.none)
    assert.is_true(value.elapsed >= 1.9 and value.elapsed < 3, value.elapsed)
    -- left after the first: the response does not wait for the slow one
    behave("slow2")
    status, text = http_request("GET", "/any?leave=1&port=" .. server.script_port .. "&fast=" .. fast)
    assert.equal(200, status, text)
    value = cjson.decode(text)
    assert.equal(2, value.first)
    assert.is_true(value.at < answered("/slow"), "the response waited for the slow request")
  end)

  it("refuses bad settings and requests, naming them", function()
    local status, text = http_request("POST", "/t?port=1", cjson.encode { settings = { pool_size = 0.5 }, requests = {} })
    assert.equal(500, status, text)
    local log = table.concat(server.nginx:error_log_lines(), "\n")
    assert.matches("bad argument #1 to 'new' %(option 'pool_size': positive integer expected%)", log)
    server.nginx:mark() -- an expected error line
  end)

  it("keeps verified and unverified TLS connections apart, and hints at lua_ssl_trusted_certificate", function()
    local base = "https://localhost:" .. server.tls_port
    -- unverified first: its connection goes to the pool ...
    local value, log = run("ok", { base = base, settings = { verify_tls = false }, requests = { { path = "/a" } } }, server.tls_port)
    assert.equal(200, the_only(value).status)
    assert.equal(1, #log)
    -- ... and a verifying transport must not pick it up
    value, log = run("ok", { base = base, requests = { { path = "/b" } } }, server.tls_port)
    local r = the_only(value)
    assert.equal("transport", r.failure.kind)
    assert.equal(0, r.failure.sends)
    assert.matches("certificate", r.failure.message)
    assert.matches("lua_ssl_trusted_certificate", r.failure.message)
    assert.equal(0, #log)
  end)
end)
