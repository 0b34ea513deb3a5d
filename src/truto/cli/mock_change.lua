--- `lua-truto mock --port N -a ACCOUNT --create users | --update users/ID | --delete users/ID`:
-- changes the data of a running mock Truto server (spec/mock, POST /__mock/changes), for trying
-- `lua-truto sync` by hand and for `make demo`. `--body JSON` is the object every --create
-- and --update of the call sends (default: a name for a create, a title for an update).
-- Prints the ids the mock touched, as JSON.
local truto = require "truto"
local sys_mod = require "truto.cli.sys"
local json = require "truto.cli.json"

local M = {}

local format = string.format
local CHANGE_FLAGS = { ["--create"] = "create", ["--update"] = "update", ["--delete"] = "delete" }

--- Whether `lua-truto mock ...` asks for changes rather than a server.
function M.wanted(words)
  for i = 1, #words do
    local name = words[i]:match("^(%-%-[%a]+)")
    if CHANGE_FLAGS[name] then return true end
  end
  return false
end

local function usage(sys, msg)
  sys:usage(msg, "mock")
end

local function parse(sys, argv)
  local o = { changes = {} }
  local i = 2
  while i <= #argv do
    local a = argv[i]
    local name, inline = a:match("^(%-%-?[%a-]+)=(.*)$")
    name = name or a
    local value = inline
    local function take()
      if value == nil then
        i = i + 1
        value = argv[i]
      end
      if value == nil then usage(sys, format("option '%s' needs a value", name)) end
      return value
    end
    if CHANGE_FLAGS[name] then
      o.changes[#o.changes + 1] = { op = CHANGE_FLAGS[name], target = take() }
    elseif name == "--port" then o.port = take()
    elseif name == "-a" or name == "--account" then o.account = take()
    elseif name == "--body" then o.body = take()
    else usage(sys, format("unknown option '%s' for mock changes (--port, -a, --create, --update, --delete, --body)",
      a)) end
    i = i + 1
  end
  return o
end

-- The control request bodies, one per resource.
local function requests(sys, o, body)
  local by_resource, order = {}, {}
  for _, c in ipairs(o.changes) do
    local resource, id = c.target:match("^([%a_]+)/(.+)$")
    if c.op == "create" then resource = c.target:match("^([%a_]+)$") end
    if not resource or (c.op ~= "create" and not id) then
      usage(sys, format("--%s expects %s, got '%s'", c.op, c.op == "create" and "RESOURCE" or "RESOURCE/ID",
        c.target))
    end
    local r = by_resource[resource]
    if not r then
      r = { account = o.account, resource = resource, create = {}, update = {}, delete = {} }
      by_resource[resource] = r
      order[#order + 1] = r
    end
    if c.op == "create" then
      local item = {}
      for k, v in pairs(body or { name = "New " .. resource:gsub("s$", "") }) do item[k] = v end
      r.create[#r.create + 1] = item
    elseif c.op == "update" then
      local patch = { id = id }
      for k, v in pairs(body or { title = "changed " .. os.date("!%H:%M:%S") }) do patch[k] = v end
      r.update[#r.update + 1] = patch
    else
      r.delete[#r.delete + 1] = id
    end
  end
  return order
end

--- Runs the change flags; returns the exit code.
function M.main(sys, argv)
  local o = parse(sys, argv)
  if not o.port or not o.port:match("^%d+$") then usage(sys, "mock changes need --port N (of the running mock)") end
  if not o.account or o.account == "" then usage(sys, "mock changes need -a ACCOUNT") end
  local body
  if o.body then
    body = json.decode(o.body)
    if type(body) ~= "table" then usage(sys, "--body must be a JSON object") end
  end
  local client = truto.new { token = "test-token", base_url = "http://127.0.0.1:" .. o.port, max_retries = 0 }
  for _, req in ipairs(requests(sys, o, body)) do
    local answer, err = client:request({ method = "POST", path = "/__mock/changes", body = req })
    if not answer then sys:fail(sys_mod.EXIT_NETWORK, "mock on port " .. o.port .. ": " .. tostring(err.message)) end
    if answer.status ~= 200 then
      sys:fail(sys_mod.EXIT_API, format("mock: %d %s", answer.status, answer.body))
    end
    sys:write(answer.body, "\n")
  end
  sys:flush()
  return sys_mod.EXIT_OK
end

--- `lua-truto mock WORDS...` (truto.cli's M.COMMANDS): main with the full argv.
function M.run(sys, words)
  return M.main(sys, { "mock", table.unpack(words) })
end

return M
