-- Writes the pre-made pages of the static-file scenarios (bench/static.sh) into DIR:
--   p.json, pc2.json, ... pc<N>.json   N pages of 100 users each (about 80 KB a page), chained
--                                      by next_cursor (c2 ... cN, null on the last)
--   org.json                           one organization, for the HTTPS scenario
-- Users look like Truto's unified users: emails, phones, groups (empty for every fourth), roles,
-- timestamps and a remote_data object with a big (past 2^53) id.
--
--   lua5.4 bench/static/pages.lua DIR [PAGES]
local dir = assert(arg[1], "usage: pages.lua DIR [PAGES]")
local pages = tonumber(arg[2] or "200")
local FIRST = { "Alex", "Sam", "Robin", "Jamie", "Taylor", "Jordan", "Morgan", "Casey", "Riley", "Avery" }
local LAST = { "Smith", "Garcia", "Müller", "Kowalski", "Nakamura", "Okafor", "Dubois", "Rossi" }
local DEPT = { "Engineering", "Sales", "Support", "Finance", "Legal", "Design" }

local function user(i)
  local f, l = FIRST[i % #FIRST + 1], LAST[i % #LAST + 1]
  local login = (f .. "." .. l):lower():gsub("[^%w.]", "") .. i
  local groups = i % 4 == 0 and "[]"
    or string.format('[{"id":"grp-%d","name":"%s"},{"id":"grp-all","name":"Everyone"}]', i % 6, DEPT[i % 6 + 1])
  return string.format(
    '{"id":"usr-%06d","first_name":"%s","last_name":"%s","name":"%s %s","title":"%s engineer, level %d",'
      .. '"emails":[{"email":"%s@example.com","type":"work","is_primary":true}],'
      .. '"phones":[{"number":"+1-555-%04d","type":"work"}],"groups":%s,'
      .. '"roles":[{"id":"role-member","name":"Member"}],"status":"active","is_active":true,"is_admin":%s,'
      .. '"department":"%s",'
      .. '"avatar":"https://avatars.example.com/u/%d?s=128&v=4",'
      .. '"created_at":"2023-%02d-%02dT09:%02d:00.000Z","updated_at":"2024-%02d-%02dT17:%02d:00.000Z",'
      .. '"last_login_at":"2024-06-%02dT08:00:00.000Z",'
      .. '"remote_data":{"id":%d,"login":"%s","node_id":"MDQ6VXNlcjE%06d","type":"User","site_admin":false,'
      .. '"two_factor_authentication":true,'
      .. '"permissions":{"admin":false,"push":true,"pull":true}}}',
    i, f, l, f, l, DEPT[i % 6 + 1], i % 5 + 1, login, i % 10000, groups,
    i % 17 == 0 and "true" or "false", DEPT[i % 6 + 1], i,
    i % 12 + 1, i % 28 + 1, i % 60, i % 12 + 1, i % 28 + 1, i % 60, i % 28 + 1,
    9007199254740993 + i, login, i)
end

local n = 0
for p = 1, pages do
  local items = {}
  for _ = 1, 100 do
    n = n + 1
    items[#items + 1] = user(n)
  end
  local next_cursor = p < pages and string.format('"c%d"', p + 1) or "null"
  local f = assert(io.open(string.format("%s/%s.json", dir, p == 1 and "p" or "pc" .. p), "w"))
  f:write('{"result":[', table.concat(items, ","), '],"next_cursor":', next_cursor, "}")
  f:close()
end
local f = assert(io.open(dir .. "/org.json", "w"))
f:write('{"id":"org-1","name":"Acme Corp","pricing_plan":"enterprise","licenses":[{"id":"lic-ent",'
  .. '"name":"Enterprise"}],"created_at":"2022-06-16T09:00:00Z","updated_at":"2023-03-03T09:00:00Z",'
  .. '"remote_data":{"id":9001,"login":"acme","plan":{"name":"enterprise","seats":250}}}')
f:close()
