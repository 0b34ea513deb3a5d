--- lua-truto, the command line: `require("truto.cli").main(arg)`.
--
-- main(argv[, sys]) -> exit code. `sys` (truto.cli.sys) carries the
-- standard streams and the environment, so a spec can run the whole command
-- line in-process. The modules beside this one own: args (options, -q),
-- config (the config file, profiles, the token), output (formats), text
-- (terminal-safe text and widths), json, progress, commands, help.
local truto = require "truto"
local sys_mod = require "truto.cli.sys"
local args = require "truto.cli.args"
local config = require "truto.cli.config"
local commands = require "truto.cli.commands"
local output = require "truto.cli.output"
local json = require "truto.cli.json"
local help = require "truto.cli.help"
local text = require "truto.cli.text"
local stream = require "truto.cli.stream"

local M = {}

local format = string.format
local EXIT_OK, EXIT_USAGE = sys_mod.EXIT_OK, sys_mod.EXIT_USAGE

M.MAX_BODY = 10 * 1024 * 1024
local RESPONSE_FORMATS = { unified = true, raw = true, normalized = true, stream = true, debug = true }

-- The message of a misuse error raised by the module: the structured
-- error's `message`, else the text inside "bad argument #N to 'f' (...)".
local function misuse_message(e)
  if type(e) == "table" and e.kind == "misuse" and e.message then return tostring(e.message) end
  if type(e) == "string" then
    return e:match("bad argument #%d+ to '[^']*' %((.*)%)$")
  end
  return nil
end

-- The command line's names for the module's options in its messages
-- ("option 'max_retries': ..." is about --retries); `from` names where the
-- token and the base URL came from.
local FLAGS = { max_retries = "--retries", timeout = "--timeout", headers = "-H", idempotency_key = "--idempotency-key",
  integrated_account_id = "-a" }
local function cli_words(msg, from)
  local function flag(name)
    return FLAGS[name] or (name == "token" or name == "base_url") and from[name] or nil
  end
  msg = msg:gsub("option '([%w_]+)'", function(name) return flag(name) end)
  return (msg:gsub("^([%a_]+)", function(name) return flag(name) end))
end

local function file_type(path)
  local line = sys_mod.command_line("stat -L -c '%F %s' -- " .. sys_mod.quote(path))
  if not line then return nil end
  local ftype, size = line:match("^(.-) (%d+)$")
  return ftype, tonumber(size)
end

