-- JSON for the mock Truto server: a small encoder and a strict decoder.
--
-- Why not lua-cjson alone: the mock must write things cjson 2.1 cannot say on purpose,
-- an empty array (`"result": []`), an integer beyond 2^53 written literally, and keys in a
-- fixed order so that the same request always produces the same bytes. The decoder keeps
-- arrays apart from objects, so a body like `{"groups": []}` is echoed back unchanged.
--
-- Plain Lua (5.1 / LuaJIT and 5.4): the server uses it inside nginx, specs may use it too.

local json = {}

local math_type = rawget(math, "type") -- Lua 5.3+; nil on LuaJIT

local ARRAY = { __name = "json.array" }
local RAW = { __name = "json.raw" }

--- The JSON null (a unique sentinel; compare with `==`).
json.null = setmetatable({}, { __name = "json.null", __tostring = function() return "null" end })

--- Marks `t` (default: a new table) as an array, so that an empty one encodes as `[]`.
function json.array(t)
  return setmetatable(t or {}, ARRAY)
end

--- A value written to the output as is: `json.raw("9007199254740993")`.
function json.raw(text)
  return setmetatable({ text = text }, RAW)
end

function json.is_array(t)
  return getmetatable(t) == ARRAY
end

--- Whether `v` is a json.raw value (a number kept as its literal).
function json.is_raw(v)
  return getmetatable(v) == RAW
end

--- A deep copy of a decoded value; each table keeps its metatable (arrays, raw numbers).
function json.copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = json.copy(x) end
  return setmetatable(out, getmetatable(v))
end

-- Keys that come first, in this order; every other key follows, sorted bytewise.
local RANK = {
  statusCode = 1, error = 2, message = 3,
  result = 1, next_cursor = 2, result_count = 3,
  id = 1, name = 2,
}

local function key_before(a, b)
  local ra, rb = RANK[a] or 100, RANK[b] or 100
  if ra ~= rb then return ra < rb end
  return a < b
end

local ESCAPES = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function number(n)
  if n ~= n or n == math.huge or n == -math.huge then
    error("json: cannot encode " .. tostring(n))
  end
  if n == math.floor(n) and math.abs(n) < 2 ^ 53 then
    return string.format("%d", n)
  end
  local short = string.format("%.14g", n)
  return tonumber(short) == n and short or string.format("%.17g", n)
end

-- A plain table is an array when its keys are exactly 1..n with n > 0.
local function looks_like_array(t)
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local encode_value

