-- What the core accepts as an answer and how it reports what it refuses
-- (issue 19, items 1, 3, 5, 6): a single object is a JSON object, bytes after
-- a JSON document are an error, an out-of-memory decode is not "not valid
-- JSON", and tostring(err) is one short line. The same cases on the wire,
-- through both transports: spec/helpers/wire_cases.lua.
local truto = require "truto"
local core = require "truto.core"

local URL = "http://127.0.0.1:9/unified/user-directory/organizations/o"

describe("a 2xx answer to a single-object call", function()
  local function read(status, body, method)
    return core.read_response(status, {}, body, method or "GET", URL)
  end

  it("is a JSON object, else a decode error with the status and the body", function()
    for _, case in ipairs {
      { 200, "null", "response is not a JSON object (got null)" },
      { 200, '"oops"', "response is not a JSON object (got string)" },
      { 200, "[1,2]", "response is not a JSON object (got array)" },
      { 200, "[]", "response is not a JSON object (got array)" },
      { 201, "true", "response is not a JSON object (got boolean)" },
      { 200, "", "the answer has no body; a JSON object was expected" },
      { 204, "", "a 204 answer has no body; a JSON object was expected" },
    } do
      local value, err = read(case[1], case[2])
      assert.is_nil(value, case[2])
      assert.is_true(truto.is_error(err))
      assert.same({ "decode", case[1], case[3] }, { err.kind, err.status, err.message })
      assert.equal(case[2] ~= "" and case[2] or nil, err.body)
    end
  end)

  it("may be 204 or empty for a DELETE only, which gives {}", function()
    assert.same({}, read(204, "", "DELETE"))
    assert.same({}, read(200, "", "DELETE"))
    assert.is_nil((read(204, "", "PATCH")))
    local value, err = read(200, "null", "DELETE")
    assert.is_nil(value)
    assert.equal("response is not a JSON object (got null)", err.message)
  end)

  it("gives the object as before, {} included", function()
    assert.same({ id = "o" }, read(200, '{"id":"o"}'))
    assert.same({}, read(200, "{}"))
  end)
end)

describe("bytes after the JSON document", function()
  it("are a decode error, a NUL byte included", function()
    local value, err = truto.decode_json('{"a":1}\0garbage')
    assert.is_nil(value)
    assert.equal("decode", err.kind)
    assert.equal("not valid JSON (unexpected NUL byte at character 8)", err.message)
    assert.is_nil((truto.decode_json('{"a":1}\0')))
    assert.is_nil((truto.decode_json('{"a":1} x')))
    assert.is_nil((core.decode('{"a":"x\0y"}')))
    local page, perr = core.read_response(200, {}, '{"result":[],"next_cursor":null}\0{"result":[{}]}', "GET", URL)
    assert.is_nil(page)
    assert.equal("response is not valid JSON (unexpected NUL byte at character 33)", perr.message)
  end)

  it("are refused with big_integers and max_values too (the text-rewriting paths)", function()
    local text = '{"id":9007199254740993}\0{}'
    assert.is_nil((core.decode(text, { big_integers = "string" })))
    assert.is_nil((core.decode(text, { max_values = 1 })))
    assert.equal("9007199254740993", core.decode('{"id":9007199254740993}', { big_integers = "string" }).id)
  end)

  it("leave an escaped NUL inside a string alone", function()
    assert.equal("a\0b", truto.decode_json('{"s":"a\\u0000b"}').s)
  end)
end)

describe("decoding when memory runs out", function()
  -- The registry's decode is the private lua-cjson instance's (json.h, TRUTO_DECODE); one whose
  -- allocation fails stands for lua-cjson running out of memory.
  local KEY = "truto.cjson.decode"
  local sanitized = (os.getenv("TRUTO_BUILD") or ""):find("asan", 1, true)

  it("raises Lua's memory error instead of calling the text invalid", function()
    -- ASan aborts on a 64 TiB request instead of failing it; LuaJIT refuses it before asking
    if sanitized or rawget(_G, "jit") then return pending("needs a Lua that asks malloc for 64 TiB") end
    local posix = require "testposix"
    local registry = debug.getregistry()
    local real = assert(registry[KEY])
    registry[KEY] = posix.nomem
    local ok, err = pcall(truto.decode_json, '{"a":1}')
    local ok2, err2 = pcall(core.read_response, 200, {}, '{"a":1}', "GET", URL)
    registry[KEY] = real
    assert.same({ false, "not enough memory" }, { ok, err })
    assert.same({ false, "not enough memory" }, { ok2, err2 })
    assert.same({ a = 1 }, truto.decode_json('{"a":1}'))
  end)
end)

describe("tostring(err)", function()
  local function http_error(message)
    local body = truto.encode_json { statusCode = 500, error = "Internal Server Error", message = message }
    local _, err = core.read_response(500, {}, body, "GET", URL)
    return err
  end

  it("is one line with the server's control characters escaped", function()
    local line = tostring(http_error("one\ntwo\r\27[2J\7\27]52;c;eA==\7 \194\155x"))
    assert.equal("truto: http 500 Internal Server Error: one\\x0atwo\\x0d\\x1b[2J\\x07\\x1b]52;c;eA==\\x07 \\x9bx"
      .. " (GET " .. URL .. ")", line)
  end)

  it("is at most 4 KiB: a long message is cut, the request stays, the fields keep it all", function()
    local message = string.rep("line\n", 200000) -- 1 MB
    local err = http_error(message)
    local line = tostring(err)
    assert.is_true(#line <= 4096, #line)
    assert.is_true(#line > 4000, #line)
    assert.is_nil(line:find("[%c]"))
    assert.equal("... (GET " .. URL .. ")", line:sub(-#URL - 10))
    assert.equal(message, err.message)
  end)

  it("never cuts a UTF-8 sequence in two", function()
    local line = tostring(core.error { kind = "http", message = string.rep("\226\130\172", 3000) })
    assert.is_true(#line <= 4096)
    local text = line:gsub("%.%.%.$", "")
    local rest = text:gsub("\226\130\172", "")
    assert.equal("truto: http: ", rest)
  end)
end)
