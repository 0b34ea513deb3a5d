--- truto.rate.local: the rate budget store of this process (the default store).
--
-- For each fixed budget name its window (truto.rate.window: a few groups of start times, the
-- same size whatever the budget), for each learned budget (truto.rate.hints) one small table,
-- and the holds the server asked for. Budgets nobody needs any more are swept every
-- PRUNE_EVERY reservations. The store contract is in truto.rate. Runs on Lua 5.1 (LuaJIT) to 5.4.
--
-- @module truto.rate.local
local hints = require "truto.rate.hints"
local window = require "truto.rate.window"

local M = {}

local huge = math.huge
local us = window.us

local PRUNE_EVERY = 1000 -- reservations between two sweeps of the rings nobody needs any more
local FORGET_AFTER = hints.FORGET_AFTER

local Store = {}
Store.__index = Store

-- Drops the windows whose newest start is more than `per` ago (an account read once, long
-- ago): a process that fans out over many accounts keeps only those still in a window.
local function prune(self, now)
  local t = us(now)
  for name, w in pairs(self.windows) do
    if window.lifetime(w.groups, w.per, t) <= 0 then self.windows[name] = nil end
  end
  for name, deadline in pairs(self.holds) do
    if deadline <= now then self.holds[name] = nil end
  end
  for name, state in pairs(self.learned) do
    if hints.lifetime(state, now) <= 0 and (state.seen or now) + FORGET_AFTER <= now then self.learned[name] = nil end
  end
end

-- The learned budget `name` (truto.rate.hints), one small table each,
-- made on first use and marked as seen now.
local function learned(self, name, now)
  local state = self.learned[name]
  if not state then
    state = {}
    self.learned[name] = state
  end
  state.seen = now
  return state
end

-- `age` and `id` (optional): how long ago the call began, and who it is (its place in line)
function Store.hint_take(self, name, now, probe_ttl, age, id)
  local state = learned(self, name, now)
  self.count = self.count + 1
  if self.count % PRUNE_EVERY == 0 then prune(self, now) end
  return hints.take(state, now, probe_ttl, now - (age or 0), id)
end

function Store.hint_learn(self, name, now, h, id, stay)
  hints.learn(learned(self, name, now), now, h, id, stay)
end

-- The windows of `budgets` (made on first use), their limits and holds, in microseconds.
local function gather(self, budgets, now)
  local states, limits, holds = {}, {}, {}
  for i = 1, #budgets do
    local b = budgets[i]
    local w = self.windows[b.name]
    if not w then
      w = { groups = {} }
      self.windows[b.name] = w
    end
    w.per = us(b.per)
    states[i], limits[i] = w.groups, { b.requests, w.per }
    local hold = self.holds[b.name]
    if hold then
      holds[i] = us(hold, true)
      if hold <= now then self.holds[b.name] = nil end
    end
  end
  return states, limits, holds
end

function Store.reserve(self, budgets, now)
  local states, limits, holds = gather(self, budgets, now)
  local t = us(now)
  local start, binding = window.reserve(states, limits, holds, t)
  for i = 1, #budgets do self.windows[budgets[i].name].groups = states[i] end
  self.count = self.count + 1
  if self.count % PRUNE_EVERY == 0 then prune(self, now) end
  return (start - t) / 1000000, binding ~= 0 and binding or nil, start
end

-- Gives back the reservation `ticket` (reserve's third answer) of a request that never started.
function Store.release(self, budgets, ticket)
  for i = 1, #budgets do
    local w = self.windows[budgets[i].name]
    if w then window.release(w.groups, ticket) end
  end
  return true
end

function Store.hold(self, name, seconds, now)
  local deadline = now + seconds
  if (self.holds[name] or -huge) < deadline then self.holds[name] = deadline end
  return true
end

-- Forgets every budget whose name holds `prefix` (no limiter of that token is left).
function Store.forget(self, prefix)
  local mark = ":" .. prefix .. ":"
  for _, t in ipairs { self.windows, self.holds, self.learned } do
    for name in pairs(t) do
      if name:find(mark, 1, true) then t[name] = nil end
    end
  end
end

--- A new, empty store.
function M.new()
  return setmetatable({ windows = {}, holds = {}, learned = {}, count = 0 }, Store)
end

return M
