--- lua-truto: Truto's unified User Directory API for Lua.
--
-- The public API. The policy lives in modules named after what they own:
--
-- * `truto.options`   argument checks, client and call options, headers
-- * `truto.client`    the client, building requests, single-object calls
-- * `truto.attempt`   sending a request, and when to send it again (retries)
-- * `truto.iterate`   iterators over lists, one account or many at once
-- * `truto.transport` which transport carries a call (libcurl or nginx)
-- * `truto.metrics`   the on_request / on_response hooks, a Prometheus collector
-- * `truto.webhook`   verifying and receiving Truto's signed webhook deliveries
--
-- Everything that encodes, decodes or talks to the network through libcurl
-- is C, in `truto.core` (see src/truto.c).
--
-- @module truto
local core = require "truto.core"
local options = require "truto.options"
local client_mod = require "truto.client"
local iterate_mod = require "truto.iterate"

local M = { VERSION = core.VERSION }

local type, tostring, setmetatable, getmetatable, ipairs = type, tostring, setmetatable, getmetatable, ipairs

local Client = client_mod.Client
local MODEL = client_mod.MODEL
local single, check_open, check_name = client_mod.single, client_mod.check_open, options.check_name
local next_item, next_page = iterate_mod.next_item, iterate_mod.next_page
local iterate = iterate_mod.iterate

-- Argument positions of the single-object calls: model, resource, id,
-- body, params, opts (nil when not an argument).
local GENERIC_GET = { model = 1, resource = 2, id = 3, params = 4, opts = 5 }
local GENERIC_CREATE = { model = 1, resource = 2, body = 3, params = 4, opts = 5 }
local GENERIC_UPDATE = { model = 1, resource = 2, id = 3, body = 4, params = 5, opts = 6 }
local CUSTOM_CALL = { body = 4, params = 5, opts = 6 }
local ORG_GET = { id = 1, params = 2, opts = 3 }
local ORG_UPDATE = { id = 1, body = 2, params = 3, opts = 4 }

--- Creates a client. Every default not given here is in `truto.defaults`
-- (one table the client, both transports and the CLI read).
-- @tparam[opt] table opts `token` (default `TRUTO_API_TOKEN`), `base_url`
--   (default `TRUTO_BASE_URL`, else `defaults.base_url`),
--   `integrated_account_id`, `timeout`, `connect_timeout`,
--   `low_speed_limit`, `low_speed_time`, `user_agent`, `headers`, `ca_file`,
--   `proxy` (a URL, or false to ignore the environment), `verify_tls` (true),
--   `allow_insecure`, `max_body`, `max_values`, `big_integers`,
--   `max_retries`, `max_retry_wait`, `retry_statuses`, `on_retry`,
--   `on_wait`, `sleep`, `debug` (a function given each request and answer line),
--   `prefetch` (true), `concurrency`, `rate_limit`, `deadline` (seconds for
--   a whole call), `on_request` and `on_response` (hooks of every attempt),
--   `wrap_transport` (a function given each transport the client makes),
--   `transport` ("curl" | "ngx"; default: picked per call), and for the nginx transport
--   `pool_size`, `keepalive_timeout`, `backlog`, `send_timeout`, `read_timeout`.
-- @treturn client
-- @raise on a missing token, a bad base URL or a bad option
function M.new(opts)
  return client_mod.new("new", opts)
end

--- Gets one object: `GET /unified/<model>/<resource>/<id>`.
-- @string model the unified model, e.g. "user-directory"
-- @string resource e.g. "users"
-- @tparam string|integer id one path segment, escaped
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn[1] table the decoded answer (integers as Lua integers; `{}` for 204)
-- @treturn[2] nil
-- @treturn[2] error the error object: `kind`, `status`, `message`, ...
-- @raise on misuse (argument types, missing account, unencodable params or body)
function Client:get(model, resource, id, params, opts)
  return single(self, "get", "GET", GENERIC_GET, model, resource, id, nil, params, opts)
