-- An iterator's failure in a real nginx (LuaJIT build), issue 21 item 3: uncaught, error.log
-- says what happened (kind, status, message; never the token) instead of "unknown reason";
-- caught by pcall, the script gets the error object with its fields; either way the object is
-- the iterator's `error`. The same on the nginx transport and on transport = "curl".
local http = require "socket.http"
local cjson = require "cjson"
local mock = require "spec.helpers.mock"
local nginx = require "spec.helpers.nginx"
local run = require "spec.helpers.run"

local HANDLERS = [==[
local truto = require "truto"
local cjson = require "cjson.safe"
local M = {}

-- ?base= the base URL, ?account=, ?transport= ("curl" or none: nginx's).
local function listing()
  local client = truto.new { token = "test-token", base_url = ngx.var.arg_base, max_retries = 0,
    transport = ngx.var.arg_transport ~= "" and ngx.var.arg_transport or nil }
  return client:users { integrated_account_id = ngx.var.arg_account }
end

-- The loop, uncaught: the handler dies, nginx logs what it raised.
function M.uncaught()
  for _ in listing() do end
  ngx.say("not reached")
end

-- The loop in a pcall: what the script gets.
function M.caught()
  local step, it = listing() -- the generic-for values: the step function and the iterator
  local ok, err = pcall(function() for _ in step, it do end end)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode { ok = ok, type = type(err), kind = err.kind, status = err.status,
    message = err.message, same = rawequal(it.error, err) })
end

return M
]==]

local HTTP = [[
  server {
    listen 127.0.0.1:${port};
    location = /uncaught { content_by_lua_block { require("handlers").uncaught() } }
    location = /caught { content_by_lua_block { require("handlers").caught() } }
  }
]]

describe("an iterator's error in nginx (issue 21 item 3) #nginx", function()
  local m, n

  setup(function()
    m = mock.start()
    n = nginx.start { http = HTTP, files = { ["handlers.lua"] = HANDLERS } }
  end)

  teardown(function()
    if n then n:stop() end
  end)

  local function get(path, q)
    local body, code = http.request(n:url(("%s?base=%s&account=%s&transport=%s"):format(path, q.base or m.url,
      q.account, q.transport or "")))
    return body, code
  end

  for _, transport in ipairs { "ngx", "curl" } do
    local t = transport == "curl" and "curl" or nil
    describe("(" .. transport .. " transport)", function()
      it("uncaught: error.log names kind, status and message", function()
        local from = #n:log()
        local _, code = get("/uncaught", { account = "acct-nope", transport = t })
        assert.are.equal(500, code)
        local log = n:log():sub(from + 1)
        local url = m.url .. "/unified/user-directory/users?integrated_account_id=acct-nope"
        assert.truthy(log:find("runtime error: truto: http 404 Not Found: Integrated account not found (GET " .. url,
          1, true), log)
        assert.is_nil(log:find("unknown reason", 1, true), log)
        assert.is_nil(log:find("test-token", 1, true), log)
      end)

      it("uncaught transport failure: error.log names the kind", function()
        local from = #n:log()
        local _, code = get("/uncaught", { base = "http://127.0.0.1:" .. run.free_port(), account = "acct-small",
          transport = t })
        assert.are.equal(500, code)
        local log = n:log():sub(from + 1)
        assert.truthy(log:find("runtime error: truto: transport: ", 1, true), log)
        assert.is_nil(log:find("unknown reason", 1, true), log)
      end)

      it("caught: the script gets the error object, which is also the iterator's", function()
        local body, code = get("/caught", { account = "acct-nope", transport = t })
        assert.are.equal(200, code, body)
        assert.are.same({ ok = false, type = "table", kind = "http", status = 404,
          message = "Integrated account not found", same = true }, cjson.decode(body))
      end)
    end)
  end
end)
