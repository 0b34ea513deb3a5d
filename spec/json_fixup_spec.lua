-- The fix-ups after lua-cjson 2.1.0 decoded a text (json_compat.c, issue 22) run only where
-- the scan found work (json_plan.h): arrays, numbers, markers. These texts are the cases where
-- naming a member by its key in the text could name the wrong value (a key that comes twice,
-- a key with an escape, many members that need work, arrays of objects that need nothing); the
-- values must be what the current lua-cjson gives, on both lua-cjsons.
local core = require "truto.core"
local compat = require "spec.helpers.compat"

local function is_array(t) return getmetatable(t) == core.array_mt end
local function int(v) if compat.integers then assert.equal("integer", math.type(v)) end end
local function float(v) if compat.integers then assert.equal("float", math.type(v)) end end

describe("decoding fix-ups where the scan found work", function()
  it("a key that comes twice: the last value is the one fixed", function()
    local v = assert(core.decode('{"a":[1],"a":{"b":[2]},"c":{"x":5},"c":{"x":5.0},"d":5.0,"d":7}'))
    assert.is_false(is_array(v.a))
    assert.is_true(is_array(v.a.b))
    int(v.a.b[1])
    float(v.c.x)
    assert.equal(5, v.c.x)
    int(v.d)
    assert.equal(7, v.d)
  end)

  it("an earlier array under a key whose last value is a string or an object of strings", function()
    local v = assert(core.decode('{"a":[1,[2]],"a":"s","b":[3],"b":{"1":"x"}}'))
    assert.equal("s", v.a)
    assert.is_false(is_array(v.b))
    assert.equal("x", v.b["1"])
  end)

  it("keys with escapes and the same key spelled two ways", function()
    local v = assert(core.decode('{"a\\u0062":[1],"\\"q\\"":{"n":2},"ab":[],"c\\nd":3}'))
    assert.is_true(is_array(v.ab))
    assert.equal(0, #v.ab)
    int(v['"q"'].n)
    int(v["c\nd"])
  end)

  it("an object with more members needing work than the plan names", function()
    local parts = {}
    for i = 1, 40 do parts[#parts + 1] = string.format('"k%d":[%d]', i, i) end
    local v = assert(core.decode("{" .. table.concat(parts, ",") .. "}"))
    for i = 1, 40 do
      assert.is_true(is_array(v["k" .. i]))
      int(v["k" .. i][1])
    end
  end)

  it("arrays of objects that need nothing, and of ones that do, in one array", function()
    local v = assert(core.decode('[{"s":"x","t":true},{"n":1},[],{"e":[]},null,"z",[[1.5,2]]]'))
    assert.is_true(is_array(v))
    assert.equal("x", v[1].s)
    assert.is_false(is_array(v[1]))
    int(v[2].n)
    assert.is_true(is_array(v[3]))
    assert.equal(0, #v[3])
    assert.is_true(is_array(v[4].e))
    assert.equal("userdata", type(v[5]))
    assert.equal("z", v[6])
    assert.is_true(is_array(v[7][1]))
    float(v[7][1][1])
    int(v[7][1][2])
  end)

  it("a document that is a number, an empty array, or a big integer inside nesting", function()
    int(assert(core.decode("5")))
    assert.is_true(is_array(assert(core.decode(" [ ] "))))
    local v = assert(core.decode('{"r":{"d":{"id":9007199254740993,"f":2e3}}}'))
    if compat.integers then assert.equal(9007199254740993, v.r.d.id) end
    float(v.r.d.f)
    assert.equal(2000, v.r.d.f)
  end)
end)
