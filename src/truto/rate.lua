-- Rate budgets: when a request may start, per integrated account (and per API token).
--
-- Truto publishes no limit of its own (the vendor behind each account has one), so by default
-- the budget is learned from the answers, never invented: each account is paced by its own
-- `ratelimit-remaining` / `ratelimit-reset`, a 429 holds it for its `Retry-After`, and an
-- account nothing is known of yet gets one request in flight until its first answer (slow
-- start; see truto.rate.hints). A fixed budget is opt-in: `rate_limit = { requests, per }` (per
-- token) and/or `account = { requests, per }` (per account), "at most `requests` starts in any
-- window of `per` seconds". Every client with the same token and base URL shares the same
-- budgets (a module-level registry of the limiters, released when the last one is closed or
-- collected). A request reserves its start slot in every fixed budget it draws on (atomically)
-- before it waits, so concurrent waiters spread out instead of starting together. No wait is
-- longer than the caller's max_retry_wait or past its deadline: the call fails instead.
--
-- Where the budgets live (the "store"):
--   * in this process (the default);
--   * inside nginx, when the shared dict `shared_dict` (default "truto_rate") is declared: all
--     workers share it through ngx.shared's atomic operations;
--   * anywhere else: `rate_limit.store`, an object with
--       store:reserve(budgets, now) -> wait, binding | nil, err
--         budgets = { { name = "...", requests = n, per = seconds }, ... } (one or two).
--         Atomically over all of them: the earliest start s >= now such that, for each budget,
--         fewer than `requests` starts recorded for it lie in (s - per, s], and no hold of it
--         lasts past s; record s in each; return s - now (seconds, >= 0) and the index of the
--         budget that decided s (nil when none had to wait). `now` is the caller's clock;
--         a store with its own shared clock (Redis' TIME) may use that instead.
--       store:hold(name, seconds, now) -> true | nil, err
--         The server said budget `name` is spent: no start before `seconds` from now.
--       optional: reserve's third answer names the reservation (a ticket), and
--       store:release(budgets, ticket) gives back one whose request will not start;
--       store:hint_take / hint_learn keep the learned budgets (as truto.rate.local does).
--     truto.rate.redis is one, for OpenResty fleets (lua-resty-redis and a redis-server).
--   The stores' code: truto.rate.local, truto.rate.dict, truto.rate.redis; a fixed budget's
--   state is truto.rate.window (constant size), a learned one's truto.rate.hints; the option
--   is checked by truto.rate.option.
--
-- The learned budgets live in rate_limit.store when it keeps them, else in the nginx shared
-- dict when there is one, else in this process.
-- A store's answer is checked (a finite wait from 0 to max_retry_wait): a bad answer or a store
-- that raises is a failed store, and the request keeps to this process' budget (one debug line
-- per request; inside nginx one error-log line a minute, for all workers that share the dict).
--
-- The server is the one shared truth: limiter:observe() reads `ratelimit-remaining` and
-- `ratelimit-reset` after every answer, so processes that know nothing of each other still
-- converge.
--
-- Runs on Lua 5.1 (LuaJIT, inside nginx) to 5.4: no integer operators.

local hints = require "truto.rate.hints"
local option = require "truto.rate.option"
local local_store = require("truto.rate.local").new
local dict_store = require("truto.rate.dict").new

local M = {}

local huge, min = math.huge, math.min
local format, tostring, type = string.format, tostring, type

M.DEFAULTS = { shared_dict = require("truto.defaults").rate_shared_dict }

--- Checks a `rate_limit` client option value (truto.rate.option): true, or nil and why.
M.check = option.check
local describe = option.describe

local REPORT_AT = 0.1        -- seconds: holds this long or longer are reported (on_wait, debug)

-- A start is kept `per` plus this much after the start `requests` places before it: answers and
-- requests are not timed at the same instant by client and server (loopback under load: a few
-- ms), and a start that arrives a hair early at the server would be one too many.
local function margin(per)
  return min(0.05, per * 0.05)
end

---------------------------------------------------------------------------------------------
-- Names. The key the client gives names its token and base URL; it never goes into a store
-- as it is (a store may be Redis, readable by others): a digest of it does.

