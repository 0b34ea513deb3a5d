--- The help texts of lua-truto. Lists kept elsewhere are filled in at the
-- end: {formats}, {format_choices} and {format_help} from truto.cli.output's
-- registry, {timeout} and {retry_statuses} from truto.defaults.
local output = require "truto.cli.output"
local defaults = require "truto.defaults"

local M = {}

M.main = [==[
Usage: lua-truto RESOURCE [ACTION [ID|METHOD]] -a ACCOUNT [options]
       lua-truto mock --port N
       lua-truto completion bash|zsh|fish
       lua-truto help [RESOURCE|ACTION|mock]

Truto's unified API (model user-directory by default) from the command line.

Examples:
  lua-truto users -a ACCOUNT                          every user, a table on a terminal
  lua-truto users -a ACCOUNT -o csv --fields id,name  CSV of two columns
  lua-truto users -a ACCOUNT -q status=active --max-items 50
  lua-truto users get u001 -a ACCOUNT -o json         one user
  lua-truto organizations update org-1 -a ACCOUNT --body '{"name":"Acme"}' --dry-run
  lua-truto users delete u001 -a ACCOUNT --yes
  lua-truto mock --port 8089                          a local mock Truto server

Resources: users, groups, organizations, or any other resource name of the
model (roles, role_assignments, workspaces, licenses, activities, me, ...).

Actions:
  list              every item of the list, page after page (the default)
  get ID            one item
  create            create an item from --body
  update ID         change an item with --body (PATCH)
  delete ID         delete an item (asks on the terminal; --yes to skip)
  call METHOD       a custom method: POST RESOURCE/METHOD with --body

Options:
  -a, --account ID        integrated account id (default: $TRUTO_ACCOUNT, then
                          the profile's account)
      --model NAME        unified model (default: user-directory)
  -q, --query KEY=VALUE   query parameter, repeatable; KEY[SUB]=V and KEY[]=V nest
      --body JSON         JSON request body; '-' reads stdin, '@FILE' a file
                          (at most 10 MiB)
  -H, --header 'N: V'     extra request header, repeatable
      --idempotency-key K Idempotency-Key of a write (create, update, delete, call)
      --dry-run           print the request (token masked) and send nothing
                          (list: its first page; get; the writes)
  -y, --yes               delete without asking
      --limit N           page size (list)
      --max-items N       stop after N items (list); the cursor to resume
                          from is printed on stderr
      --cursor C          start the list at cursor C
      --fields A,B        only these fields, in this order (a.b reaches inside;
                          list indexes start at 1: emails.1.email)
      --response-format F unified (default), raw, normalized, stream or debug
                          (debug: each page's debug object on stderr)
  -o, --output FORMAT     {formats}
                          (default: table on a terminal, json otherwise)
      --csv-safe          CSV cells that begin with = + - @ get a leading '
                          so a spreadsheet does not run them as formulas
      --profile NAME      the [NAME] section of the config file
                          (default: $TRUTO_PROFILE)
      --token-file FILE   read the API token from FILE ('-': standard input)
      --token TOKEN       API token (visible to other processes: prefer
                          $TRUTO_API_TOKEN, --token-file or the config file)
      --base-url URL      API base URL (default: $TRUTO_BASE_URL, then the
                          profile, then https://api.truto.one); http:// only
                          for 127.0.0.1, ::1 and localhost
      --timeout SECONDS   per-request timeout (default {timeout})
      --retries N         retries of {retry_statuses} answers and network
                          failures (503 never: a blocked account)
      --rate N/S          at most N requests in any S seconds (default: paced
                          by the server's ratelimit-* headers, no fixed cap)
  -v, --verbose           tell each retry and each wait on stderr
  -h, --help              this help; `lua-truto ACTION --help` for one action
  -V, --version           the version

Config file: ~/.config/lua-truto/config ($XDG_CONFIG_HOME is honoured), lines
`token = ...`, `base_url = ...` and `account = ...`, then optional sections
`[NAME]` chosen with --profile NAME. It must be yours, not a symbolic link,
not readable by group or others (chmod 600), in a directory only you can
write to.

Exit codes: 0 ok, 1 API error, 2 usage error, 3 network failure,
130 interrupted.
]==]

M.list = [==[
Usage: lua-truto RESOURCE [list] -a ACCOUNT [-q KEY=VALUE]... [--limit N]
                 [--max-items N] [--cursor C] [--fields A,B] [-o {format_choices}] [--dry-run]

Lists every item of RESOURCE, following next_cursor page after page.

  -q KEY=VALUE      query parameter (repeatable): -q status=active,
                    -q 'created_at[gt]=2024-01-01T00:00:00Z',
                    -q 'truto_exclude_fields[]=remote_data'; values stay strings
  --limit N         page size asked of Truto
  --max-items N     stop after N items; stderr then tells the --cursor that
                    resumes the list
  --cursor C        start at cursor C
  --fields A,B      only these fields (a.b reaches inside: emails.1.email,
                    list indexes starting at 1)
  --response-format unified, raw, normalized, stream or debug
  -o FORMAT         {format_help}
  --csv-safe        prefix ' to CSV cells that begin with = + - @

Every option of `lua-truto --help` (account, token, timeout, ...) applies.
A progress line goes to stderr while it is a terminal and stdout is not.
]==]

M.get = [==[
Usage: lua-truto RESOURCE get ID -a ACCOUNT [-q KEY=VALUE]... [--fields A,B] [-o FORMAT] [--dry-run]

Gets one item: GET /unified/MODEL/RESOURCE/ID. ID is sent percent-encoded, so
it may hold '/', ':', spaces or any UTF-8.
]==]

M.create = [==[
Usage: lua-truto RESOURCE create -a ACCOUNT --body JSON|-|@FILE [-q KEY=VALUE]...
                 [--idempotency-key K] [--dry-run] [-o FORMAT]

Creates an item: POST /unified/MODEL/RESOURCE with the JSON body.
]==]

M.update = [==[
Usage: lua-truto RESOURCE update ID -a ACCOUNT --body JSON|-|@FILE [-q KEY=VALUE]...
                 [--idempotency-key K] [--dry-run] [-o FORMAT]

Updates an item: PATCH /unified/MODEL/RESOURCE/ID with the JSON body, e.g.
  lua-truto organizations update org-1 -a ACCOUNT --body '{"name":"Acme"}'
  echo '{"licenses":[]}' | lua-truto organizations update org-2 -a ACCOUNT --body -
]==]

M.delete = [==[
Usage: lua-truto RESOURCE delete ID -a ACCOUNT [-q KEY=VALUE]... [--yes] [--dry-run] [-o FORMAT]

Deletes an item: DELETE /unified/MODEL/RESOURCE/ID. It asks first on the
controlling terminal (whatever stdin and stderr are), unless --yes; with no
terminal to ask, --yes is required. Prints Truto's answer ({} when it has
no body).
]==]

M.call = [==[
Usage: lua-truto RESOURCE call METHOD -a ACCOUNT [--body JSON|-|@FILE] [-q KEY=VALUE]...
                 [--idempotency-key K] [--dry-run] [-o FORMAT]

Calls a custom method: POST /unified/MODEL/RESOURCE/METHOD (body default {}),
e.g. lua-truto users call downgrade -a ACCOUNT --body '{"id":"u001"}'
]==]

M.mock = [==[
Usage: lua-truto mock --port N [--dir DIR] [--latency MS] [--limits truto|JSON]

Runs the mock Truto server of lua-truto's own tests on 127.0.0.1:N in the
foreground, until interrupted; --port 0 picks a free port. Once it listens
it says "mock Truto on http://127.0.0.1:N"; point a client at it with
  TRUTO_API_TOKEN=test-token TRUTO_BASE_URL=http://127.0.0.1:N
--latency MS delays every answer; --limits truto sets Truto's rate limits
(500 requests per 10 s per token, 50 per account), or JSON as for POST
/__mock/limits (spec/mock/README.md).
Accounts: acct-small (40 users, 6 groups, 3 organizations), acct-large
(100,000 users), fault-500, fault-429, fault-remote, fault-close, ...
With --webhook URL --webhook-secret S, every write it accepts is POSTed to
URL as a record:* event signed with S, as Truto does (lua-truto webhook --help).

The server script is looked for in $LUA_TRUTO_MOCK, then next to this
script (spec/mock/serve in a checkout), then in ../share/lua-truto/mock/serve
(make install) and ../spec/mock/serve (LuaRocks); it needs nginx with the
Lua module (Debian: nginx-light libnginx-mod-http-lua).
]==]

M.completion = [==[
Usage: lua-truto completion bash|zsh|fish

Prints a completion script. Load it with
  source <(lua-truto completion bash)      # in ~/.bashrc
  source <(lua-truto completion zsh)       # in ~/.zshrc
  lua-truto completion fish | source       # in ~/.config/fish/config.fish
]==]

local filled = {
  formats = output.format_list(),
  format_choices = table.concat(output.format_names(), "|"),
  format_help = output.format_help(string.rep(" ", 20)),
  timeout = tostring(defaults.timeout),
  -- "429, 500, 502 and 504"
  retry_statuses = table.concat(defaults.retry_statuses, ", ", 1, #defaults.retry_statuses - 1)
    .. " and " .. defaults.retry_statuses[#defaults.retry_statuses],
}
for name, t in pairs(M) do
  M[name] = t:gsub("{([%w_]+)}", function(key) return filled[key] end)
end

function M.resource(resource)
  return string.format([==[
Usage: lua-truto %s [ACTION [ID|METHOD]] -a ACCOUNT [options]

Actions: list (default), get ID, create, update ID, delete ID, call METHOD.
`lua-truto %s ACTION --help` tells one action; `lua-truto --help` lists
every option.
]==], resource, resource)
end

return M