local function encode_table(t, out)
  local mt = getmetatable(t)
  if mt == RAW then
    out[#out + 1] = t.text
  elseif mt == ARRAY or looks_like_array(t) then
    out[#out + 1] = "["
    for i = 1, #t do
      if i > 1 then out[#out + 1] = "," end
      encode_value(t[i], out)
    end
    out[#out + 1] = "]"
  else
    local keys = {}
    for k in pairs(t) do
      if type(k) ~= "string" then error("json: object key is not a string: " .. tostring(k)) end
      keys[#keys + 1] = k
    end
    table.sort(keys, key_before)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = quote(k)
      out[#out + 1] = ":"
      encode_value(t[k], out)
    end
    out[#out + 1] = "}"
  end
end

function encode_value(v, out)
  local kind = type(v)
  if v == json.null or v == nil then
    out[#out + 1] = "null"
  elseif kind == "string" then
    out[#out + 1] = quote(v)
  elseif kind == "number" then
    out[#out + 1] = number(v)
  elseif kind == "boolean" then
    out[#out + 1] = tostring(v)
  elseif kind == "table" then
    encode_table(v, out)
  elseif kind == "userdata" and tostring(v) == "userdata: NULL" then
    out[#out + 1] = "null" -- cjson.null / ngx.null
  else
    error("json: cannot encode a " .. kind)
  end
end

--- Encodes `v`; objects have their keys in a fixed order (see RANK).
function json.encode(v)
  local out = {}
  encode_value(v, out)
  return table.concat(out)
end

---------------------------------------------------------------------------------------------
-- Decoder: strict RFC 8259, arrays marked with json.array, null as json.null.

local decode_value

local function fail(pos, what)
  error({ json_error = string.format("%s at byte %d", what, pos) }, 0)
end

local function skip_space(s, pos)
  return s:find("[^ \t\r\n]", pos) or #s + 1
end

local function utf8_char(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then
    return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40)
  end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40,
      0x80 + cp % 0x40)
  end
  return string.char(0xF0 + math.floor(cp / 0x40000), 0x80 + math.floor(cp / 0x1000) % 0x40,
    0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local UNESCAPE = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
  r = "\r", t = "\t" }

-- Decodes the escape at `j` (the backslash); returns the text and the position after it.
local function decode_escape(s, j)
  local e = s:sub(j + 1, j + 1)
  if UNESCAPE[e] then return UNESCAPE[e], j + 2 end
  local hex = e == "u" and s:match("^%x%x%x%x", j + 2)
  if not hex then fail(j, "bad escape") end
  local cp, after = tonumber(hex, 16), j + 6
  local low = cp >= 0xD800 and cp < 0xDC00 and tonumber(s:match("^\\u(%x%x%x%x)", after) or "", 16)
  if low and low >= 0xDC00 and low < 0xE000 then
    return utf8_char(0x10000 + (cp - 0xD800) * 0x400 + (low - 0xDC00)), after + 6
  end
  return utf8_char(cp), after
end

local function decode_string(s, pos)
  local parts, i = {}, pos + 1
  while true do
    local j = s:find('["\\%c]', i)
    if not j then fail(pos, "unterminated string") end
    parts[#parts + 1] = s:sub(i, j - 1)
    local c = s:sub(j, j)
    if c == '"' then
      return table.concat(parts), j + 1
    elseif c == "\\" then
      parts[#parts + 1], i = decode_escape(s, j)
    elseif c == "\127" then -- %c also matches DEL, which JSON allows as is
      parts[#parts + 1], i = c, j + 1
    else
      fail(j, "control character in string")
    end
  end
end

local function decode_array(s, pos)
  local t = json.array()
  pos = skip_space(s, pos + 1)
  if s:sub(pos, pos) == "]" then return t, pos + 1 end
  while true do
    t[#t + 1], pos = decode_value(s, pos)
    pos = skip_space(s, pos)
    local c = s:sub(pos, pos)
    if c == "]" then return t, pos + 1 end
    if c ~= "," then fail(pos, "expected ',' or ']'") end
    pos = pos + 1
  end
end

local function decode_object(s, pos)
  local t = {}
  pos = skip_space(s, pos + 1)
  if s:sub(pos, pos) == "}" then return t, pos + 1 end
  while true do
    pos = skip_space(s, pos)
    if s:sub(pos, pos) ~= '"' then fail(pos, "expected a key") end
    local key
    key, pos = decode_string(s, pos)
    pos = skip_space(s, pos)
    if s:sub(pos, pos) ~= ":" then fail(pos, "expected ':'") end
    t[key], pos = decode_value(s, pos + 1)
    pos = skip_space(s, pos)
    local c = s:sub(pos, pos)
    if c == "}" then return t, pos + 1 end
    if c ~= "," then fail(pos, "expected ',' or '}'") end
    pos = pos + 1
  end
end

local LITERALS = { ["true"] = true, ["false"] = false }

function decode_value(s, pos)
  pos = skip_space(s, pos)
  local c = s:sub(pos, pos)
  if c == "{" then return decode_object(s, pos) end
  if c == "[" then return decode_array(s, pos) end
  if c == '"' then return decode_string(s, pos) end
  local word = s:match("^%a+", pos)
  if word == "null" then return json.null, pos + 4 end
  if LITERALS[word] ~= nil then return LITERALS[word], pos + #word end
  local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
  if num and num:match("^-?0%d") == nil and tonumber(num) and not num:match("%.$")
    and not num:match("%.[eE]") then
    local n = tonumber(num)
    -- An integer that this Lua holds only as a rounded double (LuaJIT past 2^53, any Lua past
    -- 2^63) stays its literal, so that it is stored and echoed exactly.
    if num:match("^-?%d+$") and (not math_type or math_type(n) ~= "integer") and math.abs(n) >= 2 ^ 53 then
      return json.raw(num), pos + #num
    end
    return n, pos + #num
  end
  fail(pos, "unexpected input")
end

--- Decodes one JSON text. Returns the value, or nil and a message.
function json.decode(s)
  local ok, value, pos = pcall(decode_value, s, 1)
  if not ok then
    if type(value) == "table" and value.json_error then return nil, value.json_error end
    error(value, 0)
  end
  pos = skip_space(s, pos)
  if pos <= #s then return nil, "trailing data at byte " .. pos end
  return value
end

return json
