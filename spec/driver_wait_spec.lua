-- One driver for every wait (issue 16): a single call's backoff, Retry-After wait or rate hold
-- waits in its transport (curl: transport:pause, in curl_multi_poll), so the answers of other
-- requests in flight keep being read meanwhile, and SIGINT ends the wait at once.
local h = require "spec.helpers.client"
local tr = require "truto.transport"
local socket = require "socket"
local mock = h.mock

-- A one-shot HTTP server in a child lua5.4: answers one request with a body of `size` bytes
-- (far more than the socket buffers hold, so it can only finish sending while the client
-- reads), then writes to `log` the time it finished and how many requests it saw. Returns
-- its URL and the log's path.
local function big_answer_server(size)
  local script, log, port_file = os.tmpname(), os.tmpname(), os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(string.format([[
local socket = require "socket"
local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
local pf = assert(io.open(%q, "w")) pf:write(port) pf:close()
server:settimeout(10)
local conn = assert(server:accept())
conn:settimeout(10)
local requests = 0
repeat local line = conn:receive("*l") until line == "" or line == nil
requests = requests + 1
local body = '"' .. string.rep("x", %d - 2) .. '"'
assert(conn:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body
  .. "\r\nConnection: close\r\n\r\n" .. body))
local finished = socket.gettime()
conn:settimeout(0.5)
while conn:receive("*l") do requests = requests + 1 end
local lf = assert(io.open(%q, "w")) lf:write(string.format("%%.3f %%d", finished, requests)) lf:close()
]], port_file, size, log))
  f:close()
  os.execute("lua5.4 " .. script .. " >/dev/null 2>&1 &")
  local port
  for _ = 1, 100 do
    local pf = io.open(port_file)
    port = pf and tonumber(pf:read("*a"))
    if pf then pf:close() end
    if port then break end
    socket.sleep(0.05)
  end
  os.remove(port_file)
  os.remove(script)
  return "http://127.0.0.1:" .. assert(port, "the big-answer server did not start"), log
end

local function read_log(log)
  for _ = 1, 100 do
    local f = io.open(log)
    local text = f and f:read("*a") or ""
    if f then f:close() end
    local finished, requests = text:match("^(%S+) (%d+)$")
    if finished then
      os.remove(log)
      return tonumber(finished), tonumber(requests)
    end
    socket.sleep(0.05)
  end
  error("the big-answer server wrote no log")
end

describe("a single call's wait", function()
  it("keeps reading a request in flight: its 24 MB answer arrives during Retry-After waits, once", function()
    mock.reset()
    local url, log = big_answer_server(24 * 1024 * 1024)
    local c = h.client { transport = "curl" }
    local t = tr.pick(c._transports)
    local handle = t:start { method = "GET", headers = {}, url = url .. "/big", timeout = 30 }
    -- three 429s with Retry-After: 1, then the answer: the call waits about 3 s in all
    local org = assert(c:get_organization("org-1", { integrated_account_id = "flaky-429-3" }))
    local returned = socket.gettime()
    assert.equal("org-1", org.id)
    local answer = assert(handle:wait())
    assert.equal(200, answer.status)
    assert.equal(24 * 1024 * 1024, #answer.body)
    assert.equal(1, answer.sends)
    local finished, requests = read_log(log)
    assert.equal(1, requests)
    -- the server finished sending while the call still waited, not once it had returned
    assert.is_true(finished < returned - 0.5, string.format("finished %.3f s before the call returned",
      returned - finished))
    c:close()
  end)
end)

-- Runs `chunk` in a child lua5.4 (the build on its cpath, the mock's URL and token in `URL`
-- and `TOKEN`), sends it SIGINT after `after` s; returns what it wrote to stdout and stderr.
local function interrupted_child(chunk, after)
  local m = h.server()
  local script, out = os.tmpname(), os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write('package.cpath = "build/?.so;" .. package.cpath; package.path = "build/?.lua;" .. package.path\n',
    string.format("local URL, TOKEN = %q, %q\n", m.url, m.token), chunk)
  f:close()
  os.execute(string.format("lua5.4 %s >%s 2>&1 & pid=$!; sleep %s; kill -INT $pid; wait $pid", script, out,
    after))
  local o = assert(io.open(out))
  local text = o:read("*a")
  o:close()
  os.remove(out)
  os.remove(script)
  return text
end

describe("SIGINT", function()
  it("ends a single call's rate hold at once: the call returns kind interrupted", function()
    mock.reset()
    -- one request a day for this account: the second call is held until the mock's window (a
    -- UTC day) ends, far longer than the signal comes
    mock.limits { accounts = { ["acct-small@7"] = { requests = 1, per = 86400 } } }
    -- the call runs in a coroutine: lua5.4's SIGINT hook is set on the main thread, so the
    -- call's own answer is seen before the hook stops the script
    local text = interrupted_child([[
local truto, core = require "truto", require "truto.core"
local c = truto.new { token = TOKEN, base_url = URL, transport = "curl", max_retry_wait = 100000 }
assert(c:get_organization("org-1", { integrated_account_id = "acct-small@7" }))
local t0 = core.now()
coroutine.wrap(function()
  local value, err = c:get_organization("org-1", { integrated_account_id = "acct-small@7" })
  io.write(string.format("%.3f %s %s\n", core.now() - t0, tostring(value), err and err.kind))
  io.flush()
end)()
]], 1.0)
    mock.limits { accounts = {} }
    local elapsed, value, kind = text:match("(%S+) (%S+) (%S+)\n")
    assert.equal("nil", value, text)
    assert.equal("interrupted", kind, text)
    assert.is_true(tonumber(elapsed) < 5, text)
  end)

  it("ends transport:pause at once, and pause drives nothing it must not (no request in flight)", function()
    local text = interrupted_child([[
local truto, core, tr = require "truto", require "truto.core", require "truto.transport"
local c = truto.new { token = TOKEN, base_url = URL, transport = "curl" }
local t = tr.pick(c._transports)
local t0 = core.now()
local short = { t:pause(0.2) }
local t1 = core.now()
coroutine.wrap(function()
  local ok, why = t:pause(30)
  io.write(string.format("%.3f %s %.3f %s %s\n", t1 - t0, tostring(short[1]), core.now() - t1, tostring(ok),
    tostring(why)))
  io.flush()
end)()
]], 1.0)
    local short, short_ok, elapsed, ok, why = text:match("(%S+) (%S+) (%S+) (%S+) (%S+)\n")
    assert.is_true(tonumber(short) >= 0.2, text)
    assert.equal("true", short_ok, text)
    assert.equal("false", ok, text)
    assert.equal("interrupted", why, text)
    assert.is_true(tonumber(elapsed) < 5, text)
  end)
end)
