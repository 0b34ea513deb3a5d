-- truto.time: the one reader of RFC 3339 times (webhook created_at, sync updated_at).
local time = require "truto.time"

describe("truto.time.epoch", function()
  it("reads zones, fractions and numbers", function()
    assert.equal(1686840003, time.epoch("2023-06-15T14:40:03Z"))
    assert.equal(1686840003.25, time.epoch("2023-06-15T14:40:03,25Z"))
    assert.equal(1686840003.5, time.epoch("2023-06-15T16:10:03.5+0130"))
    assert.equal(1686840003, time.epoch("2023-06-15T12:40:03-02:00"))
    assert.equal(1686840003, time.epoch(1686840003000))
    assert.equal(12, time.epoch(12))
  end)

  it("reads a time without a zone as UTC only when asked", function()
    assert.is_nil(time.epoch("2023-06-15T14:40:03"))
    assert.equal(1686840003, time.epoch("2023-06-15T14:40:03", true))
    assert.equal(1686840003, require("truto.sync").epoch("2023-06-15T14:40:03"))
    assert.is_nil(require("truto.webhook").timestamp("2023-06-15T14:40:03"))
  end)

  it("refuses what is not a time", function()
    for _, v in ipairs { "2023-06-15T14:40:03.Z", "2023-06-15T14:40:0312Z", "2023-00-15T14:40:03Z",
      "2023-06-15T24:40:03Z", "2023-06-15T14:40:03+2", "yesterday", 0 / 0, math.huge, {}, true } do
      assert.is_nil(time.epoch(v, true), tostring(v))
    end
  end)
end)
