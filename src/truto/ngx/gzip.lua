--- truto.ngx.gzip: inflating gzip (or zlib) answers with zlib through LuaJIT's FFI.
--
-- nginx is linked with zlib, so its symbols are found in the process; else libz is loaded.
-- Without the FFI or zlib, `inflate` is nil and the nginx transport asks for no gzip.
--
-- @module truto.ngx.gzip
-- luacheck: std luajit
local pcall, ipairs, tostring, min, max = pcall, ipairs, tostring, math.min, math.max
local too_large = require("truto.ngx.parser").too_large

local M = {}

-- zlib through the FFI, or nil.
local function load_zlib(ffi)
  -- Our own names (bound to zlib's symbols), so that another module's
  -- declarations of z_stream or inflate cannot clash with ours.
  if not pcall(ffi.typeof, "truto_z_stream") then
    pcall(ffi.cdef, [[
      typedef struct truto_z_stream {
        const char *next_in; unsigned int avail_in; unsigned long total_in;
        unsigned char *next_out; unsigned int avail_out; unsigned long total_out;
        const char *msg; void *state; void *zalloc; void *zfree; void *opaque;
        int data_type; unsigned long adler; unsigned long reserved;
      } truto_z_stream;
      const char *truto_zlibVersion(void) __asm__("zlibVersion");
      int truto_inflateInit2_(truto_z_stream *s, int bits, const char *version, int size)
        __asm__("inflateInit2_");
      int truto_inflate(truto_z_stream *s, int flush) __asm__("inflate");
      int truto_inflateEnd(truto_z_stream *s) __asm__("inflateEnd");
    ]])
  end
  -- (apart: a state where an older copy of this module declared the rest has no reset yet)
  pcall(ffi.cdef, [[int truto_inflateReset(truto_z_stream *s) __asm__("inflateReset");]])
  for _, load in ipairs {
    function() return ffi.C end, -- zlib already in the process (nginx)
    function() return ffi.load("libz.so.1") end,
    function() return ffi.load("z") end,
  } do
    local ok, lib = pcall(load)
    if ok and pcall(function() return lib.truto_zlibVersion() ~= nil end) then return lib end
  end
  return nil
end

local has_ffi, ffi = pcall(require, "ffi")
local zlib = has_ffi and load_zlib(ffi) or nil

if zlib then
  local Z_OK, Z_STREAM_END, Z_BUF_ERROR = 0, 1, -5
  local KEEP = 1024 * 1024 -- bytes: an output buffer up to this size is kept for the next answer
  local kept, kept_size = nil, 0

  -- One inflate stream for this Lua state, reset for each answer (inflate never yields, so two
  -- answers never share it at once); inflateEnd runs when the state closes.
  local stream
  local function reset()
    if stream then return zlib.truto_inflateReset(stream) == Z_OK end
    local z = ffi.new("truto_z_stream")
    -- window bits 15 + 32: a gzip or a zlib header, told apart by zlib
    if zlib.truto_inflateInit2_(z, 47, zlib.truto_zlibVersion(), ffi.sizeof(z)) ~= Z_OK then return false end
    stream = ffi.gc(z, zlib.truto_inflateEnd)
    return true
  end

  -- An output buffer of `size` bytes holding the `used` first bytes of `old` (nil: none).
  local function buffer(size, old, used)
    local out = kept
    if size > kept_size then
      out = ffi.new("unsigned char[?]", size)
      if size <= KEEP then kept, kept_size = out, size end
    end
    if old and used > 0 and old ~= out then ffi.copy(out, old, used) end
    return out
  end

  -- How many bytes the text inflates to, as the gzip trailer says (the size modulo 2^32, of the
  -- last member): a first guess for the output buffer, never trusted as a bound.
  local function said_size(data)
    local n = #data
    if n < 18 or data:byte(1) ~= 0x1f or data:byte(2) ~= 0x8b then return 4 * n end
    local a, b, c, d = data:byte(n - 3, n)
    return a + b * 256 + c * 65536 + d * 16777216
  end

  --- inflate(data, max_body) -> text | nil, message, too_large.
  -- Inflates into one buffer sized from the gzip trailer (grown while the text is longer, up to
  -- max_body + 1 bytes), so an answer is copied out once.
  function M.inflate(data, max_body)
    if not reset() then return nil, "gzip: cannot start inflating" end
    local z = stream
    z.next_in, z.avail_in = data, #data
    local size = max(1024, min(said_size(data) + 1, max_body + 1))
    local out, used = buffer(size, nil, 0), 0
    local ret
    while true do
      z.next_out, z.avail_out = out + used, size - used
      ret = zlib.truto_inflate(z, 0)
      used = size - z.avail_out
      if used > max_body then return nil, too_large(max_body), true end
      if ret ~= Z_OK and ret ~= Z_BUF_ERROR then break end
      if z.avail_out > 0 then
        if ret == Z_BUF_ERROR then break end -- the input ended before the stream did
      else
        local grown = min(size * 2, max_body + 1)
        out, size = buffer(grown, out, used), grown
      end
    end
    if ret == Z_STREAM_END then return ffi.string(out, used) end
    if ret == Z_BUF_ERROR then return nil, "gzip: the compressed body is cut short" end
    local message = z.msg ~= nil and ffi.string(z.msg) or nil
    return nil, "gzip: " .. (message or "invalid compressed data (" .. tostring(ret) .. ")")
  end
end

return M
