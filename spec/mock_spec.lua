-- The mock Truto server itself (spec/mock/): routes, accounts, paging, faults, the request log.
-- Talks to it with luasocket's socket.http, which knows nothing of lua-truto.

local http = require "socket.http"
local ltn12 = require "ltn12"
local socket = require "socket"
local cjson = require "cjson"
local mock = require "spec.helpers.mock"
local compat = require "spec.helpers.compat"
local fixtures = require "spec.mock.truto_mock.fixtures"

local BASE = "/unified/user-directory/"

local m

-- One call: status (or nil and the transport error), headers, body.
local function request(method, path, opts)
  opts = opts or {}
  local headers = opts.headers or { authorization = "Bearer " .. m.token }
  if opts.body then
    headers["content-type"] = "application/json"
    headers["content-length"] = tostring(#opts.body)
  end
  local chunks = {}
  local ok, status, response_headers = http.request({
    url = m.url .. path,
    method = method,
    headers = headers,
    source = opts.body and ltn12.source.string(opts.body),
    sink = ltn12.sink.table(chunks),
  })
  if not ok then return nil, status end
  return status, response_headers, table.concat(chunks)
end

-- GET on `resource` of `account`, `query` appended as is; the status and the decoded body.
local function get(resource, account, query, opts)
  local path = BASE .. resource .. "?integrated_account_id=" .. account .. (query and "&" .. query or "")
  local status, headers, body = request("GET", path, opts)
  if not status then return nil, headers end
  local ok, value = pcall(cjson.decode, body)
  return status, ok and value or body, headers, body
end

-- Every page of a list, following next_cursor: the items, the pages' bodies.
local function all_pages(resource, account, query)
  local items, pages, cursor = {}, {}, nil
  repeat
    local q = query
    if cursor then q = (q and q .. "&" or "") .. "next_cursor=" .. cursor:gsub("[^%w]", function(c)
      return string.format("%%%02X", c:byte())
    end) end
    local status, body = get(resource, account, q)
    assert.equal(200, status)
    pages[#pages + 1] = body
    for _, item in ipairs(body.result) do items[#items + 1] = item end
    cursor = body.next_cursor
    assert.is_true(#pages < 500, "runaway paging")
  until cursor == nil or cursor == cjson.null or cursor == ""
  return items, pages
end

local function ids(items)
  local out = {}
  for i, item in ipairs(items) do out[i] = item.id end
  return out
end

local function range(prefix, from, to, digits)
  local out = {}
  for i = from, to do out[#out + 1] = prefix .. string.format("%0" .. digits .. "d", i) end
  return out
end

describe("mock Truto server", function()
  setup(function()
    m = mock.start()
  end)

  before_each(function()
    mock.reset()
  end)

  it("starts once per process", function()
    assert.equal(m, mock.start())
    assert.matches("^http://127%.0%.0%.1:%d+$", m.url)
    assert.equal("test-token", m.token)
  end)

  describe("requests Truto refuses", function()
    it("answers 401 without the token or with another one", function()
      for _, headers in ipairs({ {}, { authorization = "Bearer nope" }, { authorization = "test-token" } }) do
        local status, body, response_headers = get("users", "acct-small", nil, { headers = headers })
        assert.equal(401, status)
        assert.same({ statusCode = 401, error = "Unauthorized", message = "Invalid API token" }, body)
        assert.equal("application/json; charset=utf-8", response_headers["content-type"])
      end
    end)

    it("answers 400 without integrated_account_id", function()
      local status, _, body = request("GET", BASE .. "users")
      assert.equal(400, status)
      assert.equal('{"statusCode":400,"error":"Bad Request","message":"integrated_account_id is required",'
        .. '"truto_error_insight":{"missing_required_query_parameters":["integrated_account_id"]}}', body)
    end)

    it("answers 404 for an unknown account, route or id", function()
      local status, body = get("users", "acct-nope")
      assert.equal(404, status)
      assert.same({ statusCode = 404, error = "Not Found", message = "Integrated account not found" }, body)
      status, body = get("roles", "acct-small")
      assert.equal(404, status)
      assert.equal("Not Found", body.error)
      status, body = get("users/u999", "acct-small")
      assert.equal(404, status)
      assert.equal("No user with id 'u999'", body.message)
    end)

    it("answers 405 for a method the route lacks", function()
      local status, headers, body = request("PUT", BASE .. "users?integrated_account_id=acct-small")
      assert.equal(405, status)
      assert.equal("GET, POST", headers["allow"])
      assert.equal("Method Not Allowed", cjson.decode(body).error)
      status = request("POST", BASE .. "organizations?integrated_account_id=acct-small", { body = "{}" })
      assert.equal(405, status)
    end)

    it("answers 400 for a bad limit, cursor or response format", function()
      for _, query in ipairs({ "limit=0", "limit=1001", "limit=ten", "next_cursor=bm9wZTox",
        "next_cursor=42", "truto_response_format=xml" }) do
        local status, body = get("users", "acct-small", query)
        assert.equal(400, status, query)
        assert.equal("Bad Request", body.error)
      end
    end)
  end)

  describe("acct-small", function()
    it("pages its 40 users by 10 with opaque cursors, the last one null", function()
      local items, pages = all_pages("users", "acct-small")
      assert.same(range("u", 1, 40, 3), ids(items))
      assert.equal(4, #pages)
      for i, page in ipairs(pages) do
        assert.equal(#page.result, page.result_count)
        if i < 4 then assert.is_nil(tonumber(page.next_cursor)) end
      end
      assert.equal(cjson.null, pages[4].next_cursor)
    end)

    it("honours limit", function()
      local items, pages = all_pages("users", "acct-small", "limit=7")
      assert.equal(40, #items)
      assert.equal(6, #pages)
    end)

    it("has realistic users", function()
      local _, body = get("users", "acct-small", "limit=40")
      local by_status, names = {}, {}
      for _, user in ipairs(body.result) do
        by_status[user.status] = (by_status[user.status] or 0) + 1
        names[user.name] = user
        assert.is_table(user.remote_data)
        assert.is_number(user.login_count)
        assert.is_boolean(user.is_2fa_enabled)
      end
      for _, status in ipairs({ "active", "inactive", "deleted", "invited", "created" }) do
        assert.is_true(by_status[status] > 0, status)
      end
      assert.is_table(names["Zoë Ångström"])
      assert.is_table(names["李雷"])
      assert.is_table(names["José Núñez"])
      assert.is_nil(names["Kai"].last_name)
      assert.is_nil(body.result[8].emails)
      assert.same(fixtures.users()[3].emails, body.result[3].emails)
    end)

    it("writes u040's employee_number as the literal 9007199254740993", function()
      local _, _, _, raw = get("users/u040", "acct-small")
      assert.matches('"employee_number":9007199254740993[,}]', raw)
    end)

    it("filters users by status, group_id and email", function()
      local _, body = get("users", "acct-small", "status=invited")
      assert.same({ "u005", "u015", "u025", "u035" }, ids(body.result))
      _, body = get("users", "acct-small", "group_id=g03&limit=100")
      for _, user in ipairs(body.result) do
        local found = false
        for _, g in ipairs(user.groups) do found = found or g.id == "g03" end
        assert.is_true(found)
      end
      _, body = get("users", "acct-small", "email=jose.nunez%40mail.example")
      assert.same({ "u003" }, ids(body.result))
    end)

    it("takes several values of a filter, in the documented array form or repeated", function()
      local invited_or_inactive = { "u003", "u005", "u013", "u015", "u023", "u025", "u033", "u035" }
      for _, query in ipairs({ "status%5B%5D=inactive&status%5B%5D=invited", "status[]=inactive&status[]=invited",
        "status=inactive&status=invited", "status%5B%5D=inactive&status=invited" }) do
        local _, body = get("users", "acct-small", query .. "&limit=100")
        assert.same(invited_or_inactive, ids(body.result), query)
      end
      local _, body = get("users", "acct-small", "status%5B%5D=inactive")
      assert.same({ "u003", "u013", "u023", "u033" }, ids(body.result))
      _, body = get("groups", "acct-small", "name%5B%5D=Sales&name%5B%5D=Admins")
      assert.same({ "g02", "g05" }, ids(body.result))
      _, body = get("users", "acct-small", "group_id%5B%5D=g06&status%5B%5D=created&limit=100")
      assert.same({}, ids(body.result)) -- created users are in no group
    end)

    it("lists its 6 groups and 3 organizations", function()
      local items = all_pages("groups", "acct-small")
      assert.same({ "g01", "g02", "g03", "g04", "g05", "g06" }, ids(items))
      assert.is_number(items[1].members)
      items = all_pages("organizations", "acct-small")
      assert.same({ "org-1", "org-2", "org/with space:ü" }, ids(items))
    end)

    it("gets a user, a group, an organization by an encoded id", function()
      local status, body = get("users/u002", "acct-small")
      assert.equal(200, status)
      assert.equal("李雷", body.name)
      status, body = get("groups/g04", "acct-small")
      assert.equal(200, status)
      assert.equal("Design Ünit", body.name)
      status, body = get("organizations/org%2Fwith%20space%3A%C3%BC", "acct-small")
      assert.equal(200, status)
      assert.equal("org/with space:ü", body.id)
    end)
  end)

  describe("truto_* parameters", function()
    it("excludes fields, bracketed and encoded or not", function()
      local _, body = get("users", "acct-small",
        "truto_exclude_fields%5B%5D=emails&truto_exclude_fields%5B%5D=groups&limit=3")
      for _, user in ipairs(body.result) do
        assert.is_nil(user.emails)
        assert.is_nil(user.groups)
        assert.is_string(user.id)
      end
      _, body = get("users/u001", "acct-small", "truto_exclude_fields=name")
      assert.is_nil(body.name)
    end)

    it("drops remote_data", function()
      local _, body = get("users", "acct-small", "truto_ignore_remote_data=true")
      assert.is_nil(body.result[1].remote_data)
      assert.is_string(body.result[1].name)
    end)

    it("keys the whole list by a field", function()
      local _, body = get("users", "acct-small", "truto_key_by=id&limit=2")
      assert.equal(cjson.null, body.next_cursor)
      assert.equal(40, body.result_count)
      assert.equal("Zoë Ångström", body.result.u001.name)
      assert.is_table(body.result.u040)
    end)

    it("returns raw and debug answers", function()
      local _, body = get("users", "acct-small", "truto_response_format=raw&limit=1")
      assert.same(fixtures.users()[1].remote_data, body.result[1])
      _, body = get("users", "acct-small", "truto_response_format=debug&limit=1")
      assert.equal("u001", body.result[1].id)
      assert.is_string(body.next_cursor)
      assert.equal("GET", body.debug.request.method)
      _, body = get("users", "acct-small", "truto_response_format=normalized&limit=1")
      assert.equal("u001", body.result[1].id)
    end)

    it("streams a whole list as NDJSON with truto_response_format=stream", function()
      local status, headers, body = request("GET", BASE .. "users?integrated_account_id=acct-small&limit=3"
        .. "&truto_response_format=stream&truto_exclude_fields%5B%5D=remote_data")
      assert.equal(200, status)
      assert.equal("application/x-ndjson", headers["content-type"])
      local lines = {}
      for line in body:gmatch("([^\n]*)\n") do lines[#lines + 1] = cjson.decode(line) end
      assert.equal(40, #lines) -- every user, the limit ignored
      assert.same(range("u", 1, 40, 3), ids(lines))
      assert.is_nil(lines[1].remote_data)
      assert.equal("\n", body:sub(-1))
      -- from a cursor on
      local _, page = get("users", "acct-small", "limit=30")
      local cursor = page.next_cursor:gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end)
      _, _, body = request("GET", BASE .. "users?integrated_account_id=acct-small&truto_response_format=stream"
        .. "&next_cursor=" .. cursor)
      lines = {}
      for line in body:gmatch("([^\n]*)\n") do lines[#lines + 1] = cjson.decode(line).id end
      assert.same(range("u", 31, 40, 3), lines)
      -- a looping list ends where its cursor repeats; one object is one line
      _, _, body = request("GET", BASE .. "users?integrated_account_id=acct-loop&truto_response_format=stream")
      assert.equal(30, select(2, body:gsub("\n", "")))
      status, headers, body = request("GET", BASE .. "users/u002?integrated_account_id=acct-small&truto_response_format=stream")
      assert.equal(200, status)
      assert.equal("application/x-ndjson", headers["content-type"])
      assert.equal("u002", cjson.decode(body:match("^(.-)\n$")).id)
    end)

    it("wraps a single object with truto_response_format=debug", function()
      local status, body = get("users/u002", "acct-small", "truto_response_format=debug")
      assert.equal(200, status)
      assert.equal("u002", body.result.id)
      assert.equal("GET", body.debug.request.method)
      assert.equal("/unified/user-directory/users/u002", body.debug.request.path)
      assert.equal("https://api.vendor.example/users", body.debug.requestUrl)
    end)

    it("compresses when asked to", function()
      local _, headers = request("GET", BASE .. "users?integrated_account_id=acct-small",
        { headers = { authorization = "Bearer test-token", ["accept-encoding"] = "gzip" } })
      assert.equal("gzip", headers["content-encoding"])
    end)
  end)

  describe("paging accounts", function()
    it("acct-large pages 100,000 generated users", function()
      local status, body = get("users", "acct-large")
      assert.equal(200, status)
      assert.same(range("L", 1, 100, 6), ids(body.result))
      local items = all_pages("users", "acct-large", "limit=1000&truto_ignore_remote_data=true")
      assert.equal(100000, #items)
      assert.equal("L100000", items[100000].id)
      status, body = get("users/L054321", "acct-large")
      assert.equal(200, status)
      assert.same(fixtures.generated_user(fixtures.LARGE, 54321).name, body.name)
    end)

    it("acct-huge has a million users, computed on demand", function()
      local _, body = get("users", "acct-huge")
      assert.equal(100, #body.result)
      assert.equal("H0000001", body.result[1].id)
      local status
      status, body = get("users/H1000000", "acct-huge")
      assert.equal(200, status)
      assert.equal("H1000000", body.id)
      assert.equal(404, (get("users/H1000001", "acct-huge")))
    end)

    it("acct-empty-page has an empty second page that still carries a cursor", function()
      local items, pages = all_pages("users", "acct-empty-page")
      assert.same(range("u", 1, 25, 3), ids(items))
      local sizes = {}
      for i, page in ipairs(pages) do sizes[i] = page.result_count end
      assert.same({ 10, 0, 10, 5 }, sizes)
      assert.is_string(pages[2].next_cursor)
    end)

    it("acct-loop hands out c1, c2, then c1 again", function()
      local _, body = get("users", "acct-loop")
      assert.equal("c1", body.next_cursor)
      _, body = get("users", "acct-loop", "next_cursor=c1")
      assert.equal("c2", body.next_cursor)
      _, body = get("users", "acct-loop", "next_cursor=c2")
      assert.equal("c1", body.next_cursor)
      assert.equal(400, (get("users", "acct-loop", "next_cursor=c3")))
    end)

    it("acct-nulls ends users with an empty cursor, groups with no cursor key", function()
      local _, pages = all_pages("users", "acct-nulls")
      assert.equal("", pages[#pages].next_cursor)
      local _, _, _, raw = get("groups", "acct-nulls")
      assert.not_matches("next_cursor", raw)
      local items = all_pages("groups", "acct-nulls", "limit=4")
      assert.equal(6, #items)
    end)
  end)

  describe("organizations", function()
    local ORG3 = "organizations/org%2Fwith%20space%3A%C3%BC?integrated_account_id=acct-small"

    it("merges a PATCH and shows it to the next GET", function()
      local status, _, body = request("PATCH", BASE .. ORG3,
        { body = '{"name":"Renamed","remote_data":{"plan":"gold"},"licenses":[]}' })
      assert.equal(200, status)
      assert.matches('"licenses":%[%]', body)
      local _, org = get("organizations/org%2Fwith%20space%3A%C3%BC", "acct-small")
      assert.equal("Renamed", org.name)
      assert.equal("gold", org.remote_data.plan)
      assert.equal("unicode-sons", org.remote_data.login)
      assert.equal("free", org.pricing_plan)
    end)

    it("refuses a PATCH body that is not a JSON object", function()
      for _, body in ipairs({ "[1]", "nope", '"x"', "" }) do
        local status = request("PATCH", BASE .. "organizations/org-1?integrated_account_id=acct-small",
          { body = body })
        assert.equal(400, status, body)
      end
    end)

    it("deletes until reset; org-2 answers 204", function()
      local status, _, body = request("DELETE", BASE .. "organizations/org-1?integrated_account_id=acct-small")
      assert.equal(200, status)
      assert.same({ id = "org-1", deleted = true }, cjson.decode(body))
      assert.equal(404, (get("organizations/org-1", "acct-small")))
      status, _, body = request("DELETE", BASE .. "organizations/org-2?integrated_account_id=acct-small")
      assert.equal(204, status)
      assert.equal("", body)
      assert.same({ "org/with space:ü" }, ids((all_pages("organizations", "acct-small"))))
      mock.reset()
      assert.equal(200, (get("organizations/org-1", "acct-small")))
    end)
  end)

  describe("writes", function()
    it("creates by echoing the body with a new id", function()
      local status, _, body = request("POST", BASE .. "users?integrated_account_id=acct-small",
        { body = '{"name":"New","groups":[]}' })
      assert.equal(201, status)
      assert.equal('{"id":"u-new-1","name":"New","groups":[]}', body)
    end)

    it("replays the first answer for a repeated Idempotency-Key", function()
      local opts = { body = '{"name":"Once"}',
        headers = { authorization = "Bearer test-token", ["idempotency-key"] = "k1" } }
      local _, _, first = request("POST", BASE .. "groups?integrated_account_id=acct-small", opts)
      local status, headers, again = request("POST", BASE .. "groups?integrated_account_id=acct-small", opts)
      assert.equal(201, status)
      assert.equal(first, again)
      assert.equal("true", headers["idempotent-replayed"])
    end)

    it("runs a custom method", function()
      local status, _, body = request("POST", BASE .. "users/downgrade?integrated_account_id=acct-small",
        { body = '{"id":"u001"}' })
      assert.equal(200, status)
      assert.same({ result = { method = "downgrade", body = { id = "u001" } } }, cjson.decode(body))
    end)
  end)

  describe("fault accounts", function()
    local function fault(account)
      return get("users", account)
    end

    it("429 with Retry-After and ratelimit headers", function()
      local _
      local status, body, headers = fault("fault-429")
      assert.equal(429, status)
      assert.equal("Too Many Requests", body.error)
      assert.equal("1", headers["retry-after"])
      assert.equal("110;w=10", headers["ratelimit-limit"])
      assert.equal("0", headers["ratelimit-remaining"])
      assert.equal("1", headers["ratelimit-reset"])
      status, _, headers = fault("fault-429-date")
      assert.equal(429, status)
      assert.matches("GMT$", headers["retry-after"])
      status, _, headers = fault("fault-429-reset")
      assert.equal(429, status)
      assert.is_nil(headers["retry-after"])
      assert.equal("3", headers["ratelimit-reset"])
    end)

    it("5xx", function()
      for _, code in ipairs({ 500, 502, 503, 504 }) do
        local status, body = fault("fault-" .. code)
        assert.equal(code, status)
        assert.equal(code, body.statusCode)
      end
      assert.equal("Integrated account is blocked", select(2, fault("fault-503")).message)
    end)

    it("a remote error", function()
      local status, body, headers = fault("fault-remote")
      assert.equal(401, status)
      assert.is_true(body.truto_is_remote_error)
      assert.same({ message = "Bad credentials" }, body.raw_response)
      assert.same({ "admin:org" }, body.truto_error_insight.forbidden_error.missing_scopes)
      assert.equal("ABCD", headers["x-github-request-id"])
    end)

    it("bodies that are not a Truto list", function()
      local expected = {
        ["fault-malformed"] = '{"result": [ {"id": "u1",',
        ["fault-notobject"] = "[1,2,3]",
        ["fault-badresult"] = '{"result": "oops", "next_cursor": null}',
        ["fault-badcursor"] = '{"result": [], "next_cursor": 42}',
        ["fault-nul"] = '{"result":[{"id":"a\\u0000b"}],"next_cursor":null,"result_count":1}',
      }
      for account, text in pairs(expected) do
        local status, _, headers, raw = fault(account)
        assert.equal(200, status)
        assert.equal(text, raw)
        assert.matches("^application/json", headers["content-type"])
      end
      local status, _, headers, raw = fault("fault-html")
      assert.equal(200, status)
      assert.matches("^text/html", headers["content-type"])
      assert.matches("<html>", raw)
    end)

    it("broken connections", function()
      for _, account in ipairs({ "fault-truncated", "fault-huge-length", "fault-close" }) do
        local status, err = fault(account)
        assert.is_nil(status, account)
        assert.equal("closed", err)
      end
    end)

    it("a slow answer", function()
      local started = socket.gettime()
      local status = fault("fault-slow")
      assert.equal(200, status)
      assert.is_true(socket.gettime() - started >= 2.9)
    end)

    it("flaky accounts fail n times, then answer, until reset", function()
      local seen = {}
      for i = 1, 4 do seen[i] = (fault("flaky-500-2")) end
      assert.same({ 500, 500, 200, 200 }, seen)
      assert.is_nil((fault("flaky-close-1")))
      assert.equal(200, (fault("flaky-close-1")))
      assert.is_nil((fault("flaky-truncated-1")))
      assert.equal(200, (fault("flaky-truncated-1")))
      mock.reset()
      assert.equal(500, (fault("flaky-500-2")))
    end)

    it("@<ms> delays the answer", function()
      local started = socket.gettime()
      local status, body = get("users", "acct-small@200")
      assert.equal(200, status)
      assert.equal("u001", body.result[1].id)
      assert.is_true(socket.gettime() - started >= 0.2)
    end)
  end)

  describe("rate limits", function()
    local function user(account, opts)
      local status, _, headers = get("groups/g01", account, nil, opts)
      return status, headers
    end

    it("sends ratelimit-* headers on every answer, with high limits by default", function()
      local status, headers = user("acct-small")
      assert.equal(200, status)
      assert.equal("100000;w=10", headers["ratelimit-limit"])
      assert.equal("99999", headers["ratelimit-remaining"])
      local reset = tonumber(headers["ratelimit-reset"])
      assert.is_true(reset >= 1 and reset <= 10)
      local _
      status, _, headers = get("users", "acct-small")
      assert.equal(200, status)
      assert.equal("99998", headers["ratelimit-remaining"])
      status, _, headers = get("users/u999", "acct-small")
      assert.equal(404, status)
      assert.equal("99997", headers["ratelimit-remaining"])
      assert.same({ token = { requests = 1000000, per = 10 }, account = { requests = 100000, per = 10 },
        accounts = {}, throttled = 0, counted = 3 }, mock.rate())
    end)

    it("answers 429 with Retry-After past a budget, counts the 429s, and opens the next window", function()
      mock.limits { token = { requests = 5, per = 1 }, account = { requests = 3, per = 1 },
        accounts = { ["acct-1k-b"] = { requests = 1, per = 1 } } }
      -- start right after a window opens, so that all of this falls in one window
      local t = socket.gettime()
      socket.sleep(math.ceil(t) - t + 0.02)
      local seen = {}
      for _, account in ipairs({ "acct-small", "acct-small", "acct-small", "acct-small", "acct-1k-a", "acct-1k-b",
        "acct-1k-b" }) do
        local status, headers = user(account)
        seen[#seen + 1] = { status, headers["ratelimit-limit"], headers["ratelimit-remaining"], headers["retry-after"] }
      end
      assert.same({
        { 200, "3;w=1", "2" }, { 200, "3;w=1", "1" }, { 200, "3;w=1", "0" },
        { 429, "3;w=1", "0", "1" }, -- the account's budget is spent
        { 200, "5;w=1", "0" },      -- acct-1k-a: its own budget (2 left) but the token's 5th
        { 429, "5;w=1", "0", "1" }, -- acct-1k-b: its first request, but the token's 6th
        { 429, "1;w=1", "0", "1" }, -- both spent: the later reset wins (a tie: the account)
      }, seen)
      local _, body = get("users/u001", "acct-small")
      assert.same({ statusCode = 429, error = "Too Many Requests", message = "Rate limit exceeded",
        truto_error_insight = { rate_limit_error = { retry_after_seconds = 1 } } }, body)
      local report = mock.rate()
      assert.equal(4, report.throttled)
      assert.equal(8, report.counted)
      assert.same({ ["acct-1k-b"] = { requests = 1, per = 1 } }, report.accounts)
      socket.sleep(1.05)
      assert.equal(200, (user("acct-small")))
      assert.equal(200, (user("acct-1k-b")))
      mock.reset()
      assert.same({ token = { requests = 1000000, per = 10 }, account = { requests = 100000, per = 10 },
        accounts = {}, throttled = 0, counted = 0 }, mock.rate())
    end)

    it("does not count a request refused before its account is known", function()
      mock.limits { token = { requests = 1, per = 10 } }
      get("users", "acct-small", nil, { headers = {} })
      request("GET", BASE .. "users")
      get("users", "acct-nope")
      assert.equal(0, mock.rate().counted)
    end)

    it("starts with Truto's own limits with serve --limits truto, and keeps them after a reset", function()
      local port = (function()
        local srv = assert(socket.bind("127.0.0.1", 0))
        local _, p = srv:getsockname()
        srv:close()
        return tonumber(p)
      end)()
      local p = assert(io.popen("spec/mock/serve --port " .. port .. " --limits truto 2>&1"))
      local dir = p:read("*a"):match("([^\n]+)\n*$")
      p:close()
      finally(function()
        os.execute("spec/mock/serve --stop '" .. dir .. "' && rm -rf '" .. dir .. "'")
      end)
      local function limits_at(method)
        local chunks = {}
        http.request { url = "http://127.0.0.1:" .. port .. (method == "POST" and "/__mock/reset" or "/__mock/limits"),
          method = method, headers = { ["content-length"] = "0" }, sink = ltn12.sink.table(chunks) }
        return cjson.decode(table.concat(chunks))
      end
      local truto = { token = { requests = 500, per = 10 }, account = { requests = 50, per = 10 }, accounts = {},
        throttled = 0, counted = 0 }
      assert.same(truto, limits_at("GET"))
      limits_at("POST")
      assert.same(truto, limits_at("GET"))
      -- (--port 0: a taken port would be refused before the limits are read)
      local q = assert(io.popen("spec/mock/serve --port 0 --limits '{\"token\":{\"requests\":0}}' 2>&1; echo rc=$?"))
      local out = q:read("*a")
      q:close()
      assert.matches("%-%-limits: token%.requests must be an integer from 1 to 1000000000", out)
      assert.matches("rc=1\n$", out)
    end)

    it("refuses limits it cannot use", function()
      for _, body in ipairs({ "[]", '{"token":{"requests":0,"per":1}}', '{"token":{"requests":1.5,"per":1}}',
        '{"account":{"requests":1,"per":0}}', '{"accounts":{"a":{"requests":1}}}', '{"tokens":{}}', "nope" }) do
        local status, _, text = request("POST", "/__mock/limits", { headers = {}, body = body })
        assert.equal(400, status, body)
        assert.equal("Bad Request", cjson.decode(text).error)
      end
      local status, headers = request("PUT", "/__mock/limits", { headers = {} })
      assert.equal(405, status)
      assert.equal("GET, POST", headers["allow"])
    end)
  end)

  describe("the request log", function()
    it("records each request as received", function()
      local path = BASE .. "organizations/org%2Fwith%20space%3A%C3%BC"
      local query = "integrated_account_id=acct-small&truto_exclude_fields%5B%5D=id"
        .. "&truto_exclude_fields%5B%5D=name&x=a%2Bb"
      request("PATCH", path .. "?" .. query, { body = '{"name":"Z"}',
        headers = { authorization = "Bearer test-token", ["X-Custom"] = "yes" } })
      local entry = mock.last()
      assert.equal("PATCH", entry.method)
      assert.equal(path, entry.path)
      assert.equal(query, entry.raw_query)
      assert.same({ "id", "name" }, entry.args["truto_exclude_fields[]"])
      assert.equal("a+b", entry.args.x)
      assert.equal("yes", entry.headers["x-custom"])
      assert.equal('{"name":"Z"}', entry.body)
      if compat.integers then assert.equal("integer", math.type(entry.connection)) end
      assert.equal("acct-small", entry.account)
      assert.equal("matched", entry.token)
      assert.equal("Bearer test-token", entry.headers.authorization) -- the mock's own public token
      assert.is_true(math.abs(entry.time - socket.gettime()) < 5)
    end)

    it("logs whether the token matched, never another token", function()
      local secret = "tr_live_" .. string.rep("s3cr3t", 6)
      get("users", "acct-small", nil, { headers = { authorization = "Bearer " .. secret } })
      get("users", "acct-small", nil, { headers = { authorization = secret } })
      get("users", "acct-small", nil, { headers = {} })
      local entries = mock.requests()
      assert.same({ "mismatched", "mismatched", "missing" }, { entries[1].token, entries[2].token, entries[3].token })
      assert.same({ "[not logged]", "[not logged]" }, { entries[1].headers.authorization, entries[2].headers.authorization })
      assert.is_nil(entries[3].headers.authorization)
      local f = assert(io.open(m.dir .. "/requests.log"))
      local text = f:read("*a")
      f:close()
      assert.is_nil(text:find("s3cr3t", 1, true))
      local _, _, body = request("GET", "/__mock/log", { headers = {} })
      assert.is_nil(body:find("s3cr3t", 1, true))
    end)

    it("answers control requests only for a loopback Host (no DNS rebinding)", function()
      get("users", "acct-small")
      for _, host in ipairs({ "evil.example", "evil.example:" .. m.port, "127.0.0.1.evil.example" }) do
        local status, _, body = request("GET", "/__mock/log", { headers = { host = host } })
        assert.equal(403, status, host)
        assert.equal("Control endpoints answer only requests for 127.0.0.1 or localhost", cjson.decode(body).message)
        status = request("POST", "/__mock/reset", { headers = { host = host, ["content-length"] = "0" } })
        assert.equal(403, status, host)
      end
      assert.equal(1, #mock.requests()) -- not reset
      for _, host in ipairs({ "localhost:" .. m.port, "127.0.0.1", "LOCALHOST" }) do
        local status = request("GET", "/__mock/log", { headers = { host = host } })
        assert.equal(200, status, host)
      end
    end)

    it("runs its workers as nobody when started as root", function()
      local p = assert(io.popen("id -u"))
      local uid = p:read("*l")
      p:close()
      local pid = assert(io.open(m.dir .. "/nginx.pid")):read("*l")
      p = assert(io.popen("ps -o user= --ppid " .. pid))
      local users = p:read("*a")
      p:close()
      assert.matches("%S", users)
      for user in users:gmatch("%S+") do
        if uid == "0" then assert.equal("nobody", user) else assert.is_not.equal("root", user) end
      end
    end)

    it("keeps order, skips control endpoints and empties on reset", function()
      get("users", "acct-small")
      request("GET", BASE .. "groups")
      request("GET", "/__mock/log")
      local entries = mock.requests()
      assert.equal(2, #entries)
      assert.equal(BASE .. "users", entries[1].path)
      assert.equal("", entries[2].raw_query)
      assert.is_nil(entries[2].account)
      local _, _, body = request("GET", "/__mock/log", { headers = {} })
      assert.equal(2, #cjson.decode(body))
      mock.reset()
      assert.same({}, mock.requests())
      assert.is_nil(mock.last())
    end)
  end)
end)
