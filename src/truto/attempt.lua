--- truto.attempt: sending a request, and when to send it again.
--
-- The resend rule. A request goes on the wire again only when that is safe:
-- its method is GET, HEAD, OPTIONS or TRACE; or it carries an
-- Idempotency-Key (POST, PATCH and DELETE get one by default; Truto
-- answers a replay with the first answer); or it
-- provably never reached the server (`sends == 0`: connection refused, DNS,
-- connect timeout). A write that may not be sent twice also never rides on
-- an idle pooled connection (`reuse = false`): the server may have closed
-- it, and the request would then be lost in flight. (Go's net/http
-- `isReplayable` and the Stripe SDKs are the models.)
--
-- Every send is an attempt: each shows in `debug`, in `on_retry` and in the
-- answer's or error's `attempts`, whichever transport made it.
--
-- @module truto.attempt
local core = require "truto.core"
local transport = require "truto.transport"
local metrics = require "truto.metrics"

local M = {}

local format, concat, random, min = string.format, table.concat, math.random, math.min

local DEFAULTS = require "truto.defaults"
local BACKOFF_BASE, BACKOFF_CAP, DEFAULT_429_WAIT = DEFAULTS.backoff_base, DEFAULTS.backoff_cap, DEFAULTS.wait_429

-- DELETE is not among them: a DELETE re-sent after the first one arrived
-- gets 404 for a delete that succeeded (it is keyed instead, as writes are).
local REPLAYABLE = { GET = true, HEAD = true, OPTIONS = true, TRACE = true }

--- Whether req may be sent again when it may have reached the server.
function M.replayable(req)
  return REPLAYABLE[req.method] == true or req.key ~= nil
end

--- 128 random bits from the operating system, as 32 hex digits: the
-- Idempotency-Key of one write, the same on each of its attempts.
function M.new_key()
  return core.random_hex(16)
end

--- An error object for a failure that has no HTTP answer to read (a
-- transport failure, a page the pager refused); `answer`, when given, is
-- the HTTP answer the failure was found in.
function M.request_error(kind, message, req, attempts, answer)
  local err = {
    kind = kind, message = message, method = req.method, url = req.url, remote = false,
    attempts = attempts,
  }
  if answer then
    err.status, err.headers = answer.status, answer.headers
    local body = answer.body
    if #body > core.ERROR_BODY_MAX then body = body:sub(1, core.ERROR_BODY_MAX) end
    err.body = body
  end
  return core.error(err)
end

-- The error object of an HTTP answer whose status is a failure.
local function http_error(req, answer, attempts, opts)
  local _, err = core.read_response(answer.status, answer.headers, answer.body, req.method, req.url, opts)
  if err then err.attempts = attempts end
  return err
end

-- Seconds to wait before sending again, or nil to give up. `failure`:
-- kind, status, retry_after, sends, too_large (and from truto.ngx: stale,
-- orphaned, aborted; see truto.transport).
local function retry_wait(policy, req, failure, retries)
  if retries >= policy.max_retries then return nil end
  if failure.kind == "http" then
    if not policy.retry_statuses[failure.status] then return nil end
  elseif failure.too_large or (failure.kind ~= "transport" and failure.kind ~= "timeout") then
    return nil -- an answer over max_body will be as large next time
  end
  if failure.sends ~= 0 and not M.replayable(req) then return nil end
  if failure.status == 429 then
    local wait = failure.retry_after or DEFAULT_429_WAIT
    if wait > policy.max_retry_wait then return nil end
    return wait
  end
  -- Exponential backoff with full jitter.
  return random() * min(BACKOFF_CAP, BACKOFF_BASE * 2 ^ retries)
end

