-- A transport object (the contract in truto.transport) with no network, for
-- specs that script the answers exactly: each request is recorded in `sent`
-- as { method, url, headers } and answered by answer(req, k), k its number
-- (an answer table, or nil and a failure); on_pump, when given, runs at
-- each pump().
local M = {}

function M.new(answer, on_pump)
  local t = { sent = {} }
  function t.start(_, req)
    t.sent[#t.sent + 1] = { method = req.method, url = req.url, headers = req.headers }
    local k = #t.sent
    local handle = {}
    function handle.wait() return answer(req, k) end
    function handle.cancel() end
    function handle.done() return true end
    return handle
  end
  function t.pump() if on_pump then on_pump() end end
  function t.close() end
  function t.wait_any() return 1 end
  return t
end

return M
