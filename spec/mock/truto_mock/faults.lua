-- The failures the fault accounts produce (`fault-<name>`, `flaky-<name>-<n>`).
-- faults.run(name, normal) returns the response to send, or nil to go on and answer normally
-- (fault-slow, after its pause). Faults that break HTTP itself (close, truncated, huge-length)
-- never return: they write to the raw socket, or send nothing, and close the connection.

local reply = require "truto_mock.reply"

local faults = {}

-- nginx closes the connection without a word for this status.
local CLOSE = 444

local function rate_limited(seconds, headers)
  return reply.error(429, "Rate limit exceeded", {
    truto_error_insight = { rate_limit_error = { retry_after_seconds = seconds } },
  }, headers)
end
faults.rate_limited = rate_limited

-- Writes `head` and then `body` straight to the client socket, past nginx's filters (no gzip,
-- no corrected Content-Length), then drops the connection.
local function raw_http(head, body)
  local sock = assert(ngx.req.socket(true))
  sock:send(head .. "\r\n" .. body)
  return ngx.exit(CLOSE)
end

local HTML = [[<!DOCTYPE html>
<html><head><title>Just a moment...</title></head>
<body><h1>Checking your browser before accessing api.truto.one</h1>
<p>This process is automatic.</p></body></html>
]]

local FAULTS = {
  ["429"] = function()
    return rate_limited(1, { ["Retry-After"] = "1", ["ratelimit-limit"] = "110;w=10",
      ["ratelimit-remaining"] = "0", ["ratelimit-reset"] = "1" })
  end,
  ["429-date"] = function()
    return rate_limited(2, { ["Retry-After"] = ngx.http_time(ngx.time() + 2) })
  end,
  ["429-reset"] = function()
    return rate_limited(3, { ["ratelimit-reset"] = "3" })
  end,
  ["500"] = function() return reply.error(500, "Internal server error") end,
  ["502"] = function() return reply.error(502, "Bad gateway: the remote API did not answer") end,
  ["503"] = function() return reply.error(503, "Integrated account is blocked") end,
  ["504"] = function() return reply.error(504, "Gateway timeout: the remote API took too long") end,
  remote = function()
    return reply.error(401, "Bad credentials", {
      truto_is_remote_error = true,
      raw_response = { message = "Bad credentials" },
      truto_error_insight = { forbidden_error = { missing_scopes = { "admin:org" } } },
    }, { ["x-github-request-id"] = "ABCD" })
  end,
  malformed = function() return reply.raw(200, '{"result": [ {"id": "u1",', reply.JSON) end,
  notobject = function() return reply.raw(200, "[1,2,3]", reply.JSON) end,
  badresult = function() return reply.raw(200, '{"result": "oops", "next_cursor": null}', reply.JSON) end,
  badcursor = function() return reply.raw(200, '{"result": [], "next_cursor": 42}', reply.JSON) end,
  html = function() return reply.raw(200, HTML, "text/html; charset=utf-8") end,
  nul = function()
    return reply.raw(200, '{"result":[{"id":"a\\u0000b"}],"next_cursor":null,"result_count":1}',
      reply.JSON)
  end,
  close = function() return ngx.exit(CLOSE) end,
  slow = function() ngx.sleep(3) end,
  -- Announces the whole of the normal answer, sends not quite half of it.
  truncated = function(normal)
    local resp = normal()
    local body = resp.body or ""
    return raw_http("HTTP/1.1 200 OK\r\nContent-Type: " .. reply.JSON .. "\r\nContent-Length: "
      .. #body .. "\r\n", body:sub(1, math.floor(#body * 0.4)))
  end,
  ["huge-length"] = function()
    return raw_http("HTTP/1.1 200 OK\r\nContent-Type: " .. reply.JSON
      .. "\r\nContent-Length: 2147483648\r\n", '{"result":[')
  end,
}

function faults.exists(name)
  return FAULTS[name] ~= nil
end

--- Produces fault `name`. `normal()` builds the answer the request would get otherwise.
function faults.run(name, normal)
  return FAULTS[name](normal)
end

return faults
