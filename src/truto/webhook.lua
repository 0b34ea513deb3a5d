--- truto.webhook: Truto's signed webhook deliveries, verified and received.
--
-- Owns the policy around the HMAC of truto.core (src/hmac.c): the
-- `X-Truto-Signature` header (`format=sha256,v=<hex>`), the `created_at`
-- tolerance, deduplication on the event `id` (stores: in-process, a
-- `lua_shared_dict`, Redis), and the OpenResty receiver `ngx_handler`.
-- Runs on Lua 5.4 and on LuaJIT (nginx): no `//`, no bit operators.
--
--   local event, err = webhook.verify(raw_body, signature_header, secret, { tolerance = 300 })
--   -- err.kind == "webhook", err.reason: signature | format | stale | duplicate | decode | store
--
-- @module truto.webhook
local core = require "truto.core"
local options = require "truto.options"
local time = require "truto.time"

local M = {}

local type, tostring, pairs = type, tostring, pairs
local format, floor, ceil = string.format, math.floor, math.ceil
local typeerror, argerror = options.typeerror, options.argerror

M.HEADER = "X-Truto-Signature"
M.TOLERANCE = 300 -- seconds
M.MEMORY_SIZE = 10000 -- ids the in-process store keeps
-- The HTTP status ngx_handler and `lua-truto webhook listen` answer for each reason.
M.STATUS = { signature = 401, format = 401, decode = 400, stale = 400, duplicate = 200, store = 503 }

local function refuse(reason, message, id)
  return nil, core.error { kind = "webhook", reason = reason, message = reason .. ": " .. message, event_id = id,
    remote = false }
end

--- The header for `body` signed with `secret`, as Truto sends it: `format=sha256,v=<hex>`.
-- @string body the raw body bytes
-- @string secret the webhook's secret
-- @treturn string the value of X-Truto-Signature
-- @raise when an argument is not a string, or the secret is empty
function M.sign(body, secret)
  if type(body) ~= "string" then typeerror("sign", 1, "string", body) end
  if type(secret) ~= "string" then typeerror("sign", 2, "string", secret) end
  if secret == "" then argerror("sign", 2, "the secret must not be empty") end
  return "format=sha256,v=" .. core.hmac_sha256(secret, body)
end

-- ------------------------------------------------------------------------
-- The signature header
-- ------------------------------------------------------------------------

--- The hex digest of a signature header, or nil and why it is refused.
-- Grammar: `format=sha256,v=<64 hex digits>`, the two parts in any order,
-- the names and the format in any case, nothing else (no spaces).
function M.parse_signature(header)
  if header == nil then return nil, "no " .. M.HEADER .. " header" end
  if type(header) ~= "string" then return nil, M.HEADER .. " given more than once" end
  local fast = header:match("^format=sha256,v=(%x+)$") -- what Truto sends
  if fast and #fast == 64 then return fast end
  if header:find("%s") then return nil, M.HEADER .. " holds white space" end
  local parts, n = {}, 0
  for part in (header .. ","):gmatch("([^,]*),") do
    n = n + 1
    local key, value = part:match("^(%a+)=(.*)$")
    if not key then return nil, format("%s part %d is not name=value", M.HEADER, n) end
    key = key:lower()
    if key ~= "format" and key ~= "v" then return nil, format("%s has an unknown part '%s'", M.HEADER, key) end
    if parts[key] then return nil, format("%s has several %s= values", M.HEADER, key) end
    parts[key] = value
  end
  if not parts.format then return nil, M.HEADER .. " has no format=" end
  if parts.format:lower() ~= "sha256" then
    return nil, format("%s format=%s is not supported (sha256 only)", M.HEADER, parts.format:sub(1, 20))
  end
  local hex = parts.v
  if not hex then return nil, M.HEADER .. " has no v=" end
  if hex:find("[^%x]") then return nil, M.HEADER .. " v= is not hexadecimal" end
  if #hex ~= 64 then return nil, format("%s v= has %d hex digits, not 64", M.HEADER, #hex) end
  return hex
end

-- ------------------------------------------------------------------------
-- created_at
-- ------------------------------------------------------------------------

