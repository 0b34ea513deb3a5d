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

--- The store on `dict` (an ngx.shared dict) of `ngx`; `fallback` keeps the learned budgets the
-- dict cannot.
function M.new(ngx, dict, fallback)
  local process_store = fallback
  local store = {}

  local key = "truto_rate:lock"

  -- Returns true once this worker holds the lock; the work under it never yields.
  local function lock()
    for _ = 1, 10000 do
      if dict:add(key, true, LOCK_TTL) then return true end
      if yieldable(ngx) then ngx.sleep(0.001) end
    end
    return nil
  end

  local function clock()
    ngx.update_time()
    return ngx.now()
  end

  -- Reads, changes (fn) and writes back the windows of `budgets` under the lock: fn(states,
  -- limits, holds, now) gets them in microseconds (truto.rate.window) and returns its answers.
  local function with_windows(budgets, fn)
    if not lock() then return nil, "the shared dict lock stays taken" end
    local now = clock()
    local t = us(now)
    local states, limits, holds = {}, {}, {}
    for i = 1, #budgets do
      local b = budgets[i]
      states[i], limits[i] = window.decode(dict:get(b.name)), { b.requests, us(b.per) }
      local hold = dict:get(b.name .. "#hold")
      if type(hold) == "number" then holds[i] = us(hold, true) end
    end
    local a, c, d = fn(states, limits, holds, t)
    local ok, err = true, nil
    for i = 1, #budgets do
      local ttl = window.lifetime(states[i], limits[i][2], t) / 1000000 + 1
      local set_ok, set_err = dict:set(budgets[i].name, window.encode(states[i]), ttl)
      if not set_ok then ok, err = nil, set_err end
    end
    dict:delete(key)
    if not ok then return nil, "shared dict: " .. tostring(err) end
    return a, c, d
  end

  function store.reserve(_, budgets)
    return with_windows(budgets, function(states, limits, holds, now)
      local start, binding = window.reserve(states, limits, holds, now)
      return (start - now) / 1000000, binding ~= 0 and binding or nil, start
    end)
  end

  -- Gives back the reservation `ticket` (reserve's third answer) of a request that never started.
  function store.release(_, budgets, ticket)
    return with_windows(budgets, function(states)
      for i = 1, #states do window.release(states[i], ticket) end
      return true
    end)
  end

  -- The learned budgets: one short string each (truto.rate.hints.encode), under the lock.
  local function with_hints(name, fn)
    if not lock() then return nil, "the shared dict lock stays taken" end
    local now = clock()
    local state = hints.decode(dict:get(name))
    local a, b = fn(state, now)
    local ok, err = dict:set(name, hints.encode(state), hints.lifetime(state, now) + FORGET_AFTER)
    dict:delete(key)
    if not ok then return nil, "shared dict: " .. tostring(err) end
    return a, b
  end

  function store.hint_take(_, name, _, probe_ttl, age, id)
    local wait, why = with_hints(name, function(state, now)
      return hints.take(state, now, probe_ttl, now - (age or 0), id)
    end)
    if wait == nil then return process_store:hint_take(name, clock(), probe_ttl, age, id) end
    return wait, why
  end

  function store.hint_learn(_, name, _, h, id, stay)
    local ok = with_hints(name, function(state, now) hints.learn(state, now, h, id, stay) return true end)
    if not ok then process_store:hint_learn(name, clock(), h, id, stay) end
  end

  --- True for the first caller of `name` in `ttl` seconds, across the workers.
  function store.once(_, name, ttl)
    return dict:add("truto_rate:once:" .. name, true, ttl) == true
  end

  function store.hold(_, name, seconds)
    if not lock() then return nil, "the shared dict lock stays taken" end
    local deadline = clock() + seconds
    local current = dict:get(name .. "#hold")
    local ok, err = true, nil
    if not current or current < deadline then ok, err = dict:set(name .. "#hold", deadline, seconds + 1) end
    dict:delete(key)
    if not ok then return nil, "shared dict: " .. tostring(err) end
    return true
  end

  return store
end
return M
