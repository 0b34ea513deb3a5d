--- truto.rate.local: the rate budget store of this process (the default store).
--
-- For each fixed budget name, the start times of its window; for each learned budget
-- (truto.rate.hints) one small table; the holds the server asked for. Budgets nobody needs any
-- more are swept every PRUNE_EVERY reservations. The store contract is in truto.rate.
-- Runs on Lua 5.1 (LuaJIT) to 5.4.
--
-- @module truto.rate.local
local hints = require "truto.rate.hints"

local M = {}

local huge = math.huge

local PRUNE_EVERY = 1000 -- reservations between two sweeps of the rings nobody needs any more
local FORGET_AFTER = hints.FORGET_AFTER

function M.new()
  local store = { rings = {}, holds = {}, learned = {}, count = 0 }

  -- Drops the rings whose newest start is more than `per` ago (an account read once, long ago):
  -- a process that fans out over many accounts keeps only those still in a window.
  local function prune(self, now)
    for name, ring in pairs(self.rings) do
      if ring.last + ring.per <= now then self.rings[name] = nil end
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

  function store.hint_take(self, name, now, probe_ttl)
    local state = learned(self, name, now)
    self.count = self.count + 1
    if self.count % PRUNE_EVERY == 0 then prune(self, now) end
    return hints.take(state, now, probe_ttl)
  end

  function store.hint_learn(self, name, now, h)
    hints.learn(learned(self, name, now), now, h)
  end

  function store.reserve(self, budgets, now)
    local start, binding = now, nil
    local rings = self.rings
    for i = 1, #budgets do
      local b = budgets[i]
      local ring = rings[b.name]
      if not ring then
        ring = { next = 1 }
        rings[b.name] = ring
      end
      local oldest = ring[ring.next]
      if oldest and oldest + b.per > start then start, binding = oldest + b.per, i end
      local hold = self.holds[b.name]
      if hold then
        if hold > start then start, binding = hold, i end
        if hold <= now then self.holds[b.name] = nil end
      end
    end
    for i = 1, #budgets do
      local b = budgets[i]
      local ring = rings[b.name]
      ring[ring.next] = start
      ring.next = ring.next % b.requests + 1
      ring.last, ring.per = start, b.per
    end
    self.count = self.count + 1
    if self.count % PRUNE_EVERY == 0 then prune(self, now) end
    return start - now, binding
  end

  function store.hold(self, name, seconds, now)
    local deadline = now + seconds
    if (self.holds[name] or -huge) < deadline then self.holds[name] = deadline end
    return true
  end

  -- Forgets every budget whose name holds `prefix` (no limiter of that token is left).
  function store.forget(self, prefix)
    local mark = ":" .. prefix .. ":"
    for _, t in ipairs { self.rings, self.holds, self.learned } do
      for name in pairs(t) do
        if name:find(mark, 1, true) then t[name] = nil end
      end
    end
  end

  return store
end

return M
