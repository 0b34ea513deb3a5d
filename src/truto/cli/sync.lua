--- `lua-truto sync`: the changes since the last run, on standard output.
--
--   lua-truto sync users|groups -a ACC [-a ACC ...] [--all-accounts FILE]
--             [--state FILE | --into sqlite:FILE] [-o ndjson|table|csv] [--full]
--
-- Prints one change per line (ndjson by default on a pipe, a table on a
-- terminal) and a summary on stderr: `created 3, updated 1, deleted 2,
-- unchanged 994 in 2 requests`. The options are parsed here (this command
-- has its own); the token, base URL and profile are found as for the other
-- commands (truto.cli.config).
local truto = require "truto"
local sys_mod = require "truto.cli.sys"
local config = require "truto.cli.config"
local output = require "truto.cli.output"
local commands = require "truto.cli.commands"

local M = {}

local format = string.format
local EXIT_OK, EXIT_API = sys_mod.EXIT_OK, sys_mod.EXIT_API

M.USAGE = [[
Usage: lua-truto sync RESOURCE -a ACCOUNT [options]

Prints what changed in RESOURCE (users, groups, ...) since the last run: one
change per line { op = created | updated | deleted, account_id, id, item },
and a summary line on stderr. The first run yields every item as created.

Options:
  -a, --account ID        an account (repeat for several, read at once)
  --all-accounts FILE     the accounts, one id per line (# comments)
  --state FILE            the JSON state file (ids and hashes)
  --into sqlite:FILE      a SQLite mirror as the state (one table per resource)
  -o, --output FORMAT     ndjson (default on a pipe), table (on a terminal), csv
  --full                  a complete listing (finds deletions) even when an
                          incremental read is possible
  --no-incremental        never use updated_at[gt]
  --profile, --token-file, --base-url, --timeout, --retries, -v: as for lists
]]

-- Option -> { field, takes a value, repeatable }.
local OPTIONS = {
  ["-a"] = { "account", true, true }, ["--account"] = { "account", true, true },
  ["--all-accounts"] = { "all_accounts", true }, ["--state"] = { "state", true },
  ["--into"] = { "into", true }, ["-o"] = { "output", true }, ["--output"] = { "output", true },
  ["--full"] = { "full", false }, ["--no-incremental"] = { "no_incremental", false },
  ["--profile"] = { "profile", true }, ["--token-file"] = { "token_file", true },
  ["--base-url"] = { "base_url", true }, ["--timeout"] = { "timeout", true },
  ["--retries"] = { "retries", true }, ["-v"] = { "verbose", false }, ["--verbose"] = { "verbose", false },
  ["-h"] = { "help", false }, ["--help"] = { "help", false },
}

local function usage(sys, msg)
  sys:usage(msg, "sync")
end

--- argv (after "sync") -> options, positional arguments.
function M.parse(sys, argv)
  local opts, positional = { account = {} }, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local name, inline = a:match("^(%-%-[^=]+)=(.*)$")
    if not name then name = a end
    local spec = OPTIONS[name]
    if spec then
      local field, takes, repeatable = spec[1], spec[2], spec[3]
      local value = true
      if takes then
        value = inline
        if value == nil then
          i = i + 1
          value = argv[i]
        end
        if value == nil then usage(sys, format("option '%s' needs a value", name)) end
      elseif inline then
        usage(sys, format("option '%s' takes no value", name))
      end
      if repeatable then
        opts[field][#opts[field] + 1] = value
      else
        if opts[field] ~= nil then usage(sys, format("option '%s' given twice", name)) end
        opts[field] = value
      end
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      usage(sys, format("unknown option '%s'", a))
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  return opts, positional
end

local function read_accounts(sys, path, list)
  local f, err = io.open(path, "r")
  if not f then usage(sys, "--all-accounts: " .. tostring(err)) end
  for line in f:lines() do
    local id = line:gsub("#.*$", ""):match("^%s*(.-)%s*$")
    if id ~= "" then list[#list + 1] = id end
  end
  f:close()
  if #list == 0 then usage(sys, "--all-accounts " .. path .. ": no account in it") end
end

local function resolve_state(sys, opts)
  if opts.state and opts.into then usage(sys, "--state and --into given both") end
  if opts.into then
    local path = opts.into:match("^sqlite:(.+)$")
    if not path then usage(sys, "--into expects sqlite:FILE, got '" .. opts.into .. "'") end
    local ok, store = pcall(require("truto.sync.sqlite").new, path)
    if not ok then sys:fail(EXIT_API, tostring(store)) end
    return store
  end
  if not opts.state or opts.state == "" then usage(sys, "sync needs --state FILE or --into sqlite:FILE") end
  return opts.state
end

local function number_option(sys, value, name, integer)
  local n = tonumber(value)
  if not n or n < 0 or (integer and n ~= math.floor(n)) then
    usage(sys, format("%s expects a %s, got '%s'", name, integer and "whole number" or "number of seconds", value))
  end
  return n
end

local function client_for(sys, opts, counter)
  local token
  if opts.token_file then token = config.token_file(sys, opts.token_file) end
  token = token or sys:env("TRUTO_API_TOKEN")
  local base_url = opts.base_url or sys:env("TRUTO_BASE_URL")
  if not token or not base_url or opts.profile or sys:env("TRUTO_PROFILE") then
    local profile = config.read(sys, opts.profile or sys:env("TRUTO_PROFILE"))
    token = token or profile.token
    base_url = base_url or profile.base_url
  end
  if not token then usage(sys, "no API token: set TRUTO_API_TOKEN, pass --token-file FILE, or use a profile") end
  local client_opts = {
    token = token, base_url = base_url,
    timeout = opts.timeout and number_option(sys, opts.timeout, "--timeout"),
    max_retries = opts.retries and number_option(sys, opts.retries, "--retries", true),
    debug = function(line)
      if line:sub(1, 3) == "<- " then counter.requests = counter.requests + 1 end
    end,
  }
  local ok, client = pcall(truto.new, client_opts)
  if not ok then usage(sys, type(client) == "table" and tostring(client.message) or tostring(client)) end
  return client
end

-- The row a change prints as: ndjson keeps the item; table and csv a few columns.
local function row_of(change, fmt)
  if fmt == "ndjson" then
    return { op = change.op, account_id = change.account_id, id = change.id, item = change.item }
  end
  local item = change.item or {}
  local email = type(item.emails) == "table" and type(item.emails[1]) == "table" and item.emails[1].email or nil
  return { op = change.op, account_id = change.account_id, id = change.id, name = item.name, email = email }
end

local function summary(stats, requests)
  local line = format("created %d, updated %d, deleted %d, unchanged %d in %d request%s", stats.created,
    stats.updated, stats.deleted, stats.unchanged, requests, requests == 1 and "" or "s")
  if stats.fallbacks > 0 then line = line .. format(" (%d fallback(s) to a complete listing)", stats.fallbacks) end
  return line
end

local function run_sync(sys, client, counter, resource, accounts, opts, fmt)
  local store = resolve_state(sys, opts)
  local debug = opts.verbose and function(line) sys:say(line) end or nil
  local sync_opts = { state = store, full = opts.full or nil, incremental = not opts.no_incremental, debug = debug,
    -- at-least-once: what was printed reaches the pipe before the state moves on
    before_commit = function() sys:flush() end }
  local params = { integrated_account_id = accounts }
  local ok, it, st, init, closer = pcall(client.sync, client, resource, params, sync_opts)
  if not ok then
    if type(store) == "table" and store.close then store:close() end
    if truto.is_error(it) then return commands.report_error(sys, it) end
    usage(sys, type(it) == "table" and tostring(it.message) or tostring(it))
  end
  local fields = fmt ~= "ndjson" and { "op", "account_id", "id", "name", "email" } or nil
  local writer = output.list_writer(sys, fmt, { fields = fields, resource = resource })
  local ran, err = pcall(function()
    for change in it, st, init, closer do writer.item(row_of(change, fmt)) end
  end)
  if not ran then
    st:close()
    if type(store) == "table" and store.close then store:close() end
    if sys_mod.is_exit(err) then error(err, 0) end
    if truto.is_error(err) then return commands.report_error(sys, err) end
    error(err, 0)
  end
  writer.page_done()
  writer.finish()
  sys:flush()
  sys:say(summary(st.stats, counter.requests))
  if type(store) == "table" and store.close then store:close() end
  return EXIT_OK
end

--- Runs `lua-truto sync ...` (argv[1] == "sync"); returns the exit code.
function M.main(sys, argv)
  local rest = {}
  for i = 2, #argv do rest[#rest + 1] = argv[i] end
  local opts, positional = M.parse(sys, rest)
  if opts.help then
    sys:write(M.USAGE)
    return EXIT_OK
  end
  local resource = positional[1]
  if not resource then usage(sys, "sync needs a resource: users or groups") end
  if not resource:match("^[%a_][%w_]*$") then usage(sys, format("'%s' is not a resource name", resource)) end
  if positional[2] then usage(sys, format("unexpected argument '%s'", positional[2])) end
  local accounts = {}
  for _, a in ipairs(opts.account) do
    if a == "" then usage(sys, "-a must not be empty") end
    accounts[#accounts + 1] = a
  end
  if opts.all_accounts then read_accounts(sys, opts.all_accounts, accounts) end
  if #accounts == 0 and sys:env("TRUTO_ACCOUNT") then accounts[1] = sys:env("TRUTO_ACCOUNT") end
  if #accounts == 0 then usage(sys, "an account is required: -a ACCOUNT (or --all-accounts FILE)") end
  local fmt = opts.output or (sys:is_tty(1) and "table" or "ndjson")
  if fmt ~= "ndjson" and fmt ~= "table" and fmt ~= "csv" then
    usage(sys, format("-o must be ndjson, table or csv, got '%s'", fmt))
  end
  local counter = { requests = 0 }
  local client = client_for(sys, opts, counter)
  return run_sync(sys, client, counter, resource, accounts, opts, fmt)
end

--- `lua-truto sync WORDS...` (truto.cli's M.COMMANDS): main with the full argv.
function M.run(sys, words)
  return M.main(sys, { "sync", table.unpack(words) })
end

return M
