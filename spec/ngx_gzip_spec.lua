-- truto.ngx.gzip, the nginx transport's inflate (LuaJIT's FFI and zlib; no nginx needed): a
-- body whose gzip trailer says its size, or lies about it, or that is in zlib format, inflates
-- whole; one larger than max_body, cut short or not compressed at all fails with its reason.
local run = require "spec.helpers.run"

-- LuaJIT only (the FFI): on Lua 5.4 the file defines no case, so no run reports it as skipped.
local jit_only = rawget(_G, "jit") and it or function() end

-- `text` compressed by gzip(1) at level 6, as nginx's gzip_static pages are.
local function gzipped(text)
  local dir = run.tmpdir()
  run.write(dir .. "/t", text)
  assert(os.execute("gzip -6 -n " .. run.quote(dir .. "/t")))
  return run.slurp(dir .. "/t.gz")
end

-- A text of `n` bytes that compresses about as well as a page of users.
local function page(n)
  local parts, size, i = {}, 0, 0
  while size < n do
    i = i + 1
    local s = string.format('{"id":"u%06d","name":"user %d","email":"u%d@example.com","x":%d},', i, i, i * 7919 % 10007, (i * 104729) % 1000003)
    parts[#parts + 1] = s
    size = size + #s
  end
  return table.concat(parts):sub(1, n)
end

-- The same bytes with the gzip trailer's size field set to `size`.
local function trailer(data, size)
  local b = {}
  for i = 0, 3 do b[i + 1] = string.char(math.floor(size / 256 ^ i) % 256) end
  return data:sub(1, -5) .. table.concat(b)
end

-- Asserts that `got` is `text` without printing megabytes when it is not.
local function whole(text, got, what)
  assert(got == text, string.format("%s: %s bytes, not the %d expected", tostring(what), got and #got or "nil", #text))
end

describe("truto.ngx.gzip.inflate", function()
  local inflate
  setup(function()
    if rawget(_G, "jit") then inflate = require("truto.ngx.gzip").inflate end
  end)

  jit_only("gives back 1 KB, 80 KB and 3 MB bodies whole, again and again on one stream", function()
    for _, n in ipairs { 1000, 80000, 3000000, 80000 } do
      local text = page(n)
      whole(text, inflate(gzipped(text), 64 * 1024 * 1024), n)
    end
  end)

  jit_only("takes the trailer's size as a guess: a first member whose trailer is far smaller inflates", function()
    -- two gzip members: the trailer read is the second's (1 byte); the first is the body
    local text = page(200000)
    whole(text, inflate(gzipped(text) .. gzipped("x"), 1e6), "two members")
    -- a trailer that lies is zlib's to refuse (its length check), however it was read
    local data = gzipped(text)
    assert.same({ nil, "gzip: incorrect length check" }, { inflate(trailer(data, 10), 1e6) })
    assert.same({ nil, "gzip: incorrect length check" }, { inflate(trailer(data, 4294967295), 1e6) })
  end)

  jit_only("reads zlib's own format too (no gzip header, no trailer)", function()
    local text = page(150000)
    local ffi = require "ffi"
    pcall(ffi.cdef, [[
      int compress2(unsigned char *dest, unsigned long *destLen, const char *source,
        unsigned long sourceLen, int level);
    ]])
    local z = ffi.load("libz.so.1")
    local size = ffi.new("unsigned long[1]", #text + 1024)
    local out = ffi.new("unsigned char[?]", #text + 1024)
    assert.equal(0, z.compress2(out, size, text, #text, 6))
    local data = ffi.string(out, size[0])
    whole(text, inflate(data, 1e6), "zlib")
  end)

  jit_only("refuses a body larger than max_body, by one byte too", function()
    local text = page(100000)
    local data = gzipped(text)
    assert.same({ nil, "response body larger than max_body (99999 bytes)", true }, { inflate(data, 99999) })
    whole(text, inflate(data, 100000), "exactly max_body")
  end)

  jit_only("says a body cut short is cut short, and one that is not compressed is invalid", function()
    local data = gzipped(page(100000))
    assert.same({ nil, "gzip: the compressed body is cut short" }, { inflate(data:sub(1, math.floor(#data / 2)), 1e6) })
    local ok, message = inflate(("not gzip at all "):rep(10), 1e6)
    assert.is_nil(ok)
    assert.equal("gzip: incorrect header check", message)
    -- the stream is reset after a failure: the next body inflates
    assert.equal("abc", inflate(gzipped("abc"), 100))
  end)
end)
