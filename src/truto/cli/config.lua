--- The config file and its profiles, and where the token comes from.
--
--   ~/.config/lua-truto/config ($XDG_CONFIG_HOME honoured)
--     token = ...            # the default profile: lines before any [section]
--     base_url = ...
--     account = ...
--     [work]                 # --profile work: its keys over the default ones
--     token = ...            # a '#' after white space starts a comment
--
-- One rule for every file lua-truto takes settings from. The config file
-- decides where the token is sent (base_url), so it is used only when the
-- file itself (the one opened, not a name checked before opening) is a
-- regular file owned by the user, not a symbolic link, that only the user
-- can write to, in a directory that only its owner (the user or root) can
-- write to. A file whose token is used (the config file's, or a regular
-- --token-file) must not be readable by group or others either.
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
[ -f "$1" ] && [ ! -L "$1" ] || { stat -c '%F' -- "$1"; exit 5; }
exec 3<"$1" || exit 3
stat -L -c '%u %a %F %d:%i' /dev/fd/3 || exit 4
stat -c '%d:%i' -- "$1" || exit 4
stat -L -c '%u %a' -- "$(dirname -- "$1")" || exit 4
cat <&3
]]

local function inspect(path)
  local p = io.popen("LC_ALL=C sh -c " .. quote(OPEN_AND_STAT) .. " sh " .. quote(path) .. " 2>/dev/null")
  local text = p:read("a")
  local ok, _, code = p:close()
  if code == 5 then -- not a regular file (a FIFO would block the open): not opened at all
    local ftype = text:match("^([^\n]*)")
    return { type = ftype ~= "" and ftype or "unknown", id = "", name_id = "" }
  end
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

-- Whether anything is at `path` (without opening it: a FIFO would block).
local function exists(path)
  return os.execute("test -e " .. quote(path) .. " || test -L " .. quote(path)) == true
end

local function mode_text(mode) return format("mode %03o", mode & 4095) end

--- Why the opened file `st` may not be used ("it is ..."), or nil. `secret`:
-- its token will be used, so group and others must not read it either.
function M.unsafe(st, me, path, secret)
  if st.type == "symbolic link" then return "it is a symbolic link" end
  if st.type ~= "regular file" and st.type ~= "regular empty file" then
    return format("it is not a regular file (%s)", st.type)
  end
  if st.id ~= st.name_id then return "it is a symbolic link (or changed while read)" end
  if st.uid ~= me then return format("it is owned by another user (uid %d)", st.uid) end
  local fix = "; run: chmod 600 " .. quote(path)
  if st.mode & 18 ~= 0 then -- 0022
    return format("group or others can change it (%s), and so where the API token is sent%s", mode_text(st.mode), fix)
  end
  if secret and st.mode & 36 ~= 0 then -- 0044
    return format("it holds the API token and group or others can read it (%s)%s", mode_text(st.mode), fix)
  end
  if st.dir_uid ~= me and st.dir_uid ~= 0 then
    return format("its directory is owned by another user (uid %d)", st.dir_uid)
  end
  if st.dir_mode & 18 ~= 0 then
    return format("group or others can write to its directory (%s)", mode_text(st.dir_mode))
  end
  return nil
end

--- One line of the config file: `section` for "[name]", or `key, value`
-- for "key = value"; `nil, nil, ""` for a blank or comment line, and
-- `nil, nil, line` for anything else. A comment starts at a '#' that begins
-- the line or follows white space outside quotes ("a#b" keeps its '#');
-- a value in quotes is taken as written between them.
function M.parse_line(line)
  line = line:gsub("\r$", "")
  local function rest_is_comment(rest) return rest:match("^%s*$") or rest:match("^%s+#") or rest:match("^#") end
  if line:match("^%s*$") or line:match("^%s*#") then return nil, nil, "" end
  local section, after = line:match("^%s*%[%s*([%w_%-%.]+)%s*%](.*)$")
  if section and rest_is_comment(after) then return section end
  local key, value = line:match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
  if not key then return nil, nil, line end
  local q = value:sub(1, 1)
  if q == '"' or q == "'" then
    local inner, tail = value:match("^" .. q .. "([^" .. q .. "]*)" .. q .. "(.*)$")
    if inner and rest_is_comment(tail) then return nil, key, inner end
    return nil, nil, line
  end
  value = value:gsub("^#.*$", ""):gsub("%s+#.*$", "")
  return nil, key, value
end

--- The settings of profile `name` (nil: the default one) from the config
-- file: { token, base_url, account }, {} when there is no file. `use_token`:
-- the token is not given otherwise, so the file's would be used. Exits 2
-- when the file is unsafe (see M.unsafe) or malformed, or the profile does
-- not exist.
function M.read(sys, name, use_token)
  local path = M.path(sys)
  if not path or not exists(path) then
    if name then sys:usage(format("no profile '%s': %s does not exist", name, path or "the config file")) end
    return {}, path
  end
  local st = inspect(path)
  if not st then sys:fail(sys_mod.EXIT_USAGE, "cannot read " .. path) end
  local refuse = function(why) sys:fail(sys_mod.EXIT_USAGE, format("refusing to use %s: %s", path, why)) end
  local me = sys:user_id()
  local why = M.unsafe(st, me, path, false)
  if why then refuse(why) end

  local sections, current, n = { [""] = {} }, "", 0
  for line in (st.content .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local section, key, value = M.parse_line(line)
    if section then
      current = section
      sections[current] = sections[current] or {}
    elseif key and M.KEYS[key] then
      sections[current][key] = value
    elseif key or value ~= "" then
      sys:fail(sys_mod.EXIT_USAGE, format("%s:%d: expected 'token = ...', 'base_url = ...', "
        .. "'account = ...' or '[profile]'", path, n))
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
  why = use_token and settings.token and M.unsafe(st, me, path, true)
  if why then refuse(why) end
  return settings, path
end

local MAX_TOKEN_FILE = 64 * 1024

--- A regular --token-file must not be readable by group or others (the
-- rule of the config file's token); pipes (`<(pass show truto)`) and other
-- non-files are read as they are.
function M.check_token_file(sys, path)
  local line = sys_mod.command_line("stat -L -c '%a %F' -- " .. quote(path))
  local mode, ftype = (line or ""):match("^([0-7]+) (.*)$")
  if not mode or (ftype ~= "regular file" and ftype ~= "regular empty file") then return end
  mode = tonumber(mode, 8)
  if mode & 36 ~= 0 then
    sys:fail(sys_mod.EXIT_USAGE, format("refusing to use --token-file %s: group or others can read it (%s); "
      .. "run: chmod 600 %s", path, mode_text(mode), quote(path)))
  end
end

--- The token from --token-file FILE ('-': standard input; on a terminal it
-- is asked for without echo): its first line.
function M.token_file(sys, spec)
  local text
  if spec == "-" and sys:is_tty(0) then
    text = sys:read_secret("Truto API token (not shown): ")
  elseif spec == "-" then
    text = sys.stdin:read(MAX_TOKEN_FILE)
  else
    local f, err = io.open(spec, "rb")
    if not f then sys:usage("--token-file: " .. tostring(err)) end
    M.check_token_file(sys, spec)
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
