-- The pure core: query strings, path segments, JSON bodies and numbers,
-- checked byte for byte with no server involved.
local core = require "truto.core"
local compat = require "spec.helpers.compat"
local truto = require "truto"

local function q(params) return assert(core.encode_query(params)) end

describe("query encoding", function()
  it("writes scalars, integral numbers without .0, booleans", function()
    assert.equal("a=x&b=10&c=10&d=1.5&e=true&f=false", q { a = "x", b = 10, c = 10.0, d = 1.5, e = true, f = false })
  end)

  it("writes arrays with empty brackets, percent-encoded", function()
    assert.equal("truto_exclude_fields%5B%5D=id&truto_exclude_fields%5B%5D=name",
      q { truto_exclude_fields = { "id", "name" } })
  end)

  it("writes nested maps in bracket notation", function()
    assert.equal("remote_query%5Bfoo%5D=bar", q { remote_query = { foo = "bar" } })
    assert.equal("created_at%5Bgt%5D=2024-01-01T00%3A00%3A00Z", q { created_at = { gt = "2024-01-01T00:00:00Z" } })
  end)

  it("writes maps inside arrays and arrays inside arrays", function()
    assert.equal("foo%5B%5D=a&foo%5B%5D%5Bb%5D=c", q { foo = { "a", { b = "c" } } })
    assert.equal("m%5B%5D%5B%5D=1&m%5B%5D%5B%5D=2", q { m = { { 1, 2 } } })
  end)

  it("sorts keys bytewise at every level", function()
    assert.equal("B=1&a=2&b%5BZ%5D=3&b%5Ba%5D=4&%C3%A9=5", q { a = 2, B = 1, ["é"] = 5, b = { a = 4, Z = 3 } })
  end)

  it("escapes every byte outside the unreserved set, space as %20", function()
    assert.equal("k=a%20b%2Bc%26d%3De%2F%3F%23%5B%5D~-_.", q { k = "a b+c&d=e/?#[]~-_." })
    assert.equal("k=%00%0D%0A%FF%C3%BC", q { k = "\0\r\n\255ü" })
  end)

  it("omits empty tables and cjson.null", function()
    assert.equal("a=1", q { a = 1, b = {}, c = { d = {} }, e = truto.null })
    assert.equal("", q {})
  end)

  it("writes 64-bit integer limits exactly", function()
    if compat.integers then
      assert.equal("max=9223372036854775807&min=-9223372036854775808",
        q { max = math.maxinteger, min = math.mininteger })
    else
      assert.equal("max=9007199254740992&min=-9007199254740992", q { max = 2 ^ 53, min = -2 ^ 53 })
    end
  end)

  it("reads raw fields, ignoring metatables", function()
    local t = setmetatable({ a = 1 }, { __index = function() return "x" end, __pairs = error })
    assert.equal("a=1", q(t))
  end)

  local refusals = {
    { "a function", { f = print }, "f: function cannot be encoded" },
    { "userdata", { u = io.stdout }, "u: userdata cannot be encoded" },
    { "NaN", { n = 0 / 0 }, "n: NaN and infinity cannot be encoded" },
    { "infinity", { n = math.huge }, "n: NaN and infinity cannot be encoded" },
    { "a sparse array", { a = { 1, nil, 3 } }, "a: array has holes" },
    { "a mixed table", { a = { 1, x = 2 } }, "a: table mixes array items and named keys" },
    { "a boolean key", { a = { [true] = 1 } }, "a: table key must be a string or an array index" },
    { "an empty key", { [""] = 1 }, "empty key cannot be encoded" },
    { "an array at the top", { "x" }, "params must be a table of named parameters, not an array" },
  }
  for _, case in ipairs(refusals) do
    it("refuses " .. case[1], function()
      local s, err = core.encode_query(case[2])
      assert.is_nil(s)
      assert.equal(case[3], err)
    end)
  end

  it("refuses cyclic and too deep tables", function()
    local t = {}
    t.t = t
    local s, err = core.encode_query { a = t }
    assert.is_nil(s)
    assert.matches("nested deeper than 16 levels", err, 1, true)
  end)
end)

