--- truto.ngx.waiters: requests in flight on the nginx transport, and waiting for the first of them.
--
-- start() sends at once (truto.ngx.exchange) and returns a handle; the
-- answer is read by handle:wait() in the caller's own coroutine, so nothing
-- runs on its own after the handler: no light thread holds the response, and
-- nginx closes the request's sockets when it ends.
--
-- wait_any() waits in one light thread per handle for the first bytes of its
-- answer, in slices of at most SLICE seconds; when one has them, the others
-- are told to stop and end within a slice, taking no byte (a light thread
-- killed in a read would close its socket). A handler that returns after a
-- wait_any() is held at most one slice.
--
-- @module truto.ngx.waiters
-- luacheck: std luajit+ngx_lua
local ngx = ngx -- luacheck: ignore 113 (the nginx API, global inside nginx)
local type, error, pcall, setmetatable = type, error, pcall, setmetatable
local floor = math.floor
local status_of = coroutine.status

local unpack = table.unpack or unpack -- luacheck: ignore 113 143

local parser = require "truto.ngx.parser"
local exchange = require "truto.ngx.exchange"
local request = require "truto.ngx.request"

local M = {}

local SLICE = 0.1
local PIECE = parser.PIECE

-- A light thread's body: waits for the first bytes of x's answer.
local function wait_first(x)
  local sock = x.sock
  while not x.abandon do
    local left = x.deadline - ngx.now()
    if left <= 0 then break end -- wait() tells the timeout
    sock:settimeout(floor((left < SLICE and left or SLICE) * 1000) + 1)
    local data, err = sock:receiveany(PIECE)
    if data then
      parser.append(x, data)
      x.last_byte, x.answered = ngx.now(), true
      break
    end
    if err ~= "timeout" then break end -- the socket keeps its error: wait() meets it again
  end
  if not x.abandon then x.first_done = true end
end

-- Lets a waiter still reading x end before x is read or closed.
local function join_waiter(x)
  local co = x.waiter
  x.waiter = nil
  if co and status_of(co) ~= "dead" then
    x.abandon = true
    if not pcall(ngx.thread.wait, co) then
      while status_of(co) ~= "dead" do ngx.sleep(0.01) end
    end
  end
end

local Handle = {}
Handle.__index = Handle
Handle.__name = "truto.ngx.request"
M.Handle = Handle

local CANCELLED = {}

--- A handle for req, sent at once: see exchange.send.
function M.start(conf, auth, req, gzip)
  local h = setmetatable({ truto_ngx = true }, Handle)
  local x, err = exchange.send(conf, auth, req, gzip)
  if x then h.x = x else h.err = err end
  return h
end

--- handle:wait() -> answer | nil, failure. Once only.
function Handle:wait()
  if self.res == CANCELLED or self.read then error("request was cancelled or already read", 2) end
  local x = self.x
  if x then
    if x.waiter then join_waiter(x) end
    local res, err = exchange.read(x)
    self.x = nil
    self.res, self.err = res, err
  end
  local res, err = self.res, self.err
  self.read = true
  self.res, self.err = nil, nil
  if res then return res end
  return nil, err
end

--- handle:done() -> whether wait() has something to give at once (never
-- blocks): the answer has begun to arrive (as wait_any() saw it), or the
-- request failed before the send.
function Handle:done()
  if self.read or self.res == CANCELLED then return false end
  local x = self.x
  if x then return x.pos <= #x.buf or x.first_done == true end
  return self.res ~= nil or self.err ~= nil
end

--- handle:cancel(): abandons the request; never raises.
function Handle:cancel()
  if not self.read and self.res ~= CANCELLED then
    local x = self.x
    self.x = nil
    if x then
      if x.waiter then pcall(join_waiter, x) end
      pcall(x.sock.close, x.sock)
    end
    self.res, self.err = CANCELLED, nil
  end
end

-- The handles to wait on: the index of one that is ready at once, or
-- nil, the exchanges in flight and their indexes in `handles`.
local function in_flight(handles)
  local live, index = {}, {}
  for i = 1, #handles do
    local h = handles[i]
    if type(h) == "table" and h.truto_ngx and not h.read and h.res ~= CANCELLED then
      if h.res ~= nil or h.err ~= nil then return i end
      local x = h.x
      if x then
        if x.pos <= #x.buf or x.first_done then return i end
        -- a socket of another nginx request cannot be waited on here: its
        -- wait() says so (orphaned), as wait() does, and it is sent again
        if x.ctx and request.ctx() ~= x.ctx then return i end
        live[#live + 1] = x
        index[#live] = i
      end
    end
  end
  return nil, live, index
end

local function abandon(live)
  for k = 1, #live do live[k].abandon = true end
end

-- Starts a waiter for each exchange in `live`: their threads | nil, k (the
-- k-th was answered at once).
local function spawn_waiters(live)
  local threads = {}
  for k = 1, #live do
    local x = live[k]
    x.abandon = false
    local co = x.waiter
    if not co or status_of(co) == "dead" then
      co = ngx.thread.spawn(wait_first, x)
      x.waiter = co
    end
    if x.first_done then -- answered at once
      abandon(live)
      return nil, k
    end
    threads[#threads + 1] = co
  end
  return threads
end

-- Waits for the first answer among `live` (threads: their waiters, and
-- the timer's last when there is one): its index, or false when the timer
-- ended first.
local function first_answer(live, index, threads, timer)
  while true do
    if not pcall(ngx.thread.wait, unpack(threads)) then ngx.sleep(0.01) end
    if timer and status_of(timer) == "dead" then
      local answered = false
      for k = 1, #live do answered = answered or live[k].first_done end
      if not answered then return false end
    end
    local found, alive = nil, false
    for k = 1, #live do
      if live[k].first_done then found = found or index[k] end
      local co = live[k].waiter
      if co and status_of(co) ~= "dead" then alive = true end
    end
    -- every waiter ended without an answer (a socket error, a timeout):
    -- wait() on the first tells what happened; never spin
    if found then return found end
    if not alive then return index[1] end
  end
end

--- wait_any(handles [, timeout]) -> index of a handle whose answer has
-- begun to arrive (or that failed), waiting for one if need be; false when
-- `timeout` (seconds) passed first; nil if none is in flight.
function M.wait_any(handles, timeout)
  local ready, live, index = in_flight(handles)
  if ready then return ready end
  if #live == 0 then return nil end
  local threads, at_once = spawn_waiters(live)
  if not threads then return index[at_once] end
  local timer = timeout and ngx.thread.spawn(function() ngx.sleep(math.max(timeout, 0.001)) end)
  if timer then threads[#threads + 1] = timer end
  local found = first_answer(live, index, threads, timer)
  abandon(live) -- the others stop within SLICE
  if timer and status_of(timer) ~= "dead" then ngx.thread.kill(timer) end
  return found
end

return M