--- Epoch seconds of a `created_at`: an RFC 3339 time ("2023-06-15T14:40:03.000Z",
-- "...+02:00") or a number of seconds (milliseconds when above 1e11); nil if neither.
-- @function timestamp
M.timestamp = function(v) return time.epoch(v) end

-- ------------------------------------------------------------------------
-- Dedupe stores: store:add(id, ttl, now) -> true (new) | false (seen) | nil, err;
-- store:remove(id) forgets an id (a delivery that could not be handed over).
-- ------------------------------------------------------------------------

--- An in-process store of the last `size` ids (default 10,000), each kept `ttl` seconds.
-- When full, the oldest id is forgotten first.
-- @tparam[opt] table opts `size`
function M.memory_store(opts)
  if opts ~= nil and type(opts) ~= "table" then typeerror("memory_store", 1, "table", opts) end
  local size = opts and opts.size or M.MEMORY_SIZE
  if type(size) ~= "number" or size < 1 or size ~= floor(size) then
    argerror("memory_store", 1, "size: an integer >= 1 expected")
  end
  local expires, queue, head, tail, count = {}, {}, 1, 0, 0
  local store = { kind = "memory" }
  local function pop()
    local entry = queue[head]
    queue[head], head = nil, head + 1
    if expires[entry[1]] == entry[2] then
      expires[entry[1]], count = nil, count - 1
    end
  end
  function store.add(_, id, ttl, now)
    now = now or os.time()
    while head <= tail and (queue[head][2] <= now or expires[queue[head][1]] ~= queue[head][2]) do pop() end
    local until_ = expires[id]
    if until_ and until_ > now then return false end
    if not until_ then count = count + 1 end
    while count > size do pop() end
    tail = tail + 1
    queue[tail] = { id, now + ttl }
    expires[id] = now + ttl
    return true
  end
  function store.remove(_, id)
    if expires[id] then expires[id], count = nil, count - 1 end
    return true
  end
  function store.count() return count end
  return store
end

--- A store in a `lua_shared_dict`, shared by the workers of one nginx.
-- @tparam string|table dict the dict's name (`lua_shared_dict truto_webhooks 1m;`) or `ngx.shared.X`
function M.shared_dict_store(dict)
  local ngx = rawget(_G, "ngx")
  if type(dict) == "string" then
    local name = dict
    dict = ngx and ngx.shared and ngx.shared[name]
    if not dict then argerror("shared_dict_store", 1, "no lua_shared_dict " .. name .. " in this nginx") end
  elseif type(dict) ~= "table" and type(dict) ~= "userdata" then
    typeerror("shared_dict_store", 1, "string", dict)
  end
  return {
    kind = "shared_dict",
    add = function(_, id, ttl)
      local ok, err = dict:add(id, true, ttl)
      if ok then return true end
      if err == "exists" then return false end
      return nil, "lua_shared_dict: " .. tostring(err)
    end,
    remove = function(_, id)
      dict:delete(id)
      return true
    end,
  }
end

--- A store in Redis (inside nginx, through lua-resty-redis), shared by many machines: one
-- `SET key 1 EX ttl NX` per delivery, on the connections of truto.rate.redis.
-- @tparam[opt] table opts as for truto.rate.redis.new; `prefix` defaults to "truto_webhook:"
function M.redis_store(opts)
  if opts ~= nil and type(opts) ~= "table" then typeerror("redis_store", 1, "table", opts) end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.prefix = o.prefix or "truto_webhook:"
  local redis = require("truto.rate.redis").new(o)
  local run = redis.with_connection
  return {
    kind = "redis",
    add = function(_, id, ttl)
      local res, err = run(function(red) return red:set(redis.prefix .. id, "1", "EX", ceil(ttl), "NX") end)
      if res == nil then return nil, err end
      return res == "OK"
    end,
    remove = function(_, id)
      local res, err = run(function(red) return red:del(redis.prefix .. id) end)
      if res == nil then return nil, err end
      return true
    end,
  }
end

local default_store

-- ------------------------------------------------------------------------
-- verify
-- ------------------------------------------------------------------------

