--- The progress line of a list on stderr ("lua-truto: 120 items, 3 pages").
-- Shown only while stderr is a terminal and stdout is not (with both on
-- one terminal the line would mix with the rows); cleared before the end
-- and before any other message.
local M = {}

local format = string.format

function M.new(sys)
  local self = { sys = sys, shown = false }
  self.enabled = sys:is_tty(2) and not sys:is_tty(1)
  function self.update(items, pages)
    if not self.enabled then return end
    self.shown = true
    sys.stderr:write(format("\r\27[K%s: %d item%s, %d page%s", "lua-truto", items, items == 1 and "" or "s",
      pages, pages == 1 and "" or "s"))
  end
  -- A wait the rate budget or a retry imposes: said on the line instead of freezing it.
  function self.waiting(what)
    if not self.enabled then return end
    self.shown = true
    sys.stderr:write(format("\r\27[K%s: waiting %s", "lua-truto", what))
  end
  function self.clear()
    if self.shown then
      sys.stderr:write("\r\27[K")
      self.shown = false
    end
  end
  return self
end

return M
