-- Busted helper: a real nginx with lua-nginx-module on the LuaJIT build of the module (the
-- build `make test-luajit` tests: TRUTO_NGINX_BUILD, else build-luajit, brought up to date with
-- `make LUA=luajit` first), and a redis-server, both on 127.0.0.1 and stopped by their pid files
-- and PIDs (also when this process dies first). Built on spec/helpers/run.lua.
--
--   local nginx = require "spec.helpers.nginx"
--   local n = nginx.start { workers = 2, http = "...", files = { ["x.lua"] = "..." } }
--   local n = nginx.start { main = "env X;", http = "...", vars = { mock_port = 1 }, ports = { "tls_port" },
--     lua_path = { run.ROOT .. "/?.lua" }, certs = { self = "localhost" }, env = "X=1" }
--   local n = nginx.start { conf = <a whole nginx.conf, e.g. one of examples/>, lib = true, env = "X=1" }
--   -- n.port, n.ports.tls_port, n.prefix, n.url(path), n:log() (error.log), n:stop()
--   -- n:mark(), then n:error_log_lines(): the lines error.log gained since, but nginx's own notices
--   before_each(function() n:mark() end)                            -- each case leaves no line
--   after_each(function() assert.same({}, n:error_log_lines()) end) -- but notices in error.log
--   local redis_port, stop = nginx.redis(); finally(stop)
local socket = require "socket"
local run = require "spec.helpers.run"

local M = {}

local quote, sh = run.quote, run.sh

M.BUILD = (function()
  local b = os.getenv("TRUTO_NGINX_BUILD") or "build-luajit"
  return b:sub(1, 1) == "/" and b or run.ROOT .. "/" .. b
end)()

local function modules()
  for _, dir in ipairs { "/usr/lib/nginx/modules", "/usr/share/nginx/modules" } do
    if run.exists(dir .. "/ngx_http_lua_module.so") then return dir end
  end
  error("ngx_http_lua_module.so not found (install libnginx-mod-http-lua)")
end

--- Builds the LuaJIT module (once per process).
local built = false
function M.build()
  if built then return end
  local out, ok = sh(("cd %s && env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u TRUTO_BUILD make -s LUA=luajit BUILD=%s all")
    :format(quote(run.ROOT), quote(M.BUILD)))
  assert(ok, "make LUA=luajit failed:\n" .. out)
  built = true
end

local CONFIG = [[
load_module "${modules}/ndk_http_module.so";
load_module "${modules}/ngx_http_lua_module.so";
${user}
daemon on;
worker_processes ${workers};
pid "${prefix}/nginx.pid";
error_log "${prefix}/error.log" notice;
${main}

events {
  worker_connections 1024;
}

http {
  access_log off;
  client_body_temp_path "${prefix}/body";
  proxy_temp_path "${prefix}/proxy";
  fastcgi_temp_path "${prefix}/fastcgi";
  uwsgi_temp_path "${prefix}/uwsgi";
  scgi_temp_path "${prefix}/scgi";
  lua_package_path "${lua_path};;";
  lua_package_cpath "${build}/?.so;;";
  lua_socket_log_errors off;
${http}
}
]]

local Nginx = {}
Nginx.__index = Nginx

function Nginx:url(path) return ("http://127.0.0.1:%d%s"):format(self.port, path) end

function Nginx:log() return run.slurp(self.prefix .. "/error.log") end

--- Remembers how long error.log is now, for error_log_lines().
function Nginx:mark() self.marked = #self:log() end

