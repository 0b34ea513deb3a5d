-- `luarocks make`, exactly as the README prints it, installs the module and
-- the command line (into a fresh tree named by a LuaRocks config of ours),
-- and that installed copy works on its own against the mock server. The
-- rockspec names every Lua module and every C file under src/.
local h = require "spec.helpers.client"
local run = require "spec.helpers.run"

local function sh(cmd)
  return run.shell(cmd, { merge = true })
end

-- The LuaRocks command of the README's Install section.
local function readme_command()
  local readme = run.read(run.ROOT .. "/README.md")
  local section = readme:match("\n## Install\n(.-)\n## ")
  assert(section, "README.md has no '## Install' section")
  local cmd = section:match("`(luarocks [^`]+)`")
  assert(cmd, "README.md's Install section shows no `luarocks ...` command")
  return cmd
end

describe("a LuaRocks install", function()
  local tmp, tree
  setup(function()
    tmp = run.tmpdir()
    tree = tmp .. "/tree"
    -- build from a copy, so the checkout gets no build droppings
    assert.equal(0, select(2, sh(("cp -r src rockspec lua-truto spec %s/"):format(tmp))))
    run.write(tmp .. "/luarocks-config.lua", ("rocks_trees = { { name = \"system\", root = %q } }\n"):format(tree))
  end)

  it("names every Lua module and C file under src/ in the rockspec", function()
    local rockspec = run.read(run.ROOT .. "/rockspec/lua-truto-scm-1.rockspec")
    local files = sh("cd " .. run.quote(run.ROOT) .. " && find src -name '*.lua' | sort")
    local n = 0
    for file in files:gmatch("[^\n]+") do
      local name = file:gsub("^src/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      local key = name:find(".", 1, true) and ('["' .. name .. '"]') or name
      assert.truthy(rockspec:find(key .. ' = "' .. file .. '"', 1, true), file .. " is not in the rockspec")
      n = n + 1
    end
    assert.is_true(n >= 2)
    -- and every C file of the core
    for file in sh("cd " .. run.quote(run.ROOT) .. " && ls src/*.c"):gmatch("[^\n]+") do
      assert.truthy(rockspec:find('"' .. file .. '"', 1, true), file .. " is not in the rockspec")
    end
  end)

  it("installs with the README's command; the module and lua-truto then list an account", function()
    local cmd = readme_command()
    assert.equal("luarocks --lua-version 5.4 make --deps-mode=none rockspec/lua-truto-scm-1.rockspec", cmd)
    local out, code = sh(("cd %s && LUAROCKS_CONFIG=%s/luarocks-config.lua %s"):format(tmp, tmp, cmd))
    assert.equal(0, code, out)
    -- Lua 5.4 reads LUA_PATH_5_4 / LUA_CPATH_5_4 before LUA_PATH / LUA_CPATH (make test-cjson sets
    -- them): both are set, so the installed tree is what is found
    local paths = ("'%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;;'"):format(tree, tree)
    local cpaths = ("'%s/lib/lua/5.4/?.so;;'"):format(tree)
    local env = ("LUA_PATH=%s LUA_PATH_5_4=%s LUA_CPATH=%s LUA_CPATH_5_4=%s "):format(paths, paths, cpaths, cpaths)
    local where = sh(env .. [[lua5.4 -e 'print(package.searchpath("truto.core", package.cpath));]]
      .. [[ print(require("truto").VERSION); print(package.searchpath("truto.cli", package.path))']])
    assert.equal(tree .. "/lib/lua/5.4/truto/core.so\n0.1.0\n" .. tree .. "/share/lua/5.4/truto/cli/init.lua\n", where)

    local m = h.server()
    -- The installed command alone: no LUA_PATH, run from a directory without the checkout.
    local list, lcode = sh(("cd / && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 TRUTO_API_TOKEN=%s TRUTO_BASE_URL=%s "
      .. "%s/bin/lua-truto users -a acct-small -o csv --fields id"):format(m.token, m.url, tree))
    assert.equal(0, lcode, list)
    assert.equal(41, select(2, list:gsub("\r\n", "")))
    assert.matches("^id\r\nu001\r\n", list)
  end)

  it("runs from a private tree (luarocks --tree T make), with no LUA_PATH and no luarocks path", function()
    local private = tmp .. "/private"
    local out, code = sh(("cd %s && luarocks --lua-version 5.4 --tree %s make --deps-mode=none "
      .. "rockspec/lua-truto-scm-1.rockspec"):format(tmp, private))
    assert.equal(0, code, out)
    local m = h.server()
    local list, lcode = sh(("cd / && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 TRUTO_API_TOKEN=%s "
      .. "TRUTO_BASE_URL=%s HOME=/nonexistent %s/bin/lua-truto users -a acct-small -o csv --fields id --max-items 2")
      :format(m.token, m.url, private))
    assert.equal(0, lcode, list)
    assert.equal("id\r\nu001\r\nu002\r\n", list:sub(1, #"id\r\nu001\r\nu002\r\n"))
  end)
end)
