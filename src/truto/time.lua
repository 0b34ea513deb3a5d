--- truto.time: the times Truto and its vendors write (`created_at` of a
-- webhook event, `updated_at` of a record), as epoch seconds.
--
-- @module truto.time
local M = {}

local type, tonumber, floor, huge = type, tonumber, math.floor, math.huge

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- Seconds east of UTC of a zone ("Z", "+02:00", "-0130"); "" is UTC only
-- when bare_is_utc; nil when it is none of these.
local function zone_offset(zone, bare_is_utc)
  if zone == "Z" or zone == "z" or (zone == "" and bare_is_utc) then return 0 end
  local sign, oh, om = zone:match("^([+-])(%d%d):?(%d%d)$")
  if not sign then return nil end
  local offset = (tonumber(oh) * 60 + tonumber(om)) * 60
  return sign == "-" and -offset or offset
end

--- Epoch seconds of an RFC 3339 time ("2023-06-15T14:40:03.000Z",
-- "...+02:00", a fraction after "." or ","), or of a finite number
-- (seconds; milliseconds when above 1e11); nil when it is neither. A time
-- without a zone is refused, or read as UTC when `bare_is_utc`.
function M.epoch(v, bare_is_utc)
  if type(v) == "number" then
    if v ~= v or v == huge or v == -huge then return nil end
    return v > 1e11 and v / 1000 or v
  end
  if type(v) ~= "string" then return nil end
  local y, mo, d, h, mi, s, rest = v:match("^(%d%d%d%d)-(%d%d)-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or s > 60 then return nil end
  local mark, digits, zone = rest:match("^([.,]?)(%d*)(.*)$")
  if (mark ~= "") ~= (digits ~= "") then return nil end -- "14:40:03." or "14:40:0312"
  local offset = zone_offset(zone, bare_is_utc)
  if not offset then return nil end
  local fraction = digits ~= "" and tonumber("0." .. digits) or 0
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s + fraction - offset
end

return M
