-- No server text can forge what the decoder uses to keep integers exact and
-- arrays marked (issue 11). On Debian's lua-cjson 2.1.0 the compatibility
-- path writes marker strings into the text; they are built from bytes no
-- \u escape can produce, and chosen absent from each text. On the current
-- lua-cjson there are no markers; the same texts must give the same values.
local core = require "truto.core"
local compat = require "spec.helpers.compat"

local BIG = compat.integers and 9007199254740993 or 9007199254740992

describe("forged big-integer markers", function()
  it("\\u0000\\u0069:42 in a string stays that string, the real big integer stays exact", function()
    local v = assert(core.decode('{"big":9007199254740993,"name":"\\u0000\\u0069:42"}'))
    assert.equal("\0i:42", v.name)
    assert.equal(BIG, v.big)
  end)

  it("a string that spells the old marker is neither dropped nor turned into a number", function()
    local v = assert(core.decode('{"big":9007199254740993,"a":"\\u0000\\u0069:abc","b":"\\u0000i:7"}'))
    assert.equal("\0i:abc", v.a)
    assert.equal("\0i:7", v.b)
    assert.equal(BIG, v.big)
  end)

  it("raw bytes that spell a current marker stay strings", function()
    local text = '{"big":9007199254740993,"i":"\255i42","f":"\255f1.0","e":["\255a"],"x":[],"y":1.0}'
    local v = assert(core.decode(text))
    assert.equal("\255i42", v.i)
    assert.equal("\255f1.0", v.f)
    assert.equal(1, #v.e)
    assert.equal("\255a", v.e[1])
    assert.equal(0, #v.x)
    assert.equal(core.array_mt, getmetatable(v.x))
    assert.equal(BIG, v.big)
    if compat.integers then assert.equal("float", math.type(v.y)) end
  end)

  it("every one-byte marker taken by the text: a longer one is used", function()
    local odd = { 0xC0, 0xC1, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF }
    local items = {}
    for i, b in ipairs(odd) do items[i] = string.format('"%si%d"', string.char(b), i) end
    for _, b in ipairs(odd) do items[#items + 1] = string.format('["%sa"]', string.char(b)) end
    local text = '{"s":[' .. table.concat(items, ",") .. '],"big":9007199254740993,"e":[],"f":2e0}'
    local v = assert(core.decode(text))
    for i, b in ipairs(odd) do
      assert.equal(string.char(b) .. "i" .. i, v.s[i])
    end
    for i = #odd + 1, #v.s do
      assert.equal(1, #v.s[i])
      assert.equal(string.char(odd[i - #odd]) .. "a", v.s[i][1])
    end
    assert.equal(26, #v.s)
    assert.equal(BIG, v.big)
    assert.equal(0, #v.e)
    assert.equal(core.array_mt, getmetatable(v.e))
    if compat.integers then assert.equal("float", math.type(v.f)) end
  end)

  it("every two-byte marker taken by the text: a three-byte one is used", function()
    local odd = { 0xC0, 0xC1, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF }
    local pairs_ = {}
    for _, a in ipairs(odd) do
      for _, b in ipairs(odd) do pairs_[#pairs_ + 1] = string.char(a, b) end
    end
    local all = table.concat(pairs_, "i")
    local v = assert(core.decode('{"s":"' .. all .. '","big":-9007199254740993,"e":[[]]}'))
    assert.equal(all, v.s)
    assert.equal(-BIG, v.big)
    assert.equal(0, #v.e[1])
    assert.equal(core.array_mt, getmetatable(v.e[1]))
  end)

  it("a NUL or \\u0000 anywhere no longer turns big-integer protection off", function()
    local v = assert(core.decode('{"note":"\\u0000","id":9007199254740993,"k":"\\u0000i:5"}'))
    assert.equal(BIG, v.id)
    assert.equal("\0i:5", v.k)
  end)

  it("markers never reach a caller through read_response", function()
    local v = assert(core.read_response(200, {}, '{"result":[{"id":12345678901234567,"tags":[]}]}'))
    assert.equal(compat.integers and 12345678901234567 or 12345678901234568, v.result[1].id)
    assert.equal(0, #v.result[1].tags)
    assert.equal(core.array_mt, getmetatable(v.result[1].tags))
  end)
end)
