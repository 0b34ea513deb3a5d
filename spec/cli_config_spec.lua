-- lua-truto's config file and token (issue 13): the opened file is checked
-- (owner, mode, not a symbolic link, its directory), profiles, --token
-- warns, --token-file and standard input.
local mock = require "spec.helpers.mock"
local run = require "spec.helpers.run"

local m
local function cli(argv, o)
  o = o or {}
  o.env = o.env or {}
  o.env.TRUTO_BASE_URL = o.env.TRUTO_BASE_URL or m.url
  return run.cli(argv, o)
end

-- What stderr says when --max-items 1 cuts the list inside its first page.
local CUT = "lua-truto: stopped at --max-items 1 inside the first page: the list was cut "
  .. "(run it again with a larger --max-items for more)\n"
local GROUPS = { "groups", "-a", "acct-small", "-o", "ndjson", "--fields", "id", "--max-items", "1" }

describe("lua-truto config", function()
  local home, dir, config
  setup(function() m = mock.start() end)
  before_each(function()
    mock.reset()
    home = run.tmpdir()
    dir = home .. "/.config/lua-truto"
    config = dir .. "/config"
    run.shell("mkdir -p " .. run.quote(dir) .. " && chmod 700 " .. run.quote(dir))
  end)

  local function write_config(text, mode)
    run.write(config, text)
    run.shell("chmod " .. (mode or "600") .. " " .. run.quote(config))
  end

  local function refused(why)
    local out, err, code = cli(GROUPS, { env = { HOME = home } })
    assert.equal("", out)
    assert.equal("lua-truto: refusing to use " .. config .. ": " .. why .. "\n", err)
    assert.equal(2, code)
    assert.equal(0, #mock.requests())
  end

  it("uses a file of the user's, mode 600, in a private directory", function()
    write_config("token = " .. m.token .. "\n")
    assert.equal('{"id":"g01"}\n', (cli(GROUPS, { env = { HOME = home } })))
  end)

  it("refuses a file owned by another user", function()
    if run.shell("id -u") ~= "0\n" then
      pending("needs root to give the file away")
      return
    end
    write_config("token = " .. m.token .. "\n")
    run.shell("chown 65534 " .. run.quote(config))
    refused("it is owned by another user (uid 65534)")
  end)

  it("refuses a file in a directory others can write to", function()
    write_config("token = " .. m.token .. "\n")
    run.shell("chmod 777 " .. run.quote(dir))
    refused("group or others can write to its directory (mode 777)")
  end)

  it("refuses a symbolic link, even to a good file", function()
    run.write(home .. "/real", "token = " .. m.token .. "\n")
    run.shell("chmod 600 " .. run.quote(home .. "/real") .. " && ln -s " .. run.quote(home .. "/real") .. " "
      .. run.quote(config))
    refused("it is a symbolic link")
  end)

  it("reads profiles: the default lines, then [name] over them with --profile", function()
    write_config("token = wrong\naccount = acct-small\n[work]\ntoken = " .. m.token .. "\n")
    local _, err, code = cli({ "groups", "-o", "ndjson", "--fields", "id", "--max-items", "1" }, { env = { HOME = home } })
    assert.equal("lua-truto: 401 Unauthorized: Invalid API token\n", err)
    assert.equal(1, code)
    local out
    out, err, code = cli({ "groups", "--profile", "work", "-o", "ndjson", "--fields", "id", "--max-items", "1" },
      { env = { HOME = home } })
    assert.equal('{"id":"g01"}\n', out)
    assert.equal(CUT, err)
    assert.equal(0, code)
    assert.equal("integrated_account_id=acct-small", mock.last().raw_query)
    out, err, code = cli({ "groups", "--profile", "home" }, { env = { HOME = home } })
    assert.equal("lua-truto: no profile '[home]' in " .. config .. "\nTry 'lua-truto --help'.\n", err)
    assert.equal("", out)
    assert.equal(2, code)
  end)

  it("warns about --token and reads --token-file FILE or standard input", function()
    local _, err, code = cli { "groups", "-a", "acct-small", "--token", m.token, "-o", "ndjson", "--max-items", "1" }
    assert.equal(0, code)
    assert.equal("lua-truto: warning: --token is visible to other processes (/proc/PID/cmdline); "
      .. "use $TRUTO_API_TOKEN, --token-file FILE or the config file\n" .. CUT, err)
    run.write(home .. "/token", m.token .. "\n")
    run.shell("chmod 600 " .. run.quote(home .. "/token"))
    local out
    out, err, code = cli { "groups", "-a", "acct-small", "--token-file", home .. "/token", "-o", "ndjson",
      "--fields", "id", "--max-items", "1" }
    assert.equal('{"id":"g01"}\n', out)
    assert.equal(CUT, err)
    assert.equal(0, code)
    out, err, code = cli({ "groups", "-a", "acct-small", "--token-file", "-", "-o", "ndjson", "--fields", "id",
      "--max-items", "1" }, { stdin = m.token .. "\n" })
    assert.equal('{"id":"g01"}\n', out)
    assert.equal(CUT, err)
    assert.equal(0, code)
    assert.equal("Bearer " .. m.token, mock.last().headers.authorization)
  end)
end)