local function read_body(sys, spec, topic)
  local max = M.MAX_BODY
  local body_text, source
  if spec == "-" then
    source = "standard input"
    local parts, n = {}, 0
    while n <= max do
      local chunk = sys.stdin:read(65536)
      if not chunk then break end
      parts[#parts + 1] = chunk
      n = n + #chunk
    end
    body_text = table.concat(parts)
  elseif spec:sub(1, 1) == "@" then
    local path = spec:sub(2)
    source = path
    local ftype, size = file_type(path)
    if not ftype then
      local _, err = io.open(path, "rb")
      sys:usage("--body: " .. tostring(err or (path .. ": cannot read it")), topic)
    end
    if ftype == "directory" then sys:usage(format("--body @%s: is a directory", path), topic) end
    if ftype ~= "regular file" and ftype ~= "regular empty file" then
      sys:usage(format("--body @%s: not a regular file (%s); use --body - to read a pipe", path, ftype), topic)
    end
    if size > max then
      sys:usage(format("--body @%s: %d bytes, more than the %d MiB a body may have", path, size, max // 1048576), topic)
    end
    local f, err = io.open(path, "rb")
    if not f then sys:usage("--body: " .. tostring(err), topic) end
    body_text = f:read(max + 1) or ""
    f:close()
  else
    body_text = spec
  end
  if #body_text > max then
    sys:usage(format("--body: %s holds more than the %d MiB a body may have", source, max // 1048576), topic)
  end
  local big = json.inexact_integer(body_text)
  if big then
    sys:usage(format("--body: the integer %s cannot be sent exactly (beyond 64 bits); "
      .. "send it as a string", big), topic)
  end
  local body, err = json.decode(body_text)
  if body == nil then
    local hint = ""
    if not source and (body_text:match("%.json$") or file_type(body_text)) then
      hint = format(" (to send the file, write --body @%s)", body_text)
    end
    local why = type(err) == "table" and err.message or tostring(err) -- a decode error object, or text
    sys:usage("--body: " .. json.explain(why, body_text) .. hint, topic)
  end
  if type(body) ~= "table" then sys:usage("--body must be a JSON object or array", topic) end
  return body
end

-- Makes the client's libcurl transport wait in Lua, so that Ctrl-C acts
-- during a request. This reaches into the client (its transport set, or
-- the `_transport` of older modules): the module has no public hook for it.
local function interruptible(sys, client, observe)
  local core_ok, core = pcall(require, "truto.core")
  if not core_ok or not core.sleep then return end
  local sleep = sys.sleep or core.sleep
  local set = rawget(client, "_transports")
  if type(set) == "table" and type(set.make) == "function" and type(set.made) == "table" then
    if set.made.curl then set.made.curl = commands.interruptible(set.made.curl, sleep, observe) end
    local make = set.make
    set.make = function(kind, ...)
      local t = make(kind, ...)
      if kind == "curl" then t = commands.interruptible(t, sleep, observe) end
      return t
    end
    M.transports = function() return set.made end
  elseif rawget(client, "_transport") then
    client._transport = commands.interruptible(client._transport, sleep, observe)
    M.transports = function() return { client._transport } end
  end
end

local function check_base_url(sys, url)
  local scheme = url:match("^(%a[%w+.-]*)://")
  if not scheme or (scheme:lower() ~= "http" and scheme:lower() ~= "https") then
    sys:usage(format("--base-url must be an https:// URL (http:// only for 127.0.0.1, ::1 or localhost), got '%s'",
      url))
  end
end

-- A resource name one or two edits from one of user-directory's is a typo:
-- said here rather than sent (Truto would answer "404 No route").
local function check_resource(sys, resource)
  for _, known in ipairs(args.RESOURCES) do if known == resource then return end end
  local guess = args.suggest(resource, args.RESOURCES)
  if guess then
    sys:usage(format("unknown resource '%s' of user-directory; did you mean '%s'?", resource, guess))
  end
end

-- --response-format stream: the server's lines are written as they came
-- (NDJSON), so nothing that reshapes items applies; list and get only.
local function check_stream(sys, action, seen, topic)
  if action ~= "list" and action ~= "get" then
    sys:usage("--response-format stream applies to list and get", topic)
  end
  for _, field in ipairs { "output", "fields", "max_items", "dry_run" } do
    if seen[field] then
      sys:usage(format("%s does not apply to --response-format stream (its lines are written as they come)",
        seen[field]), topic)
    end
  end
end

-- Asks "yes or no" on the controlling terminal; true for y/yes.
local function confirm(tty, question)
  tty:write(question, " [y/N] ")
  tty:flush()
  local answer = tty:read("l")
  return answer ~= nil and (answer:lower() == "y" or answer:lower() == "yes")
end

--- Commands that are modules of their own: `lua-truto NAME WORDS...` runs
-- require(M.COMMANDS[NAME]).run(sys, { WORDS... }) -> exit code, before any
-- option is parsed (the module owns its words). One entry registers one:
--   M.COMMANDS.webhook = "truto.cli.webhook"
M.COMMANDS = {}

local function run(sys, argv)
  if argv[1] == "webhook" or (argv[1] == "help" and argv[2] == "webhook") then -- its own options
    return require("truto.cli.webhook").main(sys, argv)
  end
  if argv[1] == "sync" then return require("truto.cli.sync").main(sys, argv) end
  if require("truto.cli.mock_change").wanted(argv) then return require("truto.cli.mock_change").main(sys, argv) end
  local own = argv[1] and M.COMMANDS[argv[1]]
  if own then return require(own).run(sys, { table.unpack(argv, 2) }) end
  local opts, positional, seen = args.parse(sys, argv)
  if opts.version then
    sys:write(format("%s %s\n", sys_mod.PROG, tostring(truto.VERSION)))
    return EXIT_OK
  end

  -- help [topic...], and --help anywhere.
  if positional[1] == "help" then
    table.remove(positional, 1)
    opts.help = true
  end
  local first, second = positional[1], positional[2]
  if opts.help then
    local t
    if first == nil then t = help.main
    elseif first == "mock" or first == "completion" or args.ACTIONS[first] then t = help[first]
    elseif second and args.ACTIONS[second] then t = help[second]
    elseif second == nil then t = help.resource(first)
    else sys:usage(format("unknown action '%s'%s", second, args.did_you_mean(second, args.ACTIONS)), first) end
    sys:write(t)
    sys:flush()
    return EXIT_OK
  end
  if first == nil then
    sys.stderr:write(help.main:match("^(.-\n)\n"))
    sys:usage("a resource is required, e.g. users, groups or organizations")
  end

  if first == "completion" then
    for field, name in pairs(seen) do
      if not args.ACCEPTS.completion[field] then
        sys:usage(format("option '%s' does not apply to completion", name), "completion")
      end
    end
    if #positional > 2 then sys:usage(format("unexpected argument '%s'", positional[3]), "completion") end
    return commands.completion(sys, second)
  end

  local action = first == "mock" and "mock" or second or "list"
  local topic = first == "mock" and "mock" or args.ACTIONS[action] and action or first
  if not (args.ACTIONS[action] or action == "mock" and first == "mock") then
    sys:usage(format("unknown action '%s' (list, get, create, update, delete, call)%s", action,
      args.did_you_mean(action, args.ACTIONS)), first)
  end
  for field, name in pairs(seen) do
    if not (args.ACCEPTS[action][field] or (action ~= "mock" and args.COMMON[field])) then
      sys:usage(format("option '%s' does not apply to %s", name, action), topic)
    end
  end
  if action == "mock" then
    if #positional > 1 then sys:usage("mock takes no arguments", "mock") end
    return commands.mock(sys, opts)
  end

  local resource = first
  if not resource:match("^[%w_%-]+$") then
    sys:usage(format("'%s' is not a resource name (letters, digits, '-', '_')", resource))
  end
  local want = args.ARGUMENT[action] and 3 or 2
  if args.ARGUMENT[action] and positional[3] == nil then
    sys:usage(format("%s needs %s", action, args.ARGUMENT[action]), topic)
  end
  if #positional > want then
    sys:usage(format("unexpected argument '%s'", positional[want + 1]), topic)
  end
  local id = positional[3]
  if id == "" then sys:usage(format("%s must not be empty", args.ARGUMENT[action]), topic) end
  if action == "call" and not id:match("^[%w_%-]+$") then
    sys:usage(format("'%s' is not a method name (letters, digits, '-', '_')", id), topic)
  end

  local model = opts.model or "user-directory"
  if not model:match("^[%w_%-]+$") then
    sys:usage(format("'%s' is not a model name (letters, digits, '-', '_')", model))
  end
  if model == "user-directory" then check_resource(sys, resource) end

  -- Query parameters.
  local query, kinds = {}, {}
  for _, spec in ipairs(opts.query) do args.add_query(sys, query, kinds, spec) end
  local function set_query(key, value, option)
    if query[key] ~= nil then
      sys:usage(format("%s and -q %s=... given both", option, key), topic)
    end
    query[key] = value
  end
  if opts.limit then set_query("limit", args.positive_integer(sys, opts.limit, "--limit"), "--limit") end
  if opts.cursor then
    if opts.cursor == "" then sys:usage("--cursor must not be empty", topic) end
    set_query("next_cursor", opts.cursor, "--cursor")
  end
  if opts.response_format then
    if not RESPONSE_FORMATS[opts.response_format] then
      sys:usage(format("--response-format must be unified, raw, normalized, stream or debug, got '%s'",
        opts.response_format), topic)
    end
    set_query("truto_response_format", opts.response_format, "--response-format")
  end
  local streamed = opts.response_format == "stream"
  if streamed then check_stream(sys, action, seen, topic) end
  if opts.account == "" then sys:usage("-a must not be empty", topic) end
  if opts.account and query.integrated_account_id ~= nil then
    sys:usage("-a and -q integrated_account_id=... given both", topic)
  end

  -- Body.
  local body
  if action == "create" or action == "update" then
    if not opts.body then sys:usage(action .. " needs --body JSON (or --body - to read stdin)", topic) end
  end
  if opts.body == "-" and opts.token_file == "-" then
    sys:usage("--body - and --token-file - both read standard input", topic)
  end
  if opts.body then body = read_body(sys, opts.body, topic) end

  -- Output.
  local out_format = opts.output
  if out_format and not output.FORMATS[out_format] then
    sys:usage(format("-o must be %s, got '%s'", output.format_list(), out_format), topic)
  end
  out_format = out_format or (sys:is_tty(1) and "table" or "json")
  local fields = opts.fields and args.split_fields(sys, opts.fields)
  local max_items = opts.max_items and args.positive_integer(sys, opts.max_items, "--max-items")
  local timeout
  if opts.timeout then
    timeout = tonumber(opts.timeout)
    if not timeout or timeout <= 0 or timeout ~= timeout or timeout == math.huge then
      sys:usage(format("--timeout expects a positive number of seconds, got '%s'", opts.timeout))
    end
  end
  local retries
  if opts.retries then
    retries = math.tointeger(tonumber(opts.retries))
    if not retries or retries < 0 or not opts.retries:match("^%d+$") then
      sys:usage(format("--retries expects an integer >= 0, got '%s'", opts.retries))
    end
  end
  local rate_limit
  if opts.rate then
    -- --rate N/S: at most N requests in any S seconds (the account's and the token's budget)
    local n, per = opts.rate:match("^(%d+)/(%d*%.?%d+)$")
    n, per = math.tointeger(tonumber(n)), tonumber(per)
    if not n or n < 1 or n > 1000000 or not per or per <= 0 or per > 86400 then
      sys:usage(format("--rate expects REQUESTS/SECONDS (like 50/10), got '%s'", opts.rate))
    end
    rate_limit = { requests = n, per = per, account = { requests = n, per = per } }
  end
  local headers = #opts.header > 0 and args.headers(sys, opts.header) or nil
  if opts.idempotency_key == "" then sys:usage("--idempotency-key must not be empty", topic) end

  -- Connection settings: flag, environment, config file (profile).
  local token, base_url
  local from = {} -- where the token and the base URL came from, for messages
  if opts.token then
    token = opts.token ~= "" and opts.token or nil
    from.token = "--token"
    sys:say("warning: --token is visible to other processes (/proc/PID/cmdline); "
      .. "use $TRUTO_API_TOKEN, --token-file FILE or the config file")
  elseif opts.token_file then
    token = config.token_file(sys, opts.token_file)
    from.token = "--token-file " .. opts.token_file
  end
  if not token and sys:env("TRUTO_API_TOKEN") then
    token, from.token = sys:env("TRUTO_API_TOKEN"), "$TRUTO_API_TOKEN"
  end
  if opts.base_url == "" then sys:usage("--base-url must not be empty") end
  base_url = opts.base_url or sys:env("TRUTO_BASE_URL")
  from.base_url = opts.base_url and "--base-url" or base_url and "$TRUTO_BASE_URL" or nil
  local account = opts.account or sys:env("TRUTO_ACCOUNT")
  local profile_name = opts.profile or sys:env("TRUTO_PROFILE")
  local path
  if not token or not base_url or (not account and query.integrated_account_id == nil) or profile_name then
    local profile
    profile, path = config.read(sys, profile_name, token == nil)
    local in_file = " in " .. tostring(path) .. (profile_name and " [" .. profile_name .. "]" or "")
    if not token and profile.token then token, from.token = profile.token, "the token" .. in_file end
    if not base_url and profile.base_url then base_url, from.base_url = profile.base_url, "base_url" .. in_file end
    if query.integrated_account_id == nil then account = account or profile.account end
  end
  if account == nil and query.integrated_account_id == nil then
    sys:usage("an account is required: -a ACCOUNT (or set TRUTO_ACCOUNT)", topic)
  end
  if not token then
    path = path or config.path(sys) or "~/.config/lua-truto/config"
    sys:usage("no API token: set TRUTO_API_TOKEN, pass --token-file FILE, or put 'token = ...' in " .. path, nil)
  end
  if opts.base_url then check_base_url(sys, opts.base_url) end

  local recorder = opts.dry_run and commands.recorder() or nil
  local client_opts = {
    token = token, base_url = base_url, integrated_account_id = account,
    timeout = timeout, max_retries = recorder and 0 or retries, headers = headers,
    transport = recorder, rate_limit = rate_limit,
  }
  local progress_of = {} -- the list's progress line, once there is one (cmd.progress)
  client_opts.on_wait = function(w)
    local what = format("%.1f s: account %s, %s", w.wait, w.account ~= nil and tostring(w.account) or "(none)",
      w.reason or w.budget or "rate limit")
    if progress_of.cmd and progress_of.cmd.progress and progress_of.cmd.progress.waiting then
      progress_of.cmd.progress.waiting(what)
    end
    -- a retry's wait is told by on_retry below
    if opts.verbose and w.budget ~= "retry" then sys:say("waiting " .. what) end
  end
  if opts.verbose then
    client_opts.on_retry = function(r)
      local why = r.status and ("HTTP " .. r.status)
        or (r.error and (r.error.kind .. ": " .. tostring(r.error.message))) or "failure"
      sys:say(format("%s; retry %d in %.1f s", why, r.attempt, r.wait))
    end
  end
  local ok, client = pcall(truto.new, client_opts)
  if not ok then
    local msg = misuse_message(client)
    if msg and msg:match("^base_url must use https://") then
      sys:usage(from.base_url .. " must use https:// (http:// only for 127.0.0.1, ::1 or localhost)")
    end
    sys:usage(msg and cli_words(msg, from) or tostring(client), topic)
  end
  M.from = from
  -- -v: an answer Truto replayed for an Idempotency-Key it had seen is said so.
  local replayed = false
  local function observe(answer)
    replayed = tostring(answer.headers["idempotent-replayed"]):lower() == "true"
  end
  if not recorder then interruptible(sys, client, opts.verbose and observe) end

  local cmd = {
    action = action, model = model, resource = resource, id = id, query = query, body = body,
    output = out_format, fields = fields, max_items = max_items, csv_safe = opts.csv_safe,
    call_opts = opts.idempotency_key and { idempotency_key = opts.idempotency_key } or nil,
  }
  progress_of.cmd = cmd
  M.active = { client = client, cmd = cmd }
  if recorder then return commands.dry_run(sys, client, recorder, cmd) end

  if action == "delete" and not opts.yes then
    local tty = sys:terminal()
    if not tty then sys:usage("--yes required when not running interactively (no terminal to ask)", topic) end
    local acct = query.integrated_account_id or account
    local question = format("Delete %s %s of account %s?", resource, text.clean(id), text.clean(tostring(acct)))
    if not confirm(tty, question) then
      sys:say("not deleted")
      return EXIT_USAGE
    end
  end

  local runner = streamed and stream.run or action == "list" and commands.list or commands.single
  local ran, result = pcall(runner, sys, client, cmd)
  if ran and replayed then
    sys:say("the answer is a replay (Idempotent-Replayed: true): Truto had already done this request "
      .. "with the same Idempotency-Key")
  end
  if ran then return result end
  if cmd.progress then cmd.progress.clear() end
  if truto.is_error(result) then return commands.report_error(sys, result) end
  local msg = misuse_message(result)
  if msg then sys:usage(cli_words(msg, M.from or {}), topic) end
  error(result, 0)
end

local function interrupted(e)
  return type(e) == "string" and e:find("interrupted!", 1, true) ~= nil
end

--- Runs the command line; returns the exit code (0 ok, 1 API error, 2
-- usage error, 3 network failure, 130 interrupted).
function M.main(argv, sys)
  sys = sys or sys_mod.new()
  M.active, M.transports = nil, nil
  local ok, result = pcall(function()
    local code = run(sys, argv or {})
    sys:flush() -- the last write's error shows here (a full disk)
    return code
  end)
  if ok then return result end
  if sys_mod.is_exit(result) then return result.code end
  local active = M.active
  if interrupted(result) then
    if active then
      if active.cmd.progress then pcall(active.cmd.progress.clear) end
      for _, transport in pairs(M.transports and M.transports() or {}) do
        if type(transport) == "table" and transport.cancel_all then pcall(transport.cancel_all) end
      end
      local resume = active.cmd.resume
      if resume and resume.cursor then
        pcall(sys.flush, sys)
        pcall(sys.say, sys, resume.skip > 0
          and string.format("interrupted inside a page; --cursor %s lists that page again "
            .. "(its first %d items were printed)", sys_mod.quote(text.clean(resume.cursor)), resume.skip)
          or string.format("interrupted; the rest of the list: --cursor %s", sys_mod.quote(text.clean(resume.cursor))))
      end
    end
    return sys_mod.EXIT_INTERRUPTED
  end
  sys.stderr:write(sys_mod.PROG, ": internal error: ", tostring(result), "\n")
  return 70
end

return M
