--- --body JSON|-|@FILE: the request body of a write, read from the
-- argument, standard input or a file (at most MAX bytes), checked and decoded.
local sys_mod = require "truto.cli.sys"
local json = require "truto.cli.json"

local M = {}

local format = string.format

M.MAX = 10 * 1024 * 1024

local function file_type(path)
  local line = sys_mod.command_line("stat -L -c '%F %s' -- " .. sys_mod.quote(path))
  if not line then return nil end
  local ftype, size = line:match("^(.-) (%d+)$")
  return ftype, tonumber(size)
end

--- The decoded body of `--body spec`; a usage error (naming `topic`'s
-- help) when it cannot be read or is not a JSON object or array.
function M.read(sys, spec, topic)
  local max = M.MAX
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

return M
