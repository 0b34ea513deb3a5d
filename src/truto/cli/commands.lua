--- The commands: list, the single-object actions, --dry-run, mock and
-- completion (its scripts are argparse's, from truto.cli.grammar). Each takes the resolved command (`cmd`, built by
-- truto.cli) and returns an exit code.
local sys_mod = require "truto.cli.sys"
local output = require "truto.cli.output"
local progress_mod = require "truto.cli.progress"
local json = require "truto.cli.json"
local text = require "truto.cli.text"
local core = require "truto.core"

local M = {}

local format, concat = string.format, table.concat
local quote = sys_mod.quote
local EXIT_OK, EXIT_USAGE = sys_mod.EXIT_OK, sys_mod.EXIT_USAGE

---------------------------------------------------------------------------
-- Transports of our own around the module's.
---------------------------------------------------------------------------

--- Wraps a transport so that waiting for an answer happens in Lua, a few
-- milliseconds at a time: Lua's SIGINT hook (Ctrl-C) then fires during a
-- request instead of after it, and `cancel_all` abandons what is in flight.
-- `observe(answer)`, when given, sees every answer (transport contract v2:
-- { status, headers = { [lower name] = value }, ... }).
function M.interruptible(inner, sleep, observe, now)
  now = now or core.now
  local active = setmetatable({}, { __mode = "k" })
  local Handle = {}
  Handle.__index = Handle
  local function poll(ready)
    local pause = 0.001
    while not ready() do
      sleep(pause)
      pause = math.min(pause * 2, 0.01)
    end
  end
  local function seen(answer, ...)
    if observe and type(answer) == "table" and type(answer.headers) == "table" then observe(answer) end
    return answer, ...
  end
  function Handle:wait()
    local h = self.h
    poll(function() return h:done() end)
    active[self] = nil
    return seen(h:wait())
  end
  function Handle:done() return self.h:done() end
  function Handle:cancel()
    active[self] = nil
    return self.h:cancel()
  end
  local W = {}
  function W.start(_, ...)
    local handle = setmetatable({ h = inner:start(...) }, Handle)
    active[handle] = true
    return handle
  end
  function W.perform(self, ...) return self:start(...):wait() end
  function W.pump() return inner:pump() end
  -- wait_any(handles [, timeout]) -> index | false when `timeout` seconds
  -- passed first | nil for no handles (the transport contract).
  function W.wait_any(_, handles, timeout)
    if #handles == 0 then return nil end
    local found
    local deadline = timeout and now() + timeout
    poll(function()
      for i, handle in ipairs(handles) do
        if handle.h:done() then found = i return true end
      end
      return deadline ~= nil and now() >= deadline
    end)
    return found or false
  end
  function W.close() if inner.close then inner:close() end end
  function W.cancel_all()
    for handle in pairs(active) do pcall(handle.h.cancel, handle.h) end
  end
  return W
end

