-- truto.webhook in plain Lua: the HMAC against `openssl dgst` (run here, independent of our
-- code), every refusal reason of verify (none raises), the created_at tolerance, and the
-- in-process dedupe store.
local truto = require "truto"
local core = require "truto.core"
local run = require "spec.helpers.run"

local webhook = truto.webhook

-- The HMAC-SHA256 of `body` keyed with `secret`, by the openssl command line.
local function openssl_hmac(body, secret)
  local dir = run.tmpdir()
  run.write(dir .. "/body", body)
  local out, code = run.shell(("openssl dgst -sha256 -hmac %s -r %s"):format(run.quote(secret), run.quote(dir .. "/body")))
  assert(code == 0, "openssl failed: " .. out)
  return assert(out:match("^(%x+)"), out)
end

local SECRET = "d5fac1cb-1820-4da7-bfd8-a6b758bcf8ff"
local NOW = 1764655200 -- 2025-12-02T06:00:00Z

local function event_body(fields)
  local e = { id = "evt-1", event = "record:created", environment_id = "env-1", webhook_id = "wh-1",
    created_at = "2025-12-02T06:00:00.000Z", payload = { resource = "user-directory/users",
      integrated_account_id = "acct-small", record = { id = "u-1", name = "Ada" } } }
  for k, v in pairs(fields or {}) do e[k] = v end
  return assert(truto.encode_json(e))
end

-- verify with a fresh store, the fixed clock and no raise allowed.
local function check(body, header, secret, opts)
  local o = { now = NOW, seen = webhook.memory_store() }
  for k, v in pairs(opts or {}) do o[k] = v end
  local ok, event, err = pcall(webhook.verify, body, header, secret or SECRET, o)
  assert(ok, "verify raised: " .. tostring(event))
  return event, err
end

local function reason_of(body, header, secret, opts)
  local event, err = check(body, header, secret, opts)
  assert.is_nil(event)
  assert.equal("webhook", err.kind)
  assert.is_true(truto.is_error(err))
  return err.reason, err
end

