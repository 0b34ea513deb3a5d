--- lua-truto inside nginx (OpenResty, or nginx with lua-nginx-module), without blocking it.
--
-- The handlers behind examples/nginx.conf; `make demo-nginx` runs them against the mock Truto
-- server. Inside a handler that may yield (rewrite, access, content, ngx.timer.at) each call
-- takes the nginx transport (module truto.ngx: cosockets, keep-alive through nginx's pool): while
-- one request waits for Truto, the worker serves the others. Where nginx cannot yield (set_by_lua,
-- header_filter, log...) a call is refused (do the work in ngx.timer.at(0, ...) instead).
--
-- Settings come from the environment, which nginx.conf passes on with `env`: TRUTO_API_TOKEN,
-- TRUTO_BASE_URL (default https://api.truto.one) and TRUTO_ACCOUNT (or ?account=...).
--
--   GET    /users?account=ID[&status=active][&limit=N]   {"count":40,"ids":["u001",...]}
--   GET    /organizations/ID?account=ID                   the organization
--   PATCH  /organizations/ID?account=ID  (JSON body)      the organization, updated
--   DELETE /organizations/ID?account=ID                   {"deleted":true,...} (204 from Truto: {})
--   GET    /me   (X-User-Email: ...)                      403 unless an active user of the account
--   POST   /sync?account=ID  then  GET /sync              a background count (ngx.timer.at)
--
-- A Truto error becomes an HTTP status (see `status_for`) and a JSON body
-- {"error":kind,"status":truto_status,"message":...}. `?transport=curl` (nginx.conf maps it to
-- $truto_transport) runs the same handler on libcurl, to compare.
-- luacheck: std luajit+ngx_lua
local truto = require "truto"
local cjson = require "cjson.safe"

local M = {}

-- One client per worker, made once in init_worker_by_lua (M.init_worker) and used by every
-- handler: each call picks its transport where it runs (the nginx transport in content,
-- access, rewrite and timers), and nginx pools the connections per worker. The nginx transport
-- also takes the client options pool_size (32 idle connections), keepalive_timeout (60 s),
-- backlog (none: a number caps the connections at pool_size, and that many more callers wait
-- for one), send_timeout and read_timeout. `?transport=curl` gets a second client, made on
-- first use, that always uses libcurl.
local clients = {}

--- init_worker_by_lua: the worker's client (token and base URL from the environment).
function M.init_worker()
  clients.auto = truto.new {}
end

local function client(kind)
  if kind == "" then kind = nil end
  local key = kind or "auto"
  local c = clients[key]
  if not c then -- without init_worker_by_lua, or ?transport=...
    c = truto.new { transport = kind }
    clients[key] = c
  end
  return c
end

-- The transport a request asks for ($truto_transport: "ngx", "curl" or empty for automatic).
local function requested_transport()
  return ngx.var.truto_transport
end

local function account()
  return ngx.var.arg_account or os.getenv("TRUTO_ACCOUNT")
end

local function send_json(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(value))
  return ngx.exit(status)
end

--- A Truto error -> the status this gateway answers with.
function M.status_for(err)
  if err.kind == "timeout" then return 504 end -- Truto too slow
  if err.kind ~= "http" then return 502 end -- no usable answer: transport, decode, loop
  local status = err.status
  if status == 401 or status == 403 then return 502 end -- our token: not the caller's fault
  if status == 429 then return 429 end -- slow down (Retry-After is passed on)
  if status == 503 then return 503 end -- the integrated account is blocked
  if status >= 500 then return 502 end
  return status -- 400, 404, 409, 422...: the caller asked for something wrong
end

local function fail(err)
  if err.retry_after then ngx.header["Retry-After"] = tostring(math.ceil(err.retry_after)) end
  return send_json(M.status_for(err), { error = err.kind, status = err.status, message = err.message })
end

local function need_account()
  local id = account()
  if not id or id == "" then
    send_json(400, { error = "usage", message = "?account=... (or TRUTO_ACCOUNT) is required" })
  end
  return id
end

--- GET /users: every user of the account, page after page.
function M.users()
  local params = { integrated_account_id = need_account(), status = ngx.var.arg_status,
    limit = tonumber(ngx.var.arg_limit) }
  local c = client(requested_transport())
  local ids = {}
  local ok, err = pcall(function()
    for user in c:users(params) do ids[#ids + 1] = user.id end
  end)
  if not ok then
    if truto.is_error(err) then return fail(err) end
    error(err, 0)
  end
  return send_json(200, { count = #ids, ids = ids })
end

--- GET, PATCH, DELETE /organizations/<id>. The id is taken from the raw request line, so that
-- an escaped "/" stays inside it.
function M.organization()
  local raw = (ngx.var.request_uri .. "?"):match("^/organizations/([^/?]+)%?")
  if not raw then return send_json(404, { error = "usage", message = "/organizations/<id>" }) end
  local id = ngx.unescape_uri(raw)
  local params = { integrated_account_id = need_account() }
  local c = client(requested_transport())
  local method = ngx.req.get_method()
  local result, err
  if method == "GET" then
    result, err = c:get_organization(id, params)
  elseif method == "PATCH" then
    ngx.req.read_body()
    local body = cjson.decode(ngx.req.get_body_data() or "")
    if type(body) ~= "table" then
      return send_json(400, { error = "usage", message = "a JSON object body is required" })
    end
    result, err = c:update_organization(id, body, params)
  elseif method == "DELETE" then
    result, err = c:delete_organization(id, params)
  else
    ngx.header["Allow"] = "GET, PATCH, DELETE"
    return send_json(405, { error = "usage", message = "GET, PATCH or DELETE" })
  end
  if not result then return fail(err) end
  return send_json(200, result)
end

--- access_by_lua: lets through only active users of the directory, by X-User-Email.
function M.only_active_users()
  local email = ngx.var.http_x_user_email
  if not email or email == "" then return ngx.exit(401) end
  local params = { integrated_account_id = need_account(), email = email, status = "active" }
  local iter, state = client(requested_transport()):users(params)
  -- The first match is enough. LuaJIT has no to-be-closed variables: close the iterator by
  -- hand, which also cancels a page read ahead.
  local ok, found = pcall(iter, state)
  state:close()
  if not ok then
    if truto.is_error(found) then return fail(found) end
    error(found, 0)
  end
  if not found then return ngx.exit(403) end
  ngx.req.set_header("X-User-Id", found.id)
end

--- POST /sync: counts the account's users in the background (ngx.timer.at) and
-- answers at once; GET /sync tells how far it got. Needs `lua_shared_dict truto_sync`.
function M.sync()
  local dict = ngx.shared.truto_sync
  if ngx.req.get_method() ~= "POST" then
    return send_json(200, { state = dict:get("state") or "idle", count = dict:get("count"),
      error = dict:get("error") })
  end
  local id = need_account()
  local kind = requested_transport()
  dict:set("state", "running")
  dict:delete("count")
  dict:delete("error")
  local ok, err = ngx.timer.at(0, function(premature)
    if premature then return end
    local n = 0
    local done, failure = pcall(function()
      for _ in client(kind):users { integrated_account_id = id } do n = n + 1 end
    end)
    if done then
      dict:set("count", n)
      dict:set("state", "done")
    else
      dict:set("error", tostring(failure))
      dict:set("state", "failed")
    end
  end)
  if not ok then return send_json(500, { error = "timer", message = err }) end
  return send_json(202, { state = "running" })
end

return M