--- A transport that sends nothing: it keeps the request it was given and
-- fails it as never sent. For --dry-run.
function M.recorder()
  local R = { requests = {} }
  local Handle = {}
  Handle.__index = Handle
  local FAILURE = { kind = "transport", message = "dry run: not sent", sends = 0 }
  function Handle.wait() return nil, FAILURE end
  function Handle.done() return true end
  function Handle.cancel() end
  function R.start(_, req)
    R.requests[#R.requests + 1] = { method = req.method, url = req.url, headers = req.headers or {}, body = req.body }
    return setmetatable({}, Handle)
  end
  function R.perform(self, ...) return self:start(...):wait() end
  function R.pump() end
  function R.wait_any() return 1 end
  function R.close() end
  return R
end

---------------------------------------------------------------------------
-- Errors from the API.
---------------------------------------------------------------------------

local NETWORK_KINDS = { transport = true, timeout = true }

--- Reports an API error on stderr (everything the server said cleaned of
-- control characters); returns the exit code.
function M.report_error(sys, err)
  local lines = {}
  local clean = text.clean
  if err.kind == "http" then
    local what = tostring(err.status) .. (err.error and " " .. clean(err.error) or "")
    lines[1] = what .. ": " .. (err.message and clean(err.message) or "(no message)")
    if err.remote then lines[1] = lines[1] .. " (from the remote API)" end
    if type(err.insight) == "table" then
      lines[#lines + 1] = "insight: " .. clean(json.text(err.insight) or "?")
    end
    if err.status == 413 then
      lines[#lines + 1] = "the request body is larger than the server accepts"
    end
  elseif NETWORK_KINDS[err.kind] then
    lines[1] = format("network failure (%s): %s", err.kind, clean(err.message or "?"))
    if err.url then lines[#lines + 1] = format("while %s %s", err.method or "GET", clean(err.url)) end
  else
    lines[1] = format("%s error: %s", clean(err.kind or "unknown"), clean(err.message or "?"))
  end
  sys.stderr:write(sys_mod.PROG, ": ", concat(lines, "\n" .. sys_mod.PROG .. ": "), "\n")
  return NETWORK_KINDS[err.kind] and sys_mod.EXIT_NETWORK or sys_mod.EXIT_API
end

---------------------------------------------------------------------------
-- list
---------------------------------------------------------------------------

-- Items of a page: the result array, or the values of a truto_key_by
-- object in key order.
local function page_items(page)
  local result = type(page) == "table" and page.result
  if type(result) ~= "table" then return {} end
  if result[1] ~= nil or next(result) == nil then return result end
  local keys = {}
  for k in pairs(result) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local items = {}
  for i, k in ipairs(keys) do items[i] = result[k] end
  return items
end

local function next_cursor(page)
  local c = type(page) == "table" and page.next_cursor
  if type(c) == "string" and c ~= "" then return c end
  return nil
end

function M.list(sys, client, cmd)
  local writer = output.list_writer(sys, cmd.output, cmd)
  local progress = progress_mod.new(sys)
  cmd.progress = progress
  local count, pages = 0, 0
  local page_cursor = cmd.query.next_cursor -- the cursor that fetched the current page
  local stopped -- { cursor, skip } when --max-items ended the list early
  -- With --max-items, read no page ahead that the limit may make useless.
  local call_opts = cmd.max_items and { prefetch = false } or nil
  for page in client:pages(cmd.model, cmd.resource, cmd.query, call_opts) do
    pages = pages + 1
    if type(page) == "table" and page.debug ~= nil then
      progress.clear()
      sys:say("debug (page ", tostring(pages), "): ", text.clean(json.text(page.debug) or "?"))
    end
    local items = page_items(page)
    cmd.resume = { cursor = page_cursor, skip = 0 } -- what Ctrl-C prints (cli.init)
    for i, item in ipairs(items) do
      cmd.resume.skip = i - 1
      if cmd.max_items and count >= cmd.max_items then
        stopped = { cursor = page_cursor, skip = i - 1 }
        break
      end
      writer.item(item)
      count = count + 1
    end
    writer.page_done()
    progress.update(count, pages)
    if stopped then break end
    if cmd.max_items and count >= cmd.max_items then
      local c = next_cursor(page)
      if c then stopped = { cursor = c, skip = 0 } end
      break
    end
    page_cursor = next_cursor(page)
    cmd.resume = page_cursor and { cursor = page_cursor, skip = 0 } or nil
  end
  cmd.resume = nil
  progress.clear()
  writer.finish()
  sys:flush()
  if stopped then
    if stopped.skip == 0 then
      sys:say(format("stopped at --max-items %d; the rest of the list: --cursor %s",
        cmd.max_items, quote(text.clean(stopped.cursor))))
    elseif stopped.cursor then
      sys:say(format("stopped at --max-items %d inside a page; --cursor %s lists that page again "
        .. "(its first %d items were printed)", cmd.max_items, quote(text.clean(stopped.cursor)), stopped.skip))
    else
      sys:say(format("stopped at --max-items %d inside the first page: the list was cut "
        .. "(run it again with a larger --max-items for more)", cmd.max_items))
    end
  end
  return EXIT_OK
end

---------------------------------------------------------------------------
-- get, create, update, delete, call
---------------------------------------------------------------------------

function M.single(sys, client, cmd)
  local value, err
  local m, r, opts = cmd.model, cmd.resource, cmd.call_opts
  if cmd.action == "get" then
    value, err = client:get(m, r, cmd.id, cmd.query, opts)
  elseif cmd.action == "create" then
    value, err = client:create(m, r, cmd.body, cmd.query, opts)
  elseif cmd.action == "update" then
    value, err = client:update(m, r, cmd.id, cmd.body, cmd.query, opts)
  elseif cmd.action == "delete" then
    value, err = client:delete(m, r, cmd.id, cmd.query, opts)
  else
    value, err = client:call(m, r, cmd.id, cmd.body or {}, cmd.query, opts)
  end
  if value == nil then return M.report_error(sys, err) end
  output.single(sys, cmd.output, value, cmd)
  sys:flush()
  return EXIT_OK
end

--- Prints the request the command would send first (the token masked),
-- sends nothing: for list (its first page), get and the writes.
function M.dry_run(sys, client, recorder, cmd)
  if cmd.action == "list" then
    pcall(function() -- the first page is asked for, and "sent" to the recorder
      local iter, state, init, closing = client:pages(cmd.model, cmd.resource, cmd.query, { prefetch = false })
      local ok = pcall(iter, state, init)
      if closing and closing.close then closing:close() end
      return ok
    end)
  else
    M.single(setmetatable({ stdout = { write = function() return true end, flush = function() return true end },
      stderr = { write = function() end } }, { __index = sys }), client, cmd)
  end
  local req = recorder.requests[1]
  if not req then sys:fail(sys_mod.EXIT_API, "dry run: no request was built") end
  local host = req.url:match("^%a+://([^/]+)") or "?"
  local out = { req.method .. " " .. req.url, "Host: " .. host, "Authorization: Bearer ***" }
  for _, line in ipairs(req.headers) do
    -- The client names libcurl in the User-Agent of its libcurl transport, which the real run
    -- uses; the recorder stands in for it here.
    if not line:find(" libcurl/", 1, true) then
      line = line:gsub("^(User%-Agent: %S+)", "%1 libcurl/" .. tostring(core.CURL_VERSION))
    end
    out[#out + 1] = line
  end
  -- libcurl adds its own Accept-Encoding (every decoder it has) to the real run.
  local encodings = core.CURL_ACCEPT_ENCODING
  if encodings and encodings ~= "" then out[#out + 1] = "Accept-Encoding: " .. encodings end
  if req.body ~= nil then out[#out + 1] = "Content-Length: " .. #req.body end
  sys:write(concat(out, "\n"), "\n")
  if req.body ~= nil then sys:write("\n", req.body, "\n") end
  sys:flush()
  return EXIT_OK
end

---------------------------------------------------------------------------
-- mock
---------------------------------------------------------------------------

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function find_mock(sys)
  local env = sys:env("LUA_TRUTO_MOCK")
  if env then
    if not file_exists(env) then sys:fail(EXIT_USAGE, "LUA_TRUTO_MOCK=" .. env .. ": no such file") end
    return env, "from $LUA_TRUTO_MOCK"
  end
  local dir = sys:script_path():match("^(.*)/[^/]*$") or "."
  local candidates = {
    { dir .. "/spec/mock/serve", "next to this script, in its checkout" },
    { dir .. "/../share/lua-truto/mock/serve", "installed beside this script" },
    { dir .. "/../spec/mock/serve", "installed with this script's rock" },
  }
  for _, c in ipairs(candidates) do
    if file_exists(c[1]) then
      return sys_mod.command_line("readlink -f " .. quote(c[1])) or c[1], c[2]
    end
  end
  return nil, dir
end

-- The mock's flags from ours: --port N (0: a free one), --dir, --latency MS, --limits.
local function mock_flags(sys, opts)
  if not opts.port then sys:usage("mock needs --port N (0: any free port)", "mock") end
  if not opts.port:match("^%d+$") then
    sys:usage(format("--port expects a port number (0: any free port), got '%s'", opts.port), "mock")
  end
  local port = math.tointeger(tonumber(opts.port))
  if not port or port > 65535 then sys:usage("--port must be at most 65535", "mock") end
  local flags = " --port " .. port
  if opts.dir then flags = flags .. " --dir " .. quote(opts.dir) end
  if opts.latency then
    if not opts.latency:match("^%d+$") then
      sys:usage(format("--latency expects milliseconds (an integer >= 0), got '%s'", opts.latency), "mock")
    end
    flags = flags .. " --latency " .. opts.latency
  end
  if opts.limits then flags = flags .. " --limits " .. quote(opts.limits) end
  return flags
end

function M.mock(sys, opts)
  local flags = mock_flags(sys, opts) .. require("truto.cli.webhook").mock_arguments(sys, opts)
  local serve, how = find_mock(sys)
  if not serve then
    sys:fail(EXIT_USAGE, "cannot find the mock server (spec/mock/serve) next to " .. how
      .. ", nor in ../share/lua-truto/mock: set LUA_TRUTO_MOCK to its path")
  end
  -- The server announces itself ("mock Truto on http://127.0.0.1:PORT") once it listens, and
  -- says once why not (a port already taken) before that.
  local cmd = quote(serve) .. flags .. " --foreground"
  -- The server runs in a child shell that stops it on INT/TERM, and also
  -- when this process ($PPID there) goes away without telling it.
  local script = cmd .. [[ &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' INT TERM HUP
while kill -0 $PPID 2>/dev/null && kill -0 $pid 2>/dev/null; do sleep 0.5; done
kill -TERM $pid 2>/dev/null
wait $pid]]
  sys:flush()
  local ok, how_ended, code = os.execute(script)
  if ok then return EXIT_OK end
  if how_ended == "signal" then return 128 + code end
  return code
end

---------------------------------------------------------------------------
-- completion
---------------------------------------------------------------------------

--- Prints the completion script for `shell`, written by argparse from
-- truto.cli.grammar's declaration.
function M.completion(sys, shell)
  local grammar = require "truto.cli.grammar"
  local script = shell and grammar.completion(shell)
  if not script then
    sys:usage("completion needs " .. concat(grammar.SHELLS, ", ", 1, #grammar.SHELLS - 1) .. " or "
      .. grammar.SHELLS[#grammar.SHELLS], "completion")
  end
  sys:write(script)
  sys:flush()
  return EXIT_OK
end

return M
