-- Shared set-up for specs that talk to the mock Truto server: one server
-- per busted run, a client pointed at it, and the request log.
local mock = require "spec.helpers.mock"
local truto = require "truto"

-- Requiring this helper starts the server (once per busted run), so specs
-- may read or reset the log before they build a client.
mock.start()

local M = { mock = mock }

function M.server()
  return mock.start()
end

-- A client for the mock; opts override the defaults.
function M.client(opts)
  local m = mock.start()
  local o = { token = m.token, base_url = m.url }
  for k, v in pairs(opts or {}) do o[k] = v end
  return truto.new(o)
end

-- Runs fn, which must raise; returns the raised value.
function M.raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return err
end

-- Collects every value of a generic for over iter.
function M.collect(iter, state, init, closer)
  local items, keys = {}, {}
  for item, key in iter, state, init, closer do
    items[#items + 1] = item
    keys[#keys + 1] = key
  end
  return items, keys
end

return M
