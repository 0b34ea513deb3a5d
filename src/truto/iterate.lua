--- truto.iterate: iterators over the items and pages of lists, one account
-- or many at once.
--
-- A stream (truto.iterate.stream) walks one account's list. Many accounts
-- are read round-robin, at most `concurrency` requests in flight in all.
--
-- @module truto.iterate
local core = require "truto.core"
local options = require "truto.options"
local attempt = require "truto.attempt"
local client_mod = require "truto.client"
local stream = require "truto.iterate.stream"
local raise = require("truto.raise").raise

local M = {}

local type, next, ipairs, setmetatable = type, next, ipairs, setmetatable
local format = string.format
local argerror = options.argerror

local it_fills
local Iterator = {}
Iterator.__index = Iterator
Iterator.__name = "truto.iterator"
M.Iterator = Iterator

--- Releases the iterator and cancels any request in flight; later calls
-- end the loop. Never raises.
function Iterator:close()
  self.closed = true
  self.items, self.fast = nil, 0
  if self.stream then stream.cancel(self.stream) end
  for _, st in ipairs(self.active or {}) do stream.cancel(st) end
end
Iterator.__close = Iterator.close
Iterator.__gc = Iterator.close

-- Raises err from an iterator, after releasing it; it stays as it.error (see truto.raise).
local function fail(it, err)
  it:close()
  it.error = err
  raise(err)
end

-- Raises the `closed` error object when the client was closed in the
-- middle of the loop (after releasing the iterator), on either transport.
local function check_client(it)
  if it.client._closed then
    it:close()
    client_mod.check_open(it.client, "iterator")
  end
end

-- Number of items in a page's result (an array, or an object for truto_key_by).
local function count_items(result)
  local n = 0
  for _ in next, result do n = n + 1 end
  return n
end

-- Whether the items given so far and this page's reach the call's max_items
-- (then no page after it is read ahead).
function it_fills(it, result)
  local max = it.policy.max_items
  return max ~= nil and it.base + it.index + count_items(result) >= max
end

-- Ends a bounded loop: the state says it was cut and where to resume
-- (`resume = { cursor = ..., skip = n }`: ask with that cursor, drop the first
-- n items), unless the list had nothing more anyway.
local function cut(it, st, skip)
  local more = skip > 0 or not st.pager:done()
  if more then
    it.cut = true
    if skip > 0 then
      it.resume = { cursor = st.page_cursor, skip = skip }
    else
      it.resume = { cursor = st.pager:cursor(), skip = 0 }
    end
  end
  it:close()
  return nil
end

-- Fetches the next page of a one-account iterator, and starts the one
-- after it (read-ahead) so that it arrives while the caller works.
local function fetch_page(it)
  local st = it.stream
  local page, result, keyed = stream.read(st)
  if page == nil then fail(it, result) end
  -- the read-ahead goes only when the rate budget lets it go now: a hold is
  -- waited when the caller asks for that page, never before this one is given
  if st.policy.prefetch and not st.pager:done() and stream.below_max_pages(st) and not it_fills(it, result) then
    stream.try_start(st, core.now())
  end
  return page, result, keyed
end

-- An item iterator's state: `items`, the current page's (nil when there is
-- none), `keyed` (a truto_key_by object), `index` (items of it given),
-- `key` (the last one given of a keyed page), `base` (items given before
-- this page), and `fast`: the last index the quick path of next_item may
-- give with no other look (see set_fast).

-- Next item of the current page, or nil when it is used up.
local function take_item(it)
  local items = it.items
  if not items then return nil end
  if it.keyed then
    local key, item = next(items, it.key)
    if key ~= nil then
      it.key, it.index = key, it.index + 1
      return item, key
    end
  else
    local i = it.index + 1
    local item = items[i]
    if item ~= nil then
      it.index = i
      return item
    end
  end
  it.items = nil
  return nil
end

local PUMP_EVERY = 32 -- items between nudges to a transfer in flight

