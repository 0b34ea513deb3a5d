-- `luarocks make` installs the module and the command line into a fresh
-- tree, and that installed copy works on its own against the mock server.
local h = require "spec.helpers.client"
local compat = require "spec.helpers.compat"

local function sh(cmd)
  local p = assert(compat.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

describe("a LuaRocks install", function()
  local tmp, tree
  setup(function()
    tmp = sh("mktemp -d /tmp/truto-rock.XXXXXX"):gsub("%s+$", "")
    tree = tmp .. "/tree"
    -- build from a copy, so the checkout gets no build droppings
    assert.equal(0, select(2, sh(("cp -r src rockspec lua-truto spec %s/"):format(tmp))))
  end)
  teardown(function() os.execute("rm -rf " .. tmp) end)

  it("installs the module and lua-truto, which then list an account", function()
    local out, code = sh(("cd %s && luarocks --lua-version 5.4 make --deps-mode=none --tree %s rockspec/lua-truto-scm-1.rockspec")
      :format(tmp, tree))
    assert.equal(0, code, out)
    local env = ("LUA_PATH='%s/share/lua/5.4/?.lua;;' LUA_CPATH='%s/lib/lua/5.4/?.so;;' "):format(tree, tree)
    local where = sh(env .. [[lua5.4 -e 'print(package.searchpath("truto.core", package.cpath)); print(require("truto").VERSION)']])
    assert.equal(tree .. "/lib/lua/5.4/truto/core.so\n0.1.0\n", where)

    local m = h.server()
    local list, lcode = sh(env .. ("TRUTO_API_TOKEN=%s TRUTO_BASE_URL=%s %s/bin/lua-truto users -a acct-small -o csv --fields id")
      :format(m.token, m.url, tree))
    assert.equal(0, lcode, list)
    assert.equal(41, select(2, list:gsub("\r\n", "")))
    assert.matches("^id\r\nu001\r\n", list)
  end)
end)
