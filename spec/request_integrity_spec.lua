-- Request integrity beyond the wire cases: what the client refuses before
-- anything is sent, error objects of one shape on every path, and the
-- environment (token, proxies) read safely.
local truto = require "truto"
local h = require "spec.helpers.client"
local wire = require "spec.helpers.wire"
local mock = h.mock

local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected a raise")
  return err
end

local function message(fn, ...)
  return (tostring(raised(fn, ...)):gsub("^[^:]*:%d+: ", ""))
end

-- Runs a Lua chunk in a new process of this runtime, with `env` prepended
-- to its command line; returns what it printed.
local function run_lua(env, chunk)
  -- the sanitizer build needs its own host: plain Lua 5.4 uses build/, as
  -- the command-line specs do
  local jit = rawget(_G, "jit") ~= nil
  local build = jit and os.getenv("TRUTO_BUILD") or "build"
  local lua = jit and "luajit" or "lua5.4"
  local cmd = string.format("env %s %s -e %q 2>&1", env, lua,
    string.format("package.path = %q; package.cpath = %q; %s", build .. "/?.lua;" .. package.path,
      build .. "/?.so;" .. package.cpath, chunk))
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

describe("options refused at new()", function()
  local function new(opts)
    opts.token = opts.token or "t"
    opts.base_url = opts.base_url or "http://127.0.0.1:9"
    return truto.new(opts)
  end

  it("refuse a host with junk after the port, and ports out of range", function()
    assert.equal([[bad argument #1 to 'new' (base_url has an invalid port "18501.evil.example")]],
      message(new, { base_url = "http://127.0.0.1:18501.evil.example" }))
    assert.equal([[bad argument #1 to 'new' (base_url has an invalid port "70000")]],
      message(new, { base_url = "http://127.0.0.1:70000" }))
    assert.equal([[bad argument #1 to 'new' (base_url has an invalid host "bad_-.example")]],
      message(new, { base_url = "https://bad_-.example" }))
  end)

  it("refuse numbers that are not finite or out of range", function()
    assert.equal("bad argument #1 to 'new' (option 'timeout': number of seconds > 0 and <= 2000000 expected, got 1e+300)",
      message(new, { timeout = 1e300 }))
    assert.equal("bad argument #1 to 'new' (option 'max_retry_wait': number of seconds from 0 to 2000000 expected, got inf)",
      message(new, { max_retry_wait = math.huge }))
    local err = raised(new, { rate_limit = { requests = 1, per = math.huge } })
    assert.is_string(err) -- as luaL_argerror raises it
    assert.equal("option rate_limit.per: seconds > 0 and at most 86400 expected, got inf", err:match("%((.*)%)$"))
  end)

  it("say why a string option is refused", function()
    assert.equal("bad argument #1 to 'new' (option 'user_agent': must not contain CR, LF or NUL)",
      message(new, { user_agent = "a\r\nX-Evil: 1" }))
  end)

  it("check a token from TRUTO_API_TOKEN for CR and LF like the option", function()
    local out = run_lua([[TRUTO_API_TOKEN="$(printf 'abc\r\nX-Evil: 1')"]],
      [[local ok, e = pcall(require("truto").new, { base_url = "http://127.0.0.1:9" }) io.write(tostring(e))]])
    assert.matches("bad argument #1 to 'new' %(TRUTO_API_TOKEN must not contain CR, LF or NUL%)", out)
    assert.is_nil(out:find("abc", 1, true))
  end)

  it("name configure in configure's errors", function()
    assert.equal("bad argument #1 to 'configure' (table expected, got string)", message(truto.configure, "x"))
  end)
end)

describe("error objects", function()
  before_each(function() mock.reset() end)

  it("raise a structured error for a call after close(), with no file:line", function()
    local client = h.client()
    client:close()
    local err = raised(client.get_organization, client, "org-1", { integrated_account_id = "acct-small" })
    assert.is_true(truto.is_error(err))
    assert.equal("closed", err.kind)
    assert.equal("truto: closed: the client is closed (client:close() was called)", tostring(err))
    assert.equal(0, #mock.requests())
  end)

  it("give on_retry a well-formed error object for HTTP retries", function()
    local infos = {}
    local client = h.client { sleep = function() end, on_retry = function(i) infos[#infos + 1] = i end }
    assert(client:get_organization("org-1", { integrated_account_id = "flaky-500-1" }))
    assert.equal(1, #infos)
    local e = infos[1].error
    assert.is_true(truto.is_error(e))
    assert.same({ "http", 500, 1 }, { e.kind, e.status, infos[1].attempt })
    assert.equal("GET", e.method)
  end)
end)

describe("proxies from the environment", function()
  local server = wire.start()

  it("are not used for loopback http:// calls (the token would cross in clear)", function()
    wire.script {}
    -- the proxy is the wire server itself: a proxied request would arrive
    -- with an absolute URL in its request line
    local out = run_lua(string.format("http_proxy=%s HTTP_PROXY=%s ALL_PROXY=%s", server.url, server.url, server.url),
      string.format([[local c = require("truto").new { token = "t", base_url = "http://127.0.0.1:%d" }
        io.write(c:request({ path = "/direct" }).status)]], server.port))
    assert.equal("200", out)
    assert.equal("GET /direct HTTP/1.1", wire.log()[1].line)
  end)

  it("are used when named, and never with proxy = false", function()
    wire.script {}
    local target = "http://127.0.0.1:9" -- closed: only a proxy can answer
    local via = truto.new { token = "t", base_url = target, proxy = server.url }
    assert.equal(200, via:request({ path = "/proxied" }).status)
    assert.equal("GET http://127.0.0.1:9/proxied HTTP/1.1", wire.log()[1].line)
    local direct = truto.new { token = "t", base_url = target, proxy = false, max_retries = 0 }
    local res, err = direct:request { path = "/x" }
    assert.is_nil(res)
    assert.equal("transport", err.kind)
  end)
end)
