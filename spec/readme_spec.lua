-- The README documents what exists: every public function (a doc-commented
-- `function M.name` of src/truto.lua, and the doc-commented methods of the
-- objects a caller holds, `Client:name` and `Iterator:name`, wherever they
-- are defined) and every client option (the backquoted names in the doc
-- comment of truto.new) appears in README.md.
local run = require "spec.helpers.run"

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

describe("README.md", function()
  it("names every public function and client option", function()
    local readme = run.read(run.ROOT .. "/README.md")
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

  it("documents the many-accounts iterator, prefetch, transport and client:close", function()
    local readme = run.read(run.ROOT .. "/README.md")
    for _, text in ipairs { "integrated_account_id = {", "concurrency", 'on_error = "skip"', "state.errors",
      "prefetch", "transport", "client:close()" } do
      assert.truthy(readme:find(text, 1, true), text)
    end
  end)
end)
