--- Text for a terminal: control characters stripped, widths in terminal
-- columns (East Asian Width: wide and fullwidth characters and emoji take 2,
-- combining marks, joiners and variation selectors 0).
local M = {}

local concat = table.concat

-- Code point ranges, sorted. WIDE: East Asian Wide (W) and Fullwidth (F) of
-- Unicode 15, emoji presentation included (☕ U+2615, ⌚ U+231A).
local WIDE = {
  { 0x1100, 0x115F }, { 0x231A, 0x231B }, { 0x2329, 0x232A }, { 0x23E9, 0x23EC }, { 0x23F0, 0x23F0 },
  { 0x23F3, 0x23F3 }, { 0x25FD, 0x25FE }, { 0x2614, 0x2615 }, { 0x2648, 0x2653 }, { 0x267F, 0x267F },
  { 0x2693, 0x2693 }, { 0x26A1, 0x26A1 }, { 0x26AA, 0x26AB }, { 0x26BD, 0x26BE }, { 0x26C4, 0x26C5 },
  { 0x26CE, 0x26CE }, { 0x26D4, 0x26D4 }, { 0x26EA, 0x26EA }, { 0x26F2, 0x26F3 }, { 0x26F5, 0x26F5 },
  { 0x26FA, 0x26FA }, { 0x26FD, 0x26FD }, { 0x2705, 0x2705 }, { 0x270A, 0x270B }, { 0x2728, 0x2728 },
  { 0x274C, 0x274C }, { 0x274E, 0x274E }, { 0x2753, 0x2755 }, { 0x2757, 0x2757 }, { 0x2795, 0x2797 },
  { 0x27B0, 0x27B0 }, { 0x27BF, 0x27BF }, { 0x2B1B, 0x2B1C }, { 0x2B50, 0x2B50 }, { 0x2B55, 0x2B55 },
  { 0x2E80, 0x303E }, { 0x3041, 0x33FF }, { 0x3400, 0x4DBF }, { 0x4E00, 0x9FFF }, { 0xA000, 0xA4CF },
  { 0xA960, 0xA97F }, { 0xAC00, 0xD7A3 }, { 0xF900, 0xFAFF }, { 0xFE10, 0xFE19 }, { 0xFE30, 0xFE6F },
  { 0xFF00, 0xFF60 }, { 0xFFE0, 0xFFE6 }, { 0x16FE0, 0x16FE4 }, { 0x17000, 0x18CFF }, { 0x1B000, 0x1B2FF },
  { 0x1F004, 0x1F004 }, { 0x1F0CF, 0x1F0CF }, { 0x1F18E, 0x1F18E }, { 0x1F191, 0x1F19A },
  { 0x1F200, 0x1F202 }, { 0x1F210, 0x1F23B }, { 0x1F240, 0x1F248 }, { 0x1F250, 0x1F251 },
  { 0x1F260, 0x1F265 }, { 0x1F300, 0x1F320 }, { 0x1F32D, 0x1F335 }, { 0x1F337, 0x1F37C },
  { 0x1F37E, 0x1F393 }, { 0x1F3A0, 0x1F3CA }, { 0x1F3CF, 0x1F3D3 }, { 0x1F3E0, 0x1F3F0 },
  { 0x1F3F4, 0x1F3F4 }, { 0x1F3F8, 0x1F43E }, { 0x1F440, 0x1F440 }, { 0x1F442, 0x1F4FC },
  { 0x1F4FF, 0x1F53D }, { 0x1F54B, 0x1F54E }, { 0x1F550, 0x1F567 }, { 0x1F57A, 0x1F57A },
  { 0x1F595, 0x1F596 }, { 0x1F5A4, 0x1F5A4 }, { 0x1F5FB, 0x1F64F }, { 0x1F680, 0x1F6C5 },
  { 0x1F6CC, 0x1F6CC }, { 0x1F6D0, 0x1F6D2 }, { 0x1F6D5, 0x1F6D7 }, { 0x1F6DC, 0x1F6DF },
  { 0x1F6EB, 0x1F6EC }, { 0x1F6F4, 0x1F6FC }, { 0x1F7E0, 0x1F7EB }, { 0x1F7F0, 0x1F7F0 },
  { 0x1F90C, 0x1F93A }, { 0x1F93C, 0x1F945 }, { 0x1F947, 0x1F9FF }, { 0x1FA70, 0x1FAFF },
  { 0x20000, 0x2FFFD }, { 0x30000, 0x3FFFD },
}
-- Zero width: combining marks, Hangul medial vowels, zero-width spaces and
-- joiners, variation selectors, emoji skin-tone modifiers, tags.
local ZERO = {
  { 0x0300, 0x036F }, { 0x0483, 0x0489 }, { 0x0591, 0x05BD }, { 0x05BF, 0x05BF }, { 0x05C1, 0x05C2 },
  { 0x05C4, 0x05C5 }, { 0x05C7, 0x05C7 }, { 0x0610, 0x061A }, { 0x064B, 0x065F }, { 0x0670, 0x0670 },
  { 0x06D6, 0x06DC }, { 0x06DF, 0x06E4 }, { 0x0900, 0x0902 }, { 0x093A, 0x093A }, { 0x093C, 0x093C },
  { 0x0941, 0x0948 }, { 0x094D, 0x094D }, { 0x0E31, 0x0E31 }, { 0x0E34, 0x0E3A }, { 0x0E47, 0x0E4E },
  { 0x1160, 0x11FF }, { 0x1AB0, 0x1AFF }, { 0x1DC0, 0x1DFF }, { 0x200B, 0x200F }, { 0x2060, 0x2064 },
  { 0x20D0, 0x20FF }, { 0xD7B0, 0xD7FF }, { 0xFE00, 0xFE0F }, { 0xFE20, 0xFE2F }, { 0xFEFF, 0xFEFF },
  { 0x1F3FB, 0x1F3FF }, { 0xE0000, 0xE007F }, { 0xE0100, 0xE01EF },
}