describe("webhook signatures", function()
  describe("match openssl dgst -sha256 -hmac", function()
    local vectors = {
      { "an empty body", "" },
      { "a 1 MiB body", string.rep("0123456789abcdef", 65536) },
      { "binary bytes", (function()
        local t = {}
        for i = 0, 255 do t[#t + 1] = string.char(i) end
        return table.concat(t) .. "\0\0\255"
      end)() },
      { "a UTF-8 secret", "b\u{f6}dy \u{2713}", "s\u{e9}cr\u{e8}t-\u{1F511}-\u{65E5}\u{672C}" },
      { "a 200-byte secret (longer than the block)", "body", string.rep("k", 200) },
    }
    for _, v in ipairs(vectors) do
      it(v[1], function()
        local body, secret = v[2], v[3] or SECRET
        local hex = openssl_hmac(body, secret)
        assert.equal(64, #hex)
        assert.equal("format=sha256,v=" .. hex, webhook.sign(body, secret))
        assert.is_true(core.hmac_sha256_equal(secret, body, hex))
        assert.is_true(core.hmac_sha256_equal(secret, body, hex:upper()))
        assert.is_false(core.hmac_sha256_equal(secret .. "x", body, hex))
        -- through verify the signature passes: what is left is the body (not a JSON event)
        local _, err = check(body, "format=sha256,v=" .. hex, secret, { tolerance = false, seen = false })
        assert.equal("decode", err.reason)
      end)
    end
  end)

  it("verify gives the event, decoded as answers are (integers exact, arrays marked)", function()
    local body = event_body { list = truto.array() }:gsub('^{', '{"big":9007199254740993,')
    local event = check(body, webhook.sign(body, SECRET))
    assert.equal("evt-1", event.id)
    assert.equal("Ada", event.payload.record.name)
    if math.type then -- Lua 5.3+: a 64-bit integer (LuaJIT has none)
      assert.equal(9007199254740993, event.big)
      assert.equal("integer", math.type(event.big))
    end
    assert.equal("[]", truto.encode_json(event.list))
  end)

  it("accepts upper-case hex, upper-case names and parts in either order", function()
    local body = event_body()
    local hex = webhook.sign(body, SECRET):match("v=(%x+)")
    assert.is_table((check(body, "format=sha256,v=" .. hex:upper())))
    assert.is_table((check(body, "FORMAT=SHA256,V=" .. hex)))
    assert.is_table((check(body, "v=" .. hex .. ",format=sha256")))
  end)

  describe("refuses, with a reason and without raising,", function()
    local body = event_body()
    local header = webhook.sign(body, SECRET)
    local hex = header:match("v=(%x+)")
    local cases = {
      { "a tampered body", function() return body:gsub("Ada", "Eve"), header end, "signature" },
      { "a body with a byte appended", function() return body .. "\n", header end, "signature" },
      { "a wrong secret", function() return body, header, SECRET .. "x" end, "signature" },
      { "another hex value", function() return body, "format=sha256,v=" .. string.rep("0", 64) end, "signature" },
      { "truncated hex", function() return body, header:sub(1, -2) end, "format" },
      { "hex too long", function() return body, header .. "0" end, "format" },
      { "non-hex digits", function() return body, "format=sha256,v=" .. hex:sub(1, 63) .. "g" end, "format" },
      { "format=sha1", function() return body, "format=sha1,v=" .. hex end, "format" },
      { "a header with spaces", function() return body, "format=sha256, v=" .. hex end, "format" },
      { "a header with a space around =", function() return body, "format = sha256,v=" .. hex end, "format" },
      { "two v= values", function() return body, header .. ",v=" .. hex end, "format" },
      { "no v=", function() return body, "format=sha256" end, "format" },
      { "no format=", function() return body, "v=" .. hex end, "format" },
      { "an unknown part", function() return body, header .. ",t=1" end, "format" },
      { "an empty header", function() return body, "" end, "format" },
      { "no header", function() return body, nil end, "format" },
      { "a header given twice (a table)", function() return body, { header, header } end, "format" },
      { "a body that is not JSON", function() return "not json", webhook.sign("not json", SECRET) end, "decode" },
      { "a JSON array", function() return "[1]", webhook.sign("[1]", SECRET) end, "decode" },
      { "an id no integer holds", function()
        local b = event_body():gsub('"id":"evt%-1"', '"id":1e300')
        return b, webhook.sign(b, SECRET)
      end, "decode" },
      { "no created_at", function()
        local b = event_body { created_at = truto.null }
        return b, webhook.sign(b, SECRET)
      end, "decode" },
      { "a created_at that is no time", function()
        local b = event_body { created_at = "yesterday" }
        return b, webhook.sign(b, SECRET)
      end, "decode" },
      { "a stale created_at (301 s old)", function()
        local b = event_body { created_at = "2025-12-02T05:54:59.000Z" }
        return b, webhook.sign(b, SECRET)
      end, "stale" },
      { "a future created_at (301 s ahead, as +01:00)", function()
        local b = event_body { created_at = "2025-12-02T07:05:01+01:00" }
        return b, webhook.sign(b, SECRET)
      end, "stale" },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local b, h, s = c[2]()
        assert.equal(c[3], (reason_of(b, h, s)))
      end)
    end

    it("a duplicate id (the second delivery of one event)", function()
      local seen = webhook.memory_store()
      assert.is_table((check(body, header, nil, { seen = seen })))
      local reason, err = reason_of(body, header, nil, { seen = seen })
      assert.equal("duplicate", reason)
      assert.equal("evt-1", err.event_id)
      assert.equal("truto: webhook: duplicate: event evt-1 was delivered before", tostring(err))
    end)

    it("a refusal never holds the secret", function()
      local _, err = check(body, header, SECRET .. "x")
      assert.is_nil(tostring(err):find(SECRET, 1, true))
      for _, v in pairs(err) do assert.is_nil(tostring(v):find(SECRET, 1, true)) end
    end)
  end)

  it("takes created_at within the tolerance on either side, and as a number", function()
    for _, created in ipairs { "2025-12-02T05:55:00Z", "2025-12-02T06:05:00.000Z", "2025-12-02T08:00:00+02:00" } do
      local b = event_body { created_at = created }
      assert.is_table((check(b, webhook.sign(b, SECRET))), created)
    end
    local b = event_body { created_at = NOW - 10 }
    assert.is_table((check(b, webhook.sign(b, SECRET))))
    b = event_body { created_at = (NOW - 10) * 1000 }
    assert.is_table((check(b, webhook.sign(b, SECRET))))
    b = event_body { created_at = "2025-12-02T05:00:00Z" }
    assert.equal("stale", (reason_of(b, webhook.sign(b, SECRET))))
    assert.is_table((check(b, webhook.sign(b, SECRET), nil, { tolerance = 3601 })))
    assert.is_table((check(b, webhook.sign(b, SECRET), nil, { tolerance = false })))
  end)

  it("reads RFC 3339 times as UTC epoch seconds", function()
    assert.equal(0, webhook.timestamp("1970-01-01T00:00:00Z"))
    assert.equal(1686840003, webhook.timestamp("2023-06-15T14:40:03.000Z"))
    assert.equal(1686840003.5, webhook.timestamp("2023-06-15T16:40:03.5+02:00"))
    assert.equal(951782400, webhook.timestamp("2000-02-29T00:00:00Z"))
    assert.is_nil(webhook.timestamp("2023-13-01T00:00:00Z"))
    assert.is_nil(webhook.timestamp("2023-06-15T14:40:03"))
    assert.is_nil(webhook.timestamp("2023-06-15T14:40:03.Z"))
  end)

  it("remembers an id for the ttl (twice the tolerance by default), in a bounded store", function()
    local body = event_body()
    local header = webhook.sign(body, SECRET)
    local seen = webhook.memory_store { size = 2 }
    assert.is_table((check(body, header, nil, { seen = seen, now = NOW })))
    assert.equal("duplicate", (reason_of(body, header, nil, { seen = seen, now = NOW + 299, tolerance = false,
      ttl = 600 })))
    -- after the ttl it is new again
    assert.is_table((check(body, header, nil, { seen = seen, now = NOW + 601, tolerance = false })))
    -- the store holds at most `size` ids: the oldest goes first
    for i = 2, 3 do
      local b = event_body { id = "evt-" .. i }
      assert.is_table((check(b, webhook.sign(b, SECRET), nil, { seen = seen, tolerance = false })))
    end
    assert.equal(2, seen:count())
    assert.is_table((check(body, header, nil, { seen = seen, tolerance = false })))
  end)

  it("reports a failing store as reason store, and keeps the in-process store by default", function()
    local body = event_body { id = "evt-default-" .. os.time() }
    local header = webhook.sign(body, SECRET)
    local broken = { add = function() return nil, "down" end }
    assert.equal("store", (reason_of(body, header, nil, { seen = broken })))
    local ok, event = pcall(webhook.verify, body, header, SECRET, { tolerance = false })
    assert.is_true(ok)
    assert.is_table(event)
    local _, err = webhook.verify(body, header, SECRET, { tolerance = false })
    assert.equal("duplicate", err.reason)
  end)

  it("raises on misuse, naming the argument", function()
    local function raises(pattern, ...)
      local ok, err = pcall(...)
      assert.is_false(ok)
      assert.is_true(truto.is_misuse(err))
      assert.matches(pattern, tostring(err))
    end
    raises("#1 to 'verify' %(string expected, got nil%)", webhook.verify, nil, "h", SECRET)
    raises("#3 to 'verify' %(string expected, got nil%)", webhook.verify, "{}", "h", nil)
    raises("#3 to 'verify' %(the secret must not be empty%)", webhook.verify, "{}", "h", "")
    raises("#4 to 'verify' %(tolerance", webhook.verify, "{}", "h", SECRET, { tolerance = -1 })
    raises("#4 to 'verify' %(seen", webhook.verify, "{}", "h", SECRET, { seen = {} })
    raises("#4 to 'verify' %(ttl", webhook.verify, "{}", "h", SECRET, { ttl = 0 })
    raises("#2 to 'sign' %(string expected, got number%)", webhook.sign, "{}", 1)
    raises("#1 to 'ngx_handler' %(secret", webhook.ngx_handler, { on_event = print })
  end)
end)