-- Sets how far the quick path may go in the current page: up to its last
-- item, to the call's max_items, and, while a read-ahead is in flight, to
-- the item before the next nudge, so that the slow path gives that one and
-- pumps. A keyed page, or none, takes the slow path for every item.
local function set_fast(it)
  local items = it.items
  if not items or it.keyed then
    it.fast = 0
    return
  end
  local fast = #items
  local max = it.policy.max_items
  if max and max - it.base < fast then fast = max - it.base end
  local st = it.stream
  if st and st.pending then
    local before_pump = it.index - it.index % PUMP_EVERY + PUMP_EVERY - 1
    if before_pump < fast then fast = before_pump end
  end
  it.fast = fast
end

-- Whether a one-account iterator has nothing more to give.
local function exhausted(it)
  return it.closed or (it.stream.pager:done() and not it.stream.pending)
end

-- The item iterator's slow path: every check, a new page, a nudge.
local function slow_item(it)
  check_client(it)
  local max = it.policy.max_items
  while true do
    if max and it.base + it.index >= max and not it.closed then
      local left = it.items and next(it.items, it.keyed and it.key or nil) ~= nil
      if it.items and not it.keyed then left = it.items[it.index + 1] ~= nil end
      return cut(it, it.stream, left and it.index or 0)
    end
    local item, key = take_item(it)
    if item ~= nil then
      -- let the read-ahead request progress while the caller works
      local st = it.stream
      if it.index % PUMP_EVERY == 0 and st.pending then st.req.transport:pump() end
      set_fast(it)
      return item, key
    end
    if exhausted(it) then return nil end
    if not it.stream.pending and not stream.below_max_pages(it.stream) then return cut(it, it.stream, 0) end
    local _, result, keyed = fetch_page(it)
    it.base = it.base + it.index
    it.items, it.keyed, it.index, it.key = result, keyed, 0, nil
    set_fast(it)
  end
end

-- An item iterator (next_item, next_multi): its quick path gives the
-- current page's next item, when set_fast said it may and the client is
-- open, and it[second] after it (the account of a many-accounts listing);
-- anything else is `slow`'s.
local function item_iterator(slow, second)
  return function(it)
    local i = it.index + 1
    if i <= it.fast and not it.client._closed then
      local item = it.items[i]
      if item ~= nil then
        it.index = i
        if second then return item, it[second] end
        return item
      end
    end
    return slow(it)
  end
end

-- The item iterator: yields item (or item, key for truto_key_by answers).
local next_item = item_iterator(slow_item)
M.next_item = next_item

-- The page iterator: yields each decoded page.
local function next_page(it)
  check_client(it)
  if exhausted(it) then return nil end
  if not it.stream.pending and not stream.below_max_pages(it.stream) then return cut(it, it.stream, 0) end
  return (fetch_page(it))
end
M.next_page = next_page

-- Many accounts at once. Each account is a stream with at most one request
-- in flight and at most MAX_READY pages read ahead. At most `concurrency`
-- requests are in flight in all, handed out round-robin over up to
-- ACTIVE_PER_SLOT x concurrency open streams, so that all accounts advance
-- together and the last ones do not run alone. Items come out as
-- `item, account_id`, each account's pages in order.

local MAX_READY = 2
local ACTIVE_PER_SLOT = 4

