-- Regressions found by the fuzzers (fuzz/findings/<tag>), one spec each.
local core = require "truto.core"
local compat = require "spec.helpers.compat"

describe("fuzz findings", function()
  it("numeric-header-uaf: a number header value is ignored, not read after free", function()
    compat.incremental(1, 100, 63)
    local _, err = core.read_response(429, { ["retry-after"] = -1, ["ratelimit-reset"] = 5 }, "")
    compat.incremental(200, 100, 13)
    assert.equal(429, err.status)
    assert.is_nil(err.retry_after)
    local _, ok = core.read_response(429, { ["retry-after"] = "-1", ["ratelimit-reset"] = "5" }, "")
    assert.equal(5, ok.retry_after)
  end)

  it("toplevel-number: a bare number body is normalized too", function()
    if compat.integers then assert.equal("integer", math.type(core.decode("5"))) end
    assert.equal(12345678901234567, core.decode("12345678901234567"))
    -- an answer must be one JSON object: a bare number is refused, by name
    local value, err = core.read_response(200, {}, "12345678901234567")
    assert.is_nil(value)
    assert.equal("response is not a JSON object (got number)", err.message)
  end)

  it("bigint-lenient: invalid number tokens stay invalid JSON", function()
    assert.is_nil((core.decode('{"a":12345678901234567-1,"b":2}')))
    local value, err = core.read_response(200, {}, "12345678901234567-")
    assert.is_nil(value)
    assert.equal("decode", err.kind)
  end)

  it("bigint-nul: a string holding \\u0000 does not turn protection off", function()
    local v = core.decode('{"note":"\\u0000","id":9007199254740993}')
    assert.equal(9007199254740993, v.id)
    assert.equal("\0", v.note)
  end)

  it("bigint-cjson-lenient: numbers outside RFC 8259 are refused on every lua-cjson", function()
    -- the private cjson instance has decode_invalid_numbers(false): no "+", hex, NaN, inf
    for _, text in ipairs { "[+00009900000999999999]", "[0x10]", "[NaN]", "[-inf]", "[007]" } do
      local value, message = core.decode(text)
      assert.is_nil(value, text)
      assert.is_string(message, text)
    end
  end)

  it("int-min-float: -2^63 written with a fraction is the float -2^63, as lua-cjson gives it", function()
    assert.equal(-2 ^ 63, core.decode("-9223372036854775808.0"))
    if compat.integers then
      assert.equal("float", math.type(core.decode("-9223372036854775808.0")))
      assert.equal("integer", math.type(core.decode("-9223372036854775808")))
      assert.equal(math.mininteger, core.decode("-9223372036854775808"))
    end
  end)

  it("start-cursor-nul: a start cursor keeps its NUL bytes", function()
    assert.equal("a\0b", core.pager("a\0b"):cursor())
    assert.equal("\0x", core.pager("\0x"):cursor())
  end)

  it("retry-date-cap and retry-lenient-seconds: only sane waits", function()
    -- a wait past the cap is still a wait (longer than any max_retry_wait), not a missing hint
    assert.equal(1e9, core.retry_after("Fri, 31 Dec 9999 23:59:59 GMT"))
    assert.equal(1e9, core.retry_after("Fri, 31 Dec 9999 23:59:59 GMT", "4"))
    assert.equal(1e9, core.retry_after("99999999999999999999"))
    assert.is_nil(core.retry_after("0x10"))
    assert.is_nil(core.retry_after("1e3"))
    assert.is_nil(core.retry_after("6."))
    assert.equal(1.5, core.retry_after("1.5"))
  end)
end)

describe("fuzz findings, second run", function()
  it("int-min-encode: -2^63 as a float is written as the integer it is", function()
    assert.equal("[-9223372036854775808]", core.encode_json { -9223372036854775808.0 })
    assert.equal("n=-9223372036854775808", core.encode_query { n = -9223372036854775808.0 })
  end)

  it("retry-date-weekday: an IMF-fixdate is read by position, the day name unchecked", function()
    assert.equal(0, core.retry_after(" 08, 06 Apr 1970 08:49:37 GMT"))
    assert.is_nil(core.retry_after("Sun, 06 Nov 1994 08:49:37 UTC"))
    assert.is_nil(core.retry_after("Sun, 31 Feb 2024 08:49:37 GMT"))
  end)
end)

describe("fuzz findings, third run", function()
  it("bigint-escaped-backslash: an escaped backslash before u0000 is not a NUL", function()
    local v = core.decode([[{"a":"\\u0000i:","n":9007199254740993}]])
    assert.equal(9007199254740993, v.n)
    assert.equal("\\u0000i:", v.a)
    -- only a string that itself begins like a marker turns the protection off
    assert.equal(9007199254740993, core.decode([[{"a":"x\u0000i:5","n":9007199254740993}]]).n)
  end)
end)

describe("fuzz findings, fourth run", function()
  it("bigint-object-key: a big number where a key belongs stays invalid JSON", function()
    assert.is_nil((core.decode('{"a":1,12345678901234567:2}')))
    assert.is_nil((core.decode('{12345678901234567:2}')))
    assert.equal(12345678901234567, core.decode('{"a":[1,12345678901234567]}').a[2])
    assert.equal(12345678901234567, core.decode('{"a":{"b":12345678901234567}}').a.b)
  end)
end)
