-- Integers past 2^53 (issue 11): exact Lua integers on Lua 5.3+ with every
-- lua-cjson; on LuaJIT (OpenResty) a double cannot hold them, so
-- big_integers = "string" gives their decimal digits, exact, on any runtime.
local core = require "truto.core"
local compat = require "spec.helpers.compat"

local BIG_NUMBER = compat.integers and 9007199254740993 or 9007199254740992

local TEXT = '{"id":9007199254740993,"neg":-9223372036854775808,"small":9007199254740992,'
  .. '"huge":123456789012345678901234567890,"f":1.5,"list":[12345678901234567,1]}'

describe("big integers", function()
  it("are exact Lua integers on Lua 5.3+, and rounded doubles on LuaJIT without the option", function()
    local v = assert(core.decode(TEXT))
    if compat.integers then
      assert.equal(9007199254740993, v.id)
      assert.equal("integer", math.type(v.id))
      assert.equal(math.mininteger, v.neg)
      assert.equal(12345678901234567, v.list[1])
    else
      -- what the README promises on LuaJIT: the nearest double
      assert.equal(9007199254740992, v.id)
      assert.equal(12345678901234568, v.list[1])
    end
  end)

  it('big_integers = "string": exact decimal strings on every runtime, small ones stay numbers', function()
    local v = assert(core.decode(TEXT, { big_integers = "string" }))
    assert.equal("9007199254740993", v.id)
    assert.equal("-9223372036854775808", v.neg)
    assert.equal("123456789012345678901234567890", v.huge)
    assert.equal("12345678901234567", v.list[1])
    assert.equal(9007199254740992, v.small)
    assert.equal("number", type(v.small))
    assert.equal(1, v.list[2])
    assert.equal(1.5, v.f)
    assert.equal(core.array_mt, getmetatable(v.list))
  end)

  it('big_integers = "string" through read_response (the 6th argument) and decode_json', function()
    local body = '{"result":[{"id":9007199254740993}],"next_cursor":null}'
    local v = assert(core.read_response(200, {}, body, "GET", "http://x/", { big_integers = "string" }))
    assert.equal("9007199254740993", v.result[1].id)
    local _, err = core.read_response(500, {}, '{"id":9007199254740993}', "GET", "http://x/",
      { big_integers = "string" })
    assert.equal("9007199254740993", err.body.id)
    assert.equal("9007199254740993", assert(core.decode_json("[9007199254740993]", { big_integers = "string" }))[1])
  end)

  it("a big integer in key position or in a bad number stays invalid JSON", function()
    assert.is_nil((core.decode('{12345678901234567:1}', { big_integers = "string" })))
    assert.is_nil((core.decode('[12345678901234567-1]', { big_integers = "string" })))
    assert.is_nil((core.decode('[12345678901234567.5.5]', { big_integers = "string" })))
  end)

  it("a string of digits and a big number read alike with the option (no marker to forge)", function()
    local v = assert(core.decode('["9007199254740993",9007199254740993]', { big_integers = "string" }))
    assert.equal(v[1], v[2])
  end)

  it("wrong options are misuse, naming the argument", function()
    assert.has_error(function() core.decode("1", { big_integers = "float" }) end,
      "bad argument #2 to 'decode' (big_integers must be \"number\", \"string\", \"int64\" or nil)")
    assert.has_error(function() core.read_response(200, {}, "1", "GET", "u", { big_integers = true }) end,
      "bad argument #6 to 'read_response' (big_integers must be \"number\", \"string\", \"int64\" or nil)")
    -- "number" is the default, said out loud
    assert.equal(BIG_NUMBER, core.decode("9007199254740993", { big_integers = "number" }))
    assert.has_error(function() core.decode("1", "string") end)
  end)
end)

describe("big integers through a client", function()
  local h = require "spec.helpers.client"
  local P = { integrated_account_id = "acct-small" }

  it('big_integers = "string" gives u040\'s employee_number exactly on every runtime', function()
    local user = assert(h.client({ big_integers = "string" }):get("user-directory", "users", "u040", P))
    assert.equal("9007199254740993", user.employee_number)
    local plain = assert(h.client():get("user-directory", "users", "u040", P))
    assert.equal(BIG_NUMBER, plain.employee_number)
  end)

  it("max_values refuses a page with more values, as a decode error", function()
    local page, err = h.client({ max_values = 10 }):get("user-directory", "users", "u040", P)
    assert.is_nil(page)
    assert.equal("decode", err.kind)
    assert.truthy(err.message:find("more than 10 values (max_values)", 1, true))
  end)
end)
