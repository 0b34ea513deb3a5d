-- The mock Truto server's request handler (nginx content_by_lua): writes the request to the log,
-- waits the latency asked for, checks the token, the route and the account, lets a fault
-- account misbehave, then lists, gets, creates, updates, deletes or runs a custom method.
-- `/__mock/...` are the control endpoints: no token, not logged.

local json = require "truto_mock.json"
local reply = require "truto_mock.reply"
local data = require "truto_mock.data"
local faults = require "truto_mock.faults"
local state = require "truto_mock.state"
local limits = require "truto_mock.limits"
local webhooks = require "truto_mock.webhooks"
local changes = require "truto_mock.changes"

local server = {}

local TOKEN = "test-token"
local PREFIX = "/unified/user-directory/"
local MAX_LIMIT = 1000
local STREAM_OVER = 2000 -- a truto_key_by answer with more items than this is sent in chunks

local config = { dir = ".", latency = 0 }

--- Called once from init_by_lua: `dir` holds the request log, `latency` (ms) delays every answer,
-- `limits` (optional) sets the rate limits a reset comes back to.
function server.configure(opts)
  config.dir = assert(opts.dir, "dir is required")
  config.latency = tonumber(opts.latency) or 0
  if opts.limits and opts.limits ~= "" then limits.set_defaults(opts.limits) end
  webhooks.configure(opts)
end

---------------------------------------------------------------------------------------------
-- The request and its log

local log_file

local function log_path()
  return config.dir .. "/requests.log"
end

-- Whether the request carried the mock's token: "matched", "mismatched" or "missing".
local function token_status(headers)
  local auth = headers["authorization"]
  if auth == nil then return "missing" end
  return type(auth) == "string" and auth:match("^[Bb]earer +(.-) *$") == TOKEN and "matched" or "mismatched"
end

-- The headers as logged: an Authorization header is kept only when it is the mock's own public
-- token; any other value (a real token sent here by mistake) is never written anywhere.
local function loggable_headers(headers, token)
  if headers["authorization"] == nil or token == "matched" then return headers end
  local out = {}
  for k, v in pairs(headers) do out[k] = v end
  out["authorization"] = "[not logged]"
  return out
end

-- One JSON line per request, flushed before the answer is sent: a spec that reads the log right
-- after its call must find the call there. `time`: when it arrived (epoch seconds, ms precision).
local function log_request(req)
  log_file = log_file or assert(io.open(log_path(), "a"))
  local token = token_status(req.headers)
  log_file:write(json.encode({
    method = req.method, path = req.path, raw_query = req.raw_query, args = req.args,
    headers = loggable_headers(req.headers, token), token = token, body = req.body,
    connection = req.connection, time = req.time,
    account = type(req.args.integrated_account_id) == "string" and req.args.integrated_account_id
      or nil,
  }), "\n")
  log_file:flush()
end

local function clear_log()
  if log_file then log_file:close() end
  log_file = assert(io.open(log_path(), "w"))
end

local function request_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  local path = ngx.req.get_body_file() -- a body larger than client_body_buffer_size
  if not path then return "" end
  local f = assert(io.open(path, "rb"))
  body = f:read("*a")
  f:close()
  return body
end

local function read_request(path, raw_query)
  return {
    method = ngx.req.get_method(),
    path = path,
    raw_query = raw_query,
    args = ngx.req.get_uri_args(0),
    headers = ngx.req.get_headers(0),
    body = request_body(),
    connection = tonumber(ngx.var.connection),
    time = (function() ngx.update_time() return ngx.now() end)(),
  }
end

