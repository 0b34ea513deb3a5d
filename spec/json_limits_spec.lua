-- A bound on the number of decoded values (issue 11): max_body bounds the
-- bytes, but `[{},{},...]` makes about 100 bytes of Lua memory of each 3
-- bytes of text. max_values refuses a text with more values than that,
-- before lua-cjson builds anything.
local core = require "truto.core"

describe("max_values", function()
  it("counts every scalar, array and object, keys not included", function()
    local text = '{"result":[{},{"a":1,"b":[true,null,"x"]}],"next_cursor":"c"}'
    -- 1 root, result array, 2 objects, a, b, 3 in b, next_cursor = 10
    assert.is_table(core.decode(text, { max_values = 10 }))
    local value, message = core.decode(text, { max_values = 9 })
    assert.is_nil(value)
    assert.equal("JSON text has more than 9 values (max_values)", message)
  end)

  it("a string value counts once, whatever it holds", function()
    assert.equal('[,]{}:"', core.decode('"[,]{}:\\""', { max_values = 1 }):gsub('\\"', '"'))
  end)

  it("read_response gives a decode error past the bound", function()
    local body = '{"result":[' .. string.rep("{},", 99999) .. '{}]}'
    local value, err = core.read_response(200, {}, body, "GET", "http://h/x", { max_values = 1000 })
    assert.is_nil(value)
    assert.equal("decode", err.kind)
    assert.equal(200, err.status)
    assert.truthy(err.message:find("more than 1000 values (max_values)", 1, true))
    -- the root, the array and 100,000 objects
    assert.is_nil((core.read_response(200, {}, body, "GET", "http://h/x", { max_values = 100001 })))
    local ok = core.read_response(200, {}, body, "GET", "http://h/x", { max_values = 100002 })
    assert.equal(100000, #ok.result)
  end)

  it("decode_json gives a decode error object", function()
    local value, err = core.decode_json("[1,2,3]", { max_values = 2 })
    assert.is_nil(value)
    assert.equal("decode", err.kind)
    assert.equal(getmetatable(err), core.error_mt)
    assert.truthy(tostring(err):find("more than 2 values", 1, true))
  end)

  it("a bound of 0, a fraction or a string is misuse", function()
    for _, bad in ipairs { 0, -1, 1.5, "10" } do
      assert.has_error(function() core.decode("[]", { max_values = bad }) end,
        "bad argument #2 to 'decode' (max_values must be a positive integer or nil)")
    end
  end)
end)
