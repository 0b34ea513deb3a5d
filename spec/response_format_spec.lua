-- truto_response_format and other Truto parameters pass through, and the
-- answers come back as Truto shapes them.
local h = require "spec.helpers.client"
local mock = h.mock

local ACCOUNT = "acct-small"

describe("truto_response_format", function()
  local client
  setup(function() client = h.client() end)
  before_each(function() mock.reset() end)

  it("raw gives the vendor's objects", function()
    local first
    for item in client:users { integrated_account_id = ACCOUNT, truto_response_format = "raw" } do
      first = first or item
    end
    assert.equal("zoe.angstrom", first.login)
    assert.equal("integrated_account_id=acct-small&truto_response_format=raw", mock.requests()[1].raw_query)
  end)

  it("debug keeps the debug object on each page", function()
    for page in client:pages("user-directory", "users", { integrated_account_id = ACCOUNT, truto_response_format = "debug" }) do
      assert.is_table(page.debug)
      assert.is_table(page.result)
    end
    assert.equal(4, #mock.requests())
  end)

  it("truto_ignore_remote_data drops remote_data", function()
    local n = 0
    for user in client:users { integrated_account_id = ACCOUNT, truto_ignore_remote_data = true } do
      assert.is_nil(user.remote_data)
      n = n + 1
    end
    assert.equal(40, n)
    assert.equal("integrated_account_id=acct-small&truto_ignore_remote_data=true", mock.requests()[1].raw_query)
  end)

  it("integration-specific parameters pass through untouched", function()
    assert(client:get_organization("org-1", { integrated_account_id = ACCOUNT, organization_id = "o1", workspace_id = 7 }))
    assert.equal("integrated_account_id=acct-small&organization_id=o1&workspace_id=7", mock.last().raw_query)
  end)

  it("filters by group_id and email", function()
    local in_g02 = {}
    for user in client:users { integrated_account_id = ACCOUNT, group_id = "g02" } do in_g02[#in_g02 + 1] = user.id end
    assert.is_true(#in_g02 > 0)
    for _, id in ipairs(in_g02) do
      local user = assert(client:get("user-directory", "users", id, { integrated_account_id = ACCOUNT }))
      local found = false
      for _, g in ipairs(user.groups) do found = found or g.id == "g02" end
      assert.is_true(found, id)
    end
    local by_email = {}
    for user in client:users { integrated_account_id = ACCOUNT, email = "zoe.angstrom@acme.example" } do
      by_email[#by_email + 1] = user.id
    end
    assert.same({ "u001" }, by_email)
  end)
end)