--- The lines error.log gained since mark() (else since the start) that are not nginx's own notices.
function Nginx:error_log_lines()
  local lines = {}
  for line in self:log():sub((self.marked or 0) + 1):gmatch("[^\n]+") do
    if not line:find("[notice]", 1, true) then lines[#lines + 1] = line end
  end
  return lines
end

function Nginx:stop()
  if self.stopped then return end
  self.stopped = true
  os.execute(("nginx -p %s/ -c %s/nginx.conf -s stop >/dev/null 2>&1"):format(self.prefix, self.prefix))
  for _ = 1, 50 do
    if not run.exists(self.prefix .. "/nginx.pid") then break end
    socket.sleep(0.1)
  end
end

--- Writes a self-signed certificate for `cn` as dir/name.crt and dir/name.key.
function M.cert(dir, name, cn)
  local out, ok = sh(("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=%s -keyout %s -out %s")
    :format(quote(cn), quote(dir .. "/" .. name .. ".key"), quote(dir .. "/" .. name .. ".crt")))
  assert(ok, "openssl failed:\n" .. out)
end

--- Starts nginx. o: `workers` (1), `main` (directives of the main context, e.g. `env X;`), `http`
-- (the inside of the http block), `files` (name -> text, written to the prefix, which is on
-- lua_package_path after the build and before `lua_path`, a list of more entries), `certs`
-- (name -> CN: a self-signed name.crt and name.key in the prefix). In `main` and `http`, ${port}
-- is the port, ${prefix} the prefix, ${build} the build, ${root} the checkout, and ${name} each
-- name of `ports` (a free port each, also n.ports[name]) and of `vars`. Or `conf`, a whole
-- nginx.conf whose one `listen 127.0.0.1:N;` gets the port, with `lib = true` linking the build as
-- lib/ in the prefix. `env`: variable assignments nginx is started with.
function M.start(o)
  M.build()
  local prefix = run.tmpdir()
  os.execute("chmod 755 " .. quote(prefix)) -- a worker running as nobody reaches it
  local port = run.free_port()
  for name, text in pairs(o.files or {}) do run.write(prefix .. "/" .. name, text) end
  for name, cn in pairs(o.certs or {}) do M.cert(prefix, name, cn) end
  local root = sh("id -u"):match("^0%s") ~= nil
  local vars = {
    modules = modules(), user = root and "user root;" or "", root = run.ROOT,
    workers = o.workers or 1, prefix = prefix, build = M.BUILD, port = port,
  }
  local lua_path = { M.BUILD .. "/?.lua", prefix .. "/?.lua" }
  for _, entry in ipairs(o.lua_path or {}) do lua_path[#lua_path + 1] = entry end
  vars.lua_path = table.concat(lua_path, ";")
  local ports = {}
  for _, name in ipairs(o.ports or {}) do
    ports[name] = run.free_port()
    vars[name] = ports[name]
  end
  for k, v in pairs(o.vars or {}) do vars[k] = v end
  local function fill(text) return (text:gsub("%${([%w_]+)}", function(k) return tostring(assert(vars[k], k)) end)) end
  local globals = ""
  if o.conf then
    local conf, n = o.conf:gsub("listen 127%.0%.0%.1:%d+;", "listen 127.0.0.1:" .. port .. ";")
    assert(n == 1, "the nginx.conf must have one listen 127.0.0.1:N")
    run.write(prefix .. "/nginx.conf", conf)
    if o.lib then os.execute(("ln -s %s %s/lib"):format(quote(M.BUILD), quote(prefix))) end
    if root then globals = " -g 'user root;'" end
  else
    vars.http, vars.main = fill(o.http or ""), fill(o.main or "")
    run.write(prefix .. "/nginx.conf", fill(CONFIG))
  end
  local out, ok = sh(("%s nginx -p %s/ -c %s/nginx.conf -e %s/error.log%s"):format(o.env or "", prefix, prefix,
    prefix, globals))
  assert(ok, "nginx did not start:\n" .. out)
  -- Stops nginx if this process dies without its teardown. By the master's pid, read now: at the
  -- end of the run the prefix (its pid file with it) is removed before this process exits.
  os.execute(("setsid sh -c 'master=$(cat %s/nginx.pid); while kill -0 %d 2>/dev/null && [ -f %s/nginx.pid ]; "
    .. "do sleep 0.5; done; kill -0 $master 2>/dev/null && kill -TERM $master' </dev/null >/dev/null 2>&1 &")
    :format(prefix, run.OWN_PID, prefix))
  assert(run.wait_port(port, 5), "nginx does not accept connections on " .. port)
  return setmetatable({ port = port, ports = ports, prefix = prefix }, Nginx)
end

--- Sends `n` GETs of `path` (or of each path of a list) to 127.0.0.1:port at once, each on its
-- own connection, from this one process (20 curl processes started from a shell arrive spread
-- over a second or more on a loaded machine). Returns the bodies, the seconds from the first
-- send to the last answer. `o.on_tick(elapsed)`, called about every 0.1 s, may return the
-- indexes of requests to abandon (their connections are closed; their bodies stay nil).
function M.concurrent(port, path, n, o)
  o = o or {}
  local paths = type(path) == "table" and path or {}
  n = n or #paths
  local conns, bodies, ended = {}, {}, {} -- ended[i]: answered or abandoned
  local t0 = socket.gettime()
  for i = 1, n do
    local c = assert(socket.connect("127.0.0.1", port))
    assert(c:send("GET " .. (paths[i] or path) .. " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"))
    c:settimeout(0)
    conns[i], bodies[i] = c, {}
  end
  local open = n
  local deadline = t0 + (o.seconds or 60)
  while open > 0 and socket.gettime() < deadline do
    local readable = socket.select(conns, nil, 0.1)
    for _, c in ipairs(readable) do
      local i
      for k, v in ipairs(conns) do if v == c then i = k end end
      local data, err, partial = c:receive(65536)
      local got = data or partial
      if got and #got > 0 then bodies[i][#bodies[i] + 1] = got end
      if err == "closed" then
        c:close()
        conns[i] = socket.tcp() -- a placeholder select never reports
        ended[i], open = true, open - 1
      end
    end
    if o.on_tick then
      for _, i in ipairs(o.on_tick(socket.gettime() - t0) or {}) do
        if not ended[i] then
          conns[i]:close()
          conns[i] = socket.tcp()
          ended[i], open = true, open - 1
        end
      end
    end
  end
  local elapsed = socket.gettime() - t0
  for i = 1, n do bodies[i] = table.concat(bodies[i]):match("\r\n\r\n(.*)$") end
  return bodies, elapsed
end

--- Starts a redis-server on a free port; returns the port and a function that stops it by its PID.
function M.redis()
  assert(run.exists("/usr/bin/redis-server") and run.exists("/usr/share/lua/5.1/nginx/redis.lua"),
    "install redis-server and lua-nginx-redis (Debian) for this spec")
  local port = run.free_port()
  local dir = run.tmpdir()
  local pid = run.spawn(("cd %s && exec redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no "
    .. "--daemonize no --logfile %s/redis.log"):format(quote(dir), port, quote(dir)))
  local function stop()
    run.kill(pid)
    for _ = 1, 50 do
      if not run.alive(pid) then break end
      socket.sleep(0.1)
    end
  end
  if not run.wait_port(port, 5) then
    stop()
    error("redis-server does not accept connections")
  end
  return port, stop
end

return M
