--- `lua-truto webhook verify|listen`, and the `--webhook` flags of `lua-truto mock`.
--
-- verify: checks one delivery read from standard input against `--signature` (exit 0 and
-- the event as one JSON line on stdout; 1 and the reason on stderr; 2 on a usage error).
-- listen: a local plain-HTTP receiver (LuaSocket) for development that verifies each
-- delivery as truto.webhook.ngx_handler does, prints each event as one JSON line (ndjson)
-- and answers as Truto expects. The options are parsed here, not by truto.cli.args.
local truto = require "truto"
local sys_mod = require "truto.cli.sys"

local M = {}

local format = string.format
local webhook = truto.webhook
local EXIT_OK, EXIT_REFUSED, EXIT_USAGE = sys_mod.EXIT_OK, 1, sys_mod.EXIT_USAGE

M.MAX_BODY = 16 * 1024 * 1024

M.HELP = [==[
Usage: lua-truto webhook verify --secret-file FILE --signature 'format=sha256,v=HEX'
                                [--tolerance SECONDS] < BODY
       lua-truto webhook listen --port N --secret-file FILE [--tolerance SECONDS]
                                [--max-events N]

verify checks one delivery of a Truto webhook: BODY (standard input, the raw
bytes) against the X-Truto-Signature value, keyed with the webhook's secret
(the file's trailing newline is ignored). Exit 0 and the event as one JSON
line on standard output; exit 1 and the reason (signature, format, stale,
decode) on standard error; exit 2 on a usage error.

listen runs a plain-HTTP receiver on 127.0.0.1:N for development (put it
behind a tunnel to receive Truto's deliveries, or point `lua-truto mock
--webhook http://127.0.0.1:N/ --webhook-secret S` at it). Each verified event
is printed as one JSON line (ndjson); it answers 200 (also to a duplicate),
401 to a bad signature, 400 to a bad or stale body. With --max-events N it
exits after N events. Needs LuaSocket (Debian: lua-socket).

--tolerance SECONDS  refuse an event whose created_at is further than this
                     from now, in either direction (default 300; 0: no check)
]==]

-- Options: name -> field.
local OPTIONS = {
  verify = { ["--secret-file"] = "secret_file", ["--signature"] = "signature", ["--tolerance"] = "tolerance" },
  listen = { ["--secret-file"] = "secret_file", ["--port"] = "port", ["--tolerance"] = "tolerance",
    ["--max-events"] = "max_events" },
}

local function usage(sys, msg) sys:usage(msg, "webhook") end

local function parse(sys, command, argv)
  local opts, i = {}, 3
  while i <= #argv do
    local a = argv[i]
    local name, inline = a:match("^(%-%-[^=]+)=(.*)$")
    name = name or a
    if name == "-h" or name == "--help" then
      opts.help = true
      i = i + 1
    else
      local field = OPTIONS[command][name]
      if not field then
        usage(sys, name:sub(1, 1) == "-" and format("unknown option '%s' for webhook %s", name, command)
          or format("unexpected argument '%s'", name))
      end
      local value = inline
      if not value then
        i = i + 1
        value = argv[i]
        if value == nil then usage(sys, format("%s needs a value", name)) end
      end
      if opts[field] then usage(sys, format("%s given twice", name)) end
      opts[field] = value
      i = i + 1
    end
  end
  return opts
end

local function read_secret(sys, path)
  if not path then usage(sys, "--secret-file FILE is required") end
  local f, err = io.open(path, "rb")
  if not f then usage(sys, "--secret-file: " .. tostring(err)) end
  local secret = f:read("a") or ""
  f:close()
  secret = secret:gsub("\r?\n$", "")
  if secret == "" then usage(sys, "--secret-file " .. path .. " is empty") end
  return secret
end

local function number_option(sys, value, name, min)
  if value == nil then return nil end
  local n = tonumber(value)
  if not n or n ~= n or n < min or n == math.huge or not value:match("^[%d.]+$") then
    usage(sys, format("%s expects a number >= %d, got '%s'", name, min, value))
  end
  return n
end

local function tolerance_of(sys, opts)
  local t = number_option(sys, opts.tolerance, "--tolerance", 0)
  if t == 0 then return false end
  return t
end

local function event_line(event)
  return assert(truto.encode_json(event)) .. "\n"
end

---------------------------------------------------------------------------
-- verify
---------------------------------------------------------------------------

local function verify(sys, opts)
  local secret = read_secret(sys, opts.secret_file)
  if not opts.signature then usage(sys, "--signature 'format=sha256,v=...' is required") end
  local tolerance = tolerance_of(sys, opts)
  local body = sys.stdin:read(M.MAX_BODY + 1) or ""
  if #body > M.MAX_BODY then usage(sys, format("the body holds more than %d MiB", M.MAX_BODY // 1048576)) end
  local event, err = webhook.verify(body, opts.signature, secret, { tolerance = tolerance, seen = false })
  if not event then
    sys:say("refused: ", err.message)
    return EXIT_REFUSED
  end
  sys:write(event_line(event))
  return EXIT_OK
end

---------------------------------------------------------------------------
-- listen
---------------------------------------------------------------------------

local REASON = { [200] = "OK", [400] = "Bad Request", [401] = "Unauthorized", [404] = "Not Found",
  [405] = "Method Not Allowed", [411] = "Length Required", [413] = "Payload Too Large", [503] = "Service Unavailable" }

local function answer(conn, status, text)
  conn:send(format("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    .. "Connection: close\r\n\r\n%s", status, REASON[status] or "Error", #text, text))
end

-- The request on conn: method, headers (names in lower case; a repeated one as a table), body;
-- or nil and the status to answer.
local function read_request(conn)
  local line = conn:receive("*l")
  if not line then return nil end
  local method = line:match("^(%u+) %S+ HTTP/1%.[01]$")
  if not method then return nil, 400 end
  local headers, count = {}, 0
  while true do
    local h = conn:receive("*l")
    if not h then return nil end
    if h == "" then break end
    count = count + 1
    if count > 100 then return nil, 400 end
    local name, value = h:match("^([^:%s]+):[ \t]*(.-)[ \t]*$")
    if not name then return nil, 400 end
    name = name:lower()
    local old = headers[name]
    if old == nil then headers[name] = value
    elseif type(old) == "table" then old[#old + 1] = value
    else headers[name] = { old, value } end
  end
  if method ~= "POST" then return nil, 405 end
  if headers.expect == "100-continue" then conn:send("HTTP/1.1 100 Continue\r\n\r\n") end
  local parts = {}
  if type(headers["transfer-encoding"]) == "string" and headers["transfer-encoding"]:lower() == "chunked" then
    local total = 0
    while true do
      local size = tonumber((conn:receive("*l") or ""):match("^(%x+)"), 16)
      if not size then return nil, 400 end
      if size == 0 then break end
      total = total + size
      if total > M.MAX_BODY then return nil, 413 end
      parts[#parts + 1] = conn:receive(size)
      if not parts[#parts] or conn:receive("*l") ~= "" then return nil, 400 end
    end
  else
    local length = tonumber(type(headers["content-length"]) == "string" and headers["content-length"]:match("^%d+$"))
    if not length then return nil, 411 end
    if length > M.MAX_BODY then return nil, 413 end
    parts[1] = length > 0 and conn:receive(length) or ""
    if not parts[1] then return nil end
  end
  return { method = method, headers = headers, body = table.concat(parts) }
end

local function serve_one(sys, conn, secret, verify_opts)
  conn:settimeout(10)
  local req, status = read_request(conn)
  if not req then
    if status then answer(conn, status, '{"ok":false}') end
    return false
  end
  local event, err = webhook.verify(req.body, req.headers["x-truto-signature"], secret, verify_opts)
  if not event then
    local code = webhook.STATUS[err.reason] or 400
    sys:say(err.reason == "duplicate" and "duplicate: " or "refused: ", err.message)
    answer(conn, code, format('{"ok":%s,"reason":"%s"}', code == 200 and "true" or "false", err.reason))
    return false
  end
  answer(conn, 200, '{"ok":true}')
  sys:write(event_line(event))
  sys:flush()
  return true
end

local function listen(sys, opts)
  local secret = read_secret(sys, opts.secret_file)
  if not opts.port then usage(sys, "--port N is required") end
  local port = number_option(sys, opts.port, "--port", 1)
  if port > 65535 or port ~= math.floor(port) then usage(sys, "--port must be an integer from 1 to 65535") end
  local max_events = number_option(sys, opts.max_events, "--max-events", 1)
  local verify_opts = { tolerance = tolerance_of(sys, opts), seen = webhook.memory_store() }
  local ok, socket = pcall(require, "socket")
  if not ok then sys:fail(EXIT_USAGE, "webhook listen needs LuaSocket (Debian: lua-socket)") end
  local server, err = socket.bind("127.0.0.1", math.floor(port))
  if not server then sys:fail(EXIT_REFUSED, format("cannot listen on 127.0.0.1:%d: %s", port, tostring(err))) end
  sys:say(format("receiving webhooks on http://127.0.0.1:%d/ (Ctrl-C ends)", port))
  local events = 0
  while not max_events or events < max_events do
    local conn = server:accept()
    if conn then
      local served, got = pcall(serve_one, sys, conn, secret, verify_opts)
      conn:close()
      if not served then
        if sys_mod.is_exit(got) then error(got, 0) end
        sys:say("cannot serve a request: ", tostring(got))
      elseif got then
        events = events + 1
      end
    end
  end
  server:close()
  return EXIT_OK
end

---------------------------------------------------------------------------
-- Entry points
---------------------------------------------------------------------------

--- `lua-truto webhook ...` (and `lua-truto help webhook`); argv is the whole command line.
function M.main(sys, argv)
  if argv[1] == "help" or argv[2] == nil or argv[2] == "-h" or argv[2] == "--help" then
    sys:write(M.HELP)
    return argv[2] == nil and argv[1] ~= "help" and EXIT_USAGE or EXIT_OK
  end
  local command = argv[2]
  if not OPTIONS[command] then usage(sys, format("unknown webhook command '%s' (verify, listen)", command)) end
  local opts = parse(sys, command, argv)
  if opts.help then
    sys:write(M.HELP)
    return EXIT_OK
  end
  if command == "verify" then return verify(sys, opts) end
  return listen(sys, opts)
end

--- The arguments `lua-truto mock` adds to spec/mock/serve for --webhook URL --webhook-secret S.
function M.mock_arguments(sys, opts)
  if opts.webhook == nil and opts.webhook_secret == nil then return "" end
  if not opts.webhook or not opts.webhook_secret then
    sys:usage("--webhook URL and --webhook-secret SECRET go together", "mock")
  end
  if not opts.webhook:match("^https?://[%w.%-%[%]:]+[:/]?") then
    sys:usage(format("--webhook must be an http:// or https:// URL, got '%s'", opts.webhook), "mock")
  end
  if opts.webhook_secret == "" or opts.webhook_secret:find("[%c%]]") or opts.webhook:find("[%c%]%s]") then
    sys:usage("--webhook and --webhook-secret must not hold spaces, control characters or ']'", "mock")
  end
  return " --webhook " .. sys_mod.quote(opts.webhook) .. " --webhook-secret " .. sys_mod.quote(opts.webhook_secret)
end

--- `lua-truto webhook WORDS...` (truto.cli's M.COMMANDS): main with the full argv.
function M.run(sys, words)
  return M.main(sys, { "webhook", table.unpack(words) })
end

return M