local function open_streams(it)
  local limit = it.policy.concurrency * ACTIVE_PER_SLOT
  while #it.active < limit and it.next_account <= #it.accounts do
    local query = {}
    for k, v in next, it.query do query[k] = v end
    query.integrated_account_id = it.accounts[it.next_account]
    it.next_account = it.next_account + 1
    local st = stream.new(it.client, it.path, query, it.policy, it.deadline_at)
    st.ready = {}
    it.active[#it.active + 1] = st
  end
end

local function wants_request(st)
  return not st.pending and not st.start_err and not st.failed and not st.pager:done() and #st.ready < MAX_READY
    and (st.retry_req ~= nil or stream.below_max_pages(st))
end

-- Starts requests, round-robin over the open streams, until `concurrency`
-- are in flight. The round starts where the last one stopped, so each
-- stream gets its turn (and every account starts in the first round, up to
-- `concurrency`).
local function refill(it)
  open_streams(it)
  local active, in_flight = it.active, 0
  for _, st in ipairs(active) do
    if st.pending then in_flight = in_flight + 1 end
  end
  local n, first, last, now = #active, it.turn, nil, core.now()
  for k = 1, n do
    if in_flight >= it.policy.concurrency then break end
    local i = (first + k - 1) % n + 1
    local st = active[i]
    if wants_request(st) and stream.try_start(st, now) then
      if st.pending then in_flight = in_flight + 1 end
      last = i
    end
  end
  if last then it.turn = last % n end
end

local read_into, multi_resume

-- Nothing in flight: sleeps until the first stream the rate budget held
-- may look again. Returns false when no stream is waiting.
local function earliest_ready(it)
  local at, first
  for _, st in ipairs(it.active) do
    if st.ready_at and (not at or st.ready_at < at) then at, first = st.ready_at, st end
  end
  return at, first
end

local function wait_for_budget(it)
  local at, st = earliest_ready(it)
  if not at then return false end
  local wait = at - core.now()
  if wait > 0 and attempt.sleeper(it.client, st.req or {}, it.policy)(wait) == false then
    fail(it, attempt.request_error("interrupted", "interrupted while the rate budget held the listing",
      { method = "GET", url = it.path }, 0))
  end
  return true
end

-- Waits for one request in flight and stores its page (or its error).
local function receive(it)
  local requests, owners, t = {}, {}, nil
  for _, st in ipairs(it.active) do
    if st.start_err then return read_into(it, st) end
    if st.pending then
      requests[#requests + 1] = st.pending
      owners[#requests] = st
      t = t or st.req.transport
    end
  end
  if not t then return wait_for_budget(it) end
  -- wait on every request in flight and the earliest retry timer together
  local at = earliest_ready(it)
  local i = t:wait_any(requests, at and math.max(0, at - core.now()) or nil)
  if i == false then return true end -- a timer is due: refill starts its request
  if not i then return false end
  return read_into(it, owners[i])
end

-- Reads a stream's page (or its failure) into its ready list.
function read_into(it, st)
  local page, result, keyed = stream.read(st)
  if page == false then return true end -- ready again at st.ready_at
  if page == nil then
    result.account_id = st.account
    if it.policy.on_error ~= "skip" then fail(it, result) end
    it.errors[#it.errors + 1] = { account_id = st.account, error = result }
    st.failed = true
    return true
  end
  st.ready[#st.ready + 1] = { items = result, keyed = keyed, cursor = st.page_cursor }
  refill(it) -- keep `concurrency` requests in flight while pages wait to be read
  return true
end

-- The many-accounts state's resume table ({ [account_id] = { cursor, skip } }),
-- made when the first account is cut.
function multi_resume(it)
  it.cut = true
  it.resume = it.resume or {}
  return it.resume
end

-- max_items reached in a many-accounts listing: every account with more
-- to give gets its resume point, and the requests in flight are cancelled.
local function cut_multi(it)
  local resume = multi_resume(it)
  local items = it.items
  local left = items and (it.keyed and next(items, it.key) ~= nil or not it.keyed and items[it.index + 1] ~= nil)
  if left then resume[it.current] = { cursor = it.current_cursor, skip = it.index } end
  for _, st in ipairs(it.active) do
    if not st.failed and not resume[st.account] then
      if #st.ready > 0 then
        resume[st.account] = { cursor = st.ready[1].cursor, skip = 0 }
      elseif not st.pager:done() then
        resume[st.account] = { cursor = st.pager:cursor(), skip = 0 }
      end
    end
  end
  for i = it.next_account, #it.accounts do resume[it.accounts[i]] = { skip = 0 } end
  if next(resume) == nil then it.cut, it.resume = nil, nil end
  it:close()
  return nil
end

-- Drops streams that have nothing more to give.
local function retire(it)
  local kept = {}
  for _, st in ipairs(it.active) do
    local idle = not st.pending and #st.ready == 0 and not st.retry_req
    local finished = st.failed or (idle and (st.pager:done() or not stream.below_max_pages(st)))
    if finished and not st.failed and not st.pager:done() then multi_resume(it)[st.account] = { cursor =
        st.pager:cursor(), skip = 0 } end
    if not finished then kept[#kept + 1] = st end
  end
  it.active = kept
end

local function slow_multi(it)
  check_client(it)
  local max = it.policy.max_items
  while true do
    if max and it.base + it.index >= max and not it.closed then return cut_multi(it) end
    local item = take_item(it)
    if item ~= nil then
      set_fast(it)
      return item, it.current
    end
    if it.closed then return nil end
    local ready
    for _, st in ipairs(it.active) do
      if #st.ready > 0 then
        ready = st
        break
      end
    end
    if ready then
      local page = table.remove(ready.ready, 1)
      it.base = it.base + it.index
      it.items, it.keyed, it.index, it.key = page.items, page.keyed, 0, nil
      it.current, it.current_cursor = ready.account, page.cursor
      set_fast(it)
    else
      retire(it)
      refill(it)
      if #it.active == 0 or not receive(it) then
        it.closed = true
        return nil
      end
    end
  end
end

-- The many-accounts item iterator: yields item, account_id (no read-ahead
-- is nudged per item here).
local next_multi = item_iterator(slow_multi, "current")

local function iterate_accounts(self, fname, path, params, n, policy, accounts)
  local list = {}
  for i, account in ipairs(accounts) do
    local _, err = core.segment(account)
    if err then argerror(fname, n, format("integrated_account_id[%d]: %s", i, err)) end
    list[i] = account
  end
  local count = 0
  for _ in next, accounts do count = count + 1 end
  if #list == 0 or count ~= #list then
    argerror(fname, n, "integrated_account_id: a non-empty array of account ids expected")
  end
  local one = {}
  for k, v in next, params do one[k] = v end
  one.integrated_account_id = list[1]
  local query = client_mod.prepare_query(self, fname, n, one) -- checks the params once
  local it = setmetatable({
    client = self, policy = policy, query = query, accounts = list, next_account = 1, turn = 0,
    deadline_at = stream.deadline_of(policy),
    path = path, active = {}, errors = {}, index = 0, base = 0, fast = 0,
  }, Iterator)
  return next_multi, it, nil, it
end

--- An iterator over `model`/`resource`: `step` is next_item or next_page;
-- `n` is the params argument's position, the options' is n + 1.
function M.iterate(self, fname, step, model, resource, params, n, opts)
  client_mod.check_open(self, fname)
  local policy = client_mod.call_options(self, fname, n + 1, opts)
  local path = self.base_url .. "/unified/" .. model .. "/" .. resource
  local accounts = type(params) == "table" and rawget(params, "integrated_account_id")
  if type(accounts) == "table" then
    if step ~= next_item then argerror(fname, n, "integrated_account_id: one account expected") end
    return iterate_accounts(self, fname, path, params, n, policy, accounts)
  end
  local query = client_mod.prepare_query(self, fname, n, params)
  if step == next_page and policy.max_items then
    argerror(fname, n + 1, "option 'max_items': pages() gives whole pages (use max_pages)")
  end
  local it = setmetatable({ client = self, policy = policy, index = 0, base = 0, fast = 0,
    stream = stream.new(self, path, query, policy, stream.deadline_of(policy)) }, Iterator)
  -- The fourth value is closed when a generic for ends, even by break.
  return step, it, nil, it
end

return M
