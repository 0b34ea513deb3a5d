-- The mock's signed webhook deliveries (`serve --webhook URL --webhook-secret S`): every write
-- the mock accepts (POST on a collection, PATCH or DELETE on an item; not a custom method, not
-- an Idempotency-Key replay) is POSTed to URL from an ngx.timer as Truto sends it:
--   { id, event = "record:created" | "record:updated" | "record:deleted",
--     payload = { integrated_account_id, resource = "user-directory/<resource>", record = <item> },
--     environment_id, webhook_id, created_at }
-- with `X-Truto-Signature: format=sha256,v=<HMAC-SHA256 of the body, hex>`. A delivery the
-- receiver does not answer with a 2xx is sent again 3 times, 1, 2 and 4 s apart. Each attempt is
-- a JSON line in DIR/webhooks.log: { id, event, attempt, status | error, time }.
--
-- The HMAC is OpenSSL's libcrypto through LuaJIT's FFI: the mock runs in nginx without
-- lua-truto's module (and is a second implementation the module's verify is checked against).

local ffi = require "ffi"
local json = require "truto_mock.json"
local state = require "truto_mock.state"

local webhooks = {}

local RETRY_DELAYS = { 1, 2, 4 } -- seconds before the 2nd, 3rd and 4th attempt
local EVENTS = { POST = "record:created", PATCH = "record:updated", DELETE = "record:deleted" }
local PREFIX = "/unified/user-directory/"

local config = {}

local crypto
local function libcrypto()
  if crypto then return crypto end
  pcall(ffi.cdef, [[
    typedef struct evp_md_st EVP_MD;
    const EVP_MD *EVP_sha256(void);
    unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len, const unsigned char *d,
                        size_t n, unsigned char *md, unsigned int *md_len);
  ]])
  for _, name in ipairs({ "crypto", "libcrypto.so.3", "libcrypto.so.1.1" }) do
    local ok, lib = pcall(ffi.load, name)
    if ok then
      crypto = lib
      return lib
    end
  end
  error("mock webhooks: libcrypto not found")
end

--- The X-Truto-Signature of body: format=sha256,v=<hex>.
function webhooks.sign(body, secret)
  local lib = libcrypto()
  local md, len = ffi.new("unsigned char[32]"), ffi.new("unsigned int[1]")
  assert(lib.HMAC(lib.EVP_sha256(), secret, #secret, body, #body, md, len) ~= nil, "HMAC failed")
  local hex = {}
  for i = 0, 31 do hex[#hex + 1] = string.format("%02x", md[i]) end
  return "format=sha256,v=" .. table.concat(hex)
end

function webhooks.configure(opts)
  config.dir = opts.dir
  config.url = opts.webhook ~= "" and opts.webhook or nil
  config.secret = opts.webhook_secret
end

local function log(entry)
  local f = io.open(config.dir .. "/webhooks.log", "a")
  if not f then return end
  f:write(json.encode(entry), "\n")
  f:close()
end

-- POSTs body to the URL once: the HTTP status, or nil and the error.
local function post(body, signature)
  local scheme, host, port, path = config.url:match("^(https?)://([^/:]+):?(%d*)(.*)$")
  if not scheme then return nil, "bad URL" end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if path == "" then path = "/" end
  local sock = ngx.socket.tcp()
  sock:settimeouts(5000, 10000, 10000)
  local ok, err = sock:connect(host, port)
  if not ok then return nil, "connect: " .. tostring(err) end
  if scheme == "https" then
    ok, err = sock:sslhandshake(nil, host, false)
    if not ok then sock:close() return nil, "tls: " .. tostring(err) end
  end
  ok, err = sock:send(table.concat({
    "POST " .. path .. " HTTP/1.1", "Host: " .. host .. ":" .. port, "User-Agent: truto-mock-webhooks",
    "Content-Type: application/json", "Content-Length: " .. #body, "X-Truto-Signature: " .. signature,
    "Connection: close", "", body }, "\r\n"))
  if not ok then sock:close() return nil, "send: " .. tostring(err) end
  local line
  line, err = sock:receive("*l")
  sock:close()
  if not line then return nil, "receive: " .. tostring(err) end
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  if not status then return nil, "not HTTP: " .. line:sub(1, 60) end
  return status
end

local function deliver(premature, delivery, attempt)
  if premature then return end
  local status, err = post(delivery.body, delivery.signature)
  ngx.update_time()
  log({ id = delivery.id, event = delivery.event, attempt = attempt, status = status, error = err, time = ngx.now() })
  if status and status >= 200 and status < 300 then return end
  local delay = RETRY_DELAYS[attempt]
  if delay then ngx.timer.at(delay, deliver, delivery, attempt + 1) end
end

local function iso_now()
  ngx.update_time()
  local now = ngx.now()
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(now)) .. string.format(".%03dZ", math.floor(now * 1000) % 1000)
end

-- The record of a write's answer: the item, or { id } when the answer holds none.
local function record_of(resp, id)
  local item = resp.body and json.decode(resp.body)
  if type(item) ~= "table" or item.deleted ~= nil then return { id = id } end
  return item
end

--- Called with every request and its response (before it is sent): queues the delivery of a write.
function webhooks.after(req, resp)
  if not config.url or type(resp) ~= "table" or resp.status >= 300 then return end
  if resp.headers and resp.headers["Idempotent-Replayed"] then return end
  local event = EVENTS[req.method]
  local rest = req.path:sub(1, #PREFIX) == PREFIX and req.path:sub(#PREFIX + 1) or nil
  if not event or not rest then return end
  local resource, id = rest:match("^([^/]+)/([^/]+)$")
  if (req.method == "POST") == (id ~= nil) then return end -- a create has no id, the others have one
  resource = resource or rest
  local body = json.encode({
    id = string.format("evt-%d-%s", math.floor(ngx.now() * 1000), state.new_id("webhook-event")), event = event,
    payload = { integrated_account_id = req.args.integrated_account_id, resource = "user-directory/" .. resource,
      record = record_of(resp, id) },
    environment_id = "mock-environment", webhook_id = "mock-webhook", created_at = iso_now(),
  })
  local delivery = { id = json.decode(body).id, event = event, body = body,
    signature = webhooks.sign(body, config.secret) }
  local ok, err = ngx.timer.at(0, deliver, delivery, 1)
  if not ok then ngx.log(ngx.ERR, "mock webhooks: cannot queue a delivery: ", err) end
end

return webhooks
