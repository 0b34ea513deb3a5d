-- truto.defaults is the one table of defaults: the libcurl transport takes its
-- numbers from the settings the client gives it (C keeps none), the client's
-- retry policy and the CLI's help come from it.
local mock = require "spec.helpers.mock"
local defaults = require "truto.defaults"
local core = require "truto.core"
local truto = require "truto"
-- the CLI runs on Lua 5.4 only (make test-luajit runs the rest)
local it54 = _VERSION == "Lua 5.4" and it or function(name) pending(name .. " (Lua 5.4 only)") end

describe("truto.defaults", function()
  local m
  setup(function() m = mock.start() end)

  local function settings(over)
    local s = { token = m.token, timeout = defaults.timeout, connect_timeout = defaults.connect_timeout,
      max_body = defaults.max_body }
    for k, v in pairs(over or {}) do s[k] = v end
    return s
  end

  it("the libcurl transport raises when its settings name no timeout, connect_timeout or max_body", function()
    for _, name in ipairs { "timeout", "connect_timeout", "max_body" } do
      local s = settings()
      s[name] = nil
      local ok, err = pcall(core.curl, s)
      assert.is_false(ok)
      assert.matches("^settings%." .. name .. ": a number from ", err)
    end
  end)

  it("a request naming no max_body gets the transport's", function()
    local t = core.curl(settings { max_body = 16 })
    local url = m.url .. "/unified/user-directory/users?integrated_account_id=acct-small"
    local answer, failure = t:perform { method = "GET", url = url, headers = {} }
    assert.is_nil(answer)
    assert.same({ kind = "transport", too_large = true }, { kind = failure.kind, too_large = failure.too_large })
    assert.matches("larger than max_body %(16 bytes%)", failure.message)
    -- the request's own bound wins
    answer = assert(t:perform { method = "GET", url = url, headers = {}, max_body = defaults.max_body })
    assert.equal(200, answer.status)
    t:close()
  end)

  it("a client retries the default statuses once each with max_retries = 1, and 503 never", function()
    local c = truto.new { token = m.token, base_url = m.url, max_retries = 1, sleep = function() end }
    local attempts = {}
    for _, status in ipairs { 429, 500, 502, 503, 504 } do
      local value, err = c:get_organization("org-1", { integrated_account_id = "fault-" .. status })
      assert.is_nil(value)
      attempts[status] = err.status .. " after " .. err.attempts
    end
    assert.same({ [429] = "429 after 2", [500] = "500 after 2", [502] = "502 after 2", [503] = "503 after 1",
      [504] = "504 after 2" }, attempts)
    c:close()
  end)

  it54("the CLI's help names the default timeout and the retried statuses", function()
    local help = require("truto.cli.help").main
    assert.matches("per%-request timeout %(default " .. defaults.timeout .. "%)", help)
    assert.matches("retries of 429, 500, 502 and 504 answers", help)
  end)
end)