-- The debug log: each request line and its headers, the token masked (it
-- never leaves the transport, so it cannot be shown).
local function log_request(policy, req, attempt)
  local out = { req.method .. " " .. req.url, "Authorization: Bearer ***" }
  for i = 1, #req.headers do out[#out + 1] = req.headers[i] end
  if req.body then out[#out + 1] = format("(body: %d bytes)", #req.body) end
  if attempt > 1 then out[#out + 1] = format("(attempt %d)", attempt) end
  policy.debug(concat(out, "\n"))
end

local function log_answer(policy, answer, failure)
  if answer then
    policy.debug(format("<- %d (%d bytes)", answer.status, #answer.body))
  else
    policy.debug(format("<- %s: %s", failure.kind, failure.message))
  end
end

--- The wait of one call: the caller's own `sleep` option, or else the call's
-- transport's (truto.transport.sleep): on libcurl it keeps reading every
-- request in flight while it waits and ends at once on SIGINT, in nginx it
-- yields. Returns fn(seconds) -> true | false, "interrupted".
function M.sleeper(client, req, policy)
  if policy.sleep ~= transport.sleep then return policy.sleep end
  local t = req.transport or transport.pick(client._transports)
  return function(seconds) return transport.sleep(seconds, t) end
end

-- The rate hooks of one request: its clock, its sleep, its bounds. Made
-- once per request (kept as req.rate_hooks), not per send: its bounds are
-- brought up to date for each.
local function rate_hooks(client, policy, req)
  local hooks = req.rate_hooks
  if not hooks then
    -- the call's clock: after a wait, at least its end (a sleep the caller replaced may not let
    -- any time pass, and the wait was for the same hold)
    local function now()
      local t = core.now()
      local after = req.waited_until
      if after and after > t then return after end
      return t
    end
    hooks = {
      sleep = M.sleeper(client, req, policy), now = now, on_wait = policy.on_wait, debug = policy.debug,
      max_wait = policy.max_retry_wait,
    }
    req.rate_hooks = hooks
  end
  hooks.deadline = req.deadline_at
  hooks.place = M.place(req)
  hooks.probe_ttl = (req.timeout or DEFAULTS.timeout) + (req.connect_timeout or 0)
  return hooks
end

--- The call's place in line for the learned rate budget (truto.rate): made when it first
-- asks; a listing gives each page's request its own (truto.iterate), so all keep one place.
function M.place(req, stay)
  local place = req.place
  if not place then
    place = { since = core.now(), id = core.random_hex(3), stay = stay or nil }
    req.place = place
  end
  return place
end

--- Seconds left before the call's deadline (nil: none).
function M.time_left(req)
  return req.deadline_at and req.deadline_at - core.now() or nil
end

--- Sets req.deadline_at from the policy's `deadline` unless it is set (an iterator sets it
-- once for the whole listing).
function M.set_deadline(req, policy)
  if policy.deadline and not req.deadline_at then req.deadline_at = core.now() + policy.deadline end
end

--- Whether the learned budget lets a request of `account` start now (for a driver that must
-- not block): 0, or the seconds until it may look again. nil: no limiter.
function M.ready_in(client, account, policy, req)
  local limiter = client._limiter
  if not limiter then return nil end
  return limiter:check_hints(account, rate_hooks(client, policy, req))
end

--- The error of a rate hold of `wait` s (reason `why`) that is longer than
-- max_retry_wait or ends past the deadline; nil when it may be waited
-- (then it is reported, when 0.1 s or more, through on_wait and debug).
function M.hold_error(policy, req, wait, why)
  local account = req.account ~= nil and tostring(req.account) or "(none)"
  if wait > policy.max_retry_wait then
    return M.request_error("rate_limited", format(
      "the rate budget asks for a wait of %.1f s (account %s, %s), longer than max_retry_wait (%s s)",
      wait, account, why, tostring(policy.max_retry_wait)), req, 0)
  end
  local left = M.time_left(req)
  if left and wait >= left then
    return M.request_error("timeout", format(
      "the deadline comes before the rate budget lets the request go (a wait of %.1f s: account %s, %s)",
      wait, account, why), req, 0)
  end
  if wait >= 0.1 then
    if policy.on_wait then policy.on_wait { wait = wait, budget = "server", reason = why, account = req.account } end
    if policy.debug then
      policy.debug(format("rate limit: holding the request %.2f s for account %s, %s", wait, account, why))
    end
  end
  return nil
end

--- Starts one send of req on the client's transport for this call, after
-- the rate budget lets it start (`taken`: M.ready_in already said so).
-- Returns the handle and the transport, or nil and an error object (a
-- wait longer than max_retry_wait or past the deadline).
function M.start(client, req, policy, attempt, taken)
  local limiter = client._limiter
  local held = 0
  if limiter then
    local waited, kind, message = limiter:acquire(req.account, rate_hooks(client, policy, req), taken)
    if not waited then return nil, M.request_error(kind, message, req, (attempt or 1) - 1) end
    held = waited
  end
  local left = M.time_left(req)
  if left then
    if left <= 0 then
      return nil, M.request_error("timeout", "the call's deadline has passed", req, (attempt or 1) - 1)
    end
    req.timeout = min(policy.timeout, left)
  end
  if policy.debug then log_request(policy, req, attempt or 1) end
  if policy.on_request then
    metrics.call(policy, "on_request", { method = req.method, url = req.url, account = req.account,
      attempt = attempt or 1, held = held })
  end
  if policy.on_response then req.sent_at = core.now() end
  local t = req.transport or transport.pick(client._transports)
  return t:start(req), t
end

--- Tells the limiter what one attempt taught (an answer, or none).
function M.learn(client, req, policy, answer)
  local limiter = client._limiter
  if not limiter then return end
  if not answer then return limiter:learn(req.account, { failed = true }, req.place) end
  local retry_after
  if answer.status == 429 then
    retry_after = core.retry_after(answer.headers["retry-after"], nil)
  end
  limiter:observe(req.account, answer.headers, answer.status, retry_after, policy.max_retry_wait, req.place)
end

-- Reports a send the caller did not see start: libcurl's own re-send on
-- a new connection after the reused one turned out closed.
local function report_hidden_resend(policy, req, attempt)
  if policy.debug then
    policy.debug(format("(attempt %d: the reused connection was closed by the server; sent again on a new one)",
      attempt))
  end
  if policy.on_retry then
    policy.on_retry { attempt = attempt - 1, wait = 0, method = req.method, url = req.url,
      error = M.request_error("transport", "the reused connection was closed by the server", req, attempt - 1) }
  end
end

local report_wait

-- The on_response hook of one attempt (truto.metrics).
local function report_response(policy, req, attempt, answer, failure, sends)
  metrics.call(policy, "on_response", { method = req.method, url = req.url, account = req.account,
    attempt = attempt, status = answer and answer.status, kind = failure and failure.kind,
    message = failure and failure.message, headers = answer and answer.headers, sends = sends,
    seconds = req.sent_at and core.now() - req.sent_at })
end

--- Sends req, again as the resend rule and the policy allow. Returns the
-- final answer (whatever its status) and the number of sends; or nil and
-- an error object when the last attempt failed in transport. `first`, when
-- given, is the first send already started (read-ahead).
--
-- `resume`, when given (a fan-out's stream), makes the call resumable: a
-- wait before the next attempt is not slept but returned as `false, wait`
-- (the attempts so far are kept in `resume`), and the caller starts the
-- next attempt when the wait is over and calls send again with the same
-- `resume` and that handle. The resend rule and the policy are the same.
function M.send(client, req, policy, first, resume)
  local attempts, retries, stale_resent = 0, 0, false
  if resume and resume.attempts then attempts, retries, stale_resent = resume.attempts, resume.retries,
      resume.stale_resent end
  M.set_deadline(req, policy)
  while true do
    local handle = first
    if not handle then
      local start_err
      handle, start_err = M.start(client, req, policy, attempts + 1)
      if not handle then
        start_err.attempts = attempts
        return nil, start_err
      end
    end
    first = nil
    local answer, failure = handle:wait()
    local sends = (answer or failure).sends or 1
    for _ = 2, sends do
      attempts = attempts + 1
      report_hidden_resend(policy, req, attempts + 1)
    end
    attempts = attempts + 1
    if policy.debug then log_answer(policy, answer, failure) end
    if policy.on_response then report_response(policy, req, attempts, answer, failure, sends) end
    M.learn(client, req, policy, answer)
    local wait, err
    if answer then
      if not policy.retry_statuses[answer.status] then return answer, attempts end
      local hint = core.retry_after(answer.headers["retry-after"], answer.headers["ratelimit-reset"])
      wait = retry_wait(policy, req, { kind = "http", status = answer.status, retry_after = hint, sends = sends },
        retries)
      if not wait then return answer, attempts end
      err = http_error(req, answer, attempts, policy.decode)
    elseif failure.aborted then
      -- the nginx request this call served has ended (ngx.on_abort): stop
      return nil, M.request_error(failure.kind, failure.message, req, attempts)
    elseif (failure.stale or failure.orphaned) and not stale_resent and M.replayable(req) then
      -- An idle connection the server had closed, or a send whose nginx
      -- request has ended: send again at once, once.
      stale_resent, wait = true, 0
      err = M.request_error(failure.kind, failure.message, req, attempts)
    else
      wait = retry_wait(policy, req, failure, retries)
      err = M.request_error(failure.kind, failure.message, req, attempts)
      if not wait then return nil, err end
      retries = retries + 1
    end
    if answer then retries = retries + 1 end
    local left = M.time_left(req)
    if left and wait >= left then
      -- the wait would end past the call's deadline: fail now, with what the last attempt said
      err.kind = "timeout"
      err.message = format("the call's deadline comes before the next attempt, in %.1f s (last: %s)", wait,
        answer and format("%d %s", answer.status, err.message or "") or err.message)
      return nil, err
    end
    if policy.on_retry then
      policy.on_retry { attempt = attempts, status = answer and answer.status, wait = wait,
        method = req.method, url = req.url, error = err }
    end
    if resume and wait > 0 then
      resume.attempts, resume.retries, resume.stale_resent = attempts, retries, stale_resent
      report_wait(policy, wait, { reason = answer and "retry-after" or "backoff", account = req.account })
      return false, wait
    end
    if wait > 0 then
      local ok, why = M.wait(policy, wait, { reason = answer and "retry-after" or "backoff", account = req.account },
        M.sleeper(client, req, policy))
      if ok then req.waited_until = math.max(why, (req.waited_until or 0) + wait) end
      if not ok then return nil, M.request_error(why, "interrupted while waiting to send the request again", req,
        attempts) end
    end
  end
end

--- Waits `seconds` before the next attempt; reports a wait of 0.1 s or more
-- (on_wait, debug). Returns true, or nil and "interrupted" when a signal
-- (Ctrl-C) ended the wait (the sleep returned false). `sleep`: the call's
-- (M.sleeper), else the policy's.
function M.wait(policy, seconds, info, sleep)
  report_wait(policy, seconds, info)
  local t = core.now()
  if (sleep or policy.sleep)(seconds) == false then return nil, "interrupted" end
  return true, t + seconds
end

-- Reports a wait of 0.1 s or more before the next attempt (on_wait, debug).
function report_wait(policy, seconds, info)
  if seconds >= 0.1 then
    info.wait = seconds
    info.budget = "retry"
    if policy.on_wait then policy.on_wait(info) end
    if policy.debug then
      policy.debug(format("waiting %.2f s before the next attempt (account %s, %s)", seconds,
        info.account ~= nil and tostring(info.account) or "(none)", info.reason))
    end
  end
end

--- One request whose answer is JSON: the decoded value and the number of
-- attempts, or nil and an error object.
function M.call(client, req, policy, first, resume)
  local answer, attempts = M.send(client, req, policy, first, resume)
  if answer == false then return false, attempts end -- resumable: retry after `attempts` s
  if not answer then return nil, attempts end
  local value, err = core.read_response(answer.status, answer.headers, answer.body, req.method, req.url,
    policy.decode)
  if err then
    err.attempts = attempts
    return nil, err
  end
  return value, answer, attempts
end

return M
