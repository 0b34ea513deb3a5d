-- lua-truto in a real nginx (LuaJIT build), issue 21: what an OpenResty operator expects.
-- Options the nginx transport cannot honour are refused by truto.new (item 4); misuse and
-- an iterator's error say in error.log what happened (item 3); phases that cannot yield
-- refuse calls (item 1); a failed TLS handshake is `nil, err` (item 2). Against the mock.
local socket = require "socket"
local http = require "socket.http"
local cjson = require "cjson"
local mock = require "spec.helpers.mock"
local nginx = require "spec.helpers.nginx"
local run = require "spec.helpers.run"

local HANDLERS = [==[
local truto = require "truto"
local cjson = require "cjson.safe"
local M = {}
local CA = "/etc/ssl/certs/ca-certificates.crt"

local function base() return "http://127.0.0.1:" .. ngx.var.arg_mock end

local function say(value)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(value))
end

-- What truto.new says to options (item 4): ?transport= (none: picked per call).
function M.new_options()
  local out = {}
  for _, name in ipairs { "ca_file", "proxy" } do
    local opts = { token = "test-token", base_url = base(), transport = ngx.var.arg_transport ~= "" and ngx.var.arg_transport or nil,
      max_retries = 0 }
    opts[name] = name == "ca_file" and CA or "http://127.0.0.1:9"
    local ok, err = pcall(truto.new, opts)
    if ok then
      local org, cerr = err:get_organization("org-1", { integrated_account_id = "acct-small" })
      out[name] = { made = true, call = org and org.id or tostring(cerr and cerr.message) }
    else
      out[name] = { raised = tostring(err) }
    end
  end
  say(out)
end

-- Item 1: a call where nginx cannot yield. `how`: nil (picked by the phase), "client" (the client
-- says transport = "curl") or "call" (the call says it). Returns "ok <org id>" or "raised <message>".
local MOCK = "%MOCK%"
function M.call_in_phase(how, account)
  local client = truto.new { token = "test-token", base_url = MOCK, max_retries = 0,
    transport = how == "client" and "curl" or nil }
  local ok, org, err = pcall(client.get_organization, client, "org-1",
    { integrated_account_id = account or "acct-small" }, how == "call" and { transport = "curl" } or nil)
  if not ok then return "raised " .. tostring(org) end
  return org and "ok " .. org.id or "error " .. tostring(err)
end

function M.header_filter()
  ngx.header["X-Truto"] = M.call_in_phase(ngx.var.arg_how ~= "" and ngx.var.arg_how or nil)
end

function M.log()
  ngx.shared.ops:set("log:" .. ngx.var.arg_id, M.call_in_phase(ngx.var.arg_how ~= "" and ngx.var.arg_how or nil,
    ngx.var.arg_account))
end

function M.init_worker()
  ngx.shared.ops:set("init_worker", M.call_in_phase(nil))
end

function M.state() ngx.say(ngx.shared.ops:get(ngx.var.arg_key) or "(none)") end

-- Item 2: ?n= calls to an https server whose certificate names another host; each one's
-- outcome ("raised ..." or the error's kind and message), counted.
function M.tls()
  local client = truto.new { token = "test-token", base_url = "https://localhost:" .. ngx.var.arg_port,
    max_retries = 0 }
  local seen = {}
  for _ = 1, tonumber(ngx.var.arg_n) do
    local ok, org, err = pcall(client.get_organization, client, "org-1", { integrated_account_id = "acct-small" })
    local key = not ok and "raised " .. tostring(org) or org and "ok" or err.kind .. ": " .. err.message
    seen[key] = (seen[key] or 0) + 1
  end
  say(seen)
end

-- The same, with sslhandshake raising as lua-resty-core does when a handshake that failed
-- verification finished without waiting (resty/core/socket.lua:244).
function M.tls_assert()
  local methods = getmetatable(ngx.socket.tcp()).__index
  local original = methods.sslhandshake
  methods.sslhandshake = function(sock, ...)
    original(sock, ...)
    error("/usr/share/lua/5.1/resty/core/socket.lua:244: assertion failed!", 0) -- as assert() raises it
  end
  local ok, err = pcall(M.tls)
  methods.sslhandshake = original
  if not ok then error(err, 0) end
end

-- A listing with params of the wrong type (item 3), uncaught.
function M.bad_params()
  for _ in truto.new({ token = "test-token" }):users(5) do end
end

return M
]==]

