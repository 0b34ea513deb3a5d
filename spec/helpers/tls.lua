-- An HTTPS front for the mock server, for the TLS specs: a throw-away CA
-- and server certificate made with openssl, and an nginx that terminates
-- TLS on a free loopback port and proxies to the mock. It also serves
-- /redirect, a 302 to the plain mock, to prove redirects are not followed.
local socket = require "socket"
local helper = require "spec.helpers.run"

local M = {}

local function run(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  assert(ok, "failed: " .. cmd)
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end


local function make_certificates(dir)
  run(("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=lua-truto-test-ca "
    .. "-keyout %s/ca.key -out %s/ca.crt"):format(dir, dir))
  run(("openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout %s/server.key -out %s/server.csr")
    :format(dir, dir))
  write(dir .. "/ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
  run(("openssl x509 -req -in %s/server.csr -CA %s/ca.crt -CAkey %s/ca.key -CAcreateserial -days 2 "
    .. "-extfile %s/ext -out %s/server.crt"):format(dir, dir, dir, dir, dir))
end

local CONFIG = [[
%s
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %s/body;
  proxy_temp_path %s/proxy;
  fastcgi_temp_path %s/fastcgi;
  uwsgi_temp_path %s/uwsgi;
  scgi_temp_path %s/scgi;
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s/server.crt;
    ssl_certificate_key %s/server.key;
    location = /redirect {
      return 302 http://127.0.0.1:%d/unified/user-directory/organizations/org-1?integrated_account_id=acct-small;
    }
    location / {
      proxy_pass http://127.0.0.1:%d;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
]]

-- Starts the front for a mock on mock_port; returns { url, ca_file, dir }.
function M.start(mock_port)
  local dir = helper.tmpdir()
  make_certificates(dir)
  local port = helper.free_port()
  local is_root = io.popen("id -u"):read("*l") == "0"
  write(dir .. "/nginx.conf", CONFIG:format(is_root and "user root;" or "", dir, dir, dir, dir, dir, dir, dir,
    port, dir, dir, mock_port, mock_port))
  run(("nginx -p %s/ -c %s/nginx.conf -e %s/error.log"):format(dir, dir, dir))
  helper.wait_port(port, 5)
  M.dir = dir
  return {
    url = "https://localhost:" .. port, ip_url = "https://127.0.0.1:" .. port,
    ca_file = dir .. "/ca.crt", dir = dir,
  }
end

function M.stop()
  if not M.dir then return end
  os.execute(("nginx -p %s/ -c %s/nginx.conf -e %s/error.log -s stop >/dev/null 2>&1"):format(M.dir, M.dir, M.dir))
  socket.sleep(0.2)
  M.dir = nil
end

return M
