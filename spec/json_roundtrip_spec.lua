-- JSON round trips: every decoded array carries the array metatable, so what
-- was read writes back as it came (issue 11). Runs on Debian's lua-cjson
-- 2.1.0 (json_compat.c) and, under `make test-cjson`, on the current one
-- (TRUTO_CJSON=current), where lua-cjson's own values are used untouched.
local core = require "truto.core"
local compat = require "spec.helpers.compat"
local cjson = require "cjson"
local truto = require "truto"
local h = require "spec.helpers.client"
local mock = h.mock

local CURRENT = os.getenv("TRUTO_CJSON") == "current"
local ACCOUNT = { integrated_account_id = "acct-small" }

-- The decoded value as a string that shows arrays (A), objects (O) and
-- number subtypes, so assert.equal compares structure and types.
local function shape(v)
  if v == cjson.null then return "null" end
  if type(v) == "table" then
    local mt = getmetatable(v)
    local tag = mt == nil and "O" or (mt == core.array_mt and "A" or "?")
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. shape(v[k]) end
    return tag .. "{" .. table.concat(parts, ",") .. "}"
  elseif type(v) == "number" then
    return (math.type and math.type(v) or "number") .. ":" .. tostring(v)
  elseif type(v) == "string" then
    return '"' .. v:gsub("[^%w%p ]", function(c) return "\\" .. c:byte() end) .. '"'
  end
  return tostring(v)
end

describe("lua-cjson capabilities", function()
  it("are found by trying lua-cjson, and the compatibility path runs only where needed", function()
    local info = core.json_info()
    if CURRENT then
      assert.same({ array_mt = true, integers = true, compat = false }, info)
      assert.equal(cjson.array_mt, core.array_mt)
    else
      assert.is_nil(cjson.array_mt) -- Debian's 2.1.0
      assert.same({ array_mt = false, integers = not compat.integers and true or false, compat = true }, info)
    end
  end)
end)

describe("decoded arrays", function()
  it("carry the array metatable, empty ones too; objects carry none", function()
    local v = assert(core.decode('{"a":[],"b":{},"c":[[],{},[1,[ ]]],"d":[null],"e":{"1":"x"}}'))
    assert.equal('O{a=A{},b=O{},c=A{1=A{},2=O{},3=A{1=' .. shape(1) .. ',2=A{}}},d=A{1=null},e=O{1="x"}}',
      shape(v))
    assert.equal(getmetatable(truto.array()), getmetatable(v.a))
  end)

  it("a top-level [] is an array", function()
    assert.equal(core.array_mt, getmetatable(core.decode("[]")))
    assert.equal(core.array_mt, getmetatable(core.decode(" [ \n ] ")))
    assert.is_nil(getmetatable(core.decode("{}")))
  end)

  it("encode back to the same text", function()
    for _, text in ipairs {
      '{"a":[],"b":{},"c":[[],{},[1,[]]]}',
      '[]', '[[]]', '[{}]', '{"x":[{"y":[]}]}',
      '{"n":[1,-2,9007199254740993,1.5,true,false,null,"s"]}',
    } do
      local v = assert(core.decode(text))
      if not compat.integers and text:find("9007199254740993", 1, true) then
        text = text:gsub("9007199254740993", "9007199254740992")
      end
      assert.equal(text, core.encode_json(v))
    end
  end)

  it("where lua-cjson has array_mt, its own encoder writes them back as arrays too", function()
    if not CURRENT then return end
    assert.equal('[[],{}]', cjson.encode(core.decode('[[],{}]')))
  end)

  it("strings that look like an empty-array marker stay strings", function()
    local v = assert(core.decode('[["\255a"],["\255"],"\255a"]'))
    assert.equal('A{1=A{1="\\255a"},2=A{1="\\255"},3="\\255a"}', shape(v))
  end)
end)

describe("read-modify-write of an organization", function()
  setup(function() h.server() end)
  before_each(function() mock.reset() end)

  it("sends [] back as [] and {} as {}", function()
    local client = h.client()
    local org = assert(client:get_organization("org-2", ACCOUNT))
    assert.equal(core.array_mt, getmetatable(org.licenses))
    local updated, err = client:update_organization("org-2", org, ACCOUNT)
    assert.is_nil(err)
    assert.equal('{"created_at":"2022-06-16T09:00:00Z","id":"org-2","licenses":[],"name":"Globex",'
      .. '"pricing_plan":"team","remote_data":{"id":9002,"login":"globex","plan":{"name":"team",'
      .. '"seats":25}},"updated_at":"2023-03-03T09:00:00Z"}', mock.last().body)
    assert.equal("PATCH", mock.last().method)
    -- the server kept an array: it still sends []
    assert.equal(core.array_mt, getmetatable(updated.licenses))
    local again = assert(client:get_organization("org-2", ACCOUNT))
    assert.equal(0, #again.licenses)
    assert.equal(core.array_mt, getmetatable(again.licenses))
  end)

  it("keeps non-empty arrays and nested objects as they were", function()
    local client = h.client()
    local org = assert(client:get_organization("org-1", ACCOUNT))
    assert(client:update_organization("org-1", org, ACCOUNT))
    local body = mock.last().body
    assert.truthy(body:find('"licenses":[{"id":"lic-ent","name":"Enterprise"},{"id":"lic-sso","name":"SSO add-on"}]', 1, true))
    assert.truthy(body:find('"remote_data":{"id":9001,"login":"acme","plan":{"name":"enterprise","seats":250}}', 1, true))
  end)
end)
