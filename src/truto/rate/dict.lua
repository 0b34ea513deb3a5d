--- truto.rate.dict: the rate budget store in an nginx lua_shared_dict, shared by every worker.
--
-- The same budgets as truto.rate.local, under a lock (a dict key added with a short expiry) so
-- that a reservation over two budgets is atomic across workers. One dict value per budget: the
-- next slot's index, then the start times in fixed-width fields (an account's 50 take 1 KB, so
-- `lua_shared_dict truto_rate 1m` holds about 500 accounts). Times are ngx.now() (epoch
-- seconds, the same for every worker). A budget's value expires once its newest start is older
-- than `per`. A learned budget the dict cannot keep goes to `fallback` (this process' store).
-- The store contract is in truto.rate.
--
-- @module truto.rate.dict
local hints = require "truto.rate.hints"

local YIELDABLE = require("truto.transport").YIELDABLE

local M = {}

local format, tostring, type = string.format, tostring, type

local FORGET_AFTER = hints.FORGET_AFTER
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

  -- A ring value: "%8d" next index, then "%20.6f" per start time.
  local HEAD, W = 8, 20

  local function read_ring(value)
    if type(value) ~= "string" or #value < HEAD then return 1, "" end
    return tonumber(value:sub(1, HEAD)) or 1, value:sub(HEAD + 1)
  end

  local function slot(times, n)
    local field = times:sub((n - 1) * W + 1, n * W)
    return #field == W and tonumber(field) or nil
  end

  function store.reserve(_, budgets)
    if not lock() then return nil, "the shared dict lock stays taken" end
    local now = clock()
    local start, binding = now, nil
    local rings = {}
    for i = 1, #budgets do
      local b = budgets[i]
      local n, times = read_ring(dict:get(b.name))
      if n > b.requests then n = 1 end
      rings[i] = { n = n, times = times }
      local oldest = slot(times, n)
      if oldest and oldest + b.per > start then start, binding = oldest + b.per, i end
      local hold = dict:get(b.name .. "#hold")
      if hold and hold > start then start, binding = hold, i end
    end
    local ok, err = true, nil
    for i = 1, #budgets do
      local b, ring = budgets[i], rings[i]
      local n, times = ring.n, ring.times
      times = times:sub(1, (n - 1) * W) .. format("%20.6f", start) .. times:sub(n * W + 1)
      local set_ok, set_err = dict:set(b.name, format("%8d", n % b.requests + 1) .. times, start - now + b.per + 1)
      if not set_ok then ok, err = nil, set_err end
    end
    dict:delete(key)
    if not ok then return nil, "shared dict: " .. tostring(err) end
    return start - now, binding
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

  function store.hint_take(_, name, _, probe_ttl)
    local wait, why = with_hints(name, function(state, now) return hints.take(state, now, probe_ttl) end)
    if wait == nil then return process_store:hint_take(name, clock(), probe_ttl) end
    return wait, why
  end

  function store.hint_learn(_, name, _, h)
    local ok = with_hints(name, function(state, now) hints.learn(state, now, h) return true end)
    if not ok then process_store:hint_learn(name, clock(), h) end
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
