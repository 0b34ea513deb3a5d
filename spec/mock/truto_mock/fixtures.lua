-- The data behind the mock Truto server, all of it computed, none of it random:
--   * the 40 users of acct-small (u001..u040), its 6 groups (g01..g06), the 3 organizations;
--   * the users of acct-large and acct-huge, each built from its index on demand.
-- Plain Lua (LuaJIT inside nginx, Lua 5.4 in specs): `require "spec.mock.truto_mock.fixtures"`
-- gives a spec the very values the server sends. Returned tables are shared: do not modify them.

local json = require(((...):gsub("fixtures$", "json")))

local fixtures = {}

local DAY = 86400
local EPOCH = 1672650000 -- 2023-01-02T09:00:00Z, the first account creation

local function iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end

---------------------------------------------------------------------------------------------
-- Groups

local GROUPS = {
  { "g01", "Engineering", "department" },
  { "g02", "Sales", "department" },
  { "g03", "Support", "team" },
  { "g04", "Design Ünit", "team" },
  { "g05", "Admins", "group" },
  { "g06", "Contractors", "group" },
}

-- The short form a user's `groups` array holds.
local GROUP_REFS = {}
for k, g in ipairs(GROUPS) do
  GROUP_REFS[k] = { id = g[1], name = g[2] }
end

---------------------------------------------------------------------------------------------
-- acct-small users: { first name, last name (nil: none), handle, name when not "first last" }

local PEOPLE = {
  { "Zoë", "Ångström", "zoe.angstrom" },
  { "雷", "李", "li.lei", name = "李雷" },
  { "José", "Núñez", "jose.nunez" },
  { "Ada", "Lovelace", "ada" },
  { "Grace", "Hopper", "grace.hopper" },
  { "Björk", nil, "bjork" },
  { "Amélie", "Dubois", "amelie.dubois" },
  { "Søren", "Kjær", "soren.kjaer" },
  { "Mai", "Nguyễn", "mai.nguyen", name = "Nguyễn Thị Mai" },
  { "Олег", "Петров", "oleg.petrov" },
  { "Priya", "Raman", "priya.raman" },
  { "Kwame", nil, "kwame" },
  { "Łukasz", "Wróbel", "lukasz.wrobel" },
  { "Fatima", "Al-Sayed", "fatima.alsayed" },
  { "浩", "田中", "hiroshi.tanaka", name = "田中浩" },
  { "Chloé", "O'Brien", "chloe.obrien" },
  { 'Robert "Bobby"', "Tables", "bobby.tables" },
  { "Mia", "Müller", "mia.mueller" },
  { "Noah", "Smith", "noah.smith" },
  { "Emma", "Johnson", "emma.johnson" },
  { "Liam", "Brown", "liam.brown" },
  { "Olivia", "García", "olivia.garcia" },
  { "Lucas", "Martin", "lucas.martin" },
  { "Sofia", "Rossi", "sofia.rossi" },
  { "Mateo", "Fernández", "mateo.fernandez" },
  { "Yuki", "Sato", "yuki.sato" },
  { "Aarav", "Patel", "aarav.patel" },
  { "Ingrid", "Berg", "ingrid.berg" },
  { "Tomás", "Ó Ceallaigh", "tomas.oceallaigh" },
  { "Elena", "Popescu", "elena.popescu" },
  { "Kai", nil, "kai" },
  { "Leila", "Haddad", "leila.haddad" },
  { "Jonas", "Schmidt", "jonas.schmidt" },
  { "Ana", "Souza", "ana.souza" },
  { "Omar", "Farouk", "omar.farouk" },
  { "Nora", "Lind", "nora.lind" },
  { "Diego", "Ramírez", "diego.ramirez" },
  { "Hana", "Kim", "hana.kim" },
  { "Felix", "Wagner", "felix.wagner" },
  { "Ivy", "Chen", "ivy.chen" },
}

-- Mostly active, and every status Truto knows appears.
local STATUSES = { "active", "active", "inactive", "active", "invited",
  "active", "deleted", "active", "created", "active" }

local TITLES = { "Engineer", "Account Executive", "Support Lead", "Designer", "Head of IT" }

local ADMIN = { id = "r-admin", name = "Admin" }
local MEMBER = { id = "r-member", name = "Member" }

