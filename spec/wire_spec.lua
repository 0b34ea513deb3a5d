-- What every request looks like on the wire, and connection reuse.
local h = require "spec.helpers.client"
local mock = h.mock

describe("requests", function()
  before_each(function() mock.reset() end)

  it("carry the token, JSON accept, our user agent and gzip", function()
    local client = h.client()
    assert(client:get_organization("org-1", { integrated_account_id = "acct-small" }))
    local headers = mock.last().headers
    assert.equal("Bearer test-token", headers.authorization)
    assert.equal("application/json", headers.accept)
    assert.matches("^lua%-truto/0%.1%.0 libcurl/[%d.]+ Lua 5%.%d$", headers["user-agent"])
    assert.matches("gzip", headers["accept-encoding"], 1, true)
    assert.is_nil(headers["content-type"])
  end)

  it("carry the caller's headers and user agent", function()
    local client = h.client { user_agent = "my-sync/1.0", headers = { ["X-Team"] = "it" } }
    assert(client:get_organization("org-1", { integrated_account_id = "acct-small" }))
    assert.equal("my-sync/1.0", mock.last().headers["user-agent"])
    assert.equal("it", mock.last().headers["x-team"])
  end)

  it("share one keep-alive connection across sequential calls", function()
    local client = h.client()
    for _ = 1, 5 do assert(client:get_organization("org-1", { integrated_account_id = "acct-small" })) end
    for _ in client:users { integrated_account_id = "acct-small" } do end
    local log = mock.requests()
    assert.equal(9, #log)
    for i = 2, #log do assert.equal(log[1].connection, log[i].connection) end
  end)

  it("share kept-alive connections across the clients of a process", function()
    -- a client per call (scripts, request handlers) pays no new handshake
    local a, b = h.client(), h.client()
    assert(a:get_organization("org-1", { integrated_account_id = "acct-small" }))
    assert(b:get_organization("org-1", { integrated_account_id = "acct-small" }))
    for _ = 1, 3 do
      assert(h.client():get_organization("org-1", { integrated_account_id = "acct-small" }))
    end
    local log = mock.requests()
    assert.equal(5, #log)
    for i = 2, 5 do assert.equal(log[1].connection, log[i].connection) end
  end)
end)

describe("the debug log", function()
  it("shows each request and answer, with the token masked", function()
    mock.reset()
    local lines = {}
    local client = h.client { debug = function(line) lines[#lines + 1] = line end, headers = { ["X-Team"] = "it" } }
    assert(client:update_organization("org-1", { name = "D" }, { integrated_account_id = "acct-small" }))
    local url = h.server().url .. "/unified/user-directory/organizations/org-1?integrated_account_id=acct-small"
    local sent = mock.last().headers
    assert.same({
      "PATCH " .. url .. "\nAuthorization: Bearer ***\nAccept: application/json\nContent-Type: application/json"
        .. "\nIdempotency-Key: " .. sent["idempotency-key"] .. "\nUser-Agent: " .. sent["user-agent"]
        .. "\nX-Team: it\n(body: 12 bytes)",
      lines[2],
    }, lines)
    assert.matches("^<%- 200 %(%d+ bytes%)$", lines[2])
    for _, line in ipairs(lines) do assert.is_nil(line:find("test-token", 1, true)) end
  end)
end)

describe("client:close", function()
  it("closes the connections; later calls raise", function()
    local client = h.client()
    assert(client:get_organization("org-1", { integrated_account_id = "acct-small" }))
    client:close()
    client:close() -- twice is fine
    assert.has_error(function() client:get_organization("org-1", { integrated_account_id = "acct-small" }) end)
  end)
end)
