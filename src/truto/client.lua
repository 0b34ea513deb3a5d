--- truto.client: the client object, its options, and single-object calls.
--
-- A client turns each call into a fully built request (method, URL with
-- its query, every header line, body, timeouts, limits), then hands it to
-- truto.attempt, which sends it (again, when that is safe) on the
-- transport truto.transport picks. Lists are in truto.iterate.
--
-- @module truto.client
local core = require "truto.core"
local options = require "truto.options"
local attempt = require "truto.attempt"
local transport = require "truto.transport"
local rate = require "truto.rate"
local DEFAULTS = require "truto.defaults"

local M = {}

local type, pairs, ipairs, next, tostring = type, pairs, ipairs, next, tostring
local setmetatable, getmetatable, error, pcall = setmetatable, getmetatable, error, pcall
local format = string.format
local argerror, typeerror = options.argerror, options.typeerror

local MODEL = "user-directory"
M.MODEL = MODEL
-- No server takes a longer request line (nginx: 8 KiB by default); refuse
-- it before sending rather than send what can only fail.
local MAX_QUERY = 64 * 1024
M.MAX_QUERY = MAX_QUERY

local Client = {}
Client.__index = Client
Client.__name = "truto.client"
M.Client = Client

local function status_set(list)
  local set = {}
  for _, status in ipairs(list) do set[status] = true end
  return set
end

-- The proxy libcurl uses: the option; else, for https to a host that is
-- not loopback, the environment's (https_proxy, all_proxy, no_proxy: the
-- CONNECT tunnel keeps the token inside TLS); else none ("" makes libcurl
-- ignore the environment).
local function resolve_proxy(opt, scheme, host)
  if opt == false then return "" end
  if opt ~= nil then return opt end
  if scheme == "https" and not options.is_loopback(host) then return nil end
  return ""
end

local function settings_for(kind, opts, token, scheme, host)
  if kind == "curl" then
    return {
      token = token, ca_file = opts.ca_file, proxy = resolve_proxy(opts.proxy, scheme, host),
      verify_tls = opts.verify_tls ~= false,
      low_speed_limit = opts.low_speed_limit or 0, low_speed_time = opts.low_speed_time or 0,
      -- for a request that names none (C keeps no default of its own)
      timeout = opts.timeout or DEFAULTS.timeout, connect_timeout = opts.connect_timeout or DEFAULTS.connect_timeout,
      max_body = opts.max_body or DEFAULTS.max_body,
    }
  end
  return {
    token = token, ca_file = opts.ca_file, proxy = opts.proxy or nil,
    verify_tls = opts.verify_tls ~= false,
    low_speed_limit = opts.low_speed_limit or 0, low_speed_time = opts.low_speed_time or 0,
    pool_size = opts.pool_size, keepalive_timeout = opts.keepalive_timeout, backlog = opts.backlog,
    send_timeout = opts.send_timeout, read_timeout = opts.read_timeout,
  }
end

-- A function that makes the client's "curl" or "ngx" transport when it is
-- first needed. No table of ours that a caller can reach holds the token.
-- Outside nginx the libcurl transport is made at once, the token copied
-- into C, and nothing in Lua keeps the string; inside nginx this closure
-- keeps it for the transport of whichever phase a call comes from.
-- `opts.wrap_transport(t, kind) -> transport`, when given, sees every
-- transport the client makes and returns the one it uses (the CLI waits
-- in Lua so that Ctrl-C acts, and cancels what is in flight).
local function transport_maker(opts, token, scheme, host)
  local function make(kind, tok)
    local settings = settings_for(kind, opts, tok, scheme, host)
    local t = kind == "curl" and core.curl(settings) or require("truto.ngx").new(settings)
    if opts.wrap_transport then t = opts.wrap_transport(t, kind) end
    return t
  end
  if transport.phase() == nil and opts.transport ~= "ngx" then
    local curl = make("curl", token)
    return function(kind)
      if kind == "curl" then
        local t = curl
        curl = nil -- made once: the set keeps it from now on
        if t then return t end
      end
      error("truto: the " .. kind .. " transport needs nginx (the client was made outside it)", 0)
    end
  end
  return function(kind) return make(kind, token) end
