--- The config file and its profiles, and where the token comes from.
--
--   ~/.config/lua-truto/config ($XDG_CONFIG_HOME honoured)
--     token = ...            # the default profile: lines before any [section]
--     base_url = ...
--     account = ...
--     [work]                 # --profile work: its keys over the default ones
--     token = ...
--
-- The file holds a token, so it is used only when the file itself (the one
-- opened, not a name checked before opening) is a regular file owned by the
-- user, not a symbolic link, not open to group or others, in a directory
-- that only its owner (the user or root) can write to.
local sys_mod = require "truto.cli.sys"

local M = {}

local format = string.format
local quote = sys_mod.quote

M.KEYS = { token = true, base_url = true, account = true }

function M.path(sys)
  local base = sys:env("XDG_CONFIG_HOME")
  if not base then
    local home = sys:env("HOME")
    if not home then return nil end
    base = home .. "/.config"
  end
  return base .. "/lua-truto/config"
end

-- Opens `path` once in a child shell (fd 3) and reports, for that open
-- file: owner, mode, type, device:inode; the same for the name without
-- following links; owner and mode of the directory; then the content.
local OPEN_AND_STAT = [[
exec 3<"$1" || exit 3
stat -L -c '%u %a %F %d:%i' /dev/fd/3 || exit 4
stat -c '%d:%i' -- "$1" || exit 4
stat -L -c '%u %a' -- "$(dirname -- "$1")" || exit 4
cat <&3
]]

local function inspect(path)
  local p = io.popen("sh -c " .. quote(OPEN_AND_STAT) .. " sh " .. quote(path) .. " 2>/dev/null")
  local text = p:read("a")
  local ok = p:close()
  if not ok then return nil end
  local file, name, dir, content = text:match("^([^\n]*)\n([^\n]*)\n([^\n]*)\n(.*)$")
  if not file then return nil end
  local uid, mode, ftype, id = file:match("^(%d+) ([0-7]+) (.-) (%d+:%d+)$")
  local duid, dmode = dir:match("^(%d+) ([0-7]+)$")
  return {
    uid = tonumber(uid), mode = tonumber(mode, 8), type = ftype, id = id, name_id = name,
    dir_uid = tonumber(duid), dir_mode = tonumber(dmode, 8), content = content,
  }
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return os.execute("test -L " .. quote(path)) == true
end

--- The settings of profile `name` (nil: the default one) from the config
-- file: { token, base_url, account }, {} when there is no file. Exits 2
-- when the file is unsafe or malformed, or the profile does not exist.
function M.read(sys, name)
  local path = M.path(sys)
  if not path or not exists(path) then
    if name then sys:usage(format("no profile '%s': %s does not exist", name, path or "the config file")) end
    return {}, path
  end
  local st = inspect(path)
  local refuse = function(why)
    sys:fail(sys_mod.EXIT_USAGE, format("refusing to use %s: it holds the API token but %s", path, why))
  end
  if not st then sys:fail(sys_mod.EXIT_USAGE, "cannot read " .. path) end
  local me = sys:user_id()
  if st.id ~= st.name_id then refuse("it is a symbolic link (or changed while read)") end
  if st.type ~= "regular file" and st.type ~= "regular empty file" then refuse("it is not a regular file") end
  if st.uid ~= me then refuse(format("it is owned by another user (uid %d)", st.uid)) end
  if st.mode & 63 ~= 0 then -- 0077: any permission for group or others
    refuse(format("it is open to group or others (mode %03o); run: chmod 600 %s", st.mode & 511, quote(path)))
  end
  if st.dir_uid ~= me and st.dir_uid ~= 0 then
    refuse(format("its directory is owned by another user (uid %d)", st.dir_uid))
  end
  if st.dir_mode & 18 ~= 0 then -- 0022: writable by group or others
    refuse(format("its directory can be written by group or others (mode %03o)", st.dir_mode & 511))
  end

  local sections, current, n = { [""] = {} }, "", 0
  for line in (st.content .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("\r$", "")
    if not line:match("^%s*$") and not line:match("^%s*#") then
      local section = line:match("^%s*%[%s*([%w_%-%.]+)%s*%]%s*$")
      if section then
        current = section
        sections[current] = sections[current] or {}
      else
        local key, value = line:match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
        if not key or not M.KEYS[key] then
          sys:fail(sys_mod.EXIT_USAGE, format("%s:%d: expected 'token = ...', 'base_url = ...', "
            .. "'account = ...' or '[profile]'", path, n))
        end
        sections[current][key] = value:match('^"(.*)"$') or value:match("^'(.*)'$") or value
      end
    end
  end
  local settings = {}
  for k, v in pairs(sections[""]) do settings[k] = v end
  if name then
    local chosen = sections[name]
    if not chosen or name == "" then sys:usage(format("no profile '[%s]' in %s", name, path)) end
    for k, v in pairs(chosen) do settings[k] = v end
  end
  for k, v in pairs(settings) do if v == "" then settings[k] = nil end end
  return settings, path
end

local MAX_TOKEN_FILE = 64 * 1024

--- The token from --token-file FILE ('-': standard input): its first line.
function M.token_file(sys, spec)
  local text
  if spec == "-" then
    text = sys.stdin:read(MAX_TOKEN_FILE)
  else
    local f, err = io.open(spec, "rb")
    if not f then sys:usage("--token-file: " .. tostring(err)) end
    text = f:read(MAX_TOKEN_FILE)
    f:close()
  end
  local token = text and text:match("^[ \t]*([^\r\n]*)"):gsub("[ \t]+$", "") or nil
  if not token or token == "" then
    sys:usage("--token-file: " .. (spec == "-" and "standard input" or spec) .. " holds no token")
  end
  return token
end

return M
