--- The connection of an API command: token, base URL and account, from the
-- flags, the environment, then the config file (its profile).
local config = require "truto.cli.config"

local M = {}

local format = string.format

local function check_base_url(sys, url)
  local scheme = url:match("^(%a[%w+.-]*)://")
  if not scheme or (scheme:lower() ~= "http" and scheme:lower() ~= "https") then
    sys:usage(format("--base-url must be an https:// URL (http:// only for 127.0.0.1, ::1 or localhost), got '%s'",
      url))
  end
end

--- { token, base_url, account, from = { token, base_url: where each came
-- from, for messages } } for the command `cmd` (its query and topic); a
-- usage error when no account or no token is found.
function M.resolve(sys, opts, cmd)
  local query = cmd.query
  local conn = { from = {} } -- from: where the token and the base URL came from, for messages
  local from = conn.from
  if opts.token then
    conn.token = opts.token ~= "" and opts.token or nil
    from.token = "--token"
    sys:say("warning: --token is visible to other processes (/proc/PID/cmdline); "
      .. "use $TRUTO_API_TOKEN, --token-file FILE or the config file")
  elseif opts.token_file then
    conn.token = config.token_file(sys, opts.token_file)
    from.token = "--token-file " .. opts.token_file
  end
  if not conn.token and sys:env("TRUTO_API_TOKEN") then
    conn.token, from.token = sys:env("TRUTO_API_TOKEN"), "$TRUTO_API_TOKEN"
  end
  if opts.base_url == "" then sys:usage("--base-url must not be empty") end
  conn.base_url = opts.base_url or sys:env("TRUTO_BASE_URL")
  from.base_url = opts.base_url and "--base-url" or conn.base_url and "$TRUTO_BASE_URL" or nil
  conn.account = opts.account or sys:env("TRUTO_ACCOUNT")
  local profile_name = opts.profile or sys:env("TRUTO_PROFILE")
  local path
  if not conn.token or not conn.base_url or (not conn.account and query.integrated_account_id == nil)
    or profile_name then
    local profile
    profile, path = config.read(sys, profile_name, conn.token == nil)
    local in_file = " in " .. tostring(path) .. (profile_name and " [" .. profile_name .. "]" or "")
    if not conn.token and profile.token then conn.token, from.token = profile.token, "the token" .. in_file end
    if not conn.base_url and profile.base_url then
      conn.base_url, from.base_url = profile.base_url, "base_url" .. in_file
    end
    if query.integrated_account_id == nil then conn.account = conn.account or profile.account end
  end
  if conn.account == nil and query.integrated_account_id == nil then
    sys:usage("an account is required: -a ACCOUNT (or set TRUTO_ACCOUNT)", cmd.topic)
  end
  if not conn.token then
    path = path or config.path(sys) or "~/.config/lua-truto/config"
    sys:usage("no API token: set TRUTO_API_TOKEN, pass --token-file FILE, or put 'token = ...' in " .. path, nil)
  end
  if opts.base_url then check_base_url(sys, opts.base_url) end
  return conn
end

return M
