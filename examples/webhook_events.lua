--- What examples/webhook-nginx.conf does with each verified Truto event: it runs in an
-- ngx.timer after Truto got its 200, so it may take its time (cosockets, sleeps). Here it
-- appends the event as one JSON line to events.ndjson in nginx's prefix and logs a notice.
-- luacheck: std luajit+ngx_lua
local truto = require "truto"

local M = {}

function M.handle(event)
  local line = assert(truto.encode_json(event))
  local f = assert(io.open(ngx.config.prefix() .. "events.ndjson", "a"))
  f:write(line, "\n")
  f:close()
  ngx.log(ngx.NOTICE, "truto event ", event.event, " ", event.id)
end

return M