end

--- Creates a client (`truto.new`); `fname` names the public function.
function M.new(fname, opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then typeerror(fname, 1, "table", opts) end
  options.check(fname, 1, opts, options.CLIENT)
  local token = options.token(opts)
  local scheme, host, base = options.base_url(opts.base_url or os.getenv("TRUTO_BASE_URL") or DEFAULTS.base_url,
    opts.allow_insecure)
  if not scheme then argerror(fname, 1, host) end
  if opts.transport == "ngx" or (opts.transport == nil and transport.phase() ~= nil) then
    -- the nginx transport may carry a call: what it cannot honour is refused now
    local refused = require("truto.ngx").refused(opts)
    if refused then argerror(fname, 1, refused) end
  end
  local account = opts.integrated_account_id
  if account ~= nil then
    local _, err = core.segment(account)
    if err then argerror(fname, 1, "option 'integrated_account_id': " .. err) end
  end
  -- a bound on decoded values (max_body bounds bytes: see truto.defaults)
  local decode = {
    big_integers = opts.big_integers ~= "number" and opts.big_integers or nil,
    max_values = opts.max_values or DEFAULTS.max_values,
  }
  local self = setmetatable({
    base_url = base,
    integrated_account_id = account,
    _headers = options.headers(fname, 1, opts.headers),
    _user_agent = opts.user_agent,
    _lines = {}, -- transport kind -> header lines of every request
    _plain = {}, -- transport kind -> the sorted lines of a request with no body, key or headers of its own
    -- a wrapper may do anything with a request: it gets lines of its own each time
    _share_lines = opts.wrap_transport == nil,
    _policy = {
      max_retries = opts.max_retries or DEFAULTS.max_retries,
      max_retry_wait = opts.max_retry_wait or DEFAULTS.max_retry_wait,
      deadline = opts.deadline,
      retry_statuses = status_set(opts.retry_statuses or DEFAULTS.retry_statuses),
      on_retry = opts.on_retry, on_wait = opts.on_wait, debug = opts.debug,
      on_request = opts.on_request, on_response = opts.on_response,
      sleep = opts.sleep or transport.sleep,
      prefetch = opts.prefetch ~= false,
      concurrency = opts.concurrency or DEFAULTS.concurrency,
      on_error = "raise",
      timeout = opts.timeout or DEFAULTS.timeout,
      connect_timeout = opts.connect_timeout or DEFAULTS.connect_timeout,
      max_body = opts.max_body or DEFAULTS.max_body,
      decode = decode,
    },
  }, Client)
  self._transports = transport.set(transport_maker(opts, token, scheme, host), opts.transport)
  -- A transport named outright is made now, so that its own refusals
  -- (ngx: ca_file, proxy) come from new().
  if opts.transport == "curl" or opts.transport == "ngx" then
    local ok, err = pcall(transport.pick, self._transports)
    if not ok then argerror(fname, 1, tostring(err):gsub("^[^:]*:%d+: ", "")) end
  end
  -- the budgets' key names token and base URL without holding the token
  self._limiter = rate.new(opts.rate_limit, core.fingerprint(token .. "\0" .. base))
  return self
end

function Client:__tostring()
  return format("truto.client (%s)", self.base_url)
end

--- Closes the client's connections now instead of at garbage collection.
-- Later calls raise. Never raises.
function Client:close()
  if self._closed then return end
  self._closed = true
  transport.close(self._transports)
  if self._limiter then self._limiter:close() end
end
Client.__close = Client.close

--- Raises when the client was closed.
function M.check_open(self, fname)
  if type(self) ~= "table" or getmetatable(self) ~= Client then
    typeerror(fname, 0, "truto.client (call it as client:" .. fname .. "(...))", self)
  end
  if self._closed then
    error(core.error { kind = "closed", message = "the client is closed (client:close() was called)",
      remote = false }, 0)
  end
end
local check_open = M.check_open

-- ------------------------------------------------------------------------
-- Building requests.
-- ------------------------------------------------------------------------

-- The header lines every request of this client sends through a transport
-- of `kind`, before a call's own: Accept, User-Agent, then the client's.
local function base_headers(self, kind)
  local set = self._lines[kind]
  if not set then
    local agent = self._user_agent
    if not agent then
      agent = options.user_agent()
      if kind == "curl" then agent = agent:gsub("^(%S+)", "%1 libcurl/" .. core.CURL_VERSION) end
    end
    set = { accept = "Accept: application/json", ["user-agent"] = "User-Agent: " .. agent }
    for k, line in pairs(self._headers) do set[k] = line end
    self._lines[kind] = set
  end
  return set
end

-- The sorted lines of a request that adds none to the client's (a GET with
-- no key and no headers of its own: every page of a listing): merged and
-- sorted once per transport kind, and the same table for each such request
-- on lua-truto's own transports, which only read it.
local function plain_lines(self, kind)
  local shared = kind ~= "object" and self._share_lines
  local lines = shared and self._plain[kind]
  if not lines then
    lines = options.merge_headers { base_headers(self, kind) }
    if shared then self._plain[kind] = lines end
  end
  return lines
