-- Hostile and broken input: a clear error or an exact, well-formed request;
-- never a crash, a hang or a request the server misreads.
local h = require "spec.helpers.client"
local compat = require "spec.helpers.compat"
local truto = require "truto"
local mock = h.mock

local function nested(depth)
  local t = { leaf = "x" }
  for _ = 2, depth do t = { n = t } end
  return t
end

describe("hostile parameters", function()
  local client
  setup(function() client = h.client { max_retries = 0 } end)
  before_each(function() mock.reset() end)

  local function get(params)
    params.integrated_account_id = params.integrated_account_id or "acct-small"
    return client:get_organization("org-1", params)
  end

  it("percent-encodes NUL, CR and LF in keys and values, byte-exact", function()
    assert(get { ["k\r\nX-Injected: 1"] = "v\0\r\nHost: evil" })
    local req = mock.last()
    assert.equal("integrated_account_id=acct-small&k%0D%0AX-Injected%3A%201=v%00%0D%0AHost%3A%20evil", req.raw_query)
    assert.is_nil(req.headers["x-injected"])
    assert.equal("v\0\r\nHost: evil", req.args["k\r\nX-Injected: 1"])
  end)

  it("sends invalid UTF-8 percent-encoded, byte for byte", function()
    assert(get { q = "\255\254a\192" })
    assert.equal("integrated_account_id=acct-small&q=%FF%FEa%C0", mock.last().raw_query)
    assert.equal("\255\254a\192", mock.last().args.q)
  end)

  it("keeps path-like ids inside one segment", function()
    local cases = {
      ["../../admin"] = "..%2F..%2Fadmin",
      ["a/b?c#d"] = "a%2Fb%3Fc%23d",
      ["x\r\ny"] = "x%0D%0Ay",
    }
    if compat.integers then
      cases[math.maxinteger] = "9223372036854775807"
      cases[math.mininteger] = "-9223372036854775808"
    else
      cases[2 ^ 53] = "9007199254740992"
    end
    for id, path in pairs(cases) do
      mock.reset()
      local _, err = client:get_organization(id, { integrated_account_id = "acct-small" })
      assert.equal(404, err.status)
      assert.equal("/unified/user-directory/organizations/" .. path, mock.last().path)
    end
  end)

  it("accepts 16 levels of nesting and refuses 17 before sending", function()
    assert(get { deep = nested(15) })
    local n = #mock.requests()
    local ok, err = pcall(get, { deep = nested(16) })
    assert.is_false(ok)
    assert.matches("nested deeper than 16 levels", err)
    assert.equal(n, #mock.requests())
  end)

  it("refuses cyclic params and bodies before sending", function()
    local cyclic = {}
    cyclic.self = cyclic
    assert.is_false(pcall(get, { c = cyclic }))
    assert.is_false(pcall(client.update_organization, client, "org-1", { c = cyclic }, { integrated_account_id = "acct-small" }))
    assert.equal(0, #mock.requests())
  end)

  it("refuses a query longer than 64 KiB before sending, and reports a long one the server refuses", function()
    local ok, err = pcall(get, { q = string.rep("a", 1024 * 1024) })
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'get_organization' (params: query of 1048611 bytes is longer than 65536)", err, 1, true)
    assert.equal(0, #mock.requests())
    local _, lerr = get { q = string.rep("a", 60000) }
    assert.equal("http", lerr.kind)
    assert.equal(414, lerr.status)
    assert.is_true(#tostring(lerr) < 400)
    assert.equal(60000, #lerr.url - #(h.server().url .. "/unified/user-directory/organizations/org-1?integrated_account_id=acct-small&q="))
  end)

  it("sends a large body intact", function()
    local blob = string.rep("0123456789", 400000)
    local created = assert(client:create("user-directory", "users", { blob = blob }, { integrated_account_id = "acct-small" }))
    assert.equal(#blob, #created.blob)
    assert.equal(#blob + #'{"blob":""}', #mock.last().body)
  end)

  it("reads params raw, ignoring __index and __pairs", function()
    local params = setmetatable({ integrated_account_id = "acct-small" }, {
      __index = function() return "sneaky" end,
      __pairs = function() error("not called") end,
    })
    assert(client:get_organization("org-1", params))
    assert.equal("integrated_account_id=acct-small", mock.last().raw_query)
  end)

  it("refuses NaN, infinities and mixed tables with the parameter's name", function()
    for params, message in pairs {
      [{ limit = 0 / 0 }] = "params.limit: NaN and infinity cannot be encoded",
      [{ x = { a = 1, 2 } }] = "params.x: table mixes array items and named keys",
      [{ f = coroutine.create(print) }] = "params.f: thread cannot be encoded",
    } do
      local ok, err = pcall(get, params)
      assert.is_false(ok)
      assert.matches(message, err, 1, true)
    end
    assert.equal(0, #mock.requests())
  end)
end)

describe("a list that never ends", function()
  it("is stopped by loop detection, not by memory", function()
    local client = h.client()
    local ok, err = pcall(function() for _ in client:users { integrated_account_id = "acct-loop" } do end end)
    assert.is_false(ok)
    assert.is_true(truto.is_error(err))
    assert.equal("loop", err.kind)
  end)
end)
