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
    -- keys of one length and first byte: told apart byte by byte
    local w = assert(core.decode('{"xa":[1],"xb":5.0,"xa":"s","xc":{"n":[2]},"xb":7}'))
    assert.equal("s", w.xa)
    int(w.xb)
    assert.equal(7, w.xb)
    assert.is_true(is_array(w.xc.n))
    int(w.xc.n[1])
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

  -- The scan's shortcuts (json_scan.c): compact `"key":"string",` members read in one run,
  -- array positions counted from commas, a key's length found only when an entry needs it.
  it("compact string members around members that need work, and where the run must stop", function()
    local v = assert(core.decode('{"a":"x","b\\"c":[1],"d":"y\\",","e":[2],"f":"[]","g":{"h":"i","j":3}}'))
    assert.is_true(is_array(v['b"c']))
    int(v['b"c'][1])
    assert.equal('y",', v.d)
    assert.is_true(is_array(v.e))
    int(v.e[1])
    assert.equal("[]", v.f)
    int(v.g.j)
    local w = assert(core.decode('{ "a" : "x" , "b" : [ 1 ] ,"c":"y",\n"d":\t[2.0] }'))
    assert.is_true(is_array(w.b))
    int(w.b[1])
    assert.is_true(is_array(w.d))
    float(w.d[1])
  end)

  it("array positions counted from commas, with commas and brackets inside strings", function()
    local v = assert(core.decode('["a,b","[x]",[1],"c,,",[2.0,3],{"k":","},[[]],4]'))
    assert.is_true(is_array(v[3]))
    int(v[3][1])
    assert.equal("c,,", v[4])
    assert.is_true(is_array(v[5]))
    float(v[5][1])
    int(v[5][2])
    assert.equal(",", v[6].k)
    assert.is_true(is_array(v[7][1]))
    assert.equal(0, #v[7][1])
    int(v[8])
  end)

  it("a key ending in an escaped backslash, and the members after it", function()
    local v = assert(core.decode('{"a\\\\":[1],"b":[2],"c\\\\\\"":3,"d":4}'))
    assert.is_true(is_array(v["a\\"]))
    assert.is_true(is_array(v.b))
    int(v.b[1])
    int(v['c\\"'])
    int(v.d)
  end)

  it("string values of compact members are counted by max_values", function()
    local text = '{"a":"x","b":"y","c":"z"}' -- 4 values
    local v, err = core.decode(text, { max_values = 3 })
    assert.is_nil(v)
    assert.matches("more than 3 values", err)
    assert.equal("z", assert(core.decode(text, { max_values = 4 })).c)
  end)
end)
