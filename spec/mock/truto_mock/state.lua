-- Everything the mock Truto server remembers between requests, kept in the shared dict
-- `truto_mock` (one worker, but a dict survives a code reload and is trivially cleared):
--   org:<id>   the organization as PATCHed (JSON), or "" once DELETEd; absent: the fixture
--   flaky:<account>   requests seen by a flaky account
--   seq:<resource>    ids handed out by create
--   idem:<key>        the response first given for an Idempotency-Key
-- /__mock/reset clears it all.

local json = require "truto_mock.json"
local fixtures = require "truto_mock.fixtures"

local state = {}

local dict = ngx.shared.truto_mock

function state.reset()
  dict:flush_all()
  dict:flush_expired()
end

--- Counts one more request of `account`; returns the count so far.
function state.count_request(account)
  return (dict:incr("flaky:" .. account, 1, 0))
end

--- The next id for an object created in `resource` ("users" -> "u-new-1", ...).
function state.new_id(resource)
  local n = dict:incr("seq:" .. resource, 1, 0)
  return resource:sub(1, 1) .. "-new-" .. n
end

---------------------------------------------------------------------------------------------
-- Organizations

--- The current organizations, in fixture order, deleted ones left out.
function state.organizations()
  local list = {}
  for _, org in ipairs(fixtures.organizations()) do
    local saved = dict:get("org:" .. org.id)
    if saved == nil then
      list[#list + 1] = org
    elseif saved ~= "" then
      list[#list + 1] = assert(json.decode(saved))
    end
  end
  return list
end

function state.organization(id)
  for _, org in ipairs(state.organizations()) do
    if org.id == id then return org end
  end
  return nil
end

function state.save_organization(org)
  assert(dict:set("org:" .. org.id, json.encode(org)))
end

function state.delete_organization(id)
  assert(dict:set("org:" .. id, ""))
end

---------------------------------------------------------------------------------------------
-- Idempotency keys

--- The response stored for `key`, or nil.
function state.replay(key)
  local saved = dict:get("idem:" .. key)
  return saved and json.decode(saved)
end

function state.remember(key, resp)
  dict:set("idem:" .. key, json.encode({
    status = resp.status, body = resp.body or json.null, content_type = resp.content_type or json.null,
  }))
end

return state