describe("path segments", function()
  it("escapes an id into exactly one segment", function()
    assert.equal("org%2Fwith%20space%3A%C3%BC", core.segment("org/with space:ü"))
    assert.equal("..%2F..%2Fadmin", core.segment("../../admin"))
    assert.equal("a%2Fb%3Fc%23d", core.segment("a/b?c#d"))
  end)

  it("writes integral numbers without .0", function()
    assert.equal("42", core.segment(42))
    assert.equal("42", core.segment(42.0))
  end)

  it("refuses empty, fractional and non-scalar ids", function()
    assert.same({ nil, "id must not be empty" }, { core.segment("") })
    assert.same({ nil, "string or integer id expected, got non-integral number" }, { core.segment(1.5) })
    assert.same({ nil, "string or integer id expected, got table" }, { core.segment({}) })
  end)
end)

describe("JSON bodies", function()
  it("keeps empty arrays marked with truto.array as arrays", function()
    assert.equal('{"a":[],"b":{}}', core.encode_json { a = truto.array(), b = {} })
    assert.equal('{"members":[]}', core.encode_json { members = truto.array {} })
  end)

  it("sorts object keys and writes integers exactly", function()
    if compat.integers then
      assert.equal('{"a":1,"b":9223372036854775807,"c":2.5,"d":3}',
        core.encode_json { d = 3.0, c = 2.5, b = math.maxinteger, a = 1 })
    else
      assert.equal('{"a":1,"b":9007199254740992,"c":2.5,"d":3}',
        core.encode_json { d = 3.0, c = 2.5, b = 2 ^ 53, a = 1 })
    end
  end)

  it("escapes strings and writes null", function()
    assert.equal('["q\\"\\\\\\u000a\\u0001é",null,true]', core.encode_json { 'q"\\\n\1é', truto.null, true })
  end)

  it("refuses what JSON cannot carry", function()
    -- each message names where the value is ("a.b[2]"; with a name: "body.a.b[2]")
    assert.same({ nil, "[1]: string is not valid UTF-8" }, { core.encode_json { "\255" } })
    assert.same({ nil, "x: NaN and infinity cannot be encoded" }, { core.encode_json { x = 0 / 0 } })
    assert.same({ nil, "array has holes" }, { core.encode_json { [1] = 1, [3] = 3 } })
    assert.same({ nil, "[1]: function cannot be encoded as JSON" }, { core.encode_json { print } })
    assert.same({ nil, "body.a.b[2]: array has holes" }, { core.encode_json({ a = { b = { 1, { 1, nil, 3 } } } }, "body") })
  end)
end)

describe("decoding numbers", function()
  it("gives integers for integral JSON numbers and floats otherwise", function()
    local v = core.decode('{"a":10000,"b":1.5,"c":[1,2],"d":-3}')
    if compat.integers then
      assert.equal("integer", math.type(v.a))
      assert.equal("float", math.type(v.b))
      assert.equal("integer", math.type(v.c[2]))
    end
    assert.equal(10000, v.a)
    assert.equal(-3, v.d)
  end)

  it("keeps integers past 2^53 exact", function()
    local v = core.decode('{"n":9007199254740993,"m":-9223372036854775808,"s":"9007199254740993"}')
    if compat.integers then
      assert.equal(9007199254740993, v.n)
      assert.equal("integer", math.type(v.n))
      assert.equal(math.mininteger, v.m)
    else
      assert.equal(2 ^ 53, v.n) -- the nearest double
      assert.equal(-2 ^ 63, v.m)
    end
    assert.equal("9007199254740993", v.s)
  end)

  it("leaves strings that happen to look like markers alone", function()
    local v = core.decode('{"n":9007199254740993,"s":"\\u0000i:12"}')
    assert.equal("\0i:12", v.s)
  end)
end)

describe("Retry-After", function()
  it("reads seconds, HTTP dates and ratelimit-reset", function()
    assert.equal(10, core.retry_after("10"))
    assert.equal(3, core.retry_after(nil, "3"))
    assert.equal(0, core.retry_after("Sun, 06 Nov 1994 08:49:37 GMT"))
    local later = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 100)
    local wait = core.retry_after(later)
    assert.is_true(wait > 90 and wait <= 100)
    assert.is_nil(core.retry_after("soon"))
    assert.equal(4, core.retry_after("soon", "4"))
  end)
end)
