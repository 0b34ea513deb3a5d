-- lua-truto inside a real nginx (LuaJIT), issue 12 items 1, 2, 4 and 6: nothing blocks the
-- worker, nothing a handler started outlives it, a departed client stops costing requests,
-- and error.log stays silent. Against the mock Truto server and its latency accounts (@MS).
local socket = require "socket"
local cjson = require "cjson"
local mock = require "spec.helpers.mock"

local run = require "spec.helpers.run"
local nginx = require "spec.helpers.nginx"
local read_file = run.slurp

local HANDLERS = [==[
local truto = require "truto"
local cjson = require "cjson.safe"
local M = {}

-- A client made where nginx cannot yield, once per worker (item 1).
function M.init_worker()
  M.worker_client = truto.new { max_retries = 0 }
end

function M.fast()
  ngx.say("fast")
end

local function say(value)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(value))
end

-- The worker's client, in a content handler, against a slow account.
function M.worker_client_call()
  local org, err = M.worker_client:get_organization("org-1",
    { integrated_account_id = ngx.var.arg_account })
  say(org and { id = org.id } or { error = tostring(err) })
end

-- `break` out of a listing, without state:close() (item 2).
function M.break_early()
  local client = truto.new { max_retries = 0 }
  local first
  for user in client:users { integrated_account_id = ngx.var.arg_account, limit = 10 } do
    first = user.id
    break
  end
  say { first = first }
end

-- An iterator started in one request (?step=1: the first user) and carried on in the next
-- (?step=2: the rest), its page read ahead left behind in the first.
local carried
function M.carry()
  if ngx.var.arg_step == "1" then
    local client = truto.new {}
    local iter, state = client:users { integrated_account_id = ngx.var.arg_account, limit = 10 }
    carried = { iter = iter, state = state }
    say { first = iter(state).id }
    return
  end
  local ids = {}
  for user in carried.iter, carried.state do ids[#ids + 1] = user.id end
  say { count = #ids, last = ids[#ids] }
end

-- A long listing, the users streamed to the client as they come (item 6).
function M.long_listing()
  local client = truto.new { max_retries = 0 }
  if ngx.var.arg_hook then
    ngx.on_abort(function()
      require("truto.ngx").abort()
      ngx.shared.lifetime:set("abort_seen", true)
    end)
  end
  local ok, err = pcall(function()
    for user in client:users { integrated_account_id = ngx.var.arg_account, limit = 1 } do
      ngx.say(user.id)
      ngx.flush(true)
    end
  end)
  ngx.shared.lifetime:set("listing_end", ok and "done" or (type(err) == "table" and err.kind .. ":" ..
    tostring(err.message) or tostring(err)))
end

function M.state()
  say { abort_seen = ngx.shared.lifetime:get("abort_seen"), listing_end = ngx.shared.lifetime:get("listing_end") }
  ngx.shared.lifetime:flush_all()
end

-- Two listings of 1,000 users each (item 4: no warning per item).
function M.thousands()
  local client = truto.new {}
  local n = 0
  for _ in client:users { integrated_account_id = "acct-1k-a" } do n = n + 1 end
  for _ in client:users { integrated_account_id = "acct-1k-b" } do n = n + 1 end
  say { count = n }
end

return M
]==]

local HTTP = [[
  lua_shared_dict truto_rate 1m;
  lua_shared_dict lifetime 1m;
  init_worker_by_lua_block { require("lifetime").init_worker() }

  server {
    listen 127.0.0.1:${port};
    lua_check_client_abort on;
    location = /fast { content_by_lua_block { require("lifetime").fast() } }
    location = /worker-client { content_by_lua_block { require("lifetime").worker_client_call() } }
    location = /break { content_by_lua_block { require("lifetime").break_early() } }
    location = /long { content_by_lua_block { require("lifetime").long_listing() } }
    location = /carry { content_by_lua_block { require("lifetime").carry() } }
    location = /state { content_by_lua_block { require("lifetime").state() } }
    location = /thousands { content_by_lua_block { require("lifetime").thousands() } }
  }
]]

local server = {}

-- GET path; returns status, body, seconds taken.
local function get(path)
  local t0 = socket.gettime()
  local c = assert(socket.connect("127.0.0.1", server.port))
  c:settimeout(30)
  c:send("GET " .. path .. " HTTP/1.0\r\nHost: x\r\n\r\n")
  local text = c:receive("*a")
  c:close()
  return tonumber(text:match("^HTTP/1%.%d (%d+)")), text:match("\r\n\r\n(.*)$"), socket.gettime() - t0
end

describe("inside nginx, nothing blocks or outlives its request #nginx", function()
  setup(function()
    local m = mock.start()
    server.nginx = nginx.start { main = "env TRUTO_API_TOKEN;\nenv TRUTO_BASE_URL;", http = HTTP,
      files = { ["lifetime.lua"] = HANDLERS }, env = "TRUTO_API_TOKEN=test-token TRUTO_BASE_URL=" .. m.url }
    server.port = server.nginx.port
  end)

  teardown(function()
    if server.nginx then server.nginx:stop() end
    mock.reset()
  end)

  -- error.log: nothing but nginx's own notices
  before_each(function() server.nginx:mark() end)
  after_each(function() assert.same({}, server.nginx:error_log_lines()) end)

  it("lists 2 x 1,000 users without a line in error.log (item 4)", function()
    local status, text = get("/thousands")
    assert.equal(200, status)
    assert.same({ count = 2000 }, cjson.decode(text))
  end)

  it("a break out of a listing does not hold the response for the page read ahead (item 2)", function()
    mock.reset()
    local status, text, seconds = get("/break?account=acct-small@1000")
    assert.equal(200, status)
    assert.same({ first = "u001" }, cjson.decode(text))
    -- page 1 takes 1 s; the page read ahead would take 1 s more
    assert.is_true(seconds >= 0.9 and seconds < 1.7, "the response took " .. seconds .. " s")
  end)

  it("an iterator carried into another request goes on there, without failing or holding the first (item 2)", function()
    mock.reset()
    local status, text, seconds = get("/carry?step=1&account=acct-small@300")
    assert.equal(200, status)
    assert.same({ first = "u001" }, cjson.decode(text))
    assert.is_true(seconds < 0.55, "the first request took " .. seconds .. " s") -- page 1 only, not the read-ahead
    status, text = get("/carry?step=2")
    assert.equal(200, status)
    assert.same({ count = 39, last = "u040" }, cjson.decode(text))
  end)

  it("a client made in init_worker_by_lua does not block the worker in a handler (item 1)", function()
    mock.reset()
    local done = os.tmpname()
    os.execute(("(curl -s -o %s 'http://127.0.0.1:%d/worker-client?account=acct-small@2000') >/dev/null 2>&1 &")
      :format(done, server.port))
    socket.sleep(0.3)
    local status, text, seconds = get("/fast")
    assert.same({ 200, "fast\n" }, { status, text })
    assert.is_true(seconds < 0.5, "/fast took " .. seconds .. " s while the worker's client waited for Truto")
    for _ = 1, 60 do
      if read_file(done) ~= "" then break end
      socket.sleep(0.1)
    end
    assert.same({ id = "org-1" }, cjson.decode(read_file(done)))
    os.remove(done)
    -- it went through the nginx transport (which asks for gzip alone; libcurl for more)
    assert.equal("gzip", mock.last().headers["accept-encoding"])
  end)

  for _, hook in ipairs { false, true } do
    it("stops a listing when the client leaves (item 6, lua_check_client_abort on" .. (hook and ", own on_abort)" or ")"), function()
      get("/state")
      mock.reset()
      local c = assert(socket.connect("127.0.0.1", server.port))
      c:send("GET /long?account=acct-small@200" .. (hook and "&hook=1" or "") .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      c:settimeout(5)
      assert(c:receive("*l")) -- the status line: the listing runs
      socket.sleep(0.7)
      c:close()
      socket.sleep(0.6)
      local seen = #mock.requests()
      socket.sleep(1)
      local later = #mock.requests()
      assert.equal(seen, later, "the listing went on after the client left")
      assert.is_true(later <= 8, later .. " requests for a listing left after 0.7 s")
      local _, text = get("/state")
      local state = cjson.decode(text)
      if hook then
        assert.is_true(state.abort_seen)
        assert.matches("^transport:.*downstream client went away", state.listing_end)
      else
        assert.is_nil(state.listing_end) -- nginx ended the handler
      end
    end)
  end
end)
