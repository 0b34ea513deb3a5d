-- Numbers do not depend on the C locale (issue 19, item 2): after
-- os.setlocale("de_DE.UTF-8") (or any host program that sets LC_NUMERIC,
-- whose decimal point is ","), JSON, query strings and the server's wait
-- hints still use ".". The C code runs after os.setlocale in this process,
-- so each path is observed. `make test-locale` runs the whole suite under
-- LC_ALL=de_DE.UTF-8 besides; `make deps` generates the locale.
local truto = require "truto"
local core = require "truto.core"
local wire = require "spec.helpers.wire"

local LOCALE = "de_DE.UTF-8"

describe("with LC_NUMERIC = " .. LOCALE, function()
  local server = wire.start()
  local saved

  before_each(function()
    saved = os.setlocale(nil, "numeric")
    assert.equal(LOCALE, os.setlocale(LOCALE, "numeric"), LOCALE .. " is not installed (make deps generates it)")
    -- the locale is in effect: C's own formatting writes a comma now (LuaJIT formats by itself)
    if not rawget(_G, "jit") then assert.equal("1,5", string.format("%.1f", 1.5)) end
  end)

  after_each(function()
    os.setlocale(saved, "numeric")
  end)

  it("encode_json writes numbers with a '.'", function()
    assert.equal('{"ratio":1.5}', truto.encode_json { ratio = 1.5 })
    assert.equal("[0.1,-2.5e-07,1e+300,0.30000000000000004,3]",
      truto.encode_json { 0.1, -2.5e-7, 1e300, 0.1 + 0.2, 3 })
  end)

  it("the query string writes numbers with a '.'", function()
    assert.equal("limit=10&ratio=0.25", core.encode_query { ratio = 0.25, limit = 10 })
    assert.equal("a%5B%5D=1.5&a%5B%5D=2", core.encode_query { a = { 1.5, 2 } })
  end)

  it("Retry-After and ratelimit-reset read a '.'", function()
    assert.equal(1.5, core.retry_after("1.5"))
    assert.equal(2.25, core.retry_after(nil, "2.25"))
    local _, err = core.read_response(429, { ["retry-after"] = "0.75" }, "", "GET", "http://h/x")
    assert.equal(0.75, err.retry_after)
  end)

  -- lua-cjson 2.1.0 learns the decimal point when it is loaded: without
  -- json_cjson.c's "C" locale around it, 1.5 is invalid JSON after os.setlocale.
  it("decoding reads a '.' (the lua-cjson in use)", function()
    assert.equal(1.5, truto.decode_json('{"a":1.5}').a)
    assert.equal(1.5, core.decode('{"a":1.5,"b":9007199254740993}', { big_integers = "string" }).a)
  end)

  it("what goes on the wire: the query and the JSON body", function()
    wire.script { "ok", "ok" }
    local c = truto.new { token = "t", base_url = server.url, rate_limit = false, sleep = function() end }
    assert(c:get_organization("o", { integrated_account_id = "a", ratio = 0.25 }))
    assert(c:update_organization("o", { ratio = 1.5 }, { integrated_account_id = "a" }))
    os.setlocale(saved, "numeric") -- the spec helpers' own lua-cjson reads the log
    local log = wire.log()
    assert.equal("GET /unified/user-directory/organizations/o?integrated_account_id=a&ratio=0.25 HTTP/1.1",
      log[1].line)
    assert.equal('{"ratio":1.5}', log[2].body)
  end)
end)
