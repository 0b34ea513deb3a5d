--- lua-truto: Truto's unified User Directory API for Lua.
--
-- The policy half of the module: clients, iterators and argument checks.
-- Everything that encodes, decodes or talks to the network is C, in
-- `truto.core` (see src/truto.c): this file only decides what to call.
--
-- @module truto
local core = require "truto.core"

local M = { VERSION = core.VERSION }

local MODEL = "user-directory"
local DEFAULT_BASE_URL = "https://api.truto.one"

local error, type, tostring, pairs, next = error, type, tostring, pairs, next
local setmetatable, getmetatable, select = setmetatable, getmetatable, select
local format, concat, sort = string.format, table.concat, table.sort

---------------------------------------------------------------------------
-- Argument checks. Misuse raises at once, naming the argument, in the form
-- Lua's own luaL_argerror uses; nothing has been sent when it does.
---------------------------------------------------------------------------

-- Raises for the caller of the public function `fname`. `level` counts
-- frames from this function: 3 when called from the public function itself.
local function argerror(fname, n, msg, level)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), level or 3)
end

local function typeerror(fname, n, expected, value, level)
  argerror(fname, n, format("%s expected, got %s", expected, type(value)), (level or 3) + 1)
end

local function check_optional_table(fname, n, value, level)
  if value ~= nil and type(value) ~= "table" then
    typeerror(fname, n, "table", value, (level or 3) + 1)
  end
end

-- Model, resource and custom method names are path words, never escaped.
local function check_name(fname, n, value, what, level)
  if type(value) ~= "string" or not value:match("^[%w_%-]+$") then
    local got = type(value) == "string" and format("%q", value) or type(value)
    argerror(fname, n, format("%s name expected (letters, digits, '-', '_'), got %s", what, got),
      (level or 3) + 1)
  end
end

local HEADER_NAME = "^[!#$%%&'*+%-.^_`|~%w]+$"
local RESERVED_HEADERS = { authorization = true, host = true, ["content-length"] = true }

