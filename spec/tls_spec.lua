-- TLS is verified by default; redirects are never followed.
local h = require "spec.helpers.client"
local tls = require "spec.helpers.tls"
local truto = require "truto"
local mock = h.mock

local PARAMS = { integrated_account_id = "acct-small" }

describe("TLS", function()
  local front
  setup(function() front = tls.start(h.server().port) end)
  teardown(function() tls.stop() end)
  before_each(function() mock.reset() end)

  local function client(opts)
    local o = { token = "test-token", base_url = front.url, max_retries = 0 }
    for k, v in pairs(opts or {}) do o[k] = v end
    return truto.new(o)
  end

  it("refuses a certificate it cannot verify", function()
    local org, err = client():get_organization("org-1", PARAMS)
    assert.is_nil(org)
    assert.equal("transport", err.kind)
    assert.matches("certificate", err.message)
    assert.equal(0, #mock.requests())
  end)

  it("accepts it with ca_file", function()
    local org = assert(client({ ca_file = front.ca_file }):get_organization("org-1", PARAMS))
    assert.equal("org-1", org.id)
    assert.equal(1, #mock.requests())
  end)

  it("checks the host name against the certificate", function()
    local c = client { ca_file = front.ca_file, base_url = front.ip_url }
    assert(c:get_organization("org-1", PARAMS)) -- the certificate names 127.0.0.1 too
  end)

  it("skips verification only when verify_tls = false is set", function()
    local org = assert(client({ verify_tls = false }):get_organization("org-1", PARAMS))
    assert.equal("org-1", org.id)
  end)

  it("does not follow a redirect, so the token never goes elsewhere", function()
    local res = assert(client({ ca_file = front.ca_file }):request { path = "/redirect" })
    assert.equal(302, res.status)
    assert.matches("^http://127%.0%.0%.1:", res.headers.location)
    assert.equal(0, #mock.requests())
  end)
end)
