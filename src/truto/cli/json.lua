--- JSON for the command line: the module's own encoder and decoder
-- (`truto.encode_json`, `truto.decode_json`: exact integers, arrays kept),
-- a check for integers no JSON number can carry exactly, and how items are
-- written (`id` first, newlines as \n).
local truto = require "truto"

local M = {}

M.encode = truto.encode_json

M.decode = truto.decode_json

local TOKENS = {
  T_OBJ_BEGIN = "'{'", T_OBJ_END = "'}'", T_ARR_BEGIN = "'['", T_ARR_END = "']'", T_STRING = "a string",
  T_NUMBER = "a number", T_BOOLEAN = "true or false", T_NULL = "null", T_COLON = "':'", T_COMMA = "','",
  T_END = "the end of the text", T_WHITESPACE = "white space", ["invalid number"] = "an invalid number",
  ["invalid token"] = "an invalid token", ["invalid escape code"] = "an invalid escape code",
}
local EXPECTED = { value = "a value", ["the end"] = "the end of the text", colon = "':'",
  ["object key string"] = "a key (a string in double quotes)", ["comma or object end"] = "',' or '}'",
  ["comma or array end"] = "',' or ']'" }

-- Line and column (both from 1) of byte `pos` in `text`.
local function line_column(text, pos)
  local line, start = 1, 1
  for nl in text:sub(1, pos - 1):gmatch("()\n") do line, start = line + 1, nl + 1 end
  return line, pos - start + 1
end

--- A decoder's message for `text` in a person's words: "at line L, column
-- C: expected X, found Y" instead of "Expected X but found T_Y at character N".
function M.explain(message, text)
  message = tostring(message)
  local expected, found, pos = message:match("Expected (.-) but found (.-) at character (%d+)")
  if expected then
    local line, col = line_column(text, tonumber(pos))
    return string.format("invalid JSON at line %d, column %d: expected %s, found %s", line, col,
      EXPECTED[expected] or expected, TOKENS[found] or found)
  end
  return (message:gsub("^not valid JSON", "invalid JSON"):gsub("at character (%d+)", function(n)
    return string.format("at line %d, column %d", line_column(text, tonumber(n)))
  end))
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
