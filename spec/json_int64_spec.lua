-- big_integers = "int64" (issue 19, item 4): an exact representation of
-- every integer literal in the int64 range on every runtime, that encodes
-- back as the same number literal, so a read-modify-write is faithful on
-- LuaJIT (OpenResty) too. Lua 5.3+ has exact integers already: there
-- "int64" gives them; LuaJIT gets truto.int64 boxes. The same through both
-- transports: the "read-modify-write" wire case (spec/helpers/wire_cases.lua).
local truto = require "truto"
local core = require "truto.core"

local jit = rawget(_G, "jit")
local TEXT = '{"id":9007199254740993,"min":-9223372036854775808,"max":9223372036854775807,'
  .. '"small":42,"half":1.5,"ids":[9007199254740995,1]}'

describe('big_integers = "int64"', function()
  local v = assert(truto.decode_json(TEXT, { big_integers = "int64" }))

  it("gives every integer past 2^53 exactly, and encodes it back as the same literal", function()
    assert.equal("9007199254740993", tostring(v.id))
    assert.equal("-9223372036854775808", tostring(v.min))
    assert.equal("9223372036854775807", tostring(v.max))
    assert.equal("9007199254740995", tostring(v.ids[1]))
    assert.equal('{"half":1.5,"id":9007199254740993,"ids":[9007199254740995,1],'
      .. '"max":9223372036854775807,"min":-9223372036854775808,"small":42}', truto.encode_json(v))
  end)

  it("leaves the numbers a double holds exactly as numbers", function()
    assert.equal("number", type(v.small))
    assert.equal("number", type(v.half))
    assert.equal(42, v.small)
    assert.equal(1, v.ids[2])
  end)

  it("on LuaJIT: truto.int64 boxes with ==, <, <=, tostring and :tonumber()", function()
    if not jit then
      -- Lua 5.3+: native integers, exact already
      assert.equal(9007199254740993, v.id)
      assert.equal(math.mininteger, v.min)
      return
    end
    assert.equal("userdata", type(v.id))
    assert.is_true(v.id == truto.int64("9007199254740993"))
    assert.is_false(v.id == truto.int64("9007199254740992"))
    assert.is_true(truto.int64("9007199254740992") < v.id)
    assert.is_true(v.min < v.max and v.id <= v.id)
    assert.equal(9007199254740992, v.id:tonumber())
  end)

  it("boxes encode in bodies and query strings on every runtime", function()
    local big = truto.int64("9007199254740993")
    assert.equal('{"n":9007199254740993}', truto.encode_json { n = big })
    assert.equal("n=9007199254740993", core.encode_query { n = big })
    assert.equal("12", tostring(truto.int64(12)))
    assert.has_error(function() truto.int64("12x") end)
    assert.has_error(function() truto.int64("9223372036854775808") end)
    assert.has_error(function() truto.int64(1.5) end)
  end)

  it("is a client option, checked", function()
    assert.has_error(function() truto.new { token = "t", big_integers = "int128" } end)
    assert.is_table(truto.new { token = "t", big_integers = "int64" })
  end)
end)

describe("a truto.int64 id", function()
  it("is one path segment of its digits", function()
    assert.equal("9007199254740993", core.segment(truto.int64("9007199254740993")))
    assert.equal("-1", core.segment(truto.int64(-1)))
  end)
end)
