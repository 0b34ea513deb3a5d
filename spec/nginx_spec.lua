-- lua-truto inside a real nginx: the handlers of examples/openresty.lua behind
-- examples/nginx.conf-like locations, on the LuaJIT build, against the mock Truto server,
-- checked over HTTP. Every call runs on both transports (?transport=ngx: cosockets;
-- ?transport=curl: libcurl, blocking the worker) and must give the same answer.
--
-- The LuaJIT build is TRUTO_NGINX_BUILD, else build-luajit (the one `make test-luajit`
-- tests); `make LUA=luajit` brings it up to date first, whichever Lua runs the specs.
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local mock = require "spec.helpers.mock"
local tls = require "spec.helpers.tls"
local fixtures = require "spec.mock.truto_mock.fixtures"

local run = require "spec.helpers.run"
local nginx = require "spec.helpers.nginx"

local ROOT = run.ROOT

-- Helpers run inside nginx by /check?name=... (written to the prefix as truto_checks.lua).
local CHECKS = [==[
local truto = require "truto"
local cjson = require "cjson.safe"
local M = {}
local BASE = os.getenv("TRUTO_BASE_URL")
local ACCOUNT = { integrated_account_id = "acct-small" }

local function new(kind, opts)
  local o = { transport = kind, max_retries = 0 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return truto.new(o)
end

local function describe_error(err)
  return { kind = err.kind, status = err.status, message = err.message, attempts = err.attempts }
end

-- The users of acct-small through the module's own functions (the default client).
function M.module_users()
  local ids = {}
  for user in truto.users(ACCOUNT) do ids[#ids + 1] = user.id end
  return { count = #ids, ids = ids }
end

-- Failures of every kind, on the transport asked for.
function M.faults(kind)
  local out = {}
  local function try(name, opts, account)
    local org, err = new(kind, opts):get_organization("org-1", { integrated_account_id = account })
    out[name] = org and { ok = org.id } or describe_error(err)
    if out[name].kind and out[name].kind ~= "http" then out[name].message = nil end -- wording differs
  end
  try("not_found", nil, "no-such-account")
  try("blocked", nil, "fault-503")
  try("remote", nil, "fault-remote")
  try("malformed", nil, "fault-malformed")
  try("truncated", nil, "fault-truncated")
  try("too_large", nil, "fault-huge-length")
  try("closed", nil, "fault-close")
  try("slow", { timeout = 0.5 }, "fault-slow")
  try("over_max_body", { max_body = 100 }, "acct-small") -- 302 bytes once inflated
  try("flaky", { max_retries = 1, sleep = function() end }, "flaky-500-1")
  try("refused", { base_url = "http://127.0.0.1:9" }, "acct-small")
  return out
end

-- Every string reachable from v (tables, keys, metatables), for the token checks.
local function strings(v, out, seen)
  if type(v) == "string" then
    out[#out + 1] = v
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      strings(k, out, seen)
      strings(x, out, seen)
    end
    strings(getmetatable(v), out, seen)
  end
  return out
end

function M.token()
  local secret = "s3cret-" .. ngx.worker.pid() .. "-token"
  local client = truto.new { token = secret, transport = "ngx", max_retries = 0 }
  local t = client._transports.made.ngx -- the client's nginx transport (made at new: named outright)
  local req = t:start { method = "GET", headers = {},
    url = BASE .. "/unified/user-directory/organizations/org-1?integrated_account_id=acct-small" }
  local reachable = strings({ client, t, req }, {}, {})
  local status = req:wait().status
  local _, http_err = client:get_organization("org-1", ACCOUNT)
  local _, transport_err = truto.new { token = secret, transport = "ngx", base_url = "http://127.0.0.1:9",
    max_retries = 0 }:get_organization("org-1", ACCOUNT)
  local leaks = 0
  for _, s in ipairs(strings({ reachable, http_err, transport_err, tostring(http_err), tostring(transport_err),
    tostring(t), tostring(req), tostring(client) }, {}, {})) do
    if s:find(secret, 1, true) then leaks = leaks + 1 end
  end
  return { leaks = leaks, strings = #reachable, status = status, http_status = http_err.status,
    transport_kind = transport_err.kind, secret = secret }
end

-- Several accounts at once (wait_any), and read-ahead with a loop left early.
function M.many()
  local counts = {}
  for _, account in truto.new { transport = "ngx" }:users {
    integrated_account_id = { "acct-small@100", "acct-empty-page@100", "acct-nulls@100" } } do
    counts[account] = (counts[account] or 0) + 1
  end
  return counts
end

-- One account on Retry-After while another is read (the fan-out driver).
function M.fanout()
  local counts = {}
  for _, account in truto.new { transport = "ngx", concurrency = 2 }:users {
    integrated_account_id = { "flaky-429-date-1", "acct-1k-fan" }, limit = 100 } do
    counts[account] = (counts[account] or 0) + 1
  end
  return counts
end

function M.cancel()
  local client = truto.new { transport = "ngx" }
  local iter, state = client:users { integrated_account_id = "acct-small@300" }
  local first = iter(state) -- page 1; page 2 is now read ahead
  local pending = state.stream.pending ~= nil
  local started = ngx.now()
  state:close()
  local org = assert(client:get_organization("org-1", ACCOUNT))
  ngx.update_time()
  return { first = first.id, pending = pending, closed = state.closed, org = org.id,
    seconds = ngx.now() - started }
end

-- Through a proxy that drops Content-Length: every answer comes chunked.
function M.chunked()
  local client = truto.new { transport = "ngx", base_url = ngx.var.arg_base }
  local ids = {}
  for user in client:users(ACCOUNT) do ids[#ids + 1] = user.id end
  local res = assert(client:request { path = "/unified/user-directory/organizations/org-1", query = ACCOUNT })
  return { count = #ids, last = ids[#ids], encoding = res.headers["transfer-encoding"],
    length = res.headers["content-length"], org = res.json.id }
end

-- https: verified against lua_ssl_trusted_certificate; a self-signed server is refused
-- unless verify_tls = false.
function M.tls()
  local out = {}
  local function try(name, opts)
    local o = { transport = "ngx", max_retries = 0 }
    for k, v in pairs(opts) do o[k] = v end
    local org, err = truto.new(o):get_organization("org-1", ACCOUNT)
    out[name] = org and { ok = org.id } or describe_error(err)
  end
  try("trusted", { base_url = ngx.var.arg_trusted })
  try("self_signed", { base_url = ngx.var.arg_untrusted })
  try("unverified", { base_url = ngx.var.arg_untrusted, verify_tls = false })
  local ok, err = pcall(truto.new, { transport = "ngx", ca_file = "/etc/ssl/certs/ca-certificates.crt" })
  out.ca_file = ok and "accepted" or tostring(err)
  return out
end

function M.run()
  local name = ngx.var.arg_name
  local ok, result = pcall(M[name], ngx.var.arg_transport)
  if not ok then result = { raised = tostring(result) } end
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(result))
end

return M
]==]

local MAIN = [[
env TRUTO_API_TOKEN;
env TRUTO_BASE_URL;
env TRUTO_ACCOUNT;
]]

local HTTP = [[
  lua_ssl_trusted_certificate "${ca_file}";
  lua_ssl_verify_depth 2;
  lua_shared_dict truto_sync 1m;

  map $arg_transport $truto_transport {
    default "";
    curl curl;
    ngx ngx;
  }

  server {
    listen 127.0.0.1:${port};

    location = /users {
      content_by_lua_block { require("openresty").users() }
    }
    location ^~ /organizations/ {
      client_body_buffer_size 64k;
      content_by_lua_block { require("openresty").organization() }
    }
    location = /me {
      access_by_lua_block { require("openresty").only_active_users() }
      content_by_lua_block { ngx.say("welcome, ", ngx.var.http_x_user_id) }
    }
    location = /sync {
      content_by_lua_block { require("openresty").sync() }
    }

    location = /check {
      content_by_lua_block { require("truto_checks").run() }
    }

    # set_by_lua cannot yield: there a call is refused unless it names libcurl (blocking), which
    # works; the nginx transport, asked for by name, answers with an error instead.
    location = /cannot-yield {
      set_by_lua_block $fallback {
        local truto = require "truto"
        local client = truto.new { transport = "curl" }
        local org = assert(client:get_organization("org-1", { integrated_account_id = "acct-small" }))
        return org.name
      }
      set_by_lua_block $refused {
        local truto = require "truto"
        local _, err = truto.new({ transport = "ngx" }):get_organization("org-1",
          { integrated_account_id = "acct-small" })
        return err.kind .. " " .. err.message
      }
      set_by_lua_block $picked {
        local truto = require "truto"
        local ok, err = pcall(truto.new().get_organization, truto.new(), "org-1",
          { integrated_account_id = "acct-small" })
        return ok and "not refused" or (err:gsub("^.-:%d+: ", ""))
      }
      content_by_lua_block { ngx.say(ngx.var.fallback) ngx.say(ngx.var.refused) ngx.say(ngx.var.picked) }
    }
  }

  # A proxy to the mock that drops Content-Length, so that answers come chunked.
  server {
    listen 127.0.0.1:${chunked_port};
    location / {
      proxy_pass http://127.0.0.1:${mock_port};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      header_filter_by_lua_block { ngx.header["Content-Length"] = nil }
    }
  }

  # https with a certificate nobody vouches for.
  server {
    listen 127.0.0.1:${untrusted_port} ssl;
    ssl_certificate "${prefix}/self.crt";
    ssl_certificate_key "${prefix}/self.key";
    location / {
      proxy_pass http://127.0.0.1:${mock_port};
    }
  }
]]

local server = {}

-- The HTTP answer of our nginx: status, body text, headers.
local function request(method, path, body, headers)
  local chunks = {}
  headers = headers or {}
  if body then headers["content-length"] = tostring(#body) end
  local _, code, response_headers = http.request {
    url = "http://127.0.0.1:" .. server.port .. path, method = method, headers = headers,
    source = body and ltn12.source.string(body) or nil, sink = ltn12.sink.table(chunks),
  }
  return code, table.concat(chunks), response_headers
end

local function get_json(path, ...)
  local code, text = request("GET", path, ...)
  return code, cjson.decode(text)
end

-- Runs `path` (plus ?/&transport=...) on both transports: returns the ngx and the curl answer.
local function both(method, path, body, headers, between)
  local sep = path:find("?", 1, true) and "&" or "?"
  local out = {}
  for _, kind in ipairs { "ngx", "curl" } do
    mock.reset()
    if between then between() end
    local code, text = request(method, path .. sep .. "transport=" .. kind, body, headers)
    local ok, value = pcall(cjson.decode, text)
    out[kind] = { status = code, body = ok and value or text, log = mock.requests() }
  end
  return out.ngx, out.curl
end

local function check(name, args)
  local _, value = get_json("/check?name=" .. name .. (args or ""))
  assert.is_nil(value.raised, value.raised)
  return value
end

-- Which transport sent each request of a log: the nginx transport asks for gzip alone,
-- libcurl for every encoding it can undo.
local function transports(log)
  local kinds = {}
  for _, entry in ipairs(log) do
    kinds[#kinds + 1] = entry.headers["accept-encoding"] == "gzip" and "ngx" or "curl"
  end
  return kinds
end

describe("inside nginx #nginx", function()
  setup(function()
    local m = mock.start()
    server.mock = m
    server.front = tls.start(m.port)
    server.nginx = nginx.start {
      main = MAIN, http = HTTP, files = { ["truto_checks.lua"] = CHECKS }, certs = { self = "localhost" },
      lua_path = { ROOT .. "/examples/?.lua" }, ports = { "chunked_port", "untrusted_port" },
      vars = { ca_file = server.front.ca_file, mock_port = m.port },
      env = ("TRUTO_API_TOKEN=test-token TRUTO_BASE_URL=%s TRUTO_ACCOUNT=acct-small"):format(m.url),
    }
    server.port = server.nginx.port
    server.chunked_port, server.untrusted_port = server.nginx.ports.chunked_port, server.nginx.ports.untrusted_port
  end)

  teardown(function()
    if server.nginx then server.nginx:stop() end
    tls.stop()
    mock.reset()
  end)

  -- nothing went wrong inside nginx that the answers did not show: not one line in
  -- error.log but nginx's own notices (no warning either)
  before_each(function() server.nginx:mark() end)
  after_each(function() assert.same({}, server.nginx:error_log_lines()) end)

  it("lists every user of an account, page after page, the same on both transports", function()
    local ngx_answer, curl_answer = both("GET", "/users?account=acct-small")
    local ids = {}
    for i, user in ipairs(fixtures.users()) do ids[i] = user.id end
    assert.equal(200, ngx_answer.status)
    assert.same({ count = 40, ids = ids }, ngx_answer.body)
    assert.same(curl_answer.body, ngx_answer.body)
    assert.equal(200, curl_answer.status)
    -- four pages each, on one keep-alive connection; the transport says who it is
    assert.equal(4, #ngx_answer.log)
    for i = 1, 4 do
      assert.equal("ngx", transports(ngx_answer.log)[i])
      assert.equal("curl", transports(curl_answer.log)[i])
      assert.equal(ngx_answer.log[1].connection, ngx_answer.log[i].connection)
      assert.equal(curl_answer.log[i].raw_query, ngx_answer.log[i].raw_query)
      assert.equal("Bearer test-token", ngx_answer.log[i].headers.authorization)
      assert.equal("application/json", ngx_answer.log[i].headers.accept)
      assert.equal("gzip", ngx_answer.log[i].headers["accept-encoding"]) -- and inflated with zlib
    end
  end)

  it("lists through truto.users, the module's default client, with the nginx transport", function()
    mock.reset()
    local value = check("module_users")
    assert.equal(40, value.count)
    assert.equal("u040", value.ids[40])
    assert.equal(4, #mock.requests())
    for _, kind in ipairs(transports(mock.requests())) do assert.equal("ngx", kind) end
  end)

  it("passes filters and a page size through", function()
    local ngx_answer, curl_answer = both("GET", "/users?account=acct-small&status=inactive&limit=2")
    assert.same({ count = 4, ids = { "u003", "u013", "u023", "u033" } }, ngx_answer.body)
    assert.same(curl_answer.body, ngx_answer.body)
    assert.equal(2, #ngx_answer.log)
  end)

  it("gets, updates and deletes an organization, the same on both transports", function()
    local function cycle(kind)
      mock.reset()
      local path, q = "/organizations/org-1", "?account=acct-small&transport=" .. kind
      local steps = {}
      local code, got = get_json(path .. q)
      steps[1] = { code, got.name }
      local patch = '{"name":"Acme (via nginx)","pricing_plan":"team"}'
      local pcode, ptext = request("PATCH", path .. q, patch, { ["content-type"] = "application/json" })
      local patched = cjson.decode(ptext)
      steps[2] = { pcode, patched.name, patched.id }
      local log = mock.requests()
      steps[3] = { log[#log].method, log[#log].body }
      local dcode, deleted = get_json(path .. q, nil, nil)
      steps[4] = { dcode, deleted.name }
      local xcode, xtext = request("DELETE", path .. q)
      steps[5] = { xcode, cjson.decode(xtext) }
      local gcode, gone = get_json(path .. q)
      steps[6] = { gcode, gone }
      local ecode, empty = request("DELETE", "/organizations/org-2" .. q) -- Truto answers 204
      steps[7] = { ecode, empty }
      local scode, spaced = get_json("/organizations/org%2Fwith%20space%3A%C3%BC" .. q)
      steps[8] = { scode, spaced.id }
      return steps
    end
    local ngx_steps, curl_steps = cycle("ngx"), cycle("curl")
    assert.same({
      { 200, "Acme Corp" },
      { 200, "Acme (via nginx)", "org-1" },
      { "PATCH", '{"name":"Acme (via nginx)","pricing_plan":"team"}' },
      { 200, "Acme (via nginx)" },
      { 200, { id = "org-1", deleted = true } },
      { 404, { error = "http", status = 404, message = "No organization with id 'org-1'" } },
      { 200, "{}\n" },
      { 200, "org/with space:ü" },
    }, ngx_steps)
    assert.same(curl_steps, ngx_steps)
  end)

  it("maps Truto errors to HTTP statuses, the same on both transports", function()
    local cases = {
      { "no-such-account", 404, { error = "http", status = 404, message = "Integrated account not found" } },
      { "fault-503", 503, { error = "http", status = 503, message = "Integrated account is blocked" } },
      { "fault-remote", 502, { error = "http", status = 401, message = "Bad credentials" } },
      { "fault-malformed", 502, { error = "decode" } },
      { "flaky-500-1", 200, { count = 40 } },
    }
    for _, case in ipairs(cases) do
      local ngx_answer, curl_answer = both("GET", "/users?account=" .. case[1])
      assert.equal(case[2], ngx_answer.status, case[1])
      assert.equal(case[2], curl_answer.status, case[1])
      for k, v in pairs(case[3]) do
        assert.same(v, ngx_answer.body[k], case[1] .. " " .. k)
        assert.same(v, curl_answer.body[k], case[1] .. " " .. k)
      end
      if case[1] ~= "fault-malformed" then assert.same(curl_answer.body, ngx_answer.body) end
      assert.equal(#curl_answer.log, #ngx_answer.log, case[1]) -- the same attempts
    end
  end)

  it("fails the same way on both transports, whatever breaks", function()
    mock.reset()
    local on_ngx = check("faults", "&transport=ngx")
    mock.reset()
    local on_curl = check("faults", "&transport=curl")
    assert.same(on_curl, on_ngx)
    assert.same({ kind = "http", status = 404, message = "Integrated account not found", attempts = 1 },
      on_ngx.not_found)
    assert.equal("http", on_ngx.remote.kind)
    assert.equal(503, on_ngx.blocked.status)
    assert.same({ kind = "decode", status = 200, attempts = 1 }, on_ngx.malformed)
    assert.same({ kind = "transport", attempts = 1 }, on_ngx.truncated)
    assert.same({ kind = "transport", attempts = 1 }, on_ngx.too_large)
    assert.same({ kind = "transport", attempts = 1 }, on_ngx.closed)
    assert.same({ kind = "timeout", attempts = 1 }, on_ngx.slow)
    assert.same({ kind = "transport", attempts = 1 }, on_ngx.over_max_body)
    assert.same({ ok = "org-1" }, on_ngx.flaky)
    assert.same({ kind = "transport", attempts = 1 }, on_ngx.refused)
  end)

  it("runs in access_by_lua", function()
    for _, kind in ipairs { "ngx", "curl" } do
      local code, text = request("GET", "/me?transport=" .. kind, nil, { ["x-user-email"] = "ada@acme.example" })
      assert.equal(200, code)
      assert.equal("welcome, u004\n", text)
      code = request("GET", "/me?transport=" .. kind, nil, { ["x-user-email"] = "jose.nunez@acme.example" })
      assert.equal(403, code) -- inactive
    end
  end)

  it("runs in ngx.timer.at, on the nginx transport", function()
    mock.reset()
    local code, started = get_json("/sync?account=acct-small@50", nil, nil)
    assert.equal(200, code) -- GET: the state before
    code = request("POST", "/sync?account=acct-small@50", "")
    assert.equal(202, code)
    local status
    for _ = 1, 100 do
      _, status = get_json("/sync")
      if status.state ~= "running" then break end
      socket.sleep(0.05)
    end
    assert.same({ state = "done", count = 40 }, status)
    assert.is_table(started)
    for _, kind in ipairs(transports(mock.requests())) do assert.equal("ngx", kind) end
  end)

  it("takes libcurl where nginx cannot yield only when the client names it", function()
    mock.reset()
    local code, text = request("GET", "/cannot-yield")
    assert.equal(200, code)
    local fallback, refused, picked = text:match("^([^\n]*)\n([^\n]*)\n([^\n]*)\n$")
    assert.matches("^API disabled in the context of set_by_lua%* %(lua%-truto: nginx cannot yield there", picked)
    assert.equal("Acme Corp", fallback)
    assert.equal("transport the ngx transport cannot run in nginx's set phase (it cannot yield there); "
      .. 'use transport = "curl" or ngx.timer.at', refused)
    assert.equal(1, #mock.requests())
    assert.equal("curl", transports(mock.requests())[1])
    -- and nginx was told, once, that the worker was blocked
    local log = table.concat(server.nginx:error_log_lines(), "\n")
    local _, warnings = log:gsub("%[warn%][^\n]*lua%-truto: a call in nginx's set phase uses libcurl "
      .. '%(transport = "curl"%) and blocks this worker', "")
    assert.equal(1, warnings)
    server.nginx:mark() -- the expected warning
  end)

  it("keeps the token out of every table, error and message", function()
    mock.reset()
    local value = check("token")
    assert.equal(0, value.leaks)
    assert.is_true(value.strings > 10)
    assert.equal(401, value.status) -- the mock knows only test-token: it was sent
    assert.equal(401, value.http_status)
    assert.equal("transport", value.transport_kind)
    assert.equal("mismatched", mock.requests()[1].token) -- sent; the mock never logs it
  end)

  it("fan-out: the other account's pages all arrive, once, before one account's Retry-After ends", function()
    mock.reset()
    assert.same({ ["flaky-429-date-1"] = 40, ["acct-1k-fan"] = 1000 }, check("fanout"))
    local flaky, other = {}, {}
    for _, r in ipairs(mock.requests()) do
      if r.raw_query:find("flaky-429-date-1", 1, true) then flaky[#flaky + 1] = r.time else other[#other + 1] = r.time end
    end
    assert.equal(2, #flaky)
    assert.equal(10, #other)
    for i = 1, #other do assert.is_true(other[i] < flaky[2], "page " .. i .. " waited for the 429") end
  end)

  it("reads several accounts at once and cancels a page read ahead", function()
    mock.reset()
    assert.same({ ["acct-small@100"] = 40, ["acct-empty-page@100"] = 25, ["acct-nulls@100"] = 40 }, check("many"))
    mock.reset()
    local value = check("cancel")
    assert.same({ first = "u001", pending = true, closed = true, org = "org-1" },
      { first = value.first, pending = value.pending, closed = value.closed, org = value.org })
    assert.is_true(value.seconds < 0.25, "closing waited for the page read ahead")
  end)

  it("reads chunked answers", function()
    mock.reset()
    local value = check("chunked", "&base=" .. "http://127.0.0.1:" .. server.chunked_port)
    assert.same({ count = 40, last = "u040", encoding = "chunked", org = "org-1" }, value)
    assert.equal(5, #mock.requests())
  end)

  it("verifies TLS against lua_ssl_trusted_certificate", function()
    mock.reset()
    local value = check("tls", "&trusted=" .. server.front.url .. "&untrusted=https://localhost:" .. server.untrusted_port)
    assert.same({ ok = "org-1" }, value.trusted)
    assert.equal("transport", value.self_signed.kind)
    assert.matches("certificate", value.self_signed.message)
    assert.same({ ok = "org-1" }, value.unverified)
    assert.matches("lua_ssl_trusted_certificate", value.ca_file)
  end)
end)
