-- Responses of the mock Truto server: a response is a plain table
--   { status = 200, body = "<bytes>" | nil, content_type = ..., headers = { name = value } }
-- built by the functions below and written by reply.send. Building before sending is what lets
-- the server replay a response for a repeated Idempotency-Key.

local json = require "truto_mock.json"

local reply = {}

reply.JSON = "application/json; charset=utf-8"

local REASONS = {
  [200] = "OK", [201] = "Created", [204] = "No Content",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [409] = "Conflict", [422] = "Unprocessable Entity",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

function reply.reason(status)
  return REASONS[status] or "Error"
end

--- A JSON response holding `value`.
function reply.json(status, value, headers)
  return { status = status, body = json.encode(value), content_type = reply.JSON, headers = headers }
end

--- Bytes sent as they are (malformed JSON, HTML, ...).
function reply.raw(status, body, content_type, headers)
  return { status = status, body = body, content_type = content_type, headers = headers }
end

--- A Truto error: `{"statusCode":N,"error":"<reason>","message":...}` plus the `extra` fields.
function reply.error(status, message, extra, headers)
  local body = { statusCode = status, error = reply.reason(status), message = message }
  for k, v in pairs(extra or {}) do body[k] = v end
  return reply.json(status, body, headers)
end

function reply.send(resp)
  ngx.status = resp.status
  for name, value in pairs(resp.headers or {}) do
    ngx.header[name] = value
  end
  if resp.body then
    ngx.header["Content-Type"] = resp.content_type
    ngx.header["Content-Length"] = #resp.body
    ngx.print(resp.body)
  end
  return ngx.exit(ngx.OK)
end

return reply
