-- The user documentation, README.md and docs/*.md, checked as code is:
--  * the pages the README's tour promises exist;
--  * every ```lua block compiles (a `do ... end` stands for a loop body the
--    reader writes: it is read as `do end`);
--  * a ```lua block right after a line `<!-- runs against the mock -->`
--    (`<!-- runs against the mock: NAME=value ... -->` adds environment
--    variables) runs: lua5.4 in a fresh directory, TRUTO_API_TOKEN and
--    TRUTO_BASE_URL naming the mock, with `truto` and `client` (truto.new())
--    given as globals for fragments; it must exit 0 with output, nothing on
--    stderr, and the mock must have been asked;
--  * every relative link (`[text](page.md#anchor)`) names a file of the
--    checkout, and an anchor names a heading of that page (GitHub's slugs);
--  * every name of the exported API is documented: each function and field
--    of `require "truto"`, each method of a client (`truto.Client`), each
--    client option (truto.options.CLIENT) and call option
--    (truto.options.CALL) appears in the pages, and each exported function
--    has a `---` LDoc comment in the sources; the same for truto.webhook.
-- make test runs it, so CI fails on an undocumented name or a dead link.
local run = require "spec.helpers.run"

local PAGES = { "api", "lists", "errors", "rate-limits", "json", "openresty", "sync", "cli", "webhooks",
  "mock", "performance", "testing", "assumptions" }

-- { path = "README.md" | "docs/x.md", text = ... } for every page.
local function pages()
  local list = { { path = "README.md", text = run.read(run.ROOT .. "/README.md") } }
  local names = run.shell("cd " .. run.quote(run.ROOT) .. " && ls docs/*.md")
  for path in names:gmatch("[^\n]+") do list[#list + 1] = { path = path, text = run.read(run.ROOT .. "/" .. path) } end
  return list
end

-- The text outside fenced code blocks.
local function prose(text)
  return (("\n" .. text):gsub("\n%s*```.-\n%s*```", "\n"))
end

-- The code of every page: its fenced blocks and its `code spans`, where a
-- documented name must show (a word like `get` in prose proves nothing).
local function all_code()
  local parts = {}
  for _, page in ipairs(pages()) do
    for block in ("\n" .. page.text):gmatch("\n%s*```[^\n]*\n(.-)\n%s*```") do parts[#parts + 1] = block end
    for span in prose(page.text):gmatch("`([^`\n]+)`") do parts[#parts + 1] = span end
  end
  return table.concat(parts, "\n")
end

-- GitHub's anchor of a heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`.
local function slug(heading)
  return (heading:lower():gsub("[^%w%s_-]", ""):gsub("%s", "-"))
end

local function anchors(text)
  local set = {}
  for heading in prose(text):gmatch("\n#+%s+([^\n]+)") do set[slug(heading)] = true end
  return set
end

local function dir_of(path) return path:match("^(.*)/[^/]*$") or "." end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

describe("docs/", function()
  it("has one page per concern the README's tour names, each linked from README.md", function()
    local readme = run.read(run.ROOT .. "/README.md")
    for _, name in ipairs(PAGES) do
      assert.truthy(exists(run.ROOT .. "/docs/" .. name .. ".md"), "docs/" .. name .. ".md")
      assert.truthy(readme:find("](docs/" .. name .. ".md)", 1, true), "README.md links docs/" .. name .. ".md")
    end
  end)

  it("holds Lua blocks that compile", function()
    local bad, count = {}, 0
    for _, page in ipairs(pages()) do
      local n = 0
      for block in ("\n" .. page.text):gmatch("\n%s*```lua\n(.-)\n%s*```") do
        n, count = n + 1, count + 1
        local ok, err = load((block:gsub("do %.%.%. end", "do end")), "=" .. page.path .. " block " .. n)
        if not ok then bad[#bad + 1] = err end
      end
    end
    assert.is_true(count >= 10, "found only " .. count .. " Lua blocks")
    assert.same({}, bad)
  end)

  it("runs the blocks marked to run against the mock", function()
    local mock = require "spec.helpers.mock"
    local m = mock.start()
    local prelude = 'truto = require "truto"; client = truto.new(); '
    local count = 0
    for _, page in ipairs(pages()) do
      for vars, block in ("\n" .. page.text):gmatch("\n<!%-%- runs against the mock:?([^\n]-) %-%->\n```lua\n(.-)\n```") do
        count = count + 1
        local dir = run.tmpdir()
        run.write(dir .. "/block.lua", prelude .. block .. "\n")
        mock.reset()
        local out, code = run.shell(("cd %s && env TRUTO_API_TOKEN=%s TRUTO_BASE_URL=%s LUA_PATH=%s LUA_CPATH=%s %s lua5.4 block.lua 2>err")
          :format(run.quote(dir), run.quote(m.token), run.quote(m.url),
            run.quote(run.ROOT .. "/build/?.lua;" .. run.ROOT .. "/build/?/init.lua;;"),
            run.quote(run.ROOT .. "/build/?.so;;"), vars))
        local where = page.path .. " block " .. count
        assert.same({ where, 0, "" }, { where, code, run.read(dir .. "/err") })
        assert.truthy(out:find("%S"), where .. " printed nothing")
        assert.is_true(#mock.requests() > 0, where .. " asked the mock nothing")
      end
    end
    assert.is_true(count >= 3, "only " .. count .. " blocks are marked to run")
  end)

  it("links only to files and headings that exist", function()
    local broken, count = {}, 0
    for _, page in ipairs(pages()) do
      for target in prose(page.text):gmatch("%]%(([^)%s]+)%)") do
        if not target:find("^%a[%w+.-]*:") then -- not https:, mailto:
          count = count + 1
          local file, anchor = target:match("^([^#]*)#?(.*)$")
          local path = file == "" and page.path or dir_of(page.path) .. "/" .. file
          local text = file == "" and page.text or (exists(run.ROOT .. "/" .. path) and run.read(run.ROOT .. "/" .. path))
          if not text then
            broken[#broken + 1] = page.path .. ": " .. target .. " (no file " .. path .. ")"
          elseif anchor ~= "" and path:match("%.md$") and not anchors(text)[anchor] then
            broken[#broken + 1] = page.path .. ": " .. target .. " (no heading #" .. anchor .. ")"
          end
        end
      end
    end
    assert.is_true(count >= 20, "found only " .. count .. " relative links")
    assert.same({}, broken)
  end)

  it("the link check finds a dead link and a dead anchor", function()
    local page = { path = "docs/x.md", text = "[a](nowhere.md) [b](api.md#no-such-heading) [c](api.md#headers)" }
    local found = {}
    for target in prose(page.text):gmatch("%]%(([^)%s]+)%)") do
      local file, anchor = target:match("^([^#]*)#?(.*)$")
      local path = run.ROOT .. "/docs/" .. file
      found[#found + 1] = exists(path) and (anchor == "" or anchors(run.read(path))[anchor] == true)
    end
    assert.same({ false, false, true }, found)
  end)
end)

describe("the exported API", function()
  local truto = require "truto"
  local options = require "truto.options"

  local function undocumented(names, text)
    local missing = {}
    for _, name in ipairs(names) do
      if not text:find("%f[%w_]" .. name:gsub("%p", "%%%0") .. "%f[^%w_]") then missing[#missing + 1] = name end
    end
    table.sort(missing)
    return missing
  end

  local function keys(t, keep)
    local list = {}
    for k, v in pairs(t) do
      if type(k) == "string" and not k:match("^_") and (not keep or keep(v)) then list[#list + 1] = k end
    end
    table.sort(list)
    return list
  end

  it("names every function and field of require 'truto' in README.md or docs/", function()
    local names = keys(truto)
    assert.is_true(#names >= 20, "found only " .. #names)
    assert.same({}, undocumented(names, all_code()))
  end)

  it("names every client method in README.md or docs/", function()
    local names = keys(truto.Client, function(v) return type(v) == "function" end)
    assert.is_true(#names >= 15, "found only " .. #names)
    assert.same({}, undocumented(names, all_code()))
  end)

  it("names every function and field of truto.webhook in README.md or docs/", function()
    local names = keys(truto.webhook)
    assert.is_true(#names >= 8, "found only " .. #names)
    assert.same({}, undocumented(names, all_code()))
  end)

  it("names every client option and call option in README.md or docs/", function()
    local text = all_code()
    assert.same({}, undocumented(keys(options.CLIENT), text))
    assert.same({}, undocumented(keys(options.CALL), text))
  end)

  it("shows in api.md's client block the defaults truto.defaults holds", function()
    local defaults = require "truto.defaults"
    local util = require "luassert.util"
    local block = run.read(run.ROOT .. "/docs/api.md"):match("## Making a client\n\n```lua\n(.-)\n```")
    local shown, differ = 0, {}
    -- `name = value` pairs, a value being a `{ ... }` list or up to the next comma
    for line in block:gmatch("[^\n]+") do
      local code = line:gsub("%-%-.*", "")
      for name, value in code:gsub("(= )(%b{})", function(eq, list) return eq .. list:gsub(",", ";") end)
        :gmatch("([%w_]+) = ([^,]+)") do
        if defaults[name] ~= nil then
          shown = shown + 1
          local f = load("return " .. value:gsub(";", ","))
          if not f or not util.deepcompare(f(), defaults[name]) then differ[#differ + 1] = name .. " = " .. value end
        end
      end
    end
    assert.same({}, differ)
    assert.is_true(shown >= 7, "found only " .. shown)
  end)

  it("names in cli.md and errors.md the retry statuses truto.defaults holds", function()
    local list = require("truto.defaults").retry_statuses
    local words = {}
    for i, s in ipairs(list) do words[i] = tostring(s) end
    -- "429, 500, 502 and 504" in cli.md; errors.md gives 429 its own line, then "500, 502, 504"
    local spoken = table.concat(words, ", ", 1, #words - 1) .. " and " .. words[#words]
    assert.truthy(run.read(run.ROOT .. "/docs/cli.md"):find("(of " .. spoken .. " answers", 1, true), spoken)
    local rest = table.concat(words, ", ", 2)
    assert.truthy(run.read(run.ROOT .. "/docs/errors.md"):find("\n- " .. rest .. " and transport failures", 1, true), rest)
  end)

  it("has an LDoc comment for every exported function", function()
    -- A `---` block right above `function M.name` or `function Client:name`
    -- (or `M.name = ...`) in src/truto.lua or src/truto/client.lua; the module functions made
    -- from the client's methods (truto.users, ...) share their comment.
    local commented = {}
    local webhook = {}
    for _, file in ipairs { "src/truto.lua", "src/truto/client.lua", "src/truto/webhook.lua" } do
      local into = file:find("webhook") and webhook or commented
      local in_doc = false
      for line in io.lines(run.ROOT .. "/" .. file) do
        local name = line:match("^function M%.([%w_]+)") or line:match("^M%.([%w_]+)%s*=")
          or line:match("^function Client[.:]([%w_]+)")
        if name and in_doc then into[name] = true end
        if line:match("^%-%-%-") then in_doc = true elseif not line:match("^%-%-") then in_doc = false end
      end
    end
    local missing = {}
    for _, name in ipairs(keys(truto, function(v) return type(v) == "function" end)) do
      if not commented[name] then missing[#missing + 1] = "truto." .. name end
    end
    for _, name in ipairs(keys(truto.Client, function(v) return type(v) == "function" end)) do
      if not commented[name] and not name:match("^__") then missing[#missing + 1] = "Client:" .. name end
    end
    for _, name in ipairs(keys(truto.webhook, function(v) return type(v) == "function" end)) do
      if not webhook[name] then missing[#missing + 1] = "truto.webhook." .. name end
    end
    assert.same({}, missing)
  end)
end)
