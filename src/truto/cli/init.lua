--- lua-truto, the command line: `require("truto.cli").main(arg)`.
--
-- main(argv[, sys]) -> exit code. `sys` (truto.cli.sys) carries the
-- standard streams and the environment, so a spec can run the whole command
-- line in-process. `run` resolves, in this order, the command (M.COMMANDS,
-- else an API action: resource, action, query, body, output), the
-- connection (token, base URL, account: flag, environment, config file) and
-- the client, then dispatches. The modules beside this one own: grammar (the
-- one declaration of options), args (parsing argv, -q), body (--body),
-- connection, config (the config file, profiles, the token), output (formats), text
-- (terminal-safe text and widths), json, progress, commands, help.
local truto = require "truto"
local sys_mod = require "truto.cli.sys"
local args = require "truto.cli.args"
local body_mod = require "truto.cli.body"
local connection = require "truto.cli.connection"
local commands = require "truto.cli.commands"
local grammar = require "truto.cli.grammar"
local output = require "truto.cli.output"
local help = require "truto.cli.help"
local text = require "truto.cli.text"
local stream = require "truto.cli.stream"

local M = {}

local format = string.format
local EXIT_OK, EXIT_USAGE = sys_mod.EXIT_OK, sys_mod.EXIT_USAGE

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

local function action_names()
  local names = {}
  for i, a in ipairs(grammar.ACTIONS) do names[i] = a.name end
  return table.concat(names, ", ")
end

-- Every option given (`seen`: field -> the name it was given as) must
-- apply to `command`.
local function check_applies(sys, seen, command, topic)
  for field, name in pairs(seen) do
    if not (args.ACCEPTS[command][field] or (command ~= "mock" and command ~= "completion" and args.COMMON[field])) then
      sys:usage(format("option '%s' does not apply to %s", name, command), topic)
    end
  end
end

---------------------------------------------------------------------------
-- The command: what to do, to what, with which query, body and output.
---------------------------------------------------------------------------

-- RESOURCE ACTION [ID|METHOD] and the model: cmd.action, resource, id, model.
local function resolve_target(sys, parsed, cmd)
  local positional, first = parsed.positional, parsed.positional[1]
  local action = positional[2] or "list"
  if not args.ACTIONS[action] then
    sys:usage(format("unknown action '%s' (%s)%s", action, action_names(), args.did_you_mean(action, args.ACTIONS)),
      first)
  end
  local topic = action
  check_applies(sys, parsed.seen, action, topic)
  if not first:match("^[%w_%-]+$") then
    sys:usage(format("'%s' is not a resource name (letters, digits, '-', '_')", first))
  end
  local argument = args.ARGUMENT[action]
  local want = argument and 3 or 2
  if argument and positional[3] == nil then sys:usage(format("%s needs %s", action, argument), topic) end
  if #positional > want then sys:usage(format("unexpected argument '%s'", positional[want + 1]), topic) end
  local id = positional[3]
  if id == "" then sys:usage(format("%s must not be empty", argument), topic) end
  if action == "call" and not id:match("^[%w_%-]+$") then
    sys:usage(format("'%s' is not a method name (letters, digits, '-', '_')", id), topic)
  end
  local model = parsed.opts.model or "user-directory"
  if not model:match("^[%w_%-]+$") then
    sys:usage(format("'%s' is not a model name (letters, digits, '-', '_')", model))
  end
  if model == "user-directory" then check_resource(sys, first) end
  cmd.action, cmd.resource, cmd.id, cmd.model, cmd.topic = action, first, id, model, topic
end

