-- 20 concurrent listings of one account in ONE nginx worker (issue 16): they take at most twice
-- as long as one alone, and when the mock limits that account through its ratelimit-* headers
-- the learned budget paces them with no 429. The 20 requests are sent from this one process
-- over 20 sockets at once (20 curl processes started from a shell arrive spread over a second
-- or more on a loaded machine, which is what bench/nginx_concurrency.sh measured before).
local nginx = require "spec.helpers.nginx"
local mock = require "spec.helpers.mock"

local ACCOUNT = "acct-small@100" -- 40 users, each page 100 ms late; limit = 14: 3 pages

local concurrent = nginx.concurrent

local function handler(m)
  return string.format([[
local truto = require "truto"
local M = {}
function M.list()
  local client = truto.new { token = %q, base_url = %q }
  local n = 0
  local ok, err = pcall(function()
    for _ in client:users { integrated_account_id = ngx.unescape_uri(ngx.var.arg_account), limit = 14 } do n = n + 1 end
  end)
  client:close()
  ngx.say(ok and n or tostring(err))
end
return M
]], m.token, m.url)
end

describe("nginx, one worker, 20 concurrent listings of one account #nginx", function()
  local n, m
  setup(function()
    m = mock.start()
    n = nginx.start {
      workers = 1,
      files = { ["listings.lua"] = handler(m) },
      http = [[
  lua_shared_dict truto_rate 1m;
  server {
    listen 127.0.0.1:${port};
    location = /list { content_by_lua_block { require("listings").list() } }
  }]],
    }
  end)
  teardown(function() if n then n:stop() end end)

  local path = "/list?account=" .. ACCOUNT:gsub("@", "%%40")

  it("take at most twice as long as one alone", function()
    mock.reset()
    concurrent(n.port, path, 1) -- warm-up: the worker loads the module, learns the account
    local _, one_a = concurrent(n.port, path, 1)
    local _, one_b = concurrent(n.port, path, 1)
    local one = (one_a + one_b) / 2
    local bodies, all = concurrent(n.port, path, 20)
    io.stderr:write(string.format("\n20 at once: %.3f s, one alone: %.3f s (%.2fx)\n", all, one, all / one))
    for i = 1, 20 do assert.equal("40\n", bodies[i], "listing " .. i) end
    assert.is_true(all <= 2 * one, string.format("20 at once: %.3f s, one alone: %.3f s (%.2fx)", all, one,
      all / one))
    assert.equal("", (n:log():gsub("[^\n]*%[notice%][^\n]*\n", "")))
  end)

  it("are paced with no 429 when the mock limits the account through its headers", function()
    mock.reset()
    -- 60 pages, 25 per 2 s window: the listings must wait for two windows to reopen
    mock.limits { accounts = { [ACCOUNT] = { requests = 25, per = 2 } } }
    local bodies = concurrent(n.port, path, 20)
    local rate = mock.rate()
    mock.limits { accounts = {} }
    for i = 1, 20 do assert.equal("40\n", bodies[i], "listing " .. i) end
    assert.equal(0, rate.throttled)
  end)
end)
