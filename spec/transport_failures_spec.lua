-- The libcurl transport checks what libcurl's multi calls return (issue 19,
-- item 10): when curl_multi_poll or curl_multi_perform fails, the request
-- ends at once with a transport error naming the call, instead of looping
-- on (or silently ignoring) a handle that cannot be driven. The failures
-- come from spec/tools/curlfail.c, preloaded into a child Lua process.
local wire = require "spec.helpers.wire"
local run = require "spec.helpers.run"

local build = os.getenv("TRUTO_BUILD") or "build"
local lua = rawget(_G, "jit") and "luajit" or "lua5.4"
local shim = (build:sub(1, 1) == "/" and "" or run.ROOT .. "/") .. build .. "/curlfail.so"

local CHILD = [[
local truto = require "truto"
local c = truto.new { token = "t", base_url = arg[1], max_retries = 0, rate_limit = false,
  sleep = function() end, timeout = 5 }
local v, err = c:get_organization("o", { integrated_account_id = "a" })
if v then print("value " .. tostring(v.id)) else print(err.kind .. ": " .. err.message) end
]]

describe("libcurl's multi calls failing", function()
  local server = wire.start()

  -- The child's output line; a child that hangs is killed after 20 s.
  local function child(call)
    if not io.open(shim) or build:find("asan", 1, true) then return nil end
    local dir = run.tmpdir()
    run.write(dir .. "/child.lua", CHILD)
    local env = ("TRUTO_CURLFAIL=%s LD_PRELOAD=%s LUA_PATH=%s LUA_CPATH=%s"):format(call, run.quote(shim),
      run.quote(build .. "/?.lua;" .. build .. "/?/init.lua;;"), run.quote(build .. "/?.so;;"))
    local out = run.shell(("%s timeout 20 %s %s %s"):format(env, lua, run.quote(dir .. "/child.lua"),
      run.quote(server.url)), { merge = true })
    return out
  end

  it("curl_multi_poll: a transport error naming it", function()
    wire.script { "trickle" } -- an answer still on its way when the transport polls
    local out = child("poll")
    if not out then return pending("needs " .. shim .. " and a build without ASan") end
    assert.equal("transport: curl_multi_poll: Out of memory\n", out)
  end)

  it("curl_multi_perform: a transport error naming it, not an endless wait", function()
    wire.script { "ok" }
    local out = child("perform")
    if not out then return pending("needs " .. shim .. " and a build without ASan") end
    assert.equal("transport: curl_multi_perform: Out of memory\n", out)
  end)

  it("the shim passes the calls through when not asked to fail", function()
    wire.script { "ok" }
    local out = child("none")
    if not out then return pending("needs " .. shim .. " and a build without ASan") end
    assert.equal("value wire\n", out)
  end)
end)
