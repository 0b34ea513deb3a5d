--- truto.rate.hints: the budget of one integrated account as the server's answers describe it.
--
-- Truto publishes no limit of its own: each account's vendor has one, which every answer
-- describes (`ratelimit-limit: 110;w=10`, `ratelimit-remaining`, `ratelimit-reset`) and a 429
-- enforces (`Retry-After`). The state of one budget is small and constant-size, whatever the
-- numbers:
--
--     { known = true once an answer came, probe = until when the first request may be out,
--       remaining = starts left in this window (nil: no limit seen), reset = when the window
--       reopens, limit, window = from ratelimit-limit, hold = no start before, why = the hold's
--       reason, out = requests started and not answered yet, out_until = when those are
--       given up (a request abandoned without a word is forgotten then), bounded = an answer
--       of this window bounded `reset` (else it is a guess: the last window's end + its size) }
--
-- Slow start: while nothing is known of an account, one request at a time is out (the probe,
-- for at most `probe_ttl` seconds: a probe whose process died is given up; 0: no slow start,
-- as when the caller configured a fixed budget). After that the
-- starts follow the headers: `remaining` counts down locally between answers, and when it is 0
-- nothing starts before `reset`. A 429 holds the budget until its wait ends, and the account
-- starts slowly again after it.
--
-- Every wait a header names is bounded by the caller (`bound`, the call's max_retry_wait) before
-- it is recorded, so no lying header holds anyone longer than that. Times are the caller's
-- clock. Runs on Lua 5.1 (LuaJIT) to 5.4.
--
-- @module truto.rate.hints
local M = {}

local min, max, ceil, huge = math.min, math.max, math.ceil, math.huge
local type, tonumber, format = type, tonumber, string.format

M.POLL = 0.02        -- seconds: how often a request behind a probe looks again
local OUT_TTL = 30    -- seconds: a started request not heard of for this long is no longer out
M.FORGET_AFTER = 60   -- seconds: a learned budget nothing holds is kept this long after its last use
local take
local SAME_WINDOW = 1 -- seconds: two resets closer than this name one window (reset is rounded)

--- Whether a request may start now. Returns 0 (it may: the state counts it), or the seconds
-- until it may try again and the reason ("retry-after", "ratelimit-reset", "slow start").
function M.take(s, now, probe_ttl)
  local wait, why = take(s, now, probe_ttl)
  if wait == 0 then
    if not s.out_until or s.out_until <= now then s.out = 0 end
    s.out, s.out_until = (s.out or 0) + 1, now + max(probe_ttl, OUT_TTL)
  end
  return wait, why
end

function take(s, now, probe_ttl)
  if s.hold then
    if s.hold > now then return s.hold - now, s.why or "retry-after" end
    s.hold, s.why = nil, nil
  end
  if not s.known and probe_ttl > 0 then
    if s.probe and s.probe > now then return min(M.POLL, s.probe - now), "slow start" end
    s.probe = now + probe_ttl
    return 0
  end
  if s.reset and s.reset <= now then
    -- the window reopened: full again when its size is known, else unknown until an answer
    if s.limit and s.window then
      s.remaining = s.limit
      s.reset = s.reset + s.window * max(1, ceil((now - s.reset) / s.window + 1e-9))
      s.bounded = nil -- a guess until an answer of the new window bounds it
    else
      s.remaining, s.reset = nil, nil
    end
  end
  if s.remaining then
    if s.remaining <= 0 then
      if s.reset then return s.reset - now, "ratelimit-reset" end
      s.remaining = nil
    else
      s.remaining = s.remaining - 1
    end
  end
  return 0
end

--- Records what one attempt taught: `h` from M.read (an answer), or `{ failed = true }` (no
-- answer: the probe, if it was one, is given back so another request may go).
function M.learn(s, now, h)
  if s.out and s.out > 0 then s.out = s.out - 1 end
  if h.failed then
    if not s.known then s.probe = nil end
    return
  end
  s.known, s.probe = true, nil
  if h.hold then
    -- a 429: nothing starts before its wait ends, then one request at a time until an answer
    -- says how much is left (a slow start again)
    local t = now + h.hold
    if not s.hold or s.hold < t then s.hold, s.why = t, h.why end
    s.known, s.remaining = nil, nil
  end
  if h.remaining and h.reset then
    local reset = now + h.reset
    -- the window this state counts in (the same reset, and the same budget: a budget the
    -- server changed starts counting anew)
    local same_budget = not h.limit or (h.limit == s.limit and h.window == s.window)
    -- (within one window the server's count only goes down: more left than this state allows,
    -- with the requests still out, is a new window)
    if s.reset and s.remaining and same_budget and math.abs(reset - s.reset) < SAME_WINDOW
        and h.remaining <= s.remaining + (s.out or 0) then
      s.remaining = min(s.remaining, h.remaining)
      -- Each answer of a window bounds its end from above (`ratelimit-reset` is whole seconds
      -- rounded up, and the answer took time to come back): the lowest bound is the closest,
      -- up to a second nearer than the last answer's alone.
      if s.bounded then reset = min(reset, s.reset) end
    else
      -- a window this state had not counted in: the requests still out were started without
      -- it, and the server may count them after this answer (counting some twice is the safe
      -- side: no 429)
      s.remaining = max(0, h.remaining - (s.out or 0))
    end
    s.reset, s.bounded = reset, true
  end
  if h.limit then s.limit, s.window = h.limit, h.window end
end

-- A header value as a finite number >= 0, or nil (several values: the first one).
local function number(headers, name)
  local v = headers[name]
  if type(v) == "table" then v = v[1] end
  if type(v) == "string" then v = tonumber(v:match("^%s*([%d%.]+)%s*$") or v:match("^%s*([%d%.]+)%s*;")) end
  if type(v) ~= "number" or v ~= v or v < 0 or v == huge then return nil end
  return v
end

--- What an answer's headers say, each wait bounded by `bound` seconds: { remaining, reset,
-- limit, window, hold, why, offered } (`offered`: the wait the server named, unbounded).
-- `status` 429 holds the account for `retry_after` (seconds, parsed by the caller) or its reset.
function M.read(headers, status, retry_after, bound)
  local h = {}
  if type(headers) ~= "table" then return h end
  h.remaining = number(headers, "ratelimit-remaining")
  h.reset = number(headers, "ratelimit-reset")
  if h.remaining then h.remaining = math.floor(h.remaining) end
  local limit = headers["ratelimit-limit"]
  if type(limit) == "table" then limit = limit[1] end
  if type(limit) == "string" then
    local n, w = limit:match("^%s*(%d+)%s*;%s*w%s*=%s*([%d%.]+)")
    n, w = tonumber(n), tonumber(w)
    if n and w and w > 0 and w < huge then h.limit, h.window = n, w end
  end
  if status == 429 then
    local wait = retry_after or h.reset or 10
    h.offered, h.hold = wait, min(wait, bound)
    h.why = retry_after and "retry-after" or (h.reset and "ratelimit-reset" or "429")
    h.remaining, h.reset = nil, nil
  elseif h.reset then
    h.offered = h.reset
    h.reset = min(h.reset, bound)
  end
  return h
end

--- The state as a short string (for a shared dict), and back.
local FIELDS = { "known", "probe", "remaining", "reset", "limit", "window", "hold", "out", "out_until", "bounded" }

function M.encode(s)
  local out = {}
  for i = 1, #FIELDS do
    local v = s[FIELDS[i]]
    if v == true then v = "1" elseif v == nil then v = "" else v = format("%.17g", v) end
    out[i] = v
  end
  out[#out + 1] = s.why or ""
  return table.concat(out, "|")
end

function M.decode(text)
  local s = {}
  if type(text) ~= "string" then return s end
  local i = 0
  for field in (text .. "|"):gmatch("([^|]*)|") do
    i = i + 1
    local name = FIELDS[i]
    if name == "known" or name == "bounded" then
      s[name] = field == "1" or nil
    elseif name then
      s[name] = tonumber(field)
    elseif field ~= "" then
      s.why = field
    end
  end
  return s
end

--- How long (seconds from now) the state still matters; 0: it can be forgotten.
function M.lifetime(s, now)
  local t = max(s.hold or 0, s.reset or 0, s.probe or 0, s.out_until or 0) - now
  if s.limit then t = max(t, s.window or 0) end
  return max(0, t)
end

return M