end

--- Creates an object: `POST /unified/<model>/<resource>` with a JSON body.
-- @string model the unified model, e.g. "user-directory"
-- @string resource e.g. "users"
-- @tparam table body sent as JSON (see `array` for empty arrays)
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn[1] table the decoded answer (integers as Lua integers; `{}` for 204)
-- @treturn[2] nil
-- @treturn[2] error the error object: `kind`, `status`, `message`, ...
-- @raise on misuse (argument types, missing account, unencodable params or body)
function Client:create(model, resource, body, params, opts)
  return single(self, "create", "POST", GENERIC_CREATE, model, resource, nil, body, params, opts)
end

--- Updates an object: `PATCH /unified/<model>/<resource>/<id>` with a JSON body.
-- @string model the unified model, e.g. "user-directory"
-- @string resource e.g. "users"
-- @tparam string|integer id one path segment, escaped
-- @tparam table body sent as JSON (see `array` for empty arrays)
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn[1] table the decoded answer (integers as Lua integers; `{}` for 204)
-- @treturn[2] nil
-- @treturn[2] error the error object: `kind`, `status`, `message`, ...
-- @raise on misuse (argument types, missing account, unencodable params or body)
function Client:update(model, resource, id, body, params, opts)
  return single(self, "update", "PATCH", GENERIC_UPDATE, model, resource, id, body, params, opts)
end

--- Deletes an object: `DELETE /unified/<model>/<resource>/<id>`. A 204 gives `{}`.
-- @string model the unified model, e.g. "user-directory"
-- @string resource e.g. "users"
-- @tparam string|integer id one path segment, escaped
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn[1] table the decoded answer (integers as Lua integers; `{}` for 204)
-- @treturn[2] nil
-- @treturn[2] error the error object: `kind`, `status`, `message`, ...
-- @raise on misuse (argument types, missing account, unencodable params or body)
function Client:delete(model, resource, id, params, opts)
  return single(self, "delete", "DELETE", GENERIC_GET, model, resource, id, nil, params, opts)
end

--- Calls a custom method: `POST /unified/<model>/<resource>/<method>`.
-- `body` defaults to `{}`; the answer is Truto's `{ result = ... }`.
-- @string model the unified model, e.g. "user-directory"
-- @string resource e.g. "users"
-- @string method the custom method, e.g. "downgrade"
-- @tparam[opt] table body sent as JSON
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn[1] table the decoded answer (integers as Lua integers; `{}` for 204)
-- @treturn[2] nil
-- @treturn[2] error the error object: `kind`, `status`, `message`, ...
-- @raise on misuse (argument types, missing account, unencodable params or body)
function Client:call(model, resource, method, body, params, opts)
  check_open(self, "call")
  check_name("call", 1, model, "model")
  check_name("call", 2, resource, "resource")
  check_name("call", 3, method, "method")
  if body == nil then body = {} end
  return single(self, "call", "POST", CUSTOM_CALL, model, resource .. "/" .. method, nil, body, params, opts)
end

--- Gets an organization: `GET /unified/user-directory/organizations/<id>`.
-- @tparam string|integer id one path segment, escaped
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn[1] table the decoded answer (integers as Lua integers; `{}` for 204)
-- @treturn[2] nil
-- @treturn[2] error the error object: `kind`, `status`, `message`, ...
-- @raise on misuse (argument types, missing account, unencodable params or body)
function Client:get_organization(id, params, opts)
  return single(self, "get_organization", "GET", ORG_GET, MODEL, "organizations", id, nil, params, opts)
end