local function check_options(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then typeerror("verify", 4, "table", opts) end
  local t = opts.tolerance
  if t ~= nil and t ~= false and (type(t) ~= "number" or t ~= t or t <= 0) then
    argerror("verify", 4, "tolerance: seconds > 0 (or false) expected, got " .. tostring(t))
  end
  if opts.now ~= nil and type(opts.now) ~= "number" then
    argerror("verify", 4, "now: epoch seconds expected, got " .. type(opts.now))
  end
  local ttl = opts.ttl
  if ttl ~= nil and (type(ttl) ~= "number" or ttl ~= ttl or ttl <= 0 or ttl == math.huge) then
    argerror("verify", 4, "ttl: seconds > 0 expected, got " .. tostring(ttl))
  end
  local seen = opts.seen
  if seen ~= nil and seen ~= false and (type(seen) ~= "table" or type(seen.add) ~= "function") then
    argerror("verify", 4, "seen: a store (with :add) or false expected")
  end
  return opts
end

local function event_id(event)
  local id = event.id
  if type(id) == "number" and id == floor(id) and id > -2 ^ 53 and id < 2 ^ 53 then return format("%d", id) end
  if type(id) == "string" and id ~= "" and #id <= 256 then return id end
  return nil
end

--- Verifies a delivery: the signature over the raw body, then the JSON, the age, the id.
-- @string body the raw request body, byte for byte as it arrived
-- @tparam string|nil signature_header the X-Truto-Signature value (nil or a table: refused)
-- @string secret the webhook's secret
-- @tparam[opt] table opts `tolerance` (seconds, default 300; false: no age check), `now`
--   (epoch seconds), `seen` (a dedupe store; default an in-process one of 10,000 ids;
--   false: none), `ttl` (seconds an id is remembered; default twice the tolerance, else a day),
--   `big_integers`, `max_values` (as decode_json)
-- @treturn[1] table the event, decoded as answers are
-- @treturn[2] nil
-- @treturn[2] error kind "webhook", `reason` signature | format | stale | duplicate | decode | store
-- @raise on misuse (argument types, an empty secret, bad options)
function M.verify(body, signature_header, secret, opts)
  if type(body) ~= "string" then typeerror("verify", 1, "string", body) end
  if type(secret) ~= "string" then typeerror("verify", 3, "string", secret) end
  if secret == "" then argerror("verify", 3, "the secret must not be empty") end
  opts = check_options(opts)

  local hex, why = M.parse_signature(signature_header)
  if not hex then return refuse("format", why) end
  if not core.hmac_sha256_equal(secret, body, hex) then
    return refuse("signature", "the signature does not match the body and the secret")
  end

  local event, err = core.decode_json(body, { big_integers = opts.big_integers, max_values = opts.max_values })
  if event == nil then return refuse("decode", "the body is not JSON: " .. tostring(err and err.message or err)) end
  if type(event) ~= "table" or getmetatable(event) == core.array_mt then
    return refuse("decode", "the body is not a JSON object")
  end

  local now = opts.now or os.time()
  local tolerance = opts.tolerance
  if tolerance == nil then tolerance = M.TOLERANCE end
  local id = event_id(event)
  if tolerance then
    local created = M.timestamp(event.created_at)
    if not created then return refuse("decode", "created_at is missing or not a time", id) end
    if created < now - tolerance then
      return refuse("stale", format("created_at is %d s old, more than the tolerance of %d s",
        floor(now - created), tolerance), id)
    end
    if created > now + tolerance then
      return refuse("stale", format("created_at is %d s ahead, more than the tolerance of %d s",
        ceil(created - now), tolerance), id)
    end
  end

  local seen = opts.seen
  if seen == nil then
    default_store = default_store or M.memory_store()
    seen = default_store
  end
  if seen then
    if not id then return refuse("decode", "the event has no id") end
    local ttl = opts.ttl or (tolerance and 2 * tolerance) or 86400
    local new, serr = seen:add(id, ttl, now)
    if new == nil then return refuse("store", "the dedupe store failed: " .. tostring(serr), id) end
    if not new then return refuse("duplicate", "event " .. id .. " was delivered before", id) end
  end
  return event
end

-- ------------------------------------------------------------------------
-- The OpenResty receiver
-- ------------------------------------------------------------------------

local NGX_OPTIONS = { secret = true, on_event = true, shared_dict = true, seen = true, tolerance = true,
  ttl = true, big_integers = true, max_values = true }

local function check_handler_conf(conf)
  if type(conf) ~= "table" then typeerror("ngx_handler", 1, "table", conf) end
  for k in pairs(conf) do
    if not NGX_OPTIONS[k] then argerror("ngx_handler", 1, "unknown option '" .. tostring(k) .. "'") end
  end
  if type(conf.secret) ~= "string" or conf.secret == "" then
    argerror("ngx_handler", 1, "secret: a non-empty string expected")
  end
  if type(conf.on_event) ~= "function" then argerror("ngx_handler", 1, "on_event: a function expected") end
  if conf.shared_dict ~= nil and type(conf.shared_dict) ~= "string" then
    argerror("ngx_handler", 1, "shared_dict: the name of a lua_shared_dict expected")
  end
end

-- The raw request body: in memory, or in the temp file nginx buffered it to.
local function ngx_body(ngx)
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  local path = ngx.req.get_body_file()
  if not path then return "" end
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  body = f:read("*a")
  f:close()
  return body
end

local function ngx_answer(ngx, status, text)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Content-Length"] = #text
  ngx.print(text)
  return ngx.exit(ngx.OK)
end

-- Runs on_event in a timer; a failure is logged once, with the event id (the secret scrubbed).
local function run_event(premature, on_event, event, secret)
  local ngx = rawget(_G, "ngx")
  local ok, err = pcall(on_event, event, premature)
  if not ok then
    local text = tostring(err)
    local from, to = text:find(secret, 1, true)
    while from do
      text = text:sub(1, from - 1) .. "[secret]" .. text:sub(to + 1)
      from, to = text:find(secret, 1, true)
    end
    ngx.log(ngx.ERR, "truto.webhook: on_event failed for event ", event_id(event) or "?", ": ", text)
  end
end

--- The receiver for a `content_by_lua` location: reads the raw body (also from nginx's temp
-- file), verifies it, answers at once (200; 401 bad signature; 400 bad body or stale; 200 on a
-- duplicate; 503 when the store fails) and hands the event to `on_event(event)` in
-- `ngx.timer.at`, so that a slow handler never holds Truto's request.
-- @tparam table conf `secret`, `on_event`, `shared_dict` (a lua_shared_dict name: dedupe across
--   the workers; else `seen`, a store, or the in-process store), `tolerance`, `ttl`
-- @raise on a bad conf
function M.ngx_handler(conf)
  check_handler_conf(conf)
  local ngx = rawget(_G, "ngx")
  if ngx.req.get_method() ~= "POST" then
    ngx.header["Allow"] = "POST"
    return ngx_answer(ngx, 405, '{"ok":false,"reason":"method"}')
  end
  local seen = conf.seen
  if conf.shared_dict then seen = M.shared_dict_store(conf.shared_dict) end
  local body, read_err = ngx_body(ngx)
  if not body then
    ngx.log(ngx.ERR, "truto.webhook: cannot read the buffered body: ", read_err)
    return ngx_answer(ngx, 500, '{"ok":false,"reason":"body"}')
  end
  local header = ngx.req.get_headers()["x-truto-signature"]
  local event, err = M.verify(body, header, conf.secret, { seen = seen, tolerance = conf.tolerance,
    ttl = conf.ttl, big_integers = conf.big_integers, max_values = conf.max_values })
  if not event then
    local status = M.STATUS[err.reason] or 400
    if err.reason == "store" then ngx.log(ngx.ERR, "truto.webhook: ", err.message) end
    return ngx_answer(ngx, status, format('{"ok":%s,"reason":"%s"}', status == 200 and "true" or "false", err.reason))
  end
  local ok, timer_err = ngx.timer.at(0, run_event, conf.on_event, event, conf.secret)
  if not ok then
    local id = event_id(event)
    if seen ~= false and id then (seen or default_store):remove(id) end -- so Truto's retry is taken
    ngx.log(ngx.ERR, "truto.webhook: cannot start on_event for event ", id or "?", ": ", timer_err)
    return ngx_answer(ngx, 503, '{"ok":false,"reason":"busy"}')
  end
  return ngx_answer(ngx, 200, '{"ok":true}')
end

return M