end

local JSON_BODY = { ["content-type"] = "Content-Type: application/json" }
local WRITES = { POST = true, PATCH = true, DELETE = true } -- keyed by default (truto.attempt)

--- A fully built request. `call` holds: method, url, body (text or nil),
-- headers (a set from options.headers, or nil), account, and the call's
-- policy. Picks the transport for this call.
function M.build(self, method, url, body, call_headers, account, policy)
  local t, kind = transport.pick(self._transports, policy.transport)
  local key = policy.idempotency_key
  if key == nil and WRITES[method] then key = attempt.new_key() end
  if key == false then key = nil end
  local lines
  if body or call_headers or key then
    local sets = { base_headers(self, kind) }
    if body then sets[#sets + 1] = JSON_BODY end
    if call_headers then sets[#sets + 1] = call_headers end
    if key then sets[#sets + 1] = { ["idempotency-key"] = "Idempotency-Key: " .. key } end
    lines = options.merge_headers(sets)
  else
    lines = plain_lines(self, kind)
  end
  local req = {
    method = method, url = url, body = body, headers = lines,
    timeout = policy.timeout, connect_timeout = policy.connect_timeout, max_body = policy.max_body,
    key = key, account = account, transport = t,
  }
  -- A write that may not be sent twice never rides on an idle pooled
  -- connection that the server may have closed (see truto.attempt).
  req.reuse = attempt.replayable(req)
  return req
end

-- ------------------------------------------------------------------------
-- Calls.
-- ------------------------------------------------------------------------

-- The client's policy with a call's options on top.
local function call_policy(self, opts)
  local base = self._policy
  if not opts then return base end
  local p = setmetatable({}, { __index = base })
  for k, v in pairs(opts) do p[k] = v end
  if opts.retry_statuses then p.retry_statuses = status_set(opts.retry_statuses) end
  return p
end

--- Checks a call's trailing options table and returns the policy to use.
function M.call_options(self, fname, n, opts)
  if opts == nil then return self._policy end
  if type(opts) ~= "table" then typeerror(fname, n, "table of options", opts) end
  options.check(fname, n, opts, options.CALL)
  return call_policy(self, opts)
end
local call_options = M.call_options

--- Copies params, adds the default account, and checks it all encodes.
-- Returns the query table and its encoding. `n` is the params argument's position.
function M.prepare_query(self, fname, n, params)
  options.check_optional_table(fname, n, params)
  local query = {}
  if params then
    for k, v in next, params do query[k] = v end
  end
  if query.integrated_account_id == nil then
    query.integrated_account_id = self.integrated_account_id
  end
  local account = query.integrated_account_id
  if account == nil then
    argerror(fname, n, "integrated_account_id required (in params, or truto.new{ integrated_account_id = ... })")
  end
  local _, err = core.segment(account)
  if err then argerror(fname, n, "integrated_account_id: " .. err) end
  local q, qerr = core.encode_query(query)
  if qerr then argerror(fname, n, "params." .. qerr) end
  if #q > MAX_QUERY then
    argerror(fname, n, format("params: query of %d bytes is longer than %d", #q, MAX_QUERY))
  end
  return query, q
end
local prepare_query = M.prepare_query

--- path with the query (a table, or `encoded`: its encoding, when the caller has it).
function M.with_query(path, query, encoded)
  local q = encoded or core.encode_query(query)
  return q == "" and path or path .. "?" .. q
end
local with_query = M.with_query

-- "/unified/<model>/<resource>[/<id>]" under the client's base URL.
local function unified_path(self, fname, model, resource, id, id_arg)
  local path = self.base_url .. "/unified/" .. model .. "/" .. resource
  if id_arg then
    local segment, err = core.segment(id)
    if not segment then argerror(fname, id_arg, err) end
    path = path .. "/" .. segment
  end
  return path
end

-- Checks and encodes a JSON body; `n` is its argument position.
local function encode_body(fname, n, body)
  if type(body) ~= "table" then typeerror(fname, n, "table", body) end
  local text, err = core.encode_json(body, "body")
  if not text then argerror(fname, n, err) end
  return text
end

--- One unified call that returns a single object. `a` gives the argument
-- positions: model, resource, id, body, params, opts (nil when not an argument).
function M.single(self, fname, method, a, model, resource, id, body, params, opts)
  check_open(self, fname)
  local policy = call_options(self, fname, a.opts, opts)
  if a.model then options.check_name(fname, a.model, model, "model") end
  if a.resource then options.check_name(fname, a.resource, resource, "resource") end
  local path = unified_path(self, fname, model, resource, id, a.id)
  local text = a.body and encode_body(fname, a.body, body)
  local query, q = prepare_query(self, fname, a.params, params)
  local req = M.build(self, method, with_query(path, query, q), text or nil, nil, query.integrated_account_id, policy)
  local value, err = attempt.call(self, req, policy)
  if value == nil then return nil, err end
  return value
end

local REQUEST_FIELDS = { method = true, path = true, query = true, body = true, headers = true }
local NO_BODY = { GET = true, HEAD = true }

--- client:request(req, opts): any request under the base URL.
function M.request(self, req, opts)
  check_open(self, "request")
  if type(req) ~= "table" then typeerror("request", 1, "table", req) end
  for key in pairs(req) do
    if not REQUEST_FIELDS[key] then
      argerror("request", 1, format("unknown field %q (method, path, query, body, headers)", tostring(key)))
    end
  end
  local policy = call_options(self, "request", 2, opts)
  local method = req.method or "GET"
  if type(method) ~= "string" or not method:match("^%u+$") then
    argerror("request", 1, "method must be an upper-case HTTP method")
  end
  local path = req.path
  if type(path) ~= "string" or not path:match("^/[%w%-._~!$&'()*+,;=:@/%%]*$") then
    argerror("request", 1, "path must start with '/' and hold only URL path characters (escape the rest)")
  end
  if req.query ~= nil and type(req.query) ~= "table" then
    argerror("request", 1, "query must be a table")
  end
  local url = self.base_url .. path
  if req.query then
    local q, err = core.encode_query(req.query)
    if not q then argerror("request", 1, "query." .. err) end
    if #q > MAX_QUERY then argerror("request", 1, format("query of %d bytes is longer than %d", #q, MAX_QUERY)) end
    if q ~= "" then url = url .. "?" .. q end
  end
  local body = req.body
  if body ~= nil and NO_BODY[method] then
    argerror("request", 1, format("a %s request has no body", method))
  end
  if type(body) == "table" then
    local err
    body, err = core.encode_json(body, "body")
    if not body then argerror("request", 1, err) end
  elseif body ~= nil and type(body) ~= "string" then
    argerror("request", 1, "body must be a table or a string")
  end
  local headers = options.headers("request", 1, req.headers)
  local account = req.query and req.query.integrated_account_id or self.integrated_account_id
  local built = M.build(self, method, url, body, headers, account, policy)
  local answer, attempts = attempt.send(self, built, policy)
  if not answer then return nil, attempts end
  local json
  if answer.body ~= "" then json = core.decode(answer.body, policy.decode) end
  return { status = answer.status, headers = answer.headers, body = answer.body, json = json, attempts = attempts }
end

return M
