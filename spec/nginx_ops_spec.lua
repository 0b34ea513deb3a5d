-- lua-truto in a real nginx (LuaJIT build), issue 21: what an OpenResty operator expects.
-- Options the nginx transport cannot honour are refused by truto.new (item 4); misuse and
-- an iterator's error say in error.log what happened (item 3); phases that cannot yield
-- refuse calls (item 1); a failed TLS handshake is `nil, err` (item 2). Against the mock.
local socket = require "socket"
local http = require "socket.http"
local cjson = require "cjson"
local mock = require "spec.helpers.mock"
local nginx = require "spec.helpers.nginx"

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

-- A listing with params of the wrong type (item 3), uncaught.
function M.bad_params()
  for _ in truto.new({ token = "test-token" }):users(5) do end
end

return M
]==]

local HTTP = [[
  server {
    listen 127.0.0.1:${port};
    location = /new-options { content_by_lua_block { require("ops").new_options() } }
    location = /no-token { content_by_lua_block { require("truto").new() } }
    location = /bad-params { content_by_lua_block { require("ops").bad_params() } }
  }
]]

describe("lua-truto as an OpenResty operator expects (issue 21)", function()
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

  setup(function()
    m = mock.start()
    server = nginx.start { http = HTTP, files = { ["ops.lua"] = HANDLERS } }
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