local function status_of(i)
  return STATUSES[(i - 1) % #STATUSES + 1]
end

-- Work address first (the primary one), then a personal one and an alias for some users.
local function emails_of(i, handle)
  if i % 8 == 0 then return nil end -- u008, u016, ...: no emails at all
  local list = { { email = handle .. "@acme.example", is_primary = true, type = "work" } }
  if i % 3 == 0 then
    list[#list + 1] = { email = handle .. "@mail.example", is_primary = false, type = "personal" }
  end
  if i % 5 == 0 then
    list[#list + 1] = { email = handle .. "+alias@acme.example", is_primary = false, type = "other" }
  end
  return list
end

-- One group for most users, two for every fourth, none for the just-created ones.
local function groups_of(i)
  if status_of(i) == "created" then return json.array() end
  local list = { GROUP_REFS[(i - 1) % 6 + 1] }
  if i % 4 == 0 then list[2] = GROUP_REFS[(i + 2) % 6 + 1] end
  return list
end

local function small_user(i)
  local first, last, handle = PEOPLE[i][1], PEOPLE[i][2], PEOPLE[i][3]
  local status = status_of(i)
  local emails = emails_of(i, handle)
  local admin = i % 10 == 1
  local created = EPOCH + (i - 1) * 9 * DAY + i * 1234
  local never_logged_in = status == "invited" or status == "created"
  local name = PEOPLE[i].name or (last and first .. " " .. last or first)
  return {
    id = string.format("u%03d", i),
    first_name = first,
    last_name = last,
    name = name,
    username = handle,
    emails = emails,
    status = status,
    title = i % 2 == 1 and TITLES[math.floor(i / 2) % #TITLES + 1] or nil,
    groups = groups_of(i),
    roles = { admin and ADMIN or MEMBER },
    created_at = iso(created),
    updated_at = iso(created + (i * 7919 % 90 + 1) * DAY),
    last_login_at = not never_logged_in and iso(created + (i * 31 % 60 + 1) * DAY) or nil,
    login_count = never_logged_in and 0 or i * 137 % 501,
    is_2fa_enabled = i % 3 ~= 1,
    employee_number = i == 40 and json.raw("9007199254740993") or nil, -- 2^53 + 1
    remote_data = {
      id = 583000 + i,
      login = handle,
      node_id = "MDQ6VXNlcj" .. (583000 + i),
      type = "User",
      site_admin = admin,
      email = emails and emails[1].email or json.null,
      name = name,
    },
  }
end

local USERS = {}
for i = 1, #PEOPLE do
  USERS[i] = small_user(i)
end

--- The 40 users of acct-small, u001..u040, in id order.
function fixtures.users()
  return USERS
end

---------------------------------------------------------------------------------------------
-- Groups, with their member counts taken from the users above.

local GROUP_LIST = {}
for k, g in ipairs(GROUPS) do
  local members = 0
  for _, user in ipairs(USERS) do
    for _, ref in ipairs(user.groups) do
      if ref.id == g[1] then members = members + 1 end
    end
  end
  local created = EPOCH - (7 - k) * 30 * DAY
  GROUP_LIST[k] = {
    id = g[1],
    name = g[2],
    type = g[3],
    members = members,
    description = g[2] .. " (" .. g[3] .. ")",
    created_at = iso(created),
    updated_at = iso(created + k * 11 * DAY),
    remote_data = { id = 7000 + k, slug = g[2]:lower():gsub("[^%w]+", "-"), privacy = "closed",
      members_count = members },
  }
end

--- The 6 groups g01..g06.
function fixtures.groups()
  return GROUP_LIST
end

---------------------------------------------------------------------------------------------
-- Organizations: returned fresh on every call, because the server merges PATCHes into them.

function fixtures.organizations()
  return {
    { id = "org-1", name = "Acme Corp", pricing_plan = "enterprise",
      licenses = { { id = "lic-ent", name = "Enterprise" }, { id = "lic-sso", name = "SSO add-on" } },
      created_at = iso(EPOCH - 400 * DAY), updated_at = iso(EPOCH + 30 * DAY),
      remote_data = { id = 9001, login = "acme", plan = { name = "enterprise", seats = 250 } } },
    { id = "org-2", name = "Globex", pricing_plan = "team", licenses = json.array(),
      created_at = iso(EPOCH - 200 * DAY), updated_at = iso(EPOCH + 60 * DAY),
      remote_data = { id = 9002, login = "globex", plan = { name = "team", seats = 25 } } },
    { id = "org/with space:ü", name = "Ünïcode & Sons", pricing_plan = "free",
      licenses = { { id = "lic-free", name = "Free" } },
      created_at = iso(EPOCH - 10 * DAY), updated_at = iso(EPOCH + 90 * DAY),
      remote_data = { id = 9003, login = "unicode-sons", plan = json.null } },
  }
end

---------------------------------------------------------------------------------------------
-- Users of the large accounts: user `i` of a series is a pure function of `i`.

local FIRST = { "Alex", "Sam", "Robin", "Jamie", "Taylor", "Jordan", "Morgan", "Casey", "Riley",
  "Avery", "Quinn", "Rowan", "Sasha", "Noor", "Kim" }
local LAST = { "Andersen", "Baker", "Costa", "Dahl", "Evans", "Fischer", "Gomez", "Horvat",
  "Ito", "Jansen", "Kowalski", "Larsen", "Moreau" }

--- The series behind acct-large and acct-huge: id prefix, digits, size.
fixtures.LARGE = { prefix = "L", digits = 6, count = 100000, domain = "large.example" }
fixtures.HUGE = { prefix = "H", digits = 7, count = 1000000, domain = "huge.example" }
fixtures.K1 = { prefix = "K", digits = 4, count = 1000, domain = "1k.example" }

--- User `i` (1-based) of `series`.
function fixtures.generated_user(series, i)
  local id = series.prefix .. string.format("%0" .. series.digits .. "d", i)
  local handle = id:lower()
  local first = FIRST[i % #FIRST + 1]
  local last = LAST[math.floor(i / #FIRST) % #LAST + 1]
  local created = EPOCH + i * 60
  return {
    id = id,
    first_name = first,
    last_name = last,
    name = first .. " " .. last,
    username = handle,
    emails = { { email = handle .. "@" .. series.domain, is_primary = true, type = "work" } },
    status = status_of(i),
    groups = { GROUP_REFS[i % 6 + 1] },
    roles = { i % 100 == 1 and ADMIN or MEMBER },
    created_at = iso(created),
    updated_at = iso(created + (i % 97) * DAY),
    login_count = i * 137 % 501,
    is_2fa_enabled = i % 2 == 0,
    remote_data = { id = i, login = handle, type = "User" },
  }
end

--- The index of a generated id in `series` (nil when `id` is not one of its users).
function fixtures.generated_index(series, id)
  local digits = id:match("^" .. series.prefix .. "(%d+)$")
  local i = digits and #digits == series.digits and tonumber(digits)
  if i and i >= 1 and i <= series.count then return i end
  return nil
end

return fixtures