local function digest(s)
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.md5) == "function" then return ngx.md5(s) end
  -- Two 31-bit polynomial hashes, exact in doubles (Lua 5.1 has no integers).
  local a, b = 7, 11
  for i = 1, #s do
    local c = s:byte(i)
    a = (a * 31 + c) % 2147483647
    b = (b * 131 + c + i) % 2147483629
  end
  return format("%08x%08x", a, b)
end

local function budget_name(kind, prefix, requests, per, account)
  return format("%s:%s:%d/%.17g%s", kind, prefix, requests, per, account and ":" .. account or "")
end

---------------------------------------------------------------------------------------------
-- The registry: one local store for the process, one dict store per dict name, and how many
-- limiters use each token's budgets.

local process_store = local_store()
local dict_stores = {}
-- prefix -> the open limiters of that token (a weak set: a limiter never closed still lets go
-- of its budgets once it is collected, at the next sweep)
local users = {}

-- Forgets the budgets of every token whose limiters are all closed or collected.
local function sweep()
  for prefix, set in pairs(users) do
    if next(set) == nil then
      users[prefix] = nil
      process_store:forget(prefix)
    end
  end
end

local function nginx_dict(name)
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.shared) ~= "table" then return nil end
  local dict = ngx.shared[name]
  if not dict then return nil end
  local store = dict_stores[name]
  if not store then
    store = dict_store(ngx, dict, process_store)
    dict_stores[name] = store
  end
  return store, name
end

--- How many limiters use the budgets of `key` in this process (for specs).
function M.users(key)
  local n = 0
  for _ in pairs(users[digest(key)] or {}) do n = n + 1 end
  return n
end

local Limiter = {}
Limiter.__index = Limiter

local DEFAULT_PER = require("truto.defaults").rate_per

local function budget_of(t)
  return { requests = t.requests, per = t.per or DEFAULT_PER }
end

-- The shared level of this machine: the nginx shared dict when there is one, else this process.
local function local_level(value)
  local store = nginx_dict(value.shared_dict or M.DEFAULTS.shared_dict)
  return store or process_store
end

-- Whether `store` keeps learned budgets too (hint_take and hint_learn, as truto.rate.redis).
local function keeps_hints(store)
  local t = type(store)
  return (t == "table" or t == "userdata") and type(store.hint_take) == "function"
    and type(store.hint_learn) == "function"
end

--- A limiter for the client whose token and base URL `key` names.
-- @param value the `rate_limit` option (checked by M.check): nil, false or a table
-- @param key string naming the token and the base URL (only a digest of it is kept)
-- @return a limiter, or nil when value is false
function M.new(value, key)
  local ok, why = M.check(value)
  if not ok then error(why, 2) end
  if value == false then return nil end
  if type(key) ~= "string" then error("rate.new: key must be a string", 2) end
  value = value or {}
  local prefix = digest(key)
  local token = value.requests and budget_of(value) or nil
  local account = value.account and budget_of(value.account) or nil
  local store, where = value.store, "store"
  if not store then
    store, where = nginx_dict(value.shared_dict or M.DEFAULTS.shared_dict)
    if not store then store, where = process_store, "process" end
  end
  sweep()
  local level = local_level(value)
  local limiter = setmetatable({
    -- the learned budgets: in rate_limit.store when it keeps them, else on this machine
    prefix = prefix, store = store, where = where, level = level,
    hints = keeps_hints(value.store) and value.store or level,
    token = token, account = account,
    token_name = token and budget_name("t", prefix, token.requests, token.per),
    names = {}, names_count = 0,
  }, Limiter)
  users[prefix] = users[prefix] or setmetatable({}, { __mode = "k" })
  users[prefix][limiter] = true
  return limiter
end

local NO_BUDGETS = setmetatable({}, { __newindex = function() error("truto.rate: NO_BUDGETS is read-only", 2) end })

-- The fixed budgets (opt-in) a request of `account_id` draws on (token first); may be empty
-- (then one shared table, read only: most clients have none, and this runs for every send).
function Limiter:budgets(account_id)
  if not self.token and not self.account then return NO_BUDGETS end
  local list = {}
  local t = self.token
  if t then
    list[1] = { name = self.token_name, requests = t.requests, per = t.per + margin(t.per), kind = "token" }
  end
  local a = self.account
  if a and account_id ~= nil then
    list[#list + 1] = { name = budget_name("a", self.prefix, a.requests, a.per, tostring(account_id)),
      requests = a.requests, per = a.per + margin(a.per), kind = "account" }
  end
  return list
