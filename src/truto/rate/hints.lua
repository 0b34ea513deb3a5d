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
-- The line: while the window has few starts left, the calls waiting for it go oldest first
-- (by when each call began: a listing's pages all carry its first page's time), so a listing
-- keeps its place across its pages instead of going to the back for every page, and 40
-- listings of one account finish one group after another, not all together at the end. The
-- state keeps the `QUEUE` oldest waiters ({ id, since, seen }: `seen`, when it said it would
-- look again); a waiter that does not come back within `STALE` seconds of that (its request
-- was abandoned, its worker died) has left the line. A call that started keeps its place
-- while its answer comes (`KEEP` seconds at most), and a listing for STALE s after that (for
-- its next page); any other call leaves the line when it is answered.
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
M.QUEUE = 16          -- the oldest waiters of an account kept in line
local STALE = 0.25    -- seconds: a waiter this late to look again has left the line
local KEEP = 1        -- seconds: a call that just started keeps its place this long

---------------------------------------------------------------------------------------------
-- The line (s.q): { id, since, seen } entries, oldest `since` first, at most M.QUEUE.

-- How many other waiters still in line began before `since` (the call's own place is not
-- ahead of it: a store keeps times rounded, and on its own clock).
local function ahead_of(q, id, since, now)
  local n = 0
  for i = 1, #q do
    local e = q[i]
    if e[2] >= since then break end
    if e[1] ~= id and e[3] + STALE > now then n = n + 1 end
  end
  return n
end

-- Puts (or keeps) waiter `id` in line, to look again at `seen`; drops those who left.
local function stand(s, id, since, seen, now)
  local q, kept = s.q or {}, {}
  for i = 1, #q do
    local e = q[i]
    if e[1] ~= id and e[3] + STALE > now then kept[#kept + 1] = e end
  end
  local at = #kept + 1
  for i = 1, #kept do
    if kept[i][2] > since then
      at = i
      break
    end
  end
  if at <= M.QUEUE then
    table.insert(kept, at, { id, since, seen })
    if #kept > M.QUEUE then kept[#kept] = nil end
  end
  s.q = kept[1] and kept or nil
end

--- Whether a request may start now. Returns 0 (it may: the state counts it), or the seconds
-- until it may try again and the reason ("retry-after", "ratelimit-reset", "slow start").
-- `since` and `id` (optional) name the call: when it began (the state's clock) and who it is,
-- for its place in line.
function M.take(s, now, probe_ttl, since, id)
  local wait, why = take(s, now, probe_ttl, since or now, id)
  if wait == 0 then
    if not s.out_until or s.out_until <= now then s.out = 0 end
    s.out, s.out_until = (s.out or 0) + 1, now + max(probe_ttl, OUT_TTL)
  end
  return wait, why
end

function take(s, now, probe_ttl, since, id)
  if s.hold then
    if s.hold > now then return s.hold - now, s.why or "retry-after" end
    s.hold, s.why = nil, nil
  end
  if not s.known and probe_ttl > 0 then
    if s.probe and s.probe > now then
      local wait = min(M.POLL, s.probe - now)
      if id then stand(s, id, since, now + wait, now) end
      return wait, "slow start"
    end
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
      if s.reset then
        if id then stand(s, id, since, s.reset, now) end
        return s.reset - now, "ratelimit-reset"
      end
      s.remaining = nil
    elseif id and s.q and ahead_of(s.q, id, since, now) >= s.remaining then
      -- the starts left are for those who began before this call
      stand(s, id, since, now + M.POLL, now)
      return M.POLL, "ratelimit-reset"
    else
      -- (a place is kept only while someone waits: an account nobody queues for costs nothing)
      if id and s.q then stand(s, id, since, now + KEEP, now) end
      s.remaining = s.remaining - 1
    end
  end
  return 0
end

-- The call `id` was answered: a listing (`stay`) keeps its place for its next page, if it asks
-- within STALE s; any other call leaves the line.
local function answered(s, id, stay, now)
  local q = s.q
  if not q then return end
  for i = 1, #q do
    if q[i][1] == id then
      if stay then
        q[i][3] = now
      else
        table.remove(q, i)
        if not q[1] then s.q = nil end
      end
      return
    end
  end
end

--- Records what one attempt taught: `h` from M.read (an answer), or `{ failed = true }` (no
-- answer: the probe, if it was one, is given back so another request may go). `id` and `stay`
-- (optional): the call that was answered, and whether it asks again (a listing's next page).
function M.learn(s, now, h, id, stay)
  if s.out and s.out > 0 then s.out = s.out - 1 end
  if id then answered(s, id, stay, now) end
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
    -- (within one window the server's count only goes down. When windows are 2 s or longer,
    -- a reset within SAME_WINDOW of this one is this window, and an answer saying more is left
    -- came late: answers of concurrent requests are learned in any order, by any worker. When
    -- the window is shorter or unknown, more left than this state allows, with the requests
    -- still out, is a new window.)
    local window = h.window or s.window
    if s.reset and s.remaining and same_budget and math.abs(reset - s.reset) < SAME_WINDOW
        and ((window and window >= 2 * SAME_WINDOW) or h.remaining <= s.remaining + (s.out or 0)) then
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
  local q = s.q or {}
  local line = {}
  for i = 1, #q do line[i] = format("%s:%.3f:%.3f", q[i][1], q[i][2], q[i][3]) end
  out[#out + 1] = table.concat(line, ",")
  return table.concat(out, "|")
end

local function decode_line(field)
  local q = {}
  for id, since, seen in field:gmatch("([^:,]+):([^:,]+):([^:,]+)") do
    q[#q + 1] = { id, tonumber(since), tonumber(seen) }
  end
  return q[1] and q or nil
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
    elseif i == #FIELDS + 1 then
      if field ~= "" then s.why = field end
    else
      s.q = decode_line(field)
    end
  end
  return s
end

--- How long (seconds from now) the state still matters; 0: it can be forgotten.
function M.lifetime(s, now)
  local t = max(s.hold or 0, s.reset or 0, s.probe or 0, s.out_until or 0) - now
  local q = s.q
  if q then
    for i = 1, #q do t = max(t, q[i][3] + STALE - now) end
  end
  if s.limit then t = max(t, s.window or 0) end
  return max(0, t)
end

return M
