-- The README and the docs/ pages document what exists: every public
-- function (a doc-commented `function M.name` of src/truto.lua, and the
-- doc-commented methods of the objects a caller holds, `Client:name` and
-- `Iterator:name`, wherever they are defined) and every client option (the
-- backquoted names in the doc comment of truto.new) appears in README.md or
-- a page of docs/ (spec/docs_spec.lua checks the pages' code and links).
local run = require "spec.helpers.run"

-- README.md and every docs/*.md, as one text.
local function documentation()
  local parts = { run.read(run.ROOT .. "/README.md") }
  local pages = run.shell("cd " .. run.quote(run.ROOT) .. " && ls docs/*.md")
  for page in pages:gmatch("[^\n]+") do parts[#parts + 1] = run.read(run.ROOT .. "/" .. page) end
  assert.is_true(#parts > 5, "docs/ holds only " .. (#parts - 1) .. " pages")
  return table.concat(parts, "\n")
end

-- { kind, name, file } for each documented public function and client option.
local function documented()
  local found = {}
  local files = run.shell("cd " .. run.quote(run.ROOT) .. " && ls src/truto.lua src/truto/*.lua 2>/dev/null")
  for file in files:gmatch("[^\n]+") do
    local block = {}
    for line in io.lines(run.ROOT .. "/" .. file) do
      if line:match("^%-%-%-") or (#block > 0 and line:match("^%-%-")) then
        block[#block + 1] = line
      else
        local name = #block > 0 and (line:match("^function Client[.:]([%w_]+)%s*%(")
          or line:match("^function Iterator[.:]([%w_]+)%s*%(")
          or (file == "src/truto.lua" and line:match("^function M%.([%w_]+)%s*%(")))
        if name and not name:match("^_") then
          found[#found + 1] = { kind = "function", name = name, file = file }
          if name == "new" and file == "src/truto.lua" then
            for option in table.concat(block, "\n"):gmatch("`([%l_][%l%d_]*)`") do
              found[#found + 1] = { kind = "client option", name = option, file = file }
            end
          end
        end
        block = {}
      end
    end
  end
  return found
end

describe("README.md and docs/", function()
  it("name every public function and client option", function()
    local readme = documentation()
    local list = documented()
    assert.is_true(#list > 20, "found only " .. #list .. " documented names")
    local missing = {}
    for _, d in ipairs(list) do
      if not readme:find("%f[%w_]" .. d.name .. "%f[^%w_]") then
        missing[#missing + 1] = ("%s %s (%s)"):format(d.kind, d.name, d.file)
      end
    end
    assert.same({}, missing)
  end)

  it("document the many-accounts iterator, prefetch, transport and client:close", function()
    local readme = documentation()
    for _, text in ipairs { "integrated_account_id = {", "concurrency", 'on_error = "skip"', "state.errors",
      "prefetch", "transport", "client:close()" } do
      assert.truthy(readme:find(text, 1, true), text)
    end
  end)

  it("shows two commands that make can run as one: nothing asks pkg-config before `deps` has run", function()
    -- A pkg-config that logs its calls: reading the Makefile (make -n deps,
    -- which expands no compile recipe) must not call it, or `make deps test`
    -- would compile with the flags of a machine that had no Lua headers yet.
    -- make check-fresh runs both commands for real on a fresh Debian 12.
    local dir = run.tmpdir()
    run.write(dir .. "/pkg-config", "#!/bin/sh\necho \"$@\" >>" .. dir .. "/calls\nexit 1\n")
    run.shell("chmod +x " .. run.quote(dir .. "/pkg-config"))
    for _, goals in ipairs { "deps", "deps LUA=luajit" } do
      local _, code = run.shell(("cd %s && PATH=%s:$PATH make -n %s >/dev/null 2>&1")
        :format(run.quote(run.ROOT), run.quote(dir), goals))
      assert.equal(0, code)
      assert.is_nil(io.open(dir .. "/calls"), "make called pkg-config while reading the Makefile")
    end
    local readme = run.read(run.ROOT .. "/README.md")
    assert.truthy(readme:find("\nmake deps demo ", 1, true))
    assert.truthy(readme:find("\nmake deps test ", 1, true))
  end)

  it("says once, and truly, when a list reads its next page (issue 19 item 20)", function()
    local lists = run.read(run.ROOT .. "/docs/lists.md")
    -- prefetch = true is the default: the next page is read while the current one is used.
    assert.falsy(lists:find("fetch the next page only when the current one is used up", 1, true))
    assert.truthy(lists:find("`prefetch` (default `true`", 1, true))
    local function count(text) return select(2, lists:gsub(text:gsub("%p", "%%%0"), "")) end
    assert.equal(1, count("Read-ahead") + count("already being read") + count("already being fetched"))
    assert.equal(1, count("Many accounts at once"))
    assert.equal(1, count("`on_error = \"skip\"`"))
  end)
end)