end

local NAMES_KEPT = 256 -- learned-budget names a limiter keeps made (then it starts over)

-- The name of the learned budget of `account_id` (nil: the calls that name no account). Made
-- once per account and kept (at most NAMES_KEPT of them): every send asks for it twice.
function Limiter:hint_name(account_id)
  local key = account_id == nil and "" or account_id
  local names = self.names
  local name = names[key]
  if name then return name end
  name = format("h:%s:%s", self.prefix, tostring(key))
  if self.names_count >= NAMES_KEPT then
    names = {}
    self.names, self.names_count = names, 0
  end
  names[key] = name
  self.names_count = self.names_count + 1
  return name
end

local function describe_wait(info)
  if info.budget == "account" or info.budget == "token" then
    if info.budget == "account" then
      return format("the account budget of %s (%d per %s s)", tostring(info.account), info.requests,
        tostring(info.per))
    end
    return format("the token budget (%d per %s s)", info.requests, tostring(info.per))
  end
  return format("account %s, %s", info.account ~= nil and tostring(info.account) or "(none)", info.reason)
end
M.describe_wait = describe_wait

local function report(hooks, info)
  if hooks.on_wait then hooks.on_wait(info) end
  if hooks.debug then
    hooks.debug(format("rate limit: holding the request %.2f s for %s", info.wait, describe_wait(info)))
  end
end

local WARN_EVERY = 60 -- seconds: a failing store is named in nginx's error log at most this often
local warned = {} -- which store failed -> until when this worker says nothing more of it

-- Whether this is the first word of the failure `which` on this machine for WARN_EVERY s: once
-- per worker, and once for all workers when the next level is the shared dict (the clients of
-- a worker each make their own store object, so the object cannot be the key).
local function first_word(self, which)
  local now = os.time()
  if warned[which] and warned[which] > now then return false end
  warned[which] = now + WARN_EVERY
  local level = self.level
  if level ~= process_store and type(level.once) == "function" then return level:once(which, WARN_EVERY) end
  return true
end

-- Says in nginx's error log that a shared store failed (once: first_word), and per request in
-- debug (as the caller asked for every detail there).
local function store_failed(self, hooks, why, fallback)
  local which = self.where == "store" and "rate_limit.store" or "the shared dict " .. self.where
  if hooks.debug then
    local level = fallback == process_store and "this process" or "the shared dict"
    hooks.debug("rate limit: " .. which .. " failed (" .. tostring(why) .. "); this request keeps to the budget of "
      .. level)
  end
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.log) == "function" and first_word(self, which) then
    ngx.log(ngx.ERR, "lua-truto: ", which, " failed (", tostring(why), "); rate budgets fall back to ",
      fallback == process_store and "this worker's process" or "the shared dict", " until it answers again")
  end
end

-- Gives back the reservation `ticket` (from reserve) over `budgets`, where its store can.
-- Never raises: a store that cannot is left as it is (the start then counts, as if it went).
local function give_back(budgets, ticket)
  local store = ticket and ticket.store
  if store and ticket.start ~= nil and type(store.release) == "function" then
    pcall(store.release, store, budgets, ticket.start)
  end
end

-- Why a store's answer (pcall's ok, then wait and its second value) is a failure: it raised,
-- said nil, err, or named no finite wait from 0 to `max_wait`; nil when it is a good answer.
local function failed_answer(ok, wait, second, max_wait)
  if not ok then return tostring(wait) end
  if wait == nil then return second end
  if type(wait) ~= "number" or wait ~= wait or wait < 0 or wait == huge or wait > (max_wait or huge) then
    return format("it answered %s, not a wait from 0 to %s s", describe(wait), tostring(max_wait or huge))
  end
  return nil
end

-- Asks `store` for a start; returns wait, binding, ticket (the store's own name of the
-- reservation, for give_back) or nil, why.
local function ask(store, budgets, now)
  local wait, binding, start = store:reserve(budgets, now)
  if wait == nil then return nil, binding end
  return wait, binding, { store = store, start = start }
end

