--- truto.ngx.gzip: inflating gzip (or zlib) answers with zlib through LuaJIT's FFI.
--
-- nginx is linked with zlib, so its symbols are found in the process; else libz is loaded.
-- Without the FFI or zlib, `inflate` is nil and the nginx transport asks for no gzip.
--
-- @module truto.ngx.gzip
-- luacheck: std luajit
local pcall, ipairs, tostring = pcall, ipairs, tostring
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
  local Z_OK, Z_STREAM_END, Z_BUF_ERROR, OUT = 0, 1, -5, 64 * 1024
  local out_buf = ffi.new("unsigned char[?]", OUT)

  --- inflate(data, max_body) -> text | nil, message, too_large.
  function M.inflate(data, max_body)
    local z = ffi.new("truto_z_stream")
    -- window bits 15 + 32: a gzip or a zlib header, told apart by zlib
    if zlib.truto_inflateInit2_(z, 47, zlib.truto_zlibVersion(), ffi.sizeof(z)) ~= Z_OK then
      return nil, "gzip: cannot start inflating"
    end
    ffi.gc(z, zlib.truto_inflateEnd) -- even if something below raises
    z.next_in, z.avail_in = data, #data
    local parts, size, ret = {}, 0, Z_OK
    while ret == Z_OK do
      z.next_out, z.avail_out = out_buf, OUT
      ret = zlib.truto_inflate(z, 0)
      local n = OUT - z.avail_out
      size = size + n
      if size > max_body then ret = "too large" break end
      if n > 0 then parts[#parts + 1] = ffi.string(out_buf, n) end
      if ret == Z_BUF_ERROR and n > 0 then ret = Z_OK end -- no progress only when really stuck
    end
    local message = z.msg ~= nil and ffi.string(z.msg) or nil
    zlib.truto_inflateEnd(z)
    ffi.gc(z, nil)
    if ret == Z_STREAM_END then return table.concat(parts) end
    if ret == "too large" then
      return nil, too_large(max_body), true
    end
    if ret == Z_BUF_ERROR then return nil, "gzip: the compressed body is cut short" end
    return nil, "gzip: " .. (message or "invalid compressed data (" .. tostring(ret) .. ")")
  end
end

return M
