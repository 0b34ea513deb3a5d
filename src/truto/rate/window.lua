--- truto.rate.window: the state of one fixed budget ("at most `requests` starts in any window of
-- `per` seconds"), in constant size whatever `requests` is.
--
-- The state is at most GROUPS groups { t, c }, oldest first: `c` starts, none later than `t`.
-- A start s is allowed when fewer than `requests` recorded starts are later than s - per
-- (future reservations included): then every window of `per` seconds that holds s holds fewer
-- than `requests` others, whatever order the reservations came in. Counting a group whole when
-- its `t` is in the window never counts fewer starts than there are, so the guarantee is exact;
-- it is also exact in throughput while there are no more than GROUPS distinct start times in a
-- window (a burst, or a queue of waiters: they share a few times). Past that, the two nearest
-- groups are merged into the later one, and a start may wait up to that group's spread longer
-- than it had to (at most about per / GROUPS).
--
-- Giving back a reservation that never started (`release`) takes one start from the earliest
-- group that is not earlier than it: some start counted there can take the place of the one
-- given back, so no window ever counts fewer than it holds.
--
-- Times are integers of microseconds, exact in doubles. This file runs in this process
-- (truto.rate.local, truto.rate.dict) and, as it is, inside Redis (truto.rate.redis sends its
-- text with its scripts): Lua 5.1, no require, no globals, string/math/table only. A state as
-- text is "t:c t:c ..." (decimal integers, so no locale changes it).
--
-- @module truto.rate.window

local W = {}

W.GROUPS = 16

local floor, max, concat = math.floor, math.max, table.concat
local tonumber, format, gmatch = tonumber, string.format, string.gmatch

--- Seconds as integer microseconds (`up`: rounded up, as a hold's end must be).
function W.us(seconds, up)
  if up then return math.ceil(seconds * 1000000 - 1e-3) end
  return floor(seconds * 1000000 + 0.5)
end

--- A state from its text (anything else: the empty state).
function W.decode(text)
  local g = {}
  if type(text) ~= "string" then return g end
  for t, c in gmatch(text, "(%d+):(%d+)") do
    g[#g + 1] = tonumber(t)
    g[#g + 1] = tonumber(c)
  end
  return g
end

function W.encode(g)
  local out = {}
  for j = 1, #g, 2 do out[#out + 1] = format("%.0f:%.0f", g[j], g[j + 1]) end
  return concat(out, " ")
end

-- Drops the groups no start at `now` or later can see (t <= now - per).
local function prune(g, now, per)
  local drop = 0
  while drop < #g and g[drop + 1] <= now - per do drop = drop + 2 end
  if drop == 0 then return g end
  local kept = {}
  for j = drop + 1, #g do kept[#kept + 1] = g[j] end
  return kept
end

--- The earliest start >= now the state allows, and the state without what no longer counts.
function W.earliest(g, requests, per, now)
  g = prune(g, now, per)
  local total = 0
  for j = 2, #g, 2 do total = total + g[j] end
  if total < requests then return now, g end
  for j = 1, #g, 2 do
    total = total - g[j + 1]
    if total < requests then return max(now, g[j] + per), g end
  end
  return now, g
end

--- Records a start at x (in place).
function W.record(g, x)
  local n = #g
  if n == 0 or x > g[n - 1] then
    g[n + 1], g[n + 2] = x, 1
  else
    local j = 1
    while g[j] < x do j = j + 2 end
    if g[j] == x then
      g[j + 1] = g[j + 1] + 1
    else
      table.insert(g, j, 1)
      table.insert(g, j, x)
    end
  end
  if #g > 2 * W.GROUPS then
    -- merge the two nearest groups into the later one
    local best, gap = 1, nil
    for j = 1, #g - 3, 2 do
      local d = g[j + 2] - g[j]
      if not gap or d < gap then best, gap = j, d end
    end
    g[best + 3] = g[best + 3] + g[best + 1]
    table.remove(g, best)
    table.remove(g, best)
  end
end

--- Gives back a reservation at x that never started (in place); false when nothing counts it.
function W.release(g, x)
  for j = 1, #g, 2 do
    if g[j] >= x then
      g[j + 1] = g[j + 1] - 1
      if g[j + 1] <= 0 then
        table.remove(g, j)
        table.remove(g, j)
      end
      return true
    end
  end
  return false
end

--- Reserves one start over several budgets at once: states[i] is budget i's state, limits[i]
-- = { requests, per } (per in microseconds), holds[i] its hold's end or nil. Returns the start
-- and the index of the budget that decided it (0: none had to wait); states[i] are the new
-- states (recorded in).
function W.reserve(states, limits, holds, now)
  local start, binding = now, 0
  for i = 1, #limits do
    local at
    at, states[i] = W.earliest(states[i], limits[i][1], limits[i][2], now)
    if at > start then start, binding = at, i end
    local hold = holds[i]
    if hold and hold > start then start, binding = hold, i end
  end
  for i = 1, #limits do W.record(states[i], start) end
  return start, binding
end

--- Microseconds from now until the state no longer matters.
function W.lifetime(g, per, now)
  if #g == 0 then return 0 end
  return max(0, g[#g - 1] + per - now)
end

return W
