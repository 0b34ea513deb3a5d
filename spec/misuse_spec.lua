-- Misuse raises at once, naming the argument, before anything is sent.
-- The base URL points at a closed port: a spec here that reached the
-- network would fail with a transport error instead of the expected raise.
local truto = require "truto"

local function raises(expected, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.equal(expected, (tostring(err):gsub("^[^:]*:%d+: ", "")))
end

local function client(opts)
  opts = opts or {}
  opts.token = opts.token or "secret-token"
  opts.base_url = opts.base_url or "http://127.0.0.1:9"
  return truto.new(opts)
end

describe("truto.new", function()
  local saved_token
  setup(function() saved_token = os.getenv("TRUTO_API_TOKEN") end)

  it("raises without a token", function()
    if saved_token then return pending("TRUTO_API_TOKEN is set in this environment") end
    raises("bad argument #1 to 'new' (token required: pass token = ... or set TRUTO_API_TOKEN)",
      truto.new, { base_url = "http://127.0.0.1:9" })
  end)

  it("a module function without a default client raises a misuse error (truto.is_misuse)", function()
    if saved_token then return pending("TRUTO_API_TOKEN is set in this environment") end
    local ok, err = pcall(truto.users, { integrated_account_id = "a" })
    assert.is_false(ok)
    assert.is_true(truto.is_misuse(err))
    assert.is_string(err) -- as luaL_argerror raises it: nginx's error.log prints it
    assert.equal("bad argument #1 to 'users' (no default client (token required: pass token = ... or set "
      .. "TRUTO_API_TOKEN); call truto.configure{ token = ... } first)", (tostring(err):gsub("^[^:]*:%d+: ", "")))
    assert.matches("^spec/misuse_spec%.lua:%d+: ", tostring(err))
  end)

  it("raises on unknown options and wrong types", function()
    raises([[bad argument #1 to 'new' (unknown option "timout")]], client, { timout = 3 })
    raises("bad argument #1 to 'new' (option 'timeout': number of seconds > 0 and <= 2000000 expected, got string)", client, { timeout = "3" })
    raises("bad argument #1 to 'new' (option 'timeout': number of seconds > 0 and <= 2000000 expected, got -1)", client, { timeout = -1 })
    raises("bad argument #1 to 'new' (table expected, got string)", truto.new, "token")
  end)

  it("refuses plain http except on loopback", function()
    raises("bad argument #1 to 'new' (base_url must use https:// (http:// is allowed for loopback hosts, or with allow_insecure = true))",
      client, { base_url = "http://api.truto.one" })
    assert.equal("http://example.test", client({ base_url = "http://example.test/", allow_insecure = true }).base_url)
    assert.equal("http://localhost:8089", client({ base_url = "http://localhost:8089" }).base_url)
    assert.equal("https://api.truto.one", client({ base_url = "https://api.truto.one/" }).base_url)
    raises("bad argument #1 to 'new' (base_url must be an absolute http(s) URL)", client, { base_url = "api.truto.one" })
    raises("bad argument #1 to 'new' (base_url must use https:// (or http:// for loopback hosts), not ftp://)", client, { base_url = "ftp://x/" })
  end)

  it("refuses headers that could be split or replace the token", function()
    raises([[bad argument #1 to 'new' (header "X-A" must be a string without CR, LF or NUL)]],
      client, { headers = { ["X-A"] = "a\r\nInjected: 1" } })
    raises([[bad argument #1 to 'new' (invalid header name "X A")]], client, { headers = { ["X A"] = "1" } })
    raises([[bad argument #1 to 'new' (header "Authorization" cannot be set: it is set from the token)]],
      client, { headers = { Authorization = "Bearer other" } })
  end)

  it("never shows the token", function()
    local c = client { token = "secret-token" }
    assert.equal("truto.client (http://127.0.0.1:9)", tostring(c))
    for k, v in pairs(c) do
      assert.is_nil(tostring(k):find("secret", 1, true))
      assert.is_nil(tostring(v):find("secret", 1, true))
    end
  end)
end)

describe("call arguments", function()
  local c
  setup(function() c = client() end)

  it("requires integrated_account_id", function()
    raises("bad argument #1 to 'users' (integrated_account_id required (in params, or truto.new{ integrated_account_id = ... }))",
      c.users, c, {})
    raises("bad argument #2 to 'get_organization' (integrated_account_id required (in params, or truto.new{ integrated_account_id = ... }))",
      c.get_organization, c, "org-1")
  end)

  it("checks ids", function()
    raises("bad argument #1 to 'get_organization' (string or integer id expected, got table)",
      c.get_organization, c, {}, { integrated_account_id = "a" })
    raises("bad argument #1 to 'delete_organization' (id must not be empty)",
      c.delete_organization, c, "", { integrated_account_id = "a" })
    raises("bad argument #3 to 'get' (string or integer id expected, got nil)",
      c.get, c, "user-directory", "users", nil, { integrated_account_id = "a" })
  end)

  it("checks params and bodies", function()
    raises("bad argument #1 to 'users' (table expected, got string)", c.users, c, "status=active")
    raises("bad argument #1 to 'groups' (params.remote_query[f]: function cannot be encoded)",
      c.groups, c, { integrated_account_id = "a", remote_query = { f = print } })
    raises("bad argument #2 to 'update_organization' (table expected, got string)",
      c.update_organization, c, "org-1", "{}", { integrated_account_id = "a" })
    raises("bad argument #2 to 'update_organization' (body.n: NaN and infinity cannot be encoded)",
      c.update_organization, c, "org-1", { n = 0 / 0 }, { integrated_account_id = "a" })
    -- a body names the field, as params do
    raises("bad argument #2 to 'update_organization' (body.m: array has holes)",
      c.update_organization, c, "org-1", { m = { 1, nil, 3 } }, { integrated_account_id = "a" })
    raises([[bad argument #2 to 'update_organization' (body.a[2]["x y"]: function cannot be encoded as JSON)]],
      c.update_organization, c, "org-1", { a = { 1, { ["x y"] = print } } }, { integrated_account_id = "a" })
    raises("bad argument #2 to 'update_organization' (body: array has holes)",
      c.update_organization, c, "org-1", { 1, nil, 3 }, { integrated_account_id = "a" })
    raises("bad argument #1 to 'request' (body.m: array has holes)",
      c.request, c, { method = "POST", path = "/x", body = { m = { [2] = 1 } } })
    raises("bad argument #3 to 'list' (params.a: array has holes)",
      c.list, c, "user-directory", "users", { integrated_account_id = "a", a = { 1, nil, 3 } })
  end)

  it("checks model, resource and method names", function()
    raises([[bad argument #1 to 'list' (model name expected (letters, digits, '-', '_'), got "../x")]],
      c.list, c, "../x", "users", {})
    raises("bad argument #2 to 'get' (resource name expected (letters, digits, '-', '_'), got nil)",
      c.get, c, "user-directory", nil, "1", {})
    raises([[bad argument #3 to 'call' (method name expected (letters, digits, '-', '_'), got "a/b")]],
      c.call, c, "user-directory", "users", "a/b")
  end)

  it("checks raw requests", function()
    raises("bad argument #1 to 'request' (path must start with '/' and hold only URL path characters (escape the rest))",
      c.request, c, { path = "/a b" })
    raises("bad argument #1 to 'request' (method must be an upper-case HTTP method)",
      c.request, c, { method = "get", path = "/" })
    raises([[bad argument #1 to 'request' (header "X" must be a string without CR, LF or NUL)]],
      c.request, c, { path = "/", headers = { X = "1\n2" } })
  end)

  it("points the error at the caller's line", function()
    local ok, err = pcall(function() local it = c:users(5); return it end)
    assert.is_false(ok)
    assert.matches("^spec/misuse_spec.lua:%d+: bad argument #1 to 'users'", tostring(err))
    assert.is_string(err)
    assert.matches("bad argument #1 to 'users' %(table expected, got number%)$", err)
  end)
end)

describe("truto.array", function()
  it("marks tables and raises on other values", function()
    local t = truto.array { 1 }
    assert.equal(1, t[1])
    raises("bad argument #1 to 'array' (table expected, got string)", truto.array, "x")
  end)
end)