local HTTP = [[
  lua_shared_dict ops 1m;
  init_worker_by_lua_block { require("ops").init_worker() }
  server {
    listen 127.0.0.1:${port};
    location = /new-options { content_by_lua_block { require("ops").new_options() } }
    location = /no-token { content_by_lua_block { require("truto").new() } }
    location = /bad-params { content_by_lua_block { require("ops").bad_params() } }
    location = /health { content_by_lua_block { ngx.say("ok") } }
    location = /hf {
      content_by_lua_block { ngx.say("body") }
      header_filter_by_lua_block { require("ops").header_filter() }
    }
    location = /log {
      content_by_lua_block { ngx.say("body") }
      log_by_lua_block { require("ops").log() }
    }
    location = /state { content_by_lua_block { require("ops").state() } }
    location = /tls { content_by_lua_block { require("ops").tls() } }
    location = /tls-assert { content_by_lua_block { require("ops").tls_assert() } }
  }
  lua_ssl_trusted_certificate "${prefix}/ca.crt";
  server {
    listen 127.0.0.1:%TLS_PORT% ssl;
    ssl_certificate "${prefix}/server.crt";
    ssl_certificate_key "${prefix}/server.key";
    location / { return 200 "{}"; }
  }
]]

describe("lua-truto as an OpenResty operator expects (issue 21) #nginx", function()
  local server, m

  local function get(path)
    local out = {}
    local started = socket.gettime()
    local _, status = http.request { url = server:url(path), sink = require("ltn12").sink.table(out) }
    return status, table.concat(out), socket.gettime() - started
  end

  local function json(path)
    local status, text = get(path)
    assert.equal(200, status, text)
    return cjson.decode(text)
  end

  local tls_port

  -- A CA and a certificate it signed for another name than localhost, in dir.
  local function wrong_name_certificate(dir)
    local function sh(cmd) assert(run.sh(cmd .. " 2>&1")) end
    sh(("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ops-ca -keyout ca.key -out ca.crt")
      :format(dir))
    sh(("cd %s && openssl req -newkey rsa:2048 -nodes -subj /CN=wrong.example -keyout server.key -out server.csr")
      :format(dir))
    run.write(dir .. "/ext", "subjectAltName=DNS:wrong.example\n")
    sh(("cd %s && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext "
      .. "-out server.crt"):format(dir))
  end

  setup(function()
    m = mock.start()
    local certs = run.tmpdir()
    wrong_name_certificate(certs)
    tls_port = run.free_port()
    local files = { ["ops.lua"] = (HANDLERS:gsub("%%MOCK%%", m.url)) }
    for _, name in ipairs { "ca.crt", "server.crt", "server.key" } do files[name] = run.slurp(certs .. "/" .. name) end
    server = nginx.start { http = (HTTP:gsub("%%TLS_PORT%%", tls_port)), files = files }
  end)
  teardown(function() if server then server:stop() end end)

  -- error.log's lines since `from` (a byte offset).
  local function log_since(from) return server:log():sub(from + 1) end

  describe("item 3: what nginx's error.log says", function()
    it("names the misuse of a missing token and of bad params, as luaL_argerror would", function()
      local from = #server:log()
      assert.equal(500, (get("/no-token")))
      assert.equal(500, (get("/bad-params")))
      local log = log_since(from)
      assert.matches("lua entry thread aborted: runtime error: content_by_lua%(nginx%.conf:%d+%):1: bad argument #1 "
        .. "to 'new' %(token required: pass token = %.%.%. or set TRUTO_API_TOKEN%)", log)
      assert.matches("lua entry thread aborted: runtime error: /[^\n]*/ops%.lua:%d+: bad argument #1 to 'users' "
        .. "%(table expected, got number%)", log)
      assert.is_nil(log:find("unknown reason", 1, true))
      assert.is_nil(log:find("test-token", 1, true))
    end)
  end)

  describe("item 1: phases that cannot yield refuse calls", function()
    local REFUSAL = "API disabled in the context of %s_by_lua* (lua-truto: nginx cannot yield there, and waiting "
      .. "for Truto would block the worker): make the call in a zero-delay ngx.timer.at(0, handler) or in "
      .. "rewrite/access/content, or pass transport = \"curl\" to block the worker on purpose"

    -- Polls /state?key=key until it is set (10 s at most).
    local function state(key)
      local text
      for _ = 1, 100 do
        text = select(2, get("/state?key=" .. key))
        if text ~= "(none)\n" then break end
        socket.sleep(0.1)
      end
      return text
    end

    it("refuses a call in header_filter, log and init_worker, naming the phase", function()
      mock.reset()
      local out = {}
      local _, status = http.request { url = server:url("/hf"), sink = require("ltn12").sink.table(out),
        method = "GET" }
      assert.equal(200, status)
      local c = assert(socket.connect("127.0.0.1", server.port))
      c:send("GET /hf HTTP/1.0\r\n\r\n")
      local head = c:receive("*a")
      c:close()
      local header = head:match("\r\nX%-Truto: ([^\r]*)\r\n")
      assert.equal("raised ", header:sub(1, 7))
      assert.equal(REFUSAL:format("header_filter"), (header:sub(8):gsub("^[^:]*:%d+: ", "")))
      get("/log?id=1")
      assert.equal("raised " .. REFUSAL:format("log"), (state("log:1"):gsub("^raised [^:]*:%d+: ", "raised ")
        :gsub("\n$", "")))
      assert.equal("raised " .. REFUSAL:format("init_worker"), (state("init_worker"):gsub("^raised [^:]*:%d+: ",
        "raised "):gsub("\n$", "")))
      assert.equal(0, #mock.requests()) -- nothing was sent
    end)

    it("keeps /health fast while a log-phase call would wait 2 s for Truto", function()
      get("/log?id=slow&account=acct-small@2000")
      local _, text, seconds = get("/health")
      assert.equal("ok\n", text)
      assert.is_true(seconds < 0.5, "/health took " .. seconds .. " s") -- the target is 50 ms; the machine is loaded
      assert.matches("^raised ", state("log:slow"))
    end)

    it("makes the call with transport = \"curl\" named by the client or the call, warning once per phase",
      function()
        mock.reset()
        local from = #server:log()
        for i, how in ipairs { "client", "call", "client" } do
          get("/log?id=curl" .. i .. "&how=" .. how)
          assert.equal("ok org-1\n", state("log:curl" .. i))
        end
        local hf = select(2, get("/hf?how=call"))
        assert.equal("body\n", hf)
        assert.equal(4, #mock.requests())
        local log = log_since(from)
        local _, warnings = log:gsub("%[warn%][^\n]*lua%-truto: a call in nginx's log phase uses libcurl", "")
        assert.equal(1, warnings)
        _, warnings = log:gsub("%[warn%][^\n]*lua%-truto: a call in nginx's header_filter phase uses libcurl", "")
        assert.equal(1, warnings)
      end)
  end)

  describe("item 2: a failed TLS handshake", function()
    it("gives nil, err 30 times of 30 against a certificate for another name", function()
      local seen = json("/tls?n=30&port=" .. tls_port)
      local keys = {}
      for k in pairs(seen) do keys[#keys + 1] = k end
      assert.equal(1, #keys, cjson.encode(seen))
      assert.equal(30, seen[keys[1]])
      assert.equal("transport: TLS handshake with localhost: certificate host mismatch (is "
        .. "lua_ssl_trusted_certificate set in nginx.conf, with the CA of this server?)", keys[1])
    end)

    it("gives nil, err when lua-resty-core's sslhandshake raises its assertion", function()
      assert.same({ ["transport: TLS handshake with localhost: failed, and the certificate may not verify "
        .. "(lua-resty-core raised: /usr/share/lua/5.1/resty/core/socket.lua:244: assertion failed!) (is "
        .. "lua_ssl_trusted_certificate set in nginx.conf, with the CA of this server?)"] = 30 }, json("/tls-assert?n=30&port=" .. tls_port))
    end)
  end)

  describe("item 5: the nginx.conf of docs/openresty.md", function()
    it("runs as printed, with the token, the shared dict and lua_check_client_abort", function()
      local page = run.read(run.ROOT .. "/docs/openresty.md")
      local section = assert(page:match("\n## A whole nginx.conf\n(.-)\n## "), "no 'A whole nginx.conf' section")
      local conf = assert(section:match("```nginx\n(.-)```"), "no nginx block")
      for _, directive in ipairs { "\nenv TRUTO_API_TOKEN;", "\n  lua_shared_dict truto_rate ",
        "\n  lua_check_client_abort on;" } do
        assert.truthy(conf:find(directive, 1, true), directive)
      end
      local printed = nginx.start { conf = conf, lib = true,
        env = ("TRUTO_API_TOKEN=test-token TRUTO_BASE_URL=%s"):format(m.url) }
      finally(function() printed:stop() end)
      mock.reset()
      local body, status = http.request(printed:url("/users?account=acct-small"))
      assert.same({ 200, "40\n" }, { status, body })
      assert.equal(4, #mock.requests())
      assert.is_nil(printed:log():find("[error]", 1, true), printed:log())
    end)
  end)

  describe("item 4: options are checked by truto.new", function()
    it("refuses ca_file and proxy at new() when the nginx transport may carry the calls", function()
      for _, kind in ipairs { "", "ngx" } do
        local out = json("/new-options?mock=" .. m.port .. "&transport=" .. kind)
        assert.matches("^bad argument #1 to 'new' %(option 'ca_file': the nginx transport cannot set a CA file "
          .. "per connection; set lua_ssl_trusted_certificate in nginx.conf, or use transport = \"curl\"%)$",
          (out.ca_file.raised or "(none)"):gsub("^[^:]*:%d+: ", ""))
        assert.matches("^bad argument #1 to 'new' %(option 'proxy': not supported by the nginx transport; "
          .. "use transport = \"curl\"%)$", (out.proxy.raised or "(none)"):gsub("^[^:]*:%d+: ", ""))
      end
    end)

    it("accepts them with transport = \"curl\" (libcurl honours both)", function()
      local out = json("/new-options?mock=" .. m.port .. "&transport=curl")
      assert.same({ made = true, call = "org-1" }, out.ca_file)
      assert.is_true(out.proxy.made)
    end)
  end)
end)
