--- Command-line arguments: the options, their parsing, and the query
-- parameters built from -q KEY=VALUE.
local M = {}

local format = string.format

local grammar = require "truto.cli.grammar"

-- Derived from truto.cli.grammar, the one declaration:
-- OPTIONS[name] = { field, takes a value, repeatable }; COMMON: the fields of
-- the options every API command accepts; ACCEPTS[command][field];
-- ACTIONS[name]; ARGUMENT[action]: its positional (ID, METHOD).
M.OPTIONS, M.COMMON, M.ACCEPTS, M.ACTIONS, M.ARGUMENT = {}, {}, {}, {}, {}
M.RESOURCES = grammar.RESOURCES
for _, o in ipairs(grammar.OPTIONS) do
  for _, name in ipairs(o[1]) do M.OPTIONS[name] = { o[2], o.value ~= nil, o.many } end
  if o.on == "common" then M.COMMON[o[2]] = true end
end
for _, command in ipairs { "list", "get", "create", "update", "delete", "call", "mock", "completion" } do
  M.ACCEPTS[command] = {}
  for _, o in ipairs(grammar.OPTIONS) do
    if o.on ~= "common" and grammar.accepts(o, command) then M.ACCEPTS[command][o[2]] = true end
  end
end
for _, action in ipairs(grammar.ACTIONS) do
  M.ACTIONS[action.name] = true
  M.ARGUMENT[action.name] = action.arg
end

