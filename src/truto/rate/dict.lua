--- truto.rate.dict: the rate budget store in an nginx lua_shared_dict, shared by every worker.
--
-- The same budgets as truto.rate.local, under a lock (a dict key added with a short expiry) so
-- that a reservation over two budgets is atomic across workers. One dict value per budget: its
-- window as text (truto.rate.window: at most 16 groups, under 600 bytes whatever `requests`
-- is, so `lua_shared_dict truto_rate 1m` holds well over a thousand budgets). Times are
-- ngx.now() (epoch seconds, the same for every worker). A budget's value expires once its
-- newest start is older than `per`. A learned budget the dict cannot keep goes to `fallback` (this process' store).
-- The store contract is in truto.rate.
--
-- @module truto.rate.dict
local hints = require "truto.rate.hints"
local window = require "truto.rate.window"

local YIELDABLE = require("truto.transport").YIELDABLE

local M = {}

local tostring, type = tostring, type

local FORGET_AFTER = hints.FORGET_AFTER
local us = window.us
local LOCK_TTL = 0.5 -- seconds: a worker that dies holding the lock blocks the others this long

local function yieldable(ngx)
  return YIELDABLE[ngx.get_phase()] == true
end

local LOCK_KEY = "truto_rate:lock"

local Store = {}
Store.__index = Store

-- Returns true once this worker holds the lock; the work under it never yields.
local function lock(self)
  for _ = 1, 10000 do
    if self.dict:add(LOCK_KEY, true, LOCK_TTL) then return true end
    if yieldable(self.ngx) then self.ngx.sleep(0.001) end
  end
  return nil
end

local function clock(self)
  self.ngx.update_time()
  return self.ngx.now()
end

-- Reads, changes (fn) and writes back the windows of `budgets` under the lock: fn(states,
-- limits, holds, now) gets them in microseconds (truto.rate.window) and returns its answers.
local function with_windows(self, budgets, fn)
  if not lock(self) then return nil, "the shared dict lock stays taken" end
  local now = clock(self)
  local t = us(now)
  local states, limits, holds = {}, {}, {}
  for i = 1, #budgets do
    local b = budgets[i]
    states[i], limits[i] = window.decode(self.dict:get(b.name)), { b.requests, us(b.per) }
    local hold = self.dict:get(b.name .. "#hold")
    if type(hold) == "number" then holds[i] = us(hold, true) end
  end
  local a, c, d = fn(states, limits, holds, t)
  local ok, err = true, nil
  for i = 1, #budgets do
    local ttl = window.lifetime(states[i], limits[i][2], t) / 1000000 + 1
    local set_ok, set_err = self.dict:set(budgets[i].name, window.encode(states[i]), ttl)
    if not set_ok then ok, err = nil, set_err end
  end
  self.dict:delete(LOCK_KEY)
  if not ok then return nil, "shared self.dict: " .. tostring(err) end
  return a, c, d
end

function Store.reserve(self, budgets)
  return with_windows(self, budgets, function(states, limits, holds, now)
    local start, binding = window.reserve(states, limits, holds, now)
    return (start - now) / 1000000, binding ~= 0 and binding or nil, start
  end)
end

-- Gives back the reservation `ticket` (reserve's third answer) of a request that never started.
function Store.release(self, budgets, ticket)
  return with_windows(self, budgets, function(states)
    for i = 1, #states do window.release(states[i], ticket) end
    return true
  end)
end

-- The learned budgets: one short string each (truto.rate.hints.encode), under the lock.
local function with_hints(self, name, fn)
  if not lock(self) then return nil, "the shared dict lock stays taken" end
  local now = clock(self)
  local state = hints.decode(self.dict:get(name))
  local a, b = fn(state, now)
  local ok, err = self.dict:set(name, hints.encode(state), hints.lifetime(state, now) + FORGET_AFTER)
  self.dict:delete(LOCK_KEY)
  if not ok then return nil, "shared self.dict: " .. tostring(err) end
  return a, b
end

function Store.hint_take(self, name, _, probe_ttl, age, id)
  local wait, why = with_hints(self, name, function(state, now)
    return hints.take(state, now, probe_ttl, now - (age or 0), id)
  end)
  if wait == nil then return self.fallback:hint_take(name, clock(self), probe_ttl, age, id) end
  return wait, why
end

function Store.hint_learn(self, name, _, h, id, stay)
  local ok = with_hints(self, name, function(state, now) hints.learn(state, now, h, id, stay) return true end)
  if not ok then self.fallback:hint_learn(name, clock(self), h, id, stay) end
end

--- True for the first caller of `name` in `ttl` seconds, across the workers (and whenever the
-- dict cannot say: a full dict must not silence the word that it failed).
function Store.once(self, name, ttl)
  local ok, err = self.dict:add("truto_rate:once:" .. name, true, ttl)
  return ok == true or err ~= "exists"
end

function Store.hold(self, name, seconds)
  if not lock(self) then return nil, "the shared dict lock stays taken" end
  local deadline = clock(self) + seconds
  local current = self.dict:get(name .. "#hold")
  local ok, err = true, nil
  if not current or current < deadline then ok, err = self.dict:set(name .. "#hold", deadline, seconds + 1) end
  self.dict:delete(LOCK_KEY)
  if not ok then return nil, "shared self.dict: " .. tostring(err) end
  return true
end

--- The store on `dict` (an ngx.shared dict) of `ngx`; `fallback` keeps the learned budgets the
-- dict cannot.
function M.new(ngx, dict, fallback)
  return setmetatable({ ngx = ngx, dict = dict, fallback = fallback }, Store)
end

return M