-- Reserves a start in the fixed budgets, checking the store's answer: a wait that is not a
-- finite number in [0, max_wait] (or a store that raises) counts as a failed store (and a
-- reservation it made for that answer is given back).
-- Returns wait, binding (the index of the budget that decided), ticket; or nil, why.
local function reserve(self, budgets, now, hooks)
  local store = self.store
  local ok, wait, binding, ticket = pcall(ask, store, budgets, now)
  local why = failed_answer(ok, wait, binding, self.where == "store" and hooks.max_wait or huge)
  if ok and wait ~= nil and why then give_back(budgets, ticket) end
  if why then
    -- the next shared level: Redis -> the nginx shared dict -> this process
    local fallback = store ~= self.level and self.level or process_store
    store_failed(self, hooks, why, fallback)
    if store == process_store then return nil, why end
    local wait2, binding2, ticket2 = ask(fallback, budgets, now)
    if wait2 == nil and fallback ~= process_store then return ask(process_store, budgets, now) end
    return wait2, binding2, ticket2
  end
  if type(binding) ~= "number" or not budgets[binding] then binding = nil end
  return wait, binding, ticket
end

--- Whether a request of `account_id` may start now by what the server said (the learned
-- budget). Returns 0 (it may, and is counted), or the seconds until it may look again and why.
function Limiter:check_hints(account_id, hooks, now)
  now = now or hooks.now()
  self.now = hooks.now
  -- a fixed budget the caller configured says how to pace a cold start: no slow start then
  local probe_ttl = (self.token or self.account) and 0 or hooks.probe_ttl or 30
  local name = self:hint_name(account_id)
  -- the call's place in line: how long ago it began, and who it is (truto.rate.hints)
  local place = hooks.place
  local age = place and math.max(0, now - place.since) or nil
  local id = place and place.id
  local store = self.hints
  if store == self.level then return store:hint_take(name, now, probe_ttl, age, id) end
  -- a store of the caller's (Redis): its answer is checked, and a failure falls back
  local ok, wait, why = pcall(store.hint_take, store, name, now, probe_ttl, age, id)
  local failure = failed_answer(ok, wait, why, hooks.max_wait or huge)
  if not failure and why ~= nil and type(why) ~= "string" then failure = "it answered a reason that is no string" end
  if not failure then return wait, why end
  store_failed(self, hooks, failure, self.level)
  return self.level:hint_take(name, now, probe_ttl, age, id)
end

-- Whether waiting `wait` s is allowed: nil when it is, else the failure's kind and message.
local function beyond_bounds(wait, info, hooks)
  local max_wait = hooks.max_wait or huge
  if wait > max_wait then
    return "rate_limited", format("the rate budget asks for a wait of %.1f s (%s), longer than max_retry_wait (%s s)",
      wait, describe_wait(info), tostring(max_wait))
  end
  if hooks.deadline and hooks.now() + wait > hooks.deadline then
    return "timeout", format("the deadline comes before the rate budget lets the request go (a wait of %.1f s: %s)",
      wait, describe_wait(info))
  end
  return nil
end

-- Waits `wait` s for the reason `info` gives, within the caller's bounds.
local function hold(wait, info, hooks)
  local kind, message = beyond_bounds(wait, info, hooks)
  if kind then return nil, kind, message end
  info.wait = wait
  if wait >= REPORT_AT then report(hooks, info) end
  if hooks.sleep(wait) == false then
    return nil, "interrupted", format("interrupted while the rate budget held the request (%s)", describe_wait(info))
  end
  return true
end

