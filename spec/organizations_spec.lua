-- Organization get / update / delete: what went on the wire, what came back.
local h = require "spec.helpers.client"
local compat = require "spec.helpers.compat"
local cjson = require "cjson"
local truto = require "truto"
local mock = h.mock

local ACCOUNT = { integrated_account_id = "acct-small" }

describe("organizations", function()
  local client
  setup(function() client = h.client() end)
  before_each(function() mock.reset() end)

  it("gets one organization", function()
    local org, err = client:get_organization("org-1", ACCOUNT)
    assert.is_nil(err)
    assert.equal("org-1", org.id)
    assert.is_string(org.name)
    local req = mock.last()
    assert.equal("GET", req.method)
    assert.equal("/unified/user-directory/organizations/org-1", req.path)
    assert.equal("integrated_account_id=acct-small", req.raw_query)
    assert.equal("", req.body)
  end)

  it("escapes the id as one path segment", function()
    local org = assert(client:get_organization("org/with space:ü", ACCOUNT))
    assert.equal("org/with space:ü", org.id)
    assert.equal("/unified/user-directory/organizations/org%2Fwith%20space%3A%C3%BC", mock.last().path)
  end)

  it("updates with PATCH and a JSON body, and the change sticks", function()
    local org, err = client:update_organization("org-1", { name = "Renamed", tags = truto.array() }, ACCOUNT)
    assert.is_nil(err)
    assert.equal("Renamed", org.name)
    local req = mock.last()
    assert.equal("PATCH", req.method)
    assert.equal('{"name":"Renamed","tags":[]}', req.body)
    assert.equal("application/json", req.headers["content-type"])
    assert.equal("Renamed", assert(client:get_organization("org-1", ACCOUNT)).name)
  end)

  it("deletes, after which the organization is gone", function()
    local res, err = client:delete_organization("org-1", ACCOUNT)
    assert.is_nil(err)
    assert.same({ id = "org-1", deleted = true }, res)
    assert.equal("DELETE", mock.last().method)
    local gone, gerr = client:get_organization("org-1", ACCOUNT)
    assert.is_nil(gone)
    assert.equal(404, gerr.status)
  end)

  it("gives {} for a 204 answer", function()
    local res, err = client:delete_organization("org-2", ACCOUNT)
    assert.is_nil(err)
    assert.same({}, res)
  end)

  it("returns nil and an error for an unknown id", function()
    local org, err = client:get_organization("nope", ACCOUNT)
    assert.is_nil(org)
    assert.equal("http", err.kind)
    assert.equal(404, err.status)
    assert.equal("Not Found", err.error)
  end)

  it("accepts integer ids and writes them without .0", function()
    client:get_organization(42.0, ACCOUNT)
    assert.equal("/unified/user-directory/organizations/42", mock.last().path)
  end)
end)

describe("generic calls", function()
  local client
  setup(function() client = h.client() end)
  before_each(function() mock.reset() end)

  it("get / create / update / delete any resource", function()
    local user = assert(client:get("user-directory", "users", "u001", ACCOUNT))
    assert.equal("u001", user.id)
    assert.equal("/unified/user-directory/users/u001", mock.last().path)

    local created = assert(client:create("user-directory", "users", { name = "New Person" }, ACCOUNT))
    assert.equal("New Person", created.name)
    assert.equal("POST", mock.last().method)
    assert.equal('{"name":"New Person"}', mock.last().body)

    local updated = assert(client:update("user-directory", "organizations", "org-1", { name = "X" }, ACCOUNT))
    assert.equal("X", updated.name)
    assert.equal("PATCH", mock.last().method)

    assert(client:delete("user-directory", "organizations", "org-1", ACCOUNT))
    assert.equal("DELETE", mock.last().method)
  end)

  it("calls custom methods with POST", function()
    local res = assert(client:call("user-directory", "users", "downgrade", { id = "u001" }, ACCOUNT))
    assert.equal("downgrade", res.result.method)
    assert.equal("/unified/user-directory/users/downgrade", mock.last().path)
    assert.equal('{"id":"u001"}', mock.last().body)
  end)

  it("sends any request through client:request and returns every status", function()
    local res = assert(client:request { path = "/unified/user-directory/users", query = { limit = 2 } })
    assert.equal(400, res.status)
    assert.equal(400, res.json.statusCode)
    assert.equal("limit=2", mock.last().raw_query)
    local ok = assert(client:request {
      method = "GET", path = "/unified/user-directory/users", query = { integrated_account_id = "acct-small", limit = 2 },
      headers = { ["X-Trace"] = "t1" },
    })
    assert.equal(200, ok.status)
    assert.equal(2, #ok.json.result)
    assert.equal(ok.body, ok.body) -- raw text kept
    assert.is_string(ok.headers["content-type"])
    assert.equal("t1", mock.last().headers["x-trace"])
  end)
end)

describe("module functions", function()
  it("use the default client that truto.configure sets", function()
    local m = h.server()
    mock.reset()
    truto.configure { token = m.token, base_url = m.url, integrated_account_id = "acct-small" }
    local n = 0
    for _ in truto.users() do n = n + 1 end
    assert.equal(40, n)
    assert.equal("org-1", assert(truto.get_organization("org-1")).id)
    assert.equal("Z", assert(truto.update_organization("org-1", { name = "Z" })).name)
    assert.same({ id = "org-1", deleted = true }, assert(truto.delete_organization("org-1")))
    local groups = 0
    for _ in truto.groups() do groups = groups + 1 end
    assert.equal(6, groups)
  end)
end)

describe("numbers", function()
  it("come back as Lua integers, exact past 2^53", function()
    local client = h.client()
    local user = assert(client:get("user-directory", "users", "u040", ACCOUNT))
    if compat.integers then
      assert.equal("integer", math.type(user.employee_number))
      assert.equal(9007199254740993, user.employee_number)
      assert.equal("integer", math.type(user.login_count))
    end
    assert.is_nil(tostring(user.login_count):find(".", 1, true))
    assert.equal(cjson.null == nil, false)
  end)
end)
