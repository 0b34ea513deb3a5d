-- Truto's rate limits, as the mock enforces them: a budget per API token and one per integrated
-- account, each "at most `requests` requests in a window of `per` seconds", counted in fixed
-- windows aligned to the clock (like Truto, whose `ratelimit-reset` is the time until the
-- window reopens). Every answer carries the `ratelimit-*` headers of the tighter budget; past a
-- budget the answer is 429 with `Retry-After`. The limits are high by default (the specs make
-- thousands of requests) and set by `POST /__mock/limits`; `/__mock/reset` restores them.
--
-- In the shared dict `truto_mock`:
--   limits            the limits in force (JSON), absent: DEFAULTS
--   rl:t:<w>          requests of the token in window w (w = floor(now / per))
--   rl:a:<acct>:<w>   requests of an account in window w
--   rl:429            the 429s sent for a spent budget since the last reset
--   rl:counted        the requests counted since the last reset

local json = require "truto_mock.json"

local limits = {}

local dict = ngx.shared.truto_mock

limits.DEFAULTS = { token = { requests = 1000000, per = 10 }, account = { requests = 100000, per = 10 } }
-- Truto's own numbers (`serve --limits truto`).
limits.TRUTO = { token = { requests = 500, per = 10 }, account = { requests = 50, per = 10 } }

-- What /__mock/reset comes back to: DEFAULTS, or what `serve --limits` set.
local defaults = { token = limits.DEFAULTS.token, account = limits.DEFAULTS.account, accounts = {} }

local function now()
  ngx.update_time()
  return ngx.now()
end

-- One budget from a request body: { requests = integer >= 1, per = seconds > 0 }, or nil and why.
local function budget(v, where)
  if type(v) ~= "table" then return nil, where .. " must be an object { requests, per }" end
  local requests, per = v.requests, v.per
  if type(requests) ~= "number" or requests < 1 or requests ~= math.floor(requests) or requests > 1e9 then
    return nil, where .. ".requests must be an integer from 1 to 1000000000"
  end
  if type(per) ~= "number" or not (per > 0 and per <= 86400) then
    return nil, where .. ".per must be seconds from 0 (excluded) to 86400"
  end
  return { requests = requests, per = per }
end

-- The limits last set, decoded once per worker for each value the dict holds.
local cached_text, cached

--- The limits in force: { token = budget, account = budget, accounts = { [id] = budget } }.
-- Read-only: shared by every request.
function limits.current()
  local saved = dict:get("limits")
  if not saved then return defaults end
  if saved ~= cached_text then cached_text, cached = saved, json.decode(saved) end
  return cached
end

-- Limits from JSON text: a table, or nil and a message. A budget left out keeps its default.
local function parse(body)
  local v = json.decode(body)
  if type(v) ~= "table" or json.is_array(v) then return nil, "the body must be a JSON object" end
  for k in pairs(v) do
    if k ~= "token" and k ~= "account" and k ~= "accounts" then return nil, "unknown field " .. k end
  end
  local out, err = { accounts = {} }
  for _, which in ipairs({ "token", "account" }) do
    if v[which] == nil then
      out[which] = limits.DEFAULTS[which]
    else
      out[which], err = budget(v[which], which)
      if not out[which] then return nil, err end
    end
  end
  if v.accounts ~= nil then
    if type(v.accounts) ~= "table" or json.is_array(v.accounts) then
      return nil, "accounts must be an object: account id -> { requests, per }"
    end
    for id, b in pairs(v.accounts) do
      out.accounts[id], err = budget(b, "accounts." .. id)
      if not out.accounts[id] then return nil, err end
    end
  end
  return out
end

--- Sets the limits from the JSON body of POST /__mock/limits:
-- `{"token": {"requests": 20, "per": 2}, "account": {...}, "accounts": {"acct-x": {...}}}`; a
-- budget left out keeps its default. Returns the limits, or nil and a message.
function limits.configure(body)
  local out, err = parse(body)
  if not out then return nil, err end
  assert(dict:set("limits", json.encode(out)))
  return out
end

--- The limits a reset comes back to (from init_by_lua: `serve --limits`): "truto" for Truto's
-- numbers, or JSON as for POST /__mock/limits. Raises on a bad value.
function limits.set_defaults(text)
  if text == "truto" then text = json.encode(limits.TRUTO) end
  local out, err = parse(text)
  if not out then error("--limits: " .. err, 0) end
  defaults = out
end

-- Counts one request in budget `b` under `key`; returns what the headers say about it.
local function count(key, b, t)
  local w = math.floor(t / b.per)
  local n = dict:incr(key .. ":" .. w, 1, 0, b.per * 2 + 1)
  local reset = math.ceil((w + 1) * b.per - t)
  if reset < 1 then reset = 1 end
  return { limit = b.requests, per = b.per, used = n, remaining = math.max(0, b.requests - n), reset = reset }
end

local function headers_of(s)
  local per = s.per == math.floor(s.per) and string.format("%d", s.per) or tostring(s.per)
  return {
    ["ratelimit-limit"] = string.format("%d;w=%s", s.limit, per),
    ["ratelimit-remaining"] = tostring(s.remaining),
    ["ratelimit-reset"] = tostring(s.reset),
  }
end

--- Counts a request of `account_id` (nil: the token budget only).
-- Returns the `ratelimit-*` headers to send, and, when a budget is spent, the seconds to put in
-- `Retry-After` (the request must then be answered 429).
function limits.take(account_id)
  local l = limits.current()
  local t = now()
  dict:incr("rl:counted", 1, 0)
  local token = count("rl:t", l.token, t)
  local tightest, over = token, nil
  if token.used > token.limit then over = token end
  if account_id then
    local a = count("rl:a:" .. account_id, l.accounts[account_id] or l.account, t)
    if a.used > a.limit then
      if not over or a.reset >= over.reset then over = a end
    end
    if a.remaining <= tightest.remaining then tightest = a end
  end
  if over then
    dict:incr("rl:429", 1, 0)
    return headers_of(over), over.reset
  end
  return headers_of(tightest)
end

--- What GET /__mock/limits answers: the limits and the counters.
function limits.report()
  local l = limits.current()
  return { token = l.token, account = l.account, accounts = l.accounts,
    throttled = dict:get("rl:429") or 0, counted = dict:get("rl:counted") or 0 }
end

return limits