--- Waits until one request (one attempt) of `account_id` (nil: no account) may start: until
-- the learned budget lets it go (unless `taken`: the caller already asked check_hints), then
-- reserves its start in every fixed budget and waits for it. Reports waits of REPORT_AT s or
-- more through hooks.on_wait(info) and hooks.debug(line). No wait goes past hooks.max_wait or
-- hooks.deadline: the call fails instead.
-- @param hooks { sleep = fn(s), now = fn() -> s, on_wait, debug, max_wait, deadline, probe_ttl,
--   place = { since = when the call began (hooks.now's clock), id = a short string naming it,
--   stay = it asks again after its answer (a listing) }: its place in the learned budget's line }
-- @return the seconds waited, or nil, kind ("rate_limited" | "timeout" | "interrupted"), message
function Limiter:acquire(account_id, hooks, taken)
  if self.closed then error("rate limiter used after close", 2) end
  local waited, after = 0, -huge
  while not taken do
    -- the time after the waits so far (a sleep the caller replaced may not let any pass)
    local now = math.max(hooks.now(), after)
    local wait, why = self:check_hints(account_id, hooks, now)
    after = now + wait
    if wait <= 0 then break end
    local ok, kind, message = hold(wait, { budget = "server", reason = why, account = account_id,
      store = self.hints == process_store and "process" or (self.hints == self.level and "shared dict" or "store") },
      hooks)
    if not ok then return nil, kind, message end
    waited = waited + wait
  end
  local budgets = self:budgets(account_id)
  if #budgets == 0 then return waited end
  local now = hooks.now()
  local wait, binding, ticket = reserve(self, budgets, now, hooks)
  if not wait then wait, binding = 0, nil end
  local reservation = ticket and { budgets = budgets, ticket = ticket }
  if wait <= 0 then return waited, reservation end
  local b = budgets[binding or 1]
  local limit = b.kind == "account" and self.account or self.token
  local ran, ok, kind, message = pcall(hold, wait, { budget = b.kind, account = account_id,
    requests = limit.requests, per = limit.per, store = self.where, reason = "rate_limit" }, hooks)
  if not ran or not ok then
    -- the request will not start (past a bound, interrupted, or the sleep raised): its place
    -- goes to the next caller
    give_back(budgets, ticket)
    if not ran then error(ok, 0) end
    return nil, kind, message
  end
  return waited + wait, reservation
end

--- Gives back the reservation acquire() returned (its second value) for a request that was
-- never sent (it failed before reaching the wire, or was abandoned): the next caller may take
-- its place. Where the store cannot (a custom store without `release`), the start counts as
-- if it went. Idempotent; never raises.
function Limiter:release(reservation)
  if self.closed or type(reservation) ~= "table" or reservation.released then return end
  reservation.released = true
  give_back(reservation.budgets, reservation.ticket)
end

--- Records what one attempt of `account_id` taught: `h` from truto.rate.hints.read (an
-- answer), or { failed = true } (no answer, or a request abandoned before it was answered).
-- `place` (optional): the call's place in line (hooks.place of acquire).
-- A window the server says is spent also holds the fixed budgets (the store's hold).
function Limiter:learn(account_id, h, place)
  if self.closed then return end
  local now = self.now and self.now() or 0
  local store, name = self.hints, self:hint_name(account_id)
  local id, stay = place and place.id, place and place.stay
  if store == self.level then
    store:hint_learn(name, now, h, id, stay)
  else
    local ok, done = pcall(store.hint_learn, store, name, now, h, id, stay)
    if not ok or not done then self.level:hint_learn(name, now, h, id, stay) end
  end
  local seconds = h.hold or (h.remaining == 0 and h.reset)
  if not seconds or seconds <= 0 then return end
  -- the fixed budget of the account (or, for a call without one, the token's) is held too
  local budgets = self:budgets(account_id)
  local b = budgets[#budgets]
  if not b or (account_id ~= nil and b.kind ~= "account") then return end
  local ok, done = pcall(self.store.hold, self.store, b.name, seconds, now)
  if not ok or not done then
    local fallback = self.store ~= self.level and self.level or process_store
    if not fallback:hold(b.name, seconds, now) then process_store:hold(b.name, seconds, now) end
  end
end

--- Reads an answer's headers (`status`, the parsed `retry_after` of a 429, each wait bounded
-- by `bound` s) into the learned budget of `account_id`, for the call at `place`.
function Limiter:observe(account_id, headers, status, retry_after, bound, place)
  if self.closed then return end
  self:learn(account_id, hints.read(headers, status, retry_after, bound or huge), place)
end

--- Releases this limiter's share of its budgets (the last one forgets them). Idempotent.
-- A limiter that is collected without close() is released at the next rate.new().
function Limiter:close()
  if self.closed then return end
  self.closed = true
  local set = users[self.prefix]
  if set then set[self] = nil end
  sweep()
end

M.local_store = local_store -- a fresh process-local store (specs; a base for custom stores)

return M