--- Updates an organization (PATCH); `body` is a Lua table sent as JSON.
-- @tparam string|integer id one path segment, escaped
-- @tparam table body sent as JSON (see `array` for empty arrays)
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn[1] table the decoded answer (integers as Lua integers; `{}` for 204)
-- @treturn[2] nil
-- @treturn[2] error the error object: `kind`, `status`, `message`, ...
-- @raise on misuse (argument types, missing account, unencodable params or body)
function Client:update_organization(id, body, params, opts)
  return single(self, "update_organization", "PATCH", ORG_UPDATE, MODEL, "organizations", id, body, params, opts)
end

--- Deletes an organization. A 204 answer gives `{}`.
-- @tparam string|integer id one path segment, escaped
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn[1] table the decoded answer (integers as Lua integers; `{}` for 204)
-- @treturn[2] nil
-- @treturn[2] error the error object: `kind`, `status`, `message`, ...
-- @raise on misuse (argument types, missing account, unencodable params or body)
function Client:delete_organization(id, params, opts)
  return single(self, "delete_organization", "DELETE", ORG_GET, MODEL, "organizations", id, nil, params, opts)
end

--- The escape hatch: any request under the base URL.
-- @tparam table req `method` (default GET; sent as named), `path` ("/..."),
--   `query` (table), `body` (table sent as JSON, or a string sent as is; not
--   with GET or HEAD), `headers` (table; they replace the client's by name)
-- @tparam[opt] table opts per-call options (see the README)
-- @treturn table `{ status, headers, body, json, attempts }` for any HTTP status
--   (`json` is the decoded body when it is JSON; HEAD gives `body = ""`)
-- @treturn error on a transport failure
function Client:request(req, opts)
  return client_mod.request(self, req, opts)
end

--- Iterates over every item of every page of a list.
-- With `integrated_account_id` an array of ids, reads the accounts at once
-- (at most `concurrency` requests in flight) and yields `item, account_id`;
-- `opts.on_error = "skip"` collects failing accounts in `state.errors`.
-- With `truto_key_by` it yields `item, key`.
-- @usage for user in client:list("user-directory", "users", { integrated_account_id = id }) do ... end
-- @string model the unified model, e.g. "user-directory"
-- @string resource e.g. "users"
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call (`prefetch`, `concurrency`, `on_error`, retries, ...)
-- @treturn function,table,nil,table a generic-for iterator; the fourth value closes it on `break`
-- @raise the error object when a page fails (inside the loop); misuse at once
function Client:list(model, resource, params, opts)
  check_open(self, "list")
  check_name("list", 1, model, "model")
  check_name("list", 2, resource, "resource")
  return iterate(self, "list", next_item, model, resource, params, 3, opts)
end

--- Iterates over the pages of a list: `page.result`, `page.next_cursor`.
-- @string model the unified model, e.g. "user-directory"
-- @string resource e.g. "users"
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn function,table,nil,table a generic-for iterator; the fourth value closes it on `break`
-- @raise the error object when a page fails (inside the loop); misuse at once
function Client:pages(model, resource, params, opts)
  check_open(self, "pages")
  check_name("pages", 1, model, "model")
  check_name("pages", 2, resource, "resource")
  return iterate(self, "pages", next_page, model, resource, params, 3, opts)
end

--- Iterates over every user of the account (or accounts, see `list`).
-- @usage for user in client:users { integrated_account_id = id, status = "active" } do ... end
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn function,table,nil,table a generic-for iterator; the fourth value closes it on `break`
-- @raise the error object when a page fails (inside the loop); misuse at once
function Client:users(params, opts)
  return iterate(self, "users", next_item, MODEL, "users", params, 1, opts)
end

--- Iterates over every group of the account (or accounts, see `list`).
-- @tparam[opt] table params query parameters (`integrated_account_id` unless the client has one)
-- @tparam[opt] table opts options for this call only (`timeout`, `max_retries`, `idempotency_key`, ...)
-- @treturn function,table,nil,table a generic-for iterator; the fourth value closes it on `break`
-- @raise the error object when a page fails (inside the loop); misuse at once
function Client:groups(params, opts)
  return iterate(self, "groups", next_item, MODEL, "groups", params, 1, opts)
end

--- Iterates over what changed since the last run: `{ op, id, item, account_id }`
-- (see truto.sync and the README's "Sync"). truto.sync is loaded on first use.
-- @string resource e.g. "users"
-- @tparam[opt] table params query parameters; `integrated_account_id` an id or an array of ids
-- @tparam table opts `state` (a path, or a store), `full`, `incremental`, `overlap`, `full_every`, ...
-- @treturn function,table,nil,table a generic-for iterator; the second value has `commit()` and `stats`
-- @raise the error object (`locked`, a page's error) and misuse
function Client:sync(resource, params, opts)
  check_open(self, "sync")
  return require("truto.sync").sync(self, resource, params, opts)
end

-- ------------------------------------------------------------------------
-- The module-level default client, built from the environment.
-- ------------------------------------------------------------------------

local default_client

-- The default client, made on first use; without one, the module function
-- `fname` raises a misuse error (truto.is_misuse is true for it).
local function default(fname)
  if not default_client then
    local ok, client = pcall(M.new)
    if not ok then
      local why = options.misuse_message(client) or tostring(client)
      options.argerror(fname, 1,
        "no default client (" .. why .. "); call truto.configure{ token = ... } first")
    end
    default_client = client
  end
  return default_client
end

--- Replaces the default client's options (the module functions use it).
-- @tparam table opts as for `new`
-- @treturn client the new default client
-- @raise as `new`
function M.configure(opts)
  default_client = client_mod.new("configure", opts)
  return default_client
end

for _, name in ipairs { "users", "groups", "get_organization", "update_organization",
  "delete_organization", "list", "pages", "get", "create", "update", "delete", "call", "request" } do
  local method = Client[name]
  M[name] = function(...) return method(default(name), ...) end
end

--- Marks a table as a JSON array, so that an empty one is sent as `[]`.
-- @tparam[opt] table t the table (a new one when nil)
-- @treturn table t
-- @raise when t is not a table
function M.array(t)
  if t == nil then t = {} end
  if type(t) ~= "table" then options.typeerror("array", 1, "table", t) end
  return setmetatable(t, core.array_mt)
end

--- Encodes a Lua value as JSON, as request bodies are: a table marked by
-- `array` (or decoded from a JSON array) is an array, even when empty.
-- @param value a table, string, number, boolean or `truto.null`
-- @treturn[1] string the JSON text
-- @treturn[2] nil
-- @treturn[2] string why it cannot be encoded
function M.encode_json(value)
  return core.encode_json(value)
end

--- Decodes JSON text as answers are decoded (integers exact, arrays marked).
-- @string text JSON text
-- @tparam[opt] table opts `big_integers`, `max_values` (as the client options)
-- @treturn[1] any the value
-- @treturn[2] nil
-- @treturn[2] error an error object of kind "decode" saying why the text is not JSON
function M.decode_json(text, opts)
  if type(text) ~= "string" then options.typeerror("decode_json", 1, "string", text) end
  return core.decode_json(text, opts)
end

--- Whether v is a lua-truto error object.
-- @param v any value
-- @treturn boolean
function M.is_error(v)
  return getmetatable(v) == core.error_mt
end

--- Whether v is a misuse error (the string a call raises on bad arguments).
-- @param v any value
-- @treturn boolean
function M.is_misuse(v)
  return options.misuse_message(v) ~= nil
end

M.Client = Client
M.null = require("cjson").null
--- An exact 64-bit integer (`big_integers = "int64"` on LuaJIT): `truto.int64("9007199254740993")`.
M.int64 = core.int64
-- truto.webhook is loaded when first used: most programs never receive one, and compiling it
-- was 5 % of `require "truto"`.
setmetatable(M, { __index = function(t, k)
  if k ~= "webhook" then return nil end
  local webhook = require "truto.webhook"
  rawset(t, "webhook", webhook)
  return webhook
end })
return M
