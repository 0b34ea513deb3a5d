-- Every failure is an error object with the same fields; single calls
-- return nil, err and iterators raise it. The token appears nowhere.
local h = require "spec.helpers.client"
local truto = require "truto"
local mock = h.mock

local TOKEN = "test-token"

-- Every string reachable from v, for the "no token anywhere" checks.
local function strings(v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then
    out[#out + 1] = v
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      strings(k, out, seen)
      strings(x, out, seen)
    end
  end
  return out
end

local function assert_no_token(err)
  assert.is_nil(tostring(err):find(TOKEN, 1, true))
  for _, s in ipairs(strings(err)) do assert.is_nil(s:find(TOKEN, 1, true)) end
end

local function get(client, account)
  return client:get_organization("org-1", { integrated_account_id = account })
end

describe("error objects", function()
  local client
  setup(function() client = h.client { timeout = 1, max_retries = 0 } end)
  before_each(function() mock.reset() end)

  it("describe an HTTP error with Truto's fields", function()
    local org, err = get(client, "no-such-account")
    assert.is_nil(org)
    assert.is_true(truto.is_error(err))
    assert.equal("http", err.kind)
    assert.equal(404, err.status)
    assert.equal("Not Found", err.error)
    assert.equal("Integrated account not found", err.message)
    assert.same({ statusCode = 404, error = "Not Found", message = "Integrated account not found" }, err.body)
    assert.is_false(err.remote)
    assert.equal("GET", err.method)
    assert.equal(h.server().url .. "/unified/user-directory/organizations/org-1?integrated_account_id=no-such-account", err.url)
    assert.is_table(err.headers)
    assert.equal(
      "truto: http 404 Not Found: Integrated account not found (GET " .. err.url .. ")", tostring(err))
    assert_no_token(err)
  end)

  it("reject a bad token with 401, without showing either token", function()
    local c = h.client { token = "wrong-" .. TOKEN }
    local _, err = get(c, "acct-small")
    assert.equal(401, err.status)
    assert.equal("Invalid API token", err.message)
    assert.equal("mismatched", mock.last().token) -- it was sent; the mock never logs it
    assert.equal("[not logged]", mock.last().headers.authorization)
    assert.is_nil(tostring(err):find("wrong-", 1, true))
    assert_no_token(err)
  end)

  it("mark vendor errors as remote, with the insight and vendor headers", function()
    local _, err = get(client, "fault-remote")
    assert.equal(401, err.status)
    assert.is_true(err.remote)
    assert.same({ forbidden_error = { missing_scopes = { "admin:org" } } }, err.insight)
    assert.same({ message = "Bad credentials" }, err.body.raw_response)
    assert.equal("ABCD", err.headers["x-github-request-id"])
  end)

  it("carry retry_after for 429 answers", function()
    local _, err = get(client, "fault-429")
    assert.equal(429, err.status)
    assert.equal(1, err.retry_after)
    local _, derr = get(client, "fault-429-date")
    assert.is_true(derr.retry_after >= 0 and derr.retry_after <= 2)
    local _, rerr = get(client, "fault-429-reset")
    assert.equal(3, rerr.retry_after)
  end)

  for _, status in ipairs { 500, 502, 503, 504 } do
    it("report " .. status, function()
      local _, err = get(client, "fault-" .. status)
      assert.equal("http", err.kind)
      assert.equal(status, err.status)
      assert.is_string(err.message)
    end)
  end

  it("report a body that is not JSON as a decode error with the raw text", function()
    local _, err = get(client, "fault-malformed")
    assert.equal("decode", err.kind)
    assert.equal(200, err.status)
    assert.equal('{"result": [ {"id": "u1",', err.body)
    assert.matches("^response is not valid JSON", err.message)
    local _, herr = get(client, "fault-html")
    assert.equal("decode", herr.kind)
    assert.matches("<", herr.body, 1, true)
  end)

  it("report a cut-off body and a closed connection as transport errors", function()
    for _, account in ipairs { "fault-truncated", "fault-close", "fault-huge-length" } do
      local org, err = get(client, account)
      assert.is_nil(org)
      assert.equal("transport", err.kind, account)
      assert.is_nil(err.status)
      assert.is_string(err.message)
      assert_no_token(err)
    end
  end)

  it("report a slow answer as a timeout", function()
    local _, err = get(client, "fault-slow")
    assert.equal("timeout", err.kind)
    assert.matches("^truto: timeout: ", tostring(err))
  end)

  it("report a refused connection as a transport error", function()
    local c = truto.new { token = TOKEN, base_url = "http://127.0.0.1:9", max_retries = 0 }
    local _, err = get(c, "acct-small")
    assert.equal("transport", err.kind)
    assert_no_token(err)
  end)
end)

describe("errors inside iterators", function()
  local client
  setup(function() client = h.client { timeout = 1, max_retries = 0 } end)
  before_each(function() mock.reset() end)

  local function first_error(account)
    return h.raised(function()
      for _ in client:users { integrated_account_id = account } do end
    end)
  end

  it("are raised as the error object", function()
    local err = first_error("fault-500")
    assert.is_true(truto.is_error(err))
    assert.equal(500, err.status)
  end)

  it("name a page that is not a list", function()
    assert.equal("response is not a JSON object (got array)", first_error("fault-notobject").message)
    local bad = first_error("fault-badresult")
    assert.equal("decode", bad.kind)
    assert.equal("list page result is not an array or object", bad.message)
    assert.equal("list page next_cursor is not a string", first_error("fault-badcursor").message)
  end)

  it("keep a NUL byte inside a decoded string", function()
    local items = h.collect(client:users { integrated_account_id = "fault-nul" })
    assert.equal("a\0b", items[1].id)
  end)
end)

describe("tostring of an error", function()
  it("stays one line whatever the server said: control characters are written as \\xHH", function()
    local core = require "truto.core"
    local err = core.error { kind = "http", status = 400, error = "Bad\rRequest",
      message = "no\n lua-truto: \27]0;pwned\7 \194\155x", method = "GET", url = "http://127.0.0.1/a\tb" }
    assert.equal([[truto: http 400 Bad\x0dRequest: no\x0a lua-truto: \x1b]0;pwned\x07 \x9bx (GET http://127.0.0.1/a\x09b)]],
      tostring(err))
    assert.equal("no\n lua-truto: \27]0;pwned\7 \194\155x", err.message) -- the field keeps what was said
  end)
end)