local function in_ranges(cp, ranges)
  local lo, hi = 1, #ranges
  while lo <= hi do
    local mid = (lo + hi) // 2
    local r = ranges[mid]
    if cp < r[1] then hi = mid - 1 elseif cp > r[2] then lo = mid + 1 else return true end
  end
  return false
end

--- Terminal columns of one code point.
function M.char_width(cp)
  if cp < 0x300 then return 1 end
  if in_ranges(cp, ZERO) then return 0 end
  if in_ranges(cp, WIDE) then return 2 end
  return 1
end

-- A code point that must never reach a terminal: C0 and C1 controls, DEL,
-- line and paragraph separators, bidirectional embeddings, overrides and
-- isolates (U+202A-U+202E, U+2066-U+2069).
local function is_control(cp)
  return cp < 0x20 or (cp >= 0x7F and cp <= 0x9F) or cp == 0x2028 or cp == 0x2029
    or (cp >= 0x202A and cp <= 0x202E) or (cp >= 0x2066 and cp <= 0x2069)
end

--- JSON text safe for a terminal: the code points `clean` drops that a
-- JSON encoder leaves raw (DEL, C1 controls such as U+009B CSI, line
-- separators, bidirectional controls) written as \uXXXX escapes. Still the
-- same JSON value.
function M.json_for_terminal(s)
  if not s:find("[\127\194\226]") then return s end
  local function escape(seq) return string.format("\\u%04x", utf8.codepoint(seq)) end
  s = s:gsub("\127", "\\u007f"):gsub("\194[\128-\159]", escape)
  return (s:gsub("\226\128[\168-\174]", escape):gsub("\226\129[\166-\169]", escape))
end

local VISIBLE = { [0x0A] = "\\n", [0x0D] = "\\r", [0x09] = "\\t" }

--- `s` safe for a terminal, on one line: newline, CR and tab written as \n,
-- \r, \t; other control characters dropped. Bytes that are not UTF-8 are
-- shown as \xHH.
function M.clean(s)
  s = tostring(s)
  if not s:find("[%z\1-\31\127-\255]") then return s end
  local out, pos, n = {}, 1, #s
  while pos <= n do
    local len = utf8.len(s, pos, pos) and #utf8.char(utf8.codepoint(s, pos)) or nil
    local ok, cp = pcall(utf8.codepoint, s, pos)
    if not ok or not len then
      out[#out + 1] = string.format("\\x%02X", s:byte(pos))
      pos = pos + 1
    else
      if VISIBLE[cp] then
        out[#out + 1] = VISIBLE[cp]
      elseif not is_control(cp) then
        out[#out + 1] = s:sub(pos, pos + len - 1)
      end
      pos = pos + len
    end
  end
  return concat(out)
end

--- Columns `s` (already clean) takes on a terminal. A code point after a
-- zero-width joiner is part of the same glyph (👩‍💻 takes 2).
function M.width(s)
  local w, joined = 0, false
  for _, cp in utf8.codes(s, true) do
    if joined then
      joined = false
    elseif cp == 0x200D then
      joined = true
    else
      w = w + M.char_width(cp)
    end
  end
  return w
end

--- `s` cut to at most `max` columns, "…" marking the cut; and its width.
function M.cut(s, max)
  local w = M.width(s)
  if w <= max then return s, w end
  local width, joined = 0, false
  for p, cp in utf8.codes(s, true) do
    local cw
    if joined then cw, joined = 0, false
    elseif cp == 0x200D then cw, joined = 0, true
    else cw = M.char_width(cp) end
    if width + cw > max - 1 then return s:sub(1, p - 1) .. "…", width + 1 end
    width = width + cw
  end
  return s, width
end

return M