-- Percent-decoding of a path segment. Not ngx.unescape_uri: that one turns "+" into a space.
local function unescape(s)
  return (s:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

---------------------------------------------------------------------------------------------
-- Query options and the shape of items

local FORMATS = { unified = true, normalized = true, raw = true, debug = true, stream = true }
local NDJSON = "application/x-ndjson"

local function list_of(v)
  if v == nil then return {} end
  return type(v) == "table" and v or { v }
end

-- One value per key, or nil and the message of a 400.
local function single(args, key)
  local v = args[key]
  if v ~= nil and type(v) ~= "string" then return nil, key .. " must be given once, with a value" end
  return v
end

-- Query keys read as one value each, and their names in the options.
local SINGLE_OPTIONS = { { "truto_response_format", "format" }, { "truto_key_by", "key_by" },
  { "limit", "limit" }, { "next_cursor", "cursor" } }

--- The truto_* options, limit and cursor of a request; nil and a message when one is invalid.
local function options(args)
  local opts = { exclude = {}, ignore_remote_data = args.truto_ignore_remote_data == "true" }
  for _, key in ipairs({ "truto_exclude_fields[]", "truto_exclude_fields" }) do
    for _, field in ipairs(list_of(args[key])) do opts.exclude[field] = true end
  end
  local err
  for _, pair in ipairs(SINGLE_OPTIONS) do
    opts[pair[2]], err = single(args, pair[1])
    if err then return nil, err end
  end
  opts.format = opts.format or "unified"
  if not FORMATS[opts.format] then
    return nil, "truto_response_format must be one of unified, normalized, raw, stream, debug"
  end
  if opts.limit then
    local n = opts.limit:match("^%d+$") and tonumber(opts.limit)
    if not n or n < 1 or n > MAX_LIMIT then
      return nil, "limit must be an integer from 1 to " .. MAX_LIMIT
    end
    opts.limit = n
  end
  if opts.cursor == "" then opts.cursor = nil end
  return opts
end

local function shape(item, opts)
  if opts.format == "raw" then return item.remote_data or item end
  local out = {}
  for k, v in pairs(item) do
    if not opts.exclude[k] and not (opts.ignore_remote_data and k == "remote_data") then
      out[k] = v
    end
  end
  return out
end

-- What truto_response_format=debug adds: the remote call Truto would have made.
local function debug_info(req, ctx, list)
  local info = {
    request = { method = req.method, path = req.path, query = req.args },
    requestUrl = "https://api.vendor.example/" .. ctx.resource,
    responseHeaders = { ["content-type"] = "application/json" },
  }
  for k, v in pairs(list or {}) do info[k] = v end
  return info
end

local function object_reply(req, ctx, status, item)
  local value = shape(item, ctx.opts)
  if ctx.opts.format == "debug" then
    value = { result = value, debug = debug_info(req, ctx) }
  elseif ctx.opts.format == "stream" then
    return reply.raw(status, json.encode(value) .. "\n", NDJSON)
  end
  return reply.json(status, value)
end

---------------------------------------------------------------------------------------------
-- Handlers: handler(req, ctx) -> response. ctx = { account, resource, id, opts, tag }

local SINGULAR = { users = "user", groups = "group", organizations = "organization" }

local function find(ctx)
  local item = data.collection(ctx.account, ctx.resource, {}).find(ctx.id)
  if item then return item end
  return nil, reply.error(404, string.format("No %s with id '%s'", SINGULAR[ctx.resource], ctx.id))
end

-- JSON merge patch (RFC 7386): null removes a key, objects merge, anything else replaces.
local function merge_patch(target, patch)
  if type(patch) ~= "table" or json.is_array(patch) or json.is_raw(patch) then return patch end
  if type(target) ~= "table" or json.is_array(target) or json.is_raw(target) then target = {} end
  for k, v in pairs(patch) do
    if v == json.null then
      target[k] = nil
    else
      target[k] = merge_patch(target[k], v)
    end
  end
  return target
end

local function object_body(req)
  local body, err = json.decode(req.body)
  if type(body) ~= "table" or json.is_array(body) or body == json.null or json.is_raw(body) then
    return nil, reply.error(400, "The request body must be a JSON object"
      .. (err and " (" .. err .. ")" or ""))
  end
  return body
end

-- truto_key_by: `result` becomes an object over every item, limit and cursor ignored.
-- The first item with a given key wins. Big lists go out in chunks, never whole in memory.
local function keyed_list(req, ctx, c)
  local field, stream = ctx.opts.key_by, c.count > STREAM_OVER
  local parts, seen, n = { '{"result":{' }, {}, 0
  if stream then
    ngx.status = 200
    ngx.header["Content-Type"] = reply.JSON
  end
  for i = 1, c.count do
    local item = c.item(i)
    local key = item[field]
    if type(key) == "number" or type(key) == "boolean" then key = json.encode(key) end
    if type(key) == "string" and not seen[key] then
      if field ~= "id" then seen[key] = true end -- ids are unique: no need to remember a million
      parts[#parts + 1] = (n > 0 and "," or "") .. json.encode(key) .. ":"
        .. json.encode(shape(item, ctx.opts))
      n = n + 1
      if stream and #parts >= 500 then
        ngx.print(parts)
        ngx.flush(true)
        parts = {}
      end
    end
  end
  parts[#parts + 1] = '},"next_cursor":null,"result_count":' .. n
  if ctx.opts.format == "debug" then
    parts[#parts + 1] = ',"debug":' .. json.encode(debug_info(req, ctx, { resultCount = n }))
  end
  parts[#parts + 1] = "}"
  if not stream then return reply.raw(200, table.concat(parts), reply.JSON) end
  ngx.print(parts)
  return ngx.exit(ngx.OK)
end

-- truto_response_format=stream: every item from the cursor on (limit ignored), one unified
-- JSON object per line (NDJSON, `application/x-ndjson`), sent in chunks as it is produced.
-- A list whose cursors loop ends where a cursor repeats.
local function streamed_list(ctx, c)
  local cursor, seen = ctx.opts.cursor, {}
  local page
  page, cursor = data.page(c, ctx.tag, 500, cursor)
  if not page then return reply.error(400, "Invalid cursor: " .. ctx.opts.cursor) end
  ngx.status = 200
  ngx.header["Content-Type"] = NDJSON
  while page do
    local lines = {}
    for i, item in ipairs(page) do lines[i] = json.encode(shape(item, ctx.opts)) .. "\n" end
    if #lines > 0 then
      ngx.print(lines)
      ngx.flush(true)
    end
    if type(cursor) ~= "string" or cursor == "" or seen[cursor] then break end
    seen[cursor] = true
    page, cursor = data.page(c, ctx.tag, 500, cursor)
  end
  return ngx.exit(ngx.OK)
end

local function list(req, ctx)
  local refused = changes.refuse(ctx.account, req.args)
  if refused then return refused end
  local c = data.collection(ctx.account, ctx.resource, req.args)
  if ctx.opts.format == "stream" then return streamed_list(ctx, c) end
  if ctx.opts.key_by then return keyed_list(req, ctx, c) end
  local items, next_cursor = data.page(c, ctx.tag, ctx.opts.limit or c.page_size, ctx.opts.cursor)
  if not items then return reply.error(400, "Invalid cursor: " .. ctx.opts.cursor) end
  local result = json.array()
  for i, item in ipairs(items) do result[i] = shape(item, ctx.opts) end
  local body = { result = result, next_cursor = next_cursor, result_count = #result }
  if ctx.opts.format == "debug" then
    body.debug = debug_info(req, ctx, { resultCount = #result, nextCursor = next_cursor,
      isLooping = false, isEmptyResult = #result == 0 })
  end
  return reply.json(200, body)
end

local function get(req, ctx)
  local item, err = find(ctx)
  if not item then return err end
  return object_reply(req, ctx, 200, item)
end

-- Echoes the body with a new id; nothing is stored.
local function create(req, ctx)
  local body, err = object_body(req)
  if not body then return err end
  body.id = state.new_id(ctx.resource)
  return reply.json(201, body)
end

-- Organizations keep the change; users and groups answer with it but keep nothing.
local function update(req, ctx)
  local item, err = find(ctx)
  if not item then return err end
  local patch
  patch, err = object_body(req)
  if not patch then return err end
  local updated = merge_patch(json.copy(item), patch)
  updated.id = item.id
  if ctx.resource == "organizations" then state.save_organization(updated) end
  return object_reply(req, ctx, 200, updated)
end

-- Organizations stay deleted until a reset (org-2 answers 204); users and groups are not removed.
local function delete(_, ctx)
  local item, err = find(ctx)
  if not item then return err end
  if ctx.resource == "organizations" then
    state.delete_organization(item.id)
    if item.id == "org-2" then return { status = 204 } end
  end
  return reply.json(200, { id = item.id, deleted = true })
end

local function custom_method(req, ctx)
  local body = json.null
  if req.body ~= "" then
    local err
    body, err = json.decode(req.body)
    if body == nil then return reply.error(400, "The request body is not JSON (" .. err .. ")") end
  end
  return reply.json(200, { result = { method = ctx.id, body = body } })
end

---------------------------------------------------------------------------------------------
-- Routing

local ROUTES = {
  collection = { GET = list, POST = create },
  item = { GET = get, PATCH = update, DELETE = delete, POST = custom_method },
}

-- The handlers of a path; organizations cannot be created.
local function handlers_of(resource, kind)
  local handlers = {}
  for method, handler in pairs(ROUTES[kind]) do
    if not (resource == "organizations" and handler == create) then handlers[method] = handler end
  end
  return handlers
end

local function allowed(handlers)
  local methods = {}
  for method in pairs(handlers) do methods[#methods + 1] = method end
  table.sort(methods)
  return table.concat(methods, ", ")
end

--- The route of `req`: { handler, resource, id }, or nil and the 404 / 405 response.
local function route(req)
  local rest = req.path:sub(1, #PREFIX) == PREFIX and req.path:sub(#PREFIX + 1) or ""
  local resource, id = rest:match("^([^/]+)/([^/]+)$")
  resource = resource or rest:match("^([^/]+)$")
  if not SINGULAR[resource] then
    return nil, reply.error(404, "No route for " .. req.method .. " " .. req.path)
  end
  local handlers = handlers_of(resource, id and "item" or "collection")
  local handler = handlers[req.method]
  if not handler then
    return nil, reply.error(405, "Method " .. req.method .. " is not allowed on " .. req.path, nil,
      { Allow = allowed(handlers) })
  end
  return { handler = handler, resource = resource, id = id and unescape(id) }
end

local function authorized(headers)
  local auth = headers["authorization"]
  return type(auth) == "string" and auth:match("^[Bb]earer +(.-) *$") == TOKEN
end

-- A POST or PATCH repeated with the same Idempotency-Key gets the first answer again.
local function idempotent(req, run)
  local key = req.headers["idempotency-key"]
  if type(key) ~= "string" or (req.method ~= "POST" and req.method ~= "PATCH") then return run() end
  local saved = state.replay(key)
  if saved then
    return reply.raw(saved.status, saved.body ~= json.null and saved.body or nil,
      saved.content_type ~= json.null and saved.content_type or nil,
      { ["Idempotent-Replayed"] = "true" })
  end
  local resp = run()
  if resp and resp.status < 300 then state.remember(key, resp) end
  return resp
end

local MISSING_ACCOUNT = {
  message = "integrated_account_id is required",
  insight = { truto_error_insight = { missing_required_query_parameters = { "integrated_account_id" } } },
}

local function respond(req)
  if not authorized(req.headers) then return reply.error(401, "Invalid API token") end
  local r, err = route(req)
  if not r then return err end
  local id = req.args.integrated_account_id
  if id == nil or id == "" or id == true then
    return reply.error(400, MISSING_ACCOUNT.message, MISSING_ACCOUNT.insight)
  end
  if type(id) ~= "string" then return reply.error(400, "integrated_account_id must be given once") end
  local account = data.account(id)
  if not account then return reply.error(404, "Integrated account not found") end

  -- Truto's rate limits: a spent budget answers 429; every other answer to this account
  -- carries the ratelimit-* headers (fault answers that set their own keep theirs).
  local rate_headers, retry_after = limits.take(account.id)
  if retry_after then
    rate_headers["Retry-After"] = tostring(retry_after)
    return faults.rate_limited(retry_after, rate_headers)
  end

  local function normal()
    for name, value in pairs(rate_headers) do ngx.header[name] = value end
    local opts, bad = options(req.args)
    if not opts then return reply.error(400, bad) end
    local ctx = { account = account, resource = r.resource, id = r.id, opts = opts,
      tag = account.data .. "/" .. r.resource }
    return idempotent(req, function() return r.handler(req, ctx) end)
  end

  if account.fault and (not account.flaky or state.count_request(account.id) <= account.flaky) then
    local resp = faults.run(account.fault, normal)
    if resp then return resp end
  end
  return normal()
end

---------------------------------------------------------------------------------------------
-- Control endpoints and the entry point

local function read_log()
  local f = io.open(log_path(), "r")
  local lines = {}
  if f then
    for line in f:lines() do lines[#lines + 1] = line end
    f:close()
  end
  return "[" .. table.concat(lines, ",") .. "]"
end

local CONTROL = {
  ["/__mock/reset"] = { method = "POST", run = function()
    state.reset()
    clear_log()
    return reply.json(200, { ok = true })
  end },
  ["/__mock/limits"] = { method = { GET = true, POST = true }, run = function(method)
    if method == "POST" then
      local ok, err = limits.configure(request_body())
      if not ok then return reply.error(400, err) end
    end
    return reply.json(200, limits.report())
  end },
  ["/__mock/changes"] = { method = "POST", run = function()
    return changes.control(request_body(), data.account, function(a, r) return data.collection(a, r, {}) end)
  end },
  ["/__mock/log"] = { method = "GET", run = function()
    return reply.raw(200, read_log(), reply.JSON)
  end },
}

-- Whether the Host header names this loopback server (127.0.0.1, localhost or [::1], any port):
-- a web page that rebinds its own name to 127.0.0.1 must not read the log or reset the mock.
local function loopback_host()
  local host = ngx.var.http_host
  if type(host) ~= "string" then return false end
  host = host:lower():gsub(":%d+$", "")
  return host == "127.0.0.1" or host == "localhost" or host == "[::1]"
end

local function control(path)
  local endpoint = CONTROL[path]
  if not endpoint then return reply.error(404, "No control endpoint " .. path) end
  if not loopback_host() then
    return reply.error(403, "Control endpoints answer only requests for 127.0.0.1 or localhost")
  end
  local method = ngx.req.get_method()
  local methods = type(endpoint.method) == "table" and endpoint.method or { [endpoint.method] = true }
  if not methods[method] then
    local names = {}
    for name in pairs(methods) do names[#names + 1] = name end
    table.sort(names)
    local allow = table.concat(names, ", ")
    return reply.error(405, "Use " .. table.concat(names, " or ") .. " " .. path, nil, { Allow = allow })
  end
  return endpoint.run(method)
end

local function handle()
  local path, raw_query = ngx.var.request_uri:match("^([^?]*)%??(.*)$")
  if path:sub(1, 8) == "/__mock/" then return reply.send(control(path)) end
  local req = read_request(path, raw_query)
  log_request(req)
  local delay = data.latency(req.args.integrated_account_id) or config.latency
  if delay > 0 then ngx.sleep(delay / 1000) end
  local resp = respond(req)
  webhooks.after(req, resp)
  return reply.send(resp)
end

--- The content handler. A bug in the mock answers a Truto-shaped 500 naming it.
function server.handle()
  local ok, err = pcall(handle)
  if not ok then
    ngx.log(ngx.ERR, "mock Truto: ", err)
    return reply.send(reply.error(500, "mock server error: " .. tostring(err)))
  end
end

return server
