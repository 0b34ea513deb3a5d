--- The one declaration of lua-truto's command line: its options (names,
-- the field each sets, whether it takes a value or adds up, which actions
-- accept it), its actions, the resources of the user-directory model and
-- the shells completion is written for. truto.cli.args parses argv from it;
-- `parser()` turns it into an argparse parser that writes the bash, zsh and
-- fish completion scripts. Output formats are truto.cli.output's registry.
local M = {}

-- Actions in the order help and messages list them; `arg`: its positional.
M.ACTIONS = {
  { name = "list" }, { name = "get", arg = "ID" }, { name = "create" }, { name = "update", arg = "ID" },
  { name = "delete", arg = "ID" }, { name = "call", arg = "METHOD" },
}
-- The resources of the user-directory model (a name 1-2 edits from one of
-- these is taken for a typo of it; any other name goes to Truto as it is).
M.RESOURCES = { "users", "groups", "organizations", "roles", "role_assignments", "licenses", "workspaces",
  "activities", "me", "billing", "utilization" }
M.RESPONSE_FORMATS = { "unified", "raw", "normalized", "stream", "debug" }
M.SHELLS = { "bash", "zsh", "fish" }

local WRITE = { "create", "update", "call" }
local function with(list, ...)
  local t = { table.unpack(list) }
  for _, v in ipairs { ... } do t[#t + 1] = v end
  return t
end

-- { names, field, value = METAVAR (nil: a switch), many = adds up,
--   on = the commands that accept it ("common": every API action),
--   choices = a list or a function returning one, file = completes a file }
M.OPTIONS = {
  { { "-a", "--account" }, "account", value = "ID", on = "common" },
  { { "--model" }, "model", value = "NAME", on = "common" },
  { { "-q", "--query" }, "query", value = "KEY=VALUE", many = true, on = "common" },
  { { "--body" }, "body", value = "JSON", on = WRITE, file = true },
  { { "-H", "--header" }, "header", value = "'N: V'", many = true, on = "common" },
  { { "--idempotency-key" }, "idempotency_key", value = "K", on = with(WRITE, "delete") },
  { { "--dry-run" }, "dry_run", on = with(WRITE, "list", "get", "delete") },
  { { "-y", "--yes" }, "yes", on = { "delete" } },
  { { "--limit" }, "limit", value = "N", on = { "list" } },
  { { "--max-items" }, "max_items", value = "N", on = { "list" } },
  { { "--cursor" }, "cursor", value = "C", on = { "list" } },
  { { "--fields" }, "fields", value = "A,B", on = "common" },
  { { "--response-format" }, "response_format", value = "F", on = "common", choices = M.RESPONSE_FORMATS },
  { { "-o", "--output" }, "output", value = "FORMAT", on = "common",
    choices = function() return require("truto.cli.output").format_names() end },
  { { "--csv-safe" }, "csv_safe", on = "common" },
  { { "--profile" }, "profile", value = "NAME", on = "common" },
  { { "--token" }, "token", value = "TOKEN", on = "common" },
  { { "--token-file" }, "token_file", value = "FILE", on = "common", file = true },
  { { "--base-url" }, "base_url", value = "URL", on = "common" },
  { { "--timeout" }, "timeout", value = "SECONDS", on = "common" },
  { { "--retries" }, "retries", value = "N", on = "common" },
  { { "--rate" }, "rate", value = "N/S", on = "common" },
  { { "-v", "--verbose" }, "verbose", on = "common" },
  { { "--port" }, "port", value = "N", on = { "mock" } },
  { { "--latency" }, "latency", value = "MS", on = { "mock" } },
  { { "--limits" }, "limits", value = "truto|JSON", on = { "mock" } },
  { { "--dir" }, "dir", value = "DIR", on = { "mock" }, file = true },
  { { "--webhook" }, "webhook", value = "URL", on = { "mock" } },
  { { "--webhook-secret" }, "webhook_secret", value = "S", on = { "mock" } },
  { { "-h", "--help" }, "help", on = { "common", "mock", "completion" } },
  { { "-V", "--version" }, "version", on = "common" },
}

--- Whether option `o` (an entry of OPTIONS) applies to `command` (an
-- action, "mock" or "completion").
function M.accepts(o, command)
  local on = o.on == "common" and { "common" } or o.on
  for _, c in ipairs(on) do
    if c == command or (c == "common" and command ~= "mock" and command ~= "completion") then return true end
  end
  return false
end

local function choices_of(o)
  return type(o.choices) == "function" and o.choices() or o.choices
end

-- The options of `name` on an argparse command. `skip`: options its parent
-- commands already have (bash and fish offer a parent's options below it,
-- zsh offers each command's own).
local function add_options(command, name, skip)
  for _, o in ipairs(M.OPTIONS) do
    if M.accepts(o, name) and not (skip and M.accepts(o, skip)) then
      local opt = command:option(table.concat(o[1], " "))
      if o.value then
        opt:args(1):argname("<" .. o.value:gsub("[^%w_=,|/.-]", "") .. ">")
        local choices = choices_of(o)
        if choices then opt:choices(choices) end
      else
        opt:args(0)
      end
      opt:count("*")
    end
  end
end

--- The command line as an argparse parser, for the completion scripts of
-- `shell`: RESOURCE ACTION [ID|METHOD] for the model's resources, mock,
-- completion SHELL, help, and the commands that are modules of their own.
function M.parser(shell)
  local argparse = require "argparse"
  local own = shell == "zsh"
  local parser = argparse("lua-truto", "Truto's unified API from the command line"):add_help(false)
  add_options(parser, "common")
  for _, resource in ipairs(M.RESOURCES) do
    local r = parser:command(resource):add_help(false)
    add_options(r, "list", not own and "common")
    for _, action in ipairs(M.ACTIONS) do
      local a = r:command(action.name):add_help(false)
      add_options(a, action.name, not own and "list")
      if action.arg then a:argument(action.arg:lower()) end
    end
  end
  add_options(parser:command("mock"):add_help(false), "mock", not own and "common")
  local completion = parser:command("completion"):add_help(false)
  -- The shells as commands of their own: argparse completes command names, not an argument's choices.
  for _, shell_name in ipairs(M.SHELLS) do completion:command(shell_name):add_help(false) end
  parser:command("help"):add_help(false)
  for _, name in ipairs { "webhook", "sync" } do parser:command(name):add_help(false) end
  return parser
end

--- The completion script for `shell` (one of SHELLS), or nil.
function M.completion(shell)
  local writers = { bash = "get_bash_complete", zsh = "get_zsh_complete", fish = "get_fish_complete" }
  if not writers[shell] then return nil end
  local parser = M.parser(shell)
  return parser[writers[shell]](parser)
end

return M
