--- JSON for the command line: the module's own encoder and decoder
-- (`truto.encode_json`, `truto.decode_json`: exact integers, arrays kept),
-- and how items are written (`id` first, newlines as \n).
--
-- Until the module's decode_json keeps `[]` apart from `{}` (issue 11),
-- this falls back on the small strict parser below, which does, and keeps
-- integers exact as the module's decoder will. Delete the fallback then.
local truto = require "truto"

local M = {}

local format, concat = string.format, table.concat

local core_ok, core = pcall(require, "truto.core")

M.encode = truto.encode_json or (core_ok and core.encode_json)

local function fallback_decode(text)
  local pos = 1
  local function fail_at(msg)
    error({ json = format("%s at byte %d", msg, pos) }, 0)
  end
  local function skip()
    pos = text:find("[^ \t\r\n]", pos) or #text + 1
  end
  local value
  local ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
  local function string_value()
    local out = {}
    pos = pos + 1
    while true do
      local s, e, chunk, stop = text:find('^([^"\\%c]*)(.)', pos)
      if not s then fail_at("unterminated string") end
      out[#out + 1] = chunk
      pos = e + 1
      if stop == '"' then break end
      if stop ~= "\\" then fail_at("control character in string") end
      local c = text:sub(pos, pos)
      if ESCAPES[c] then
        out[#out + 1] = ESCAPES[c]
        pos = pos + 1
      elseif c == "u" then
        local hex = text:match("^%x%x%x%x", pos + 1)
        if not hex then fail_at("bad \\u escape") end
        local cp = tonumber(hex, 16)
        pos = pos + 5
        if cp >= 0xD800 and cp <= 0xDBFF then
          local low = text:match("^\\u([dD][c-fC-F]%x%x)", pos)
          if not low then fail_at("lone surrogate in \\u escape") end
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (tonumber(low, 16) - 0xDC00)
          pos = pos + 6
        elseif cp >= 0xDC00 and cp <= 0xDFFF then
          fail_at("lone surrogate in \\u escape")
        end
        out[#out + 1] = utf8.char(cp)
      else
        fail_at("bad escape")
      end
    end
    local s = concat(out)
    if not utf8.len(s) then fail_at("invalid UTF-8 in string") end
    return s
  end
  local function number_value()
    local int = text:match("^-?%d+", pos)
    if not int or int:match("^-?0%d") then fail_at("bad number") end
    local frac = text:match("^%.%d+", pos + #int) or ""
    if frac == "" and text:match("^%.", pos + #int) then fail_at("bad number") end
    local exp = text:match("^[eE][-+]?%d+", pos + #int + #frac) or ""
    if exp == "" and text:match("^[eE]", pos + #int + #frac) then fail_at("bad number") end
    local lit = int .. frac .. exp
    pos = pos + #lit
    return tonumber(lit)
  end
  function value(depth)
    if depth > 32 then fail_at("nested deeper than 32 levels") end
    skip()
    local c = text:sub(pos, pos)
    if c == "{" then
      local obj = {}
      pos = pos + 1
      skip()
      if text:sub(pos, pos) == "}" then pos = pos + 1 return obj end
      while true do
        skip()
        if text:sub(pos, pos) ~= '"' then fail_at("expected a string key") end
        local k = string_value()
        skip()
        if text:sub(pos, pos) ~= ":" then fail_at("expected ':'") end
        pos = pos + 1
        obj[k] = value(depth + 1)
        skip()
        c = text:sub(pos, pos)
        pos = pos + 1
        if c == "}" then return obj end
        if c ~= "," then pos = pos - 1 fail_at("expected ',' or '}'") end
      end
    elseif c == "[" then
      local arr = truto.array {}
      pos = pos + 1
      skip()
      if text:sub(pos, pos) == "]" then pos = pos + 1 return arr end
      while true do
        arr[#arr + 1] = value(depth + 1)
        skip()
        c = text:sub(pos, pos)
        pos = pos + 1
        if c == "]" then return arr end
        if c ~= "," then pos = pos - 1 fail_at("expected ',' or ']'") end
      end
    elseif c == '"' then
      return string_value()
    elseif c:match("[-%d]") then
      return number_value()
    else
      for word, v in pairs { ["true"] = true, ["false"] = false, null = truto.null } do
        if text:sub(pos, pos + #word - 1) == word then
          pos = pos + #word
          return v
        end
      end
      fail_at(c == "" and "unexpected end of input" or "unexpected character")
    end
  end
  local ok, result = pcall(function()
    local v = value(0)
    skip()
    if pos <= #text then fail_at("trailing characters") end
    return v
  end)
  if ok then return result end
  if type(result) == "table" and result.json then return nil, result.json end
  error(result, 0)
end

-- The module's decoder once it keeps `[]` apart from `{}` (issue 11);
-- until then the fallback above, so that a body's [] is sent as [].
M.decode = fallback_decode
if truto.decode_json and M.encode then
  local ok, v = pcall(truto.decode_json, "[[],{}]")
  if ok and v and M.encode(v) == "[[],{}]" then M.decode = truto.decode_json end
end

--- The first integer literal of a JSON text that no 64-bit integer holds
-- (sent as is it would become a rounded float), or nil.
function M.inexact_integer(text)
  local pos, n = 1, #text
  while pos <= n do
    local s = text:find('["%-%d]', pos)
    if not s then return nil end
    if text:sub(s, s) == '"' then -- skip the string
      local q = s + 1
      while true do
        local a, b = text:find('[\\"]', q)
        if not a then return nil end
        if text:sub(a, b) == '"' then q = a + 1 break end
        q = a + 2
      end
      pos = q
    else
      local digits = text:match("^-?%d+", s)
      if not digits then
        pos = s + 1
      else
        local fraction = text:match("^[%.eE]", s + #digits)
        local prev = s > 1 and text:sub(s - 1, s - 1) or ""
        local int = math.tointeger(tonumber(digits))
        local exact = int ~= nil and (tostring(int) == digits or digits == "-0")
        local malformed = digits:match("^%-?0%d") -- left to the decoder
        if not fraction and not malformed and not prev:match("[%w%.]") and not exact then return digits end
        pos = s + #digits + 1
      end
    end
  end
  return nil
end

-- Newlines and tabs inside strings as \n, \r, \t (the encoder writes
-- \u000a): only where the backslash itself is not escaped.
local SHORT = { ["000a"] = "\\n", ["000A"] = "\\n", ["000d"] = "\\r", ["000D"] = "\\r", ["0009"] = "\\t" }
local function short_escapes(text)
  if not text:find("\\u00", 1, true) then return text end
  return (text:gsub("(\\+)u(00%x%x)", function(slashes, hex)
    if #slashes % 2 == 1 and SHORT[hex] then return slashes:sub(2) .. SHORT[hex] end
    return nil
  end))
end

function M.text(value)
  local text, err = M.encode(value)
  if not text then return nil, err end
  return short_escapes(text)
end

local function is_object(v)
  return type(v) == "table" and getmetatable(v) ~= getmetatable(truto.array {}) and v[1] == nil and next(v) ~= nil
end

--- An item as JSON with `id` first, then the other keys in byte order.
function M.item(value)
  if not is_object(value) or value.id == nil then return M.text(value) end
  local rest = {}
  for k, v in pairs(value) do if k ~= "id" then rest[k] = v end end
  local id, err = M.text(value.id)
  if not id then return nil, err end
  if next(rest) == nil then return '{"id":' .. id .. "}" end
  local others
  others, err = M.text(rest)
  if not others then return nil, err end
  return '{"id":' .. id .. "," .. others:sub(2)
end

return M
