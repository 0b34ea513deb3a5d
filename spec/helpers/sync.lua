-- Busted helper for the sync specs: one run's changes, and a sorted summary of them.
--
--   local sync = require "spec.helpers.sync"
--   local changes, state = sync.changes_of(client, "users", params, opts)
--   sync.summary(changes[, with_account]) -- { "created K-new-1", "deleted K0002", ... }
local M = {}

--- Every change of one run of client:sync, and the iterator's state.
function M.changes_of(client, resource, params, opts)
  local out = {}
  local it, st, init, closer = client:sync(resource, params, opts)
  for change in it, st, init, closer do out[#out + 1] = change end
  return out, st
end

--- "op id" of each change (and " account_id" with `with_account`), sorted.
function M.summary(changes, with_account)
  local out = {}
  for i, c in ipairs(changes) do
    out[i] = c.op .. " " .. c.id .. (with_account and " " .. c.account_id or "")
  end
  table.sort(out)
  return out
end

return M