-- -q, --limit, --cursor, --response-format into cmd.query.
local function resolve_query(sys, opts, seen, cmd)
  local topic = cmd.topic
  local query, kinds = {}, {}
  for _, spec in ipairs(opts.query) do args.add_query(sys, query, kinds, spec) end
  local function set_query(key, value, option)
    if query[key] ~= nil then sys:usage(format("%s and -q %s=... given both", option, key), topic) end
    query[key] = value
  end
  if opts.limit then set_query("limit", args.positive_integer(sys, opts.limit, "--limit"), "--limit") end
  if opts.cursor then
    if opts.cursor == "" then sys:usage("--cursor must not be empty", topic) end
    set_query("next_cursor", opts.cursor, "--cursor")
  end
  if opts.response_format then
    local known = {}
    for _, f in ipairs(grammar.RESPONSE_FORMATS) do known[f] = true end
    if not known[opts.response_format] then
      local list = grammar.RESPONSE_FORMATS
      sys:usage(format("--response-format must be %s or %s, got '%s'", table.concat(list, ", ", 1, #list - 1),
        list[#list], opts.response_format), topic)
    end
    set_query("truto_response_format", opts.response_format, "--response-format")
  end
  cmd.streamed = opts.response_format == "stream"
  if cmd.streamed then check_stream(sys, cmd.action, seen, topic) end
  if opts.account == "" then sys:usage("-a must not be empty", topic) end
  if opts.account and query.integrated_account_id ~= nil then
    sys:usage("-a and -q integrated_account_id=... given both", topic)
  end
  cmd.query = query
end

local function resolve_body(sys, opts, cmd)
  local topic = cmd.topic
  if (cmd.action == "create" or cmd.action == "update") and not opts.body then
    sys:usage(cmd.action .. " needs --body JSON (or --body - to read stdin)", topic)
  end
  if opts.body == "-" and opts.token_file == "-" then
    sys:usage("--body - and --token-file - both read standard input", topic)
  end
  if opts.body then cmd.body = body_mod.read(sys, opts.body, topic) end
end

-- -o, --fields, --max-items, --csv-safe, --idempotency-key.
local function resolve_output(sys, opts, cmd)
  local out_format = opts.output
  if out_format and not output.FORMATS[out_format] then
    sys:usage(format("-o must be %s, got '%s'", output.format_list(), out_format), cmd.topic)
  end
  cmd.output = out_format or (sys:is_tty(1) and "table" or "json")
  cmd.fields = opts.fields and args.split_fields(sys, opts.fields)
  cmd.max_items = opts.max_items and args.positive_integer(sys, opts.max_items, "--max-items")
  cmd.csv_safe = opts.csv_safe
end

-- --timeout, --retries, --rate, -H, --idempotency-key: the client's and
-- the calls' options beyond the connection.
local function resolve_policy(sys, opts, cmd)
  local policy = {}
  if opts.timeout then
    local timeout = tonumber(opts.timeout)
    if not timeout or timeout <= 0 or timeout ~= timeout or timeout == math.huge then
      sys:usage(format("--timeout expects a positive number of seconds, got '%s'", opts.timeout))
    end
    policy.timeout = timeout
  end
  if opts.retries then
    local retries = math.tointeger(tonumber(opts.retries))
    if not retries or retries < 0 or not opts.retries:match("^%d+$") then
      sys:usage(format("--retries expects an integer >= 0, got '%s'", opts.retries))
    end
    policy.retries = retries
  end
  if opts.rate then
    -- --rate N/S: at most N requests in any S seconds (the account's and the token's budget)
    local n, per = opts.rate:match("^(%d+)/(%d*%.?%d+)$")
    n, per = math.tointeger(tonumber(n)), tonumber(per)
    if not n or n < 1 or n > 1000000 or not per or per <= 0 or per > 86400 then
      sys:usage(format("--rate expects REQUESTS/SECONDS (like 50/10), got '%s'", opts.rate))
    end
    policy.rate_limit = { requests = n, per = per, account = { requests = n, per = per } }
  end
  policy.headers = #opts.header > 0 and args.headers(sys, opts.header) or nil
  if opts.idempotency_key == "" then sys:usage("--idempotency-key must not be empty", cmd.topic) end
  cmd.call_opts = opts.idempotency_key and { idempotency_key = opts.idempotency_key } or nil
  return policy
end

--- The API command of the parsed argv: { action, resource, id, model,
-- topic, query, streamed, body, output, fields, max_items, csv_safe,
-- call_opts }, and the client policy its options ask for.
local function resolve_command(sys, parsed)
  local cmd = {}
  resolve_target(sys, parsed, cmd)
  resolve_query(sys, parsed.opts, parsed.seen, cmd)
  resolve_body(sys, parsed.opts, cmd)
  resolve_output(sys, parsed.opts, cmd)
  return cmd, resolve_policy(sys, parsed.opts, cmd)
end

-- The client's on_wait and on_retry: the progress line and -v.
local function reporters(sys, opts, cmd, client_opts)
  client_opts.on_wait = function(w)
    local what = format("%.1f s: account %s, %s", w.wait, w.account ~= nil and tostring(w.account) or "(none)",
      w.reason or w.budget or "rate limit")
    if cmd.progress and cmd.progress.waiting then cmd.progress.waiting(what) end
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
end

-- The client for `cmd` over `conn`. Its libcurl transport waits in Lua (so
-- that Ctrl-C acts during a request; their cancel_all, listed in
-- cmd.transports, then abandons what is in flight), and cmd.observe sees
-- every answer. --dry-run: a recorder
-- stands in for the transport.
local function make_client(sys, opts, cmd, conn, policy)
  local recorder = opts.dry_run and commands.recorder() or nil
  local client_opts = {
    token = conn.token, base_url = conn.base_url, integrated_account_id = conn.account,
    timeout = policy.timeout, max_retries = recorder and 0 or policy.retries, headers = policy.headers,
    transport = recorder, rate_limit = policy.rate_limit,
  }
  reporters(sys, opts, cmd, client_opts)
  cmd.transports = {}
  if not recorder then
    local sleep = sys.sleep or require("truto.core").sleep
    client_opts.wrap_transport = function(t, kind)
      if kind ~= "curl" then return t end
      local wrapped = commands.interruptible(t, sleep, function(answer) if cmd.observe then cmd.observe(answer) end end)
      cmd.transports[#cmd.transports + 1] = wrapped
      return wrapped
    end
  end
  local ok, client = pcall(truto.new, client_opts)
  if not ok then
    local msg = misuse_message(client)
    if msg and msg:match("^base_url must use https://") then
      sys:usage(conn.from.base_url .. " must use https:// (http:// only for 127.0.0.1, ::1 or localhost)")
    end
    sys:usage(msg and cli_words(msg, conn.from) or tostring(client), cmd.topic)
  end
  return client, recorder
end

---------------------------------------------------------------------------
-- Dispatch: the API command on its client.
---------------------------------------------------------------------------

-- delete asks first on the controlling terminal unless --yes; true to go on.
local function delete_confirmed(sys, opts, cmd, conn)
  if opts.yes then return true end
  local tty = sys:terminal()
  if not tty then sys:usage("--yes required when not running interactively (no terminal to ask)", cmd.topic) end
  local acct = cmd.query.integrated_account_id or conn.account
  local question = format("Delete %s %s of account %s?", cmd.resource, text.clean(cmd.id), text.clean(tostring(acct)))
  if confirm(tty, question) then return true end
  sys:say("not deleted")
  return false
end

local function dispatch(sys, parsed, cmd, conn, client, recorder)
  M.active = { client = client, cmd = cmd, transports = cmd.transports }
  if recorder then return commands.dry_run(sys, client, recorder, cmd) end
  if cmd.action == "delete" and not delete_confirmed(sys, parsed.opts, cmd, conn) then return EXIT_USAGE end
  -- -v: an answer Truto replayed for an Idempotency-Key it had seen is said so.
  local replayed = false
  if parsed.opts.verbose then
    cmd.observe = function(answer)
      replayed = tostring(answer.headers["idempotent-replayed"]):lower() == "true"
    end
  end
  local runner = cmd.streamed and stream.run or cmd.action == "list" and commands.list or commands.single
  local ran, result = pcall(runner, sys, client, cmd)
  if ran and replayed then
    sys:say("the answer is a replay (Idempotent-Replayed: true): Truto had already done this request "
      .. "with the same Idempotency-Key")
  end
  if ran then return result end
  if cmd.progress then cmd.progress.clear() end
  if truto.is_error(result) then return commands.report_error(sys, result) end
  local msg = misuse_message(result)
  if msg then sys:usage(cli_words(msg, conn.from), cmd.topic) end
  error(result, 0)
end

-- RESOURCE [ACTION [ID|METHOD]] [options]: command, connection, client, dispatch.
local function run_api(sys, parsed)
  local cmd, policy = resolve_command(sys, parsed)
  local conn = connection.resolve(sys, parsed.opts, cmd)
  local client, recorder = make_client(sys, parsed.opts, cmd, conn, policy)
  return dispatch(sys, parsed, cmd, conn, client, recorder)
end

---------------------------------------------------------------------------
-- Commands: one registry, M.COMMANDS.
---------------------------------------------------------------------------

local function run_help(sys, positional)
  local first, second = positional[1], positional[2]
  local t
  if first == nil then t = help.main
  elseif help[first] and (first == "mock" or first == "completion" or args.ACTIONS[first]) then t = help[first]
  elseif second and args.ACTIONS[second] then t = help[second]
  elseif second == nil then t = help.resource(first)
  else sys:usage(format("unknown action '%s'%s", second, args.did_you_mean(second, args.ACTIONS)), first) end
  sys:write(t)
  sys:flush()
  return EXIT_OK
end

local function run_completion(sys, parsed)
  check_applies(sys, parsed.seen, "completion", "completion")
  local positional = parsed.positional
  if #positional > 2 then sys:usage(format("unexpected argument '%s'", positional[3]), "completion") end
  return commands.completion(sys, positional[2])
end

local function run_mock(sys, parsed)
  check_applies(sys, parsed.seen, "mock", "mock")
  if #parsed.positional > 1 then sys:usage("mock takes no arguments", "mock") end
  return commands.mock(sys, parsed.opts)
end

-- A module that owns the words after its name: module.run(sys, words).
local function module_command(name)
  return function(sys, words) return require(name).run(sys, words) end
end

--- The commands besides the API's RESOURCE ACTION. An entry is either a
-- module name whose run(sys, words) -> exit code gets the words after the
-- command's name before any option is parsed (the module owns them; its
-- `wanted(words)`, when it has one, may decline them), or a table
-- { own = that, parsed = function(sys, { opts, positional, seen }) } for a
-- command of the common options. One entry registers one:
--   M.COMMANDS.webhook = "truto.cli.webhook"
M.COMMANDS = {
  webhook = "truto.cli.webhook",
  sync = "truto.cli.sync",
  mock = { own = "truto.cli.mock_change", parsed = run_mock },
  completion = { parsed = run_completion },
}

-- The function that runs `argv` before option parsing, if a module owns it
-- (`help NAME` is NAME --help for those).
local function own_command(argv)
  local name, words = argv[1], { table.unpack(argv, 2) }
  if name == "help" and argv[2] and argv[3] == nil then name, words = argv[2], { "--help" } end
  local entry = name and M.COMMANDS[name]
  local module = type(entry) == "table" and entry.own or type(entry) == "string" and entry or nil
  if not module then return nil end
  local loaded = require(module)
  if loaded.wanted and not loaded.wanted(words) then return nil end
  return function(sys) return module_command(module)(sys, words) end
end

local function run(sys, argv)
  local own = own_command(argv)
  if own then return own(sys) end
  local opts, positional, seen = args.parse(sys, argv)
  if opts.version then
    sys:write(format("%s %s\n", sys_mod.PROG, tostring(truto.VERSION)))
    return EXIT_OK
  end
  if positional[1] == "help" then -- help [topic...], and --help anywhere
    table.remove(positional, 1)
    opts.help = true
  end
  if opts.help then return run_help(sys, positional) end
  if positional[1] == nil then
    sys.stderr:write(help.main:match("^(.-\n)\n"))
    sys:usage("a resource is required, e.g. users, groups or organizations")
  end
  local entry = M.COMMANDS[positional[1]]
  local parsed = { opts = opts, positional = positional, seen = seen }
  if type(entry) == "table" and entry.parsed then return entry.parsed(sys, parsed) end
  return run_api(sys, parsed)
end

local function interrupted(e)
  return type(e) == "string" and e:find("interrupted!", 1, true) ~= nil
end

--- Runs the command line; returns the exit code (0 ok, 1 API error, 2
-- usage error, 3 network failure, 130 interrupted).
function M.main(argv, sys)
  sys = sys or sys_mod.new()
  M.active = nil
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
      for _, transport in ipairs(active.transports or {}) do pcall(transport.cancel_all) end
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
