-- Wire conformance through libcurl: each case of spec/helpers/wire_cases.lua
-- puts exactly the expected requests on the wire and gives the caller the
-- expected result. The nginx runner holds the cosocket transport to the
-- same cases.
local truto = require "truto"
local wire = require "spec.helpers.wire"
local cases = require "spec.helpers.wire_cases"

describe("the wire, through libcurl", function()
  local server = wire.start()

  for _, case in ipairs(cases) do
    it(case.name, function()
      wire.script(case.script)
      local result = case.run(truto, server.url)
      collectgarbage() -- closes what the case's clients left open
      assert.same(case.result, result)
      assert.same(case.wire, wire.normalize(wire.log(), "127.0.0.1:" .. server.port))
    end)
  end
end)