--- The edit distance of `a` and `b` (Damerau-Levenshtein: a swap of two
-- neighbours counts 1, so "usres" is 1 from "users").
function M.distance(a, b)
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      d[i][j] = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:sub(i, i) == b:sub(j - 1, j - 1) and a:sub(i - 1, i - 1) == b:sub(j, j) then
        d[i][j] = math.min(d[i][j], d[i - 2][j - 2] + 1)
      end
    end
  end
  return d[#a][#b]
end

--- The candidate closest to `word` when it is close enough to be a typo
-- (1 edit, or 2 for words of 6 letters or more), else nil. `candidates`
-- is a list or a set (keys).
function M.suggest(word, candidates)
  local list = candidates[1] and candidates or {}
  if not candidates[1] then for k in pairs(candidates) do list[#list + 1] = k end end
  table.sort(list)
  local best, best_d = nil, #word >= 6 and 3 or 2
  for _, c in ipairs(list) do
    local dist = M.distance(word:lower(), c)
    if dist < best_d then best, best_d = c, dist end
  end
  return best
end

-- " (did you mean 'x'?)" or "".
function M.did_you_mean(word, candidates)
  local s = M.suggest(word, candidates)
  return s and format("; did you mean '%s'?", s) or ""
end

--- Splits argv into options, positional arguments and the name each option
-- was given as. A later value of an option replaces an earlier one (-q and
-- -H add up); the value of an option is the next word, unless that word
-- is itself an option name (`--fields -a x`: write --fields=-a to mean it).
function M.parse(sys, argv)
  local opts, positional, seen = { query = {}, header = {} }, {}, {}
  local i, n = 1, #argv
  while i <= n do
    local a = argv[i]
    if a == "--" then
      for j = i + 1, n do positional[#positional + 1] = argv[j] end
      break
    end
    local name, inline = a:match("^(%-%-[^=]+)=(.*)$")
    if not name then
      name, inline = a:match("^(%-%a)(.+)$") -- -aACCOUNT, -ojson
      if not (name and M.OPTIONS[name] and M.OPTIONS[name][2]) then name, inline = a, nil end
    end
    if name:sub(1, 1) == "-" and name ~= "-" then
      local spec = M.OPTIONS[name]
      if not spec then sys:usage(format("unknown option '%s'%s", name, M.did_you_mean(name, M.OPTIONS))) end
      local field, takes, repeatable = spec[1], spec[2], spec[3]
      local value = true
      if takes then
        if inline then
          value = inline
        else
          i = i + 1
          value = argv[i]
          if value == nil then sys:usage(format("option '%s' needs a value", name)) end
          if M.OPTIONS[value] or (value:match("^%-%-[^=]+=") and M.OPTIONS[value:match("^(%-%-[^=]+)=")]) then
            sys:usage(format("option '%s' needs a value, got the option '%s' (write %s=%s if that is the value)",
              name, value, name, value))
          end
        end
      elseif inline then
        sys:usage(format("option '%s' takes no value", name))
      end
      if repeatable then
        opts[field][#opts[field] + 1] = value
      else
        opts[field] = value
      end
      seen[field] = name
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  return opts, positional, seen
end

function M.positive_integer(sys, value, name, topic)
  local n = math.tointeger(tonumber(value))
  if not n or n < 1 or not value:match("^%d+$") then
    sys:usage(format("%s expects a positive integer, got '%s'", name, value), topic)
  end
  return n
end

--- -q KEY=VALUE into the query table: KEY[SUB]=V nests, KEY[]=V appends.
-- `kinds` remembers whether each nested table is a list or a map.
function M.add_query(sys, query, kinds, spec)
  local key, value = spec:match("^([^=]*)=(.*)$")
  if not key or key == "" then
    sys:usage(format("-q expects KEY=VALUE, got '%s'", spec))
  end
  local path = { key:match("^([^%[%]]+)") }
  if #path == 0 then sys:usage(format("-q '%s': the key must start with a name", spec)) end
  local rest = key:sub(#path[1] + 1)
  while rest ~= "" do
    local sub, after = rest:match("^%[([^%[%]]*)%](.*)$")
    if not sub then sys:usage(format("-q '%s': expected [NAME] or [] after '%s'", spec, path[1])) end
    path[#path + 1] = sub
    rest = after
  end
  local t, prefix = query, ""
  for k, name in ipairs(path) do
    local label = k == 1 and name or prefix .. "[" .. name .. "]"
    if k > 1 then
      local want = name == "" and "list" or "map"
      if kinds[t] and kinds[t] ~= want then
        sys:usage(format("-q '%s': %s is used both as a list (%s[]=...) and with names", spec, prefix, prefix))
      end
      kinds[t] = want
    end
    local last = k == #path
    if name == "" then
      if last then
        t[#t + 1] = value
      else
        local new = {}
        t[#t + 1] = new
        t = new
      end
    else
      local cur = t[name]
      if last then
        if cur ~= nil then
          sys:usage(format("-q '%s': %s given twice (use %s[]=VALUE for a list)", spec, label, label))
        end
        t[name] = value
      elseif cur == nil then
        t[name] = {}
        t = t[name]
      elseif type(cur) == "table" then
        t = cur
      else
        sys:usage(format("-q '%s': %s already has a plain value", spec, label))
      end
    end
    prefix = label
  end
end

function M.split_fields(sys, spec)
  local fields, seen = {}, {}
  for f in (spec .. ","):gmatch("([^,]*),") do
    f = f:match("^%s*(.-)%s*$")
    if f == "" then sys:usage("--fields: empty field name in '" .. spec .. "'") end
    if seen[f] then sys:usage("--fields: '" .. f .. "' given twice") end
    if f:match("%.0$") or f:match("%.0%.") then
      local first = f:gsub("%.0%.", ".1."):gsub("%.0$", ".1")
      sys:say(format("warning: --fields %s: list indexes start at 1 (%s is the first item)", f, first))
    end
    seen[f] = true
    fields[#fields + 1] = f
  end
  return fields
end

--- -H 'Name: value' lines into a headers table.
function M.headers(sys, lines)
  local headers, seen = {}, {}
  for _, line in ipairs(lines) do
    local name, value = line:match("^%s*([!#$%%&'*+%-.^_`|~%w]+)%s*:%s*(.-)%s*$")
    if not name then sys:usage(format("-H expects 'Name: value', got '%s'", line)) end
    if value:find("[%z\1-\31\127]") then sys:usage(format("-H '%s': control character in the value", name)) end
    local lower = name:lower()
    if lower == "authorization" or lower == "host" or lower == "content-length" then
      sys:usage(format("-H: %s is set by lua-truto itself", name))
    end
    if seen[lower] then sys:usage(format("-H: %s given twice", name)) end
    seen[lower] = true
    headers[name] = value
  end
  return headers
end

return M