-- Header table -> sorted "Name: value" lines. Raises on anything that could
-- split a header or replace the token. `level` counts this function as 1
-- (3 when called from a public function).
local function header_lines(fname, n, headers, level)
  local lines = {}
  if headers == nil then return lines end
  if type(headers) ~= "table" then typeerror(fname, n, "table of headers", headers, level + 1) end
  for name, value in pairs(headers) do
    if type(name) ~= "string" or not name:match(HEADER_NAME) then
      argerror(fname, n, format("invalid header name %q", tostring(name)), level + 1)
    end
    if RESERVED_HEADERS[name:lower()] then
      argerror(fname, n, format("header %q is set by lua-truto", name), level + 1)
    end
    if type(value) == "number" then value = tostring(value) end
    if type(value) ~= "string" or value:find("[%z\r\n]") then
      argerror(fname, n, format("header %q must be a string without CR, LF or NUL", name), level + 1)
    end
    lines[#lines + 1] = name .. ": " .. value
  end
  sort(lines)
  return lines
end

---------------------------------------------------------------------------
-- Client options.
---------------------------------------------------------------------------

local KNOWN_OPTIONS = {
  token = "string", base_url = "string", integrated_account_id = "id",
  timeout = "number", connect_timeout = "number", user_agent = "string",
  headers = "table", ca_file = "string", proxy = "string", verify_tls = "boolean",
  allow_insecure = "boolean", max_body = "number",
}

local function is_loopback(host)
  host = host:lower()
  return host == "localhost" or host == "[::1]" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

-- Returns the base URL without trailing slashes, or nil and why not.
local function normalize_base_url(url, allow_insecure)
  local scheme, authority = url:match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme or authority == "" then
    return nil, "base_url must be an absolute http(s) URL"
  end
  scheme = scheme:lower()
  if scheme ~= "https" and scheme ~= "http" then
    return nil, "base_url must use https://"
  end
  if url:find("[%s%c]") or url:find("[?#]") or authority:find("@", 1, true) then
    return nil, "base_url must not contain spaces, control bytes, a query, a fragment or credentials"
  end
  local host = authority:match("^(%[[^%]]*%])") or authority:match("^[^:]+")
  if scheme == "http" and not allow_insecure and not is_loopback(host or "") then
    return nil, "base_url must use https:// (http:// is allowed for loopback hosts, or with allow_insecure = true)"
  end
  return (url:gsub("/+$", ""))
end

local function check_options(opts)
  for key, value in pairs(opts) do
    local expected = KNOWN_OPTIONS[key]
    if not expected then
      argerror("new", 1, format("unknown option %q", tostring(key)), 4)
    end
    local ok = type(value) == expected
      or (expected == "id" and (type(value) == "string" or type(value) == "number"))
    if not ok then
      argerror("new", 1, format("option '%s': %s expected, got %s",
        key, expected == "id" and "string or integer" or expected, type(value)), 4)
    end
    if expected == "number" and not (value > 0 and value < math.huge) then
      argerror("new", 1, format("option '%s' must be a positive number", key), 4)
    end
  end
end

local Client = {}
Client.__index = Client
Client.__name = "truto.client"

--- Creates a client.
-- @tparam[opt] table opts `token` (default `TRUTO_API_TOKEN`), `base_url`
--   (default `TRUTO_BASE_URL`, else https://api.truto.one),
--   `integrated_account_id`, `timeout` (30 s), `connect_timeout` (10 s),
--   `user_agent`, `headers`, `ca_file`, `proxy`, `verify_tls` (true),
--   `allow_insecure`, `max_body` (64 MiB).
-- @treturn client
-- @raise on a missing token, a bad base URL or a bad option
function M.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then typeerror("new", 1, "table", opts) end
  check_options(opts)
  local token = opts.token or os.getenv("TRUTO_API_TOKEN")
  if token == nil or token == "" then
    argerror("new", 1, "token required: pass token = ... or set TRUTO_API_TOKEN")
  end
  local base, why = normalize_base_url(opts.base_url or os.getenv("TRUTO_BASE_URL") or DEFAULT_BASE_URL,
    opts.allow_insecure)
  if not base then argerror("new", 1, why) end
  local account = opts.integrated_account_id
  if account ~= nil then
    local _, err = core.segment(account)
    if err then argerror("new", 1, "option 'integrated_account_id': " .. err) end
  end
  local self = setmetatable({
    base_url = base,
    integrated_account_id = account,
    _header_lines = header_lines("new", 1, opts.headers, 3),
  }, Client)
  -- The token goes into C and stays there: no Lua table of ours holds it.
  self._transport = core.curl {
    token = token, user_agent = opts.user_agent, ca_file = opts.ca_file, proxy = opts.proxy,
    verify_tls = opts.verify_tls, timeout = opts.timeout, connect_timeout = opts.connect_timeout,
    max_body = opts.max_body,
  }
  return self
end

function Client:__tostring()
  return format("truto.client (%s)", self.base_url)
end

---------------------------------------------------------------------------
-- Requests.
---------------------------------------------------------------------------

-- Performs one request; returns the decoded body or nil and an error object.
local function perform(self, method, url, body, extra_lines)
  local lines = self._header_lines
  if extra_lines and #extra_lines > 0 then
    local merged = {}
    for i = 1, #lines do merged[i] = lines[i] end
    for i = 1, #extra_lines do merged[#merged + 1] = extra_lines[i] end
    lines = merged
  end
  local status, headers, text = self._transport:perform(method, url, lines, body)
  if not status then -- headers is the failure kind, text its message
    return nil, core.error { kind = headers, message = text, method = method, url = url, remote = false }
  end
  return status, headers, text
end

local function call(self, method, url, body)
  local status, headers, text = perform(self, method, url, body)
  if not status then return nil, headers end
  return core.read_response(status, headers, text, method, url)
end

-- Copies params, adds the default account, and checks it all encodes.
-- Returns the query table. `n` is the params argument's position.
local function prepare_query(self, fname, n, params)
  check_optional_table(fname, n, params, 4)
  local query = {}
  if params then
    for k, v in next, params do query[k] = v end
  end
  if query.integrated_account_id == nil then
    query.integrated_account_id = self.integrated_account_id
  end
  local account = query.integrated_account_id
  if account == nil then
    argerror(fname, n, "integrated_account_id required (in params, or truto.new{ integrated_account_id = ... })", 4)
  end
  local _, err = core.segment(account)
  if err then argerror(fname, n, "integrated_account_id: " .. err, 4) end
  local _, qerr = core.encode_query(query)
  if qerr then argerror(fname, n, "params." .. qerr, 4) end
  return query
end

local function with_query(path, query)
  local q = core.encode_query(query)
  return q == "" and path or path .. "?" .. q
end

-- "/unified/<model>/<resource>[/<id>]" under the client's base URL.
local function unified_path(self, fname, model, resource, id, id_arg)
  local path = self.base_url .. "/unified/" .. model .. "/" .. resource
  if id_arg then
    local segment, err = core.segment(id)
    if not segment then argerror(fname, id_arg, err, 4) end
    path = path .. "/" .. segment
  end
  return path
end

-- Checks and encodes a JSON body; `n` is its argument position.
local function encode_body(fname, n, body)
  if type(body) ~= "table" then typeerror(fname, n, "table", body, 4) end
  local text, err = core.encode_json(body)
  if not text then argerror(fname, n, "body: " .. err, 4) end
  return text
end

-- One unified call that returns a single object. `a` gives the argument
-- positions: model, resource, id, body, params (nil when not an argument).
local function single(self, fname, method, a, model, resource, id, body, params)
  if a.model then check_name(fname, a.model, model, "model") end
  if a.resource then check_name(fname, a.resource, resource, "resource") end
  local path = unified_path(self, fname, model, resource, id, a.id)
  local text = a.body and encode_body(fname, a.body, body)
  local query = prepare_query(self, fname, a.params, params)
  return call(self, method, with_query(path, query), text)
end

local GENERIC_GET = { model = 1, resource = 2, id = 3, params = 4 }
local GENERIC_CREATE = { model = 1, resource = 2, body = 3, params = 4 }
local GENERIC_UPDATE = { model = 1, resource = 2, id = 3, body = 4, params = 5 }
local CUSTOM_CALL = { body = 4, params = 5 }
local ORG_GET = { id = 1, params = 2 }
local ORG_UPDATE = { id = 1, body = 2, params = 3 }

--- Gets one object: `GET /unified/<model>/<resource>/<id>`.
-- @treturn table|nil the object
-- @treturn error on failure
function Client:get(model, resource, id, params)
  return single(self, "get", "GET", GENERIC_GET, model, resource, id, nil, params)
end

--- Creates an object: `POST /unified/<model>/<resource>` with a JSON body.
function Client:create(model, resource, body, params)
  return single(self, "create", "POST", GENERIC_CREATE, model, resource, nil, body, params)
end

--- Updates an object: `PATCH /unified/<model>/<resource>/<id>` with a JSON body.
function Client:update(model, resource, id, body, params)
  return single(self, "update", "PATCH", GENERIC_UPDATE, model, resource, id, body, params)
end

--- Deletes an object: `DELETE /unified/<model>/<resource>/<id>`. A 204 gives `{}`.
function Client:delete(model, resource, id, params)
  return single(self, "delete", "DELETE", GENERIC_GET, model, resource, id, nil, params)
end

--- Calls a custom method: `POST /unified/<model>/<resource>/<method>`.
-- `body` defaults to `{}`; the answer is Truto's `{ result = ... }`.
function Client:call(model, resource, method, body, params)
  check_name("call", 1, model, "model")
  check_name("call", 2, resource, "resource")
  check_name("call", 3, method, "method")
  if body == nil then body = {} end
  return single(self, "call", "POST", CUSTOM_CALL, model, resource .. "/" .. method, nil, body, params)
end

--- Gets an organization.
function Client:get_organization(id, params)
  return single(self, "get_organization", "GET", ORG_GET, MODEL, "organizations", id, nil, params)
end

--- Updates an organization (PATCH); `body` is a Lua table sent as JSON.
function Client:update_organization(id, body, params)
  return single(self, "update_organization", "PATCH", ORG_UPDATE, MODEL, "organizations", id, body, params)
end

--- Deletes an organization. A 204 answer gives `{}`.
function Client:delete_organization(id, params)
  return single(self, "delete_organization", "DELETE", ORG_GET, MODEL, "organizations", id, nil, params)
end

--- The escape hatch: any request under the base URL.
-- @tparam table req `method` (default GET), `path` ("/..."), `query` (table),
--   `body` (table sent as JSON, or a string sent as is), `headers` (table)
-- @treturn table `{ status, headers, body, json }` for any HTTP status
--   (`json` is the decoded body when it is JSON)
-- @treturn error on a transport failure
function Client:request(req)
  if type(req) ~= "table" then typeerror("request", 1, "table", req) end
  local method = req.method or "GET"
  if type(method) ~= "string" or not method:match("^%u+$") then
    argerror("request", 1, "method must be an upper-case HTTP method")
  end
  local path = req.path
  if type(path) ~= "string" or not path:match("^/[%w%-._~!$&'()*+,;=:@/%%]*$") then
    argerror("request", 1, "path must start with '/' and hold only URL path characters (escape the rest)")
  end
  check_optional_table("request", 1, req.query, 3)
  local url = self.base_url .. path
  if req.query then
    local q, err = core.encode_query(req.query)
    if not q then argerror("request", 1, "query." .. err) end
    if q ~= "" then url = url .. "?" .. q end
  end
  local body = req.body
  if type(body) == "table" then
    local err
    body, err = core.encode_json(body)
    if not body then argerror("request", 1, "body: " .. err) end
  elseif body ~= nil and type(body) ~= "string" then
    argerror("request", 1, "body must be a table or a string")
  end
  local lines = header_lines("request", 1, req.headers, 3)
  local status, headers, text = perform(self, method, url, body, lines)
  if not status then return nil, headers end
  return { status = status, headers = headers, body = text, json = core.decode(text) }
end

---------------------------------------------------------------------------
-- Lists: iterators over items and over pages.
---------------------------------------------------------------------------

local Iterator = {}
Iterator.__index = Iterator
Iterator.__name = "truto.iterator"

--- Releases the iterator; later calls end the loop. Never raises.
function Iterator:close()
  self.closed = true
  self.items = nil
end
Iterator.__close = Iterator.close
Iterator.__gc = Iterator.close

-- Fetches the next page and feeds it to the pager; raises the error object
-- on failure (iterators have no other way to report it).
local function fetch_page(it)
  local query = it.query
  query.next_cursor = it.pager:cursor()
  local url = with_query(it.path, query)
  local page, err = call(it.client, "GET", url)
  if page == nil then
    it:close()
    error(err, 0)
  end
  local result, keyed, message = it.pager:feed(page)
  if result == nil then
    it:close()
    error(core.error { kind = keyed, message = message, method = "GET", url = url, remote = false }, 0)
  end
  return page, result, keyed
end

-- The item iterator: yields item (or item, key for truto_key_by answers).
local function next_item(it)
  while true do
    local items = it.items
    if items then
      if it.keyed then
        local key, item = next(items, it.key)
        if key ~= nil then
          it.key = key
          return item, key
        end
      else
        local i = it.index + 1
        local item = items[i]
        if item ~= nil then
          it.index = i
          return item
        end
      end
      it.items = nil
    end
    if it.closed or it.pager:done() then return nil end
    local _, result, keyed = fetch_page(it)
    it.items, it.keyed, it.index, it.key = result, keyed, 0, nil
  end
end

-- The page iterator: yields each decoded page.
local function next_page(it)
  if it.closed or it.pager:done() then return nil end
  return (fetch_page(it))
end

local function iterate(self, fname, step, model, resource, params, n)
  local query = prepare_query(self, fname, n, params)
  local it = setmetatable({
    client = self,
    path = self.base_url .. "/unified/" .. model .. "/" .. resource,
    query = query,
    pager = core.pager(query.next_cursor),
  }, Iterator)
  -- The fourth value is closed when a generic for ends, even by break.
  return step, it, nil, it
end

--- Iterates over every item of every page of a list.
-- @usage for user in client:list("user-directory", "users", { integrated_account_id = id }) do ... end
-- @raise the error object when a page fails
function Client:list(model, resource, params)
  check_name("list", 1, model, "model")
  check_name("list", 2, resource, "resource")
  return iterate(self, "list", next_item, model, resource, params, 3)
end

--- Iterates over the pages of a list: `page.result`, `page.next_cursor`.
function Client:pages(model, resource, params)
  check_name("pages", 1, model, "model")
  check_name("pages", 2, resource, "resource")
  return iterate(self, "pages", next_page, model, resource, params, 3)
end

--- Iterates over every user of the account.
function Client:users(params)
  return iterate(self, "users", next_item, MODEL, "users", params, 1)
end

--- Iterates over every group of the account.
function Client:groups(params)
  return iterate(self, "groups", next_item, MODEL, "groups", params, 1)
end

---------------------------------------------------------------------------
-- The module-level default client, built from the environment.
---------------------------------------------------------------------------

local default_client

local function default()
  if not default_client then
    local ok, client = pcall(M.new)
    if not ok then
      error("truto: no default client (" .. tostring(client):gsub("^.-%(", "", 1), 3)
    end
    default_client = client
  end
  return default_client
end

--- Replaces the default client's options (the module functions use it).
function M.configure(opts)
  default_client = M.new(opts)
  return default_client
end

for _, name in ipairs { "users", "groups", "get_organization", "update_organization",
  "delete_organization", "list", "pages", "get", "create", "update", "delete", "call", "request" } do
  local method = Client[name]
  M[name] = function(...) return method(default(), ...) end
end

--- Marks a table as a JSON array, so that an empty one is sent as `[]`.
function M.array(t)
  if t == nil then t = {} end
  if type(t) ~= "table" then typeerror("array", 1, "table", t) end
  return setmetatable(t, core.array_mt)
end

--- Whether v is a lua-truto error object.
function M.is_error(v)
  return getmetatable(v) == core.error_mt
end

M.Client = Client
M.null = require("cjson").null
return M
