--- truto.ngx.request: what the nginx transport keeps per nginx request.
--
-- The abort flag of a downstream request (truto.ngx.abort), in its ngx.ctx
-- under a key nobody else has, and the ctx itself, which tells the request a
-- socket belongs to (cosockets cannot cross requests). The phase sets come
-- from truto.transport, the one registry of them.
--
-- @module truto.ngx.request
-- luacheck: std luajit+ngx_lua
local ngx = ngx -- luacheck: ignore 113 (the nginx API, global inside nginx)
local pcall = pcall

local phases = require "truto.transport"

local M = {}

local CTX_KEY = {}
local ABORTABLE = phases.ABORTABLE

--- The state of the current downstream request ({ aborted }), made when
-- `create`; nil outside a request a client can abandon.
function M.state(create)
  if not ABORTABLE[ngx.get_phase()] then return nil end
  local ctx = ngx.ctx
  local state = ctx[CTX_KEY]
  if not state and create then
    state = { aborted = false }
    ctx[CTX_KEY] = state
  end
  return state
end

--- Marks the current nginx request as abandoned by its client. Never raises.
function M.abort()
  local ok, state = pcall(M.state, true)
  if ok and state then state.aborted = true end
end

--- The current ngx.ctx, or nil where there is none.
function M.ctx()
  local ok, ctx = pcall(function() return ngx.ctx end)
  return ok and ctx or nil
end

return M
