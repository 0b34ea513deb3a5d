--- truto.iterate.stream: one account's list as a stream of pages: its query, its pager and at
-- most one request in flight (the next page, when read-ahead is on). The iterators
-- (truto.iterate) read one stream, or many round-robin for a list of accounts.
--
-- Every page's request carries the listing's place in the rate budget's line
-- (truto.rate.hints), so a listing keeps its place across its pages.
--
-- @module truto.iterate.stream
local core = require "truto.core"
local attempt = require "truto.attempt"
local client_mod = require "truto.client"

local M = {}

-- `deadline_at`: when the whole listing must end (the `deadline` option), or nil.
function M.new(client, path, query, policy, deadline_at)
  return {
    client = client, path = path, query = query, policy = policy, deadline_at = deadline_at,
    account = query.integrated_account_id, pager = core.pager(query.next_cursor),
  }
end

function M.deadline_of(policy)
  return policy.deadline and core.now() + policy.deadline or nil
end

-- The request for the stream's next page.
local function next_request(st)
  st.query.next_cursor = st.pager:cursor()
  st.asked = (st.asked or 0) + 1 -- pages asked for (max_pages)
  local req = client_mod.build(st.client, "GET", client_mod.with_query(st.path, st.query), nil, nil, st.account,
    st.policy)
  req.deadline_at = st.deadline_at
  req.cursor = st.query.next_cursor -- the cursor that fetched this page (a cut's resume point)
  -- every page keeps the listing's place in the rate budget's line (truto.rate.hints)
  st.place = st.place or attempt.place(req, true)
  req.place = st.place
  return req
end

-- Whether the stream may ask for another page under the call's max_pages.
function M.below_max_pages(st)
  local max = st.policy.max_pages
  return not max or (st.asked or 0) < max
end

-- Starts the stream's next page if the learned rate budget lets it go now,
-- without waiting (a fan-out must not stall its other accounts); else sets
-- st.ready_at, when it may look again.
function M.try_start(st, now)
  if st.ready_at and st.ready_at > now then return false end
  st.ready_at = nil
  local req = st.retry_req or next_request(st) -- a resumable retry sends the same request again
  local wait, why = attempt.ready_in(st.client, st.account, st.policy, req)
  if wait and wait > 0 then
    local err = attempt.hold_error(st.policy, req, wait, why)
    if err then
      st.start_err = err
    else
      st.ready_at = now + wait
    end
    return false
  end
  st.req = req
  req.ahead = true -- its timeout runs only while someone waits for it (truto.transport)
  local attempt_no = st.retry and st.retry.attempts and st.retry.attempts + 1 or 1
  local handle, err = attempt.start(st.client, req, st.policy, attempt_no, wait ~= nil)
  if handle then
    st.pending = handle
  else
    st.req, st.start_err = nil, err
  end
  return true
end

function M.cancel(st)
  if st.pending then
    st.pending:cancel()
    st.pending = nil
    attempt.learn(st.client, st.req, st.policy, nil) -- gives back a slow start's probe
  end
end

-- Reads the stream's next page: takes the request in flight (or sends
-- one), retries as the policy says, feeds the pager. Returns page, result,
-- keyed; or nil and an error object.
function M.read(st)
  if st.start_err then
    local err = st.start_err
    st.start_err = nil
    return nil, err
  end
  local req, pending = st.req, st.pending
  st.req, st.pending = nil, nil
  if not pending then req = next_request(st) end
  -- a fan-out's stream is resumable: a wait before the next attempt is not
  -- slept here (it would stall the other accounts) but kept as st.ready_at
  local resume = st.ready and (st.retry or {}) or nil
  local page, answer, attempts = attempt.call(st.client, req, st.policy, pending, resume)
  if page == false then
    st.retry, st.retry_req, st.ready_at = resume, req, core.now() + answer
    return false
  end
  st.retry, st.retry_req = nil, nil
  if page == nil then return nil, answer end
  st.page_cursor = req.cursor
  local result, keyed, message = st.pager:feed(page)
  if result == nil then
    -- the page came with an HTTP answer: the error carries it
    return nil, attempt.request_error(keyed, message, req, attempts, answer)
  end
  return page, result, keyed
end

return M
