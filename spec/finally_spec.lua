-- spec/helpers/finally.lua: every function given to `finally` in a test runs
-- after it, last first (Debian's busted keeps only the last one without the
-- helper). The second case reads what the first left.
local ran = {}

describe("finally, through spec/helpers/finally.lua", function()
  it("keeps every cleanup a test registers", function()
    finally(function() ran[#ran + 1] = "first" end)
    finally(function() ran[#ran + 1] = "second" end)
    finally(function() ran[#ran + 1] = "third" end)
  end)

  it("ran them all, last first", function()
    assert.same({ "third", "second", "first" }, ran)
  end)
end)
