-- `lua-truto webhook verify` (exit codes, the secret file, the reasons) and `lua-truto webhook
-- listen` receiving the signed deliveries of `lua-truto mock --webhook`, retries included.
local socket = require "socket"
local truto = require "truto"
local run = require "spec.helpers.run"

local SECRET = "d5fac1cb-1820-4da7-bfd8-a6b758bcf8ff"

local function event_body(created_at)
  return assert(truto.encode_json { id = "evt-cli", event = "test", payload = { n = 1 },
    created_at = created_at or os.date("!%Y-%m-%dT%H:%M:%SZ") })
end

local dir, secret_file
local function secret(text)
  secret_file = secret_file or (dir .. "/secret")
  run.write(secret_file, text)
  return secret_file
end

setup(function()
  dir = run.tmpdir()
  os.execute("chmod 711 " .. dir) -- the mock's nginx worker (nobody, when root) writes in it
end)

describe("lua-truto webhook verify", function()
  local function verify(body, signature, extra, file)
    local argv = { "webhook", "verify", "--secret-file", file or secret(SECRET .. "\n"), "--signature", signature }
    for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
    return run.cli(argv, { stdin = body })
  end

  it("exits 0 and prints the event as one JSON line (the secret file's newline ignored)", function()
    local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
    local body = '{\n  "id": "evt-cli", "event": "test", "payload": {"n": 12345678901234567},\n  "created_at": "'
      .. now .. '"\n}'
    local out, err, code = verify(body, truto.webhook.sign(body, SECRET))
    assert.equal("", err)
    assert.equal(0, code)
    assert.equal('{"created_at":"' .. now .. '","event":"test","id":"evt-cli","payload":{"n":12345678901234567}}\n', out)
    -- a file without the newline, and one with \r\n, are the same secret
    assert.equal(0, select(3, verify(body, truto.webhook.sign(body, SECRET), nil, secret(SECRET))))
    assert.equal(0, select(3, verify(body, truto.webhook.sign(body, SECRET), nil, secret(SECRET .. "\r\n"))))
  end)

  it("exits 1 with the reason when the delivery is refused", function()
    local body = event_body()
    local cases = {
      { body .. " ", truto.webhook.sign(body, SECRET), "signature" },
      { body, truto.webhook.sign(body, SECRET .. "\n"), "signature" },
      { body, "format=sha1,v=00", "format" },
      { "nope", truto.webhook.sign("nope", SECRET), "decode" },
      { event_body("2020-01-01T00:00:00Z"), truto.webhook.sign(event_body("2020-01-01T00:00:00Z"), SECRET), "stale" },
    }
    for _, c in ipairs(cases) do
      local out, err, code = verify(c[1], c[2])
      assert.equal(1, code, c[3])
      assert.equal("", out)
      assert.truthy(err:find("^lua%-truto: refused: " .. c[3] .. ": "), err)
      assert.is_nil(err:find(SECRET, 1, true))
    end
  end)

  it("takes --tolerance (0: no age check)", function()
    local old = event_body("2020-01-01T00:00:00Z")
    local sig = truto.webhook.sign(old, SECRET)
    assert.equal(1, select(3, verify(old, sig, { "--tolerance", "60" })))
    assert.equal(0, select(3, verify(old, sig, { "--tolerance", "0" })))
    assert.equal(0, select(3, verify(old, sig, { "--tolerance=400000000" })))
  end)

  it("exits 2 on usage errors", function()
    local body = event_body()
    local sig = truto.webhook.sign(body, SECRET)
    local function usage(argv, message)
      local out, err, code = run.cli(argv, { stdin = body })
      assert.equal(2, code, err)
      assert.equal("", out)
      assert.equal("lua-truto: " .. message .. "\nTry 'lua-truto " .. argv[1] .. " --help'.\n", err)
    end
    usage({ "webhook", "verify", "--signature", sig }, "--secret-file FILE is required")
    usage({ "webhook", "verify", "--secret-file", secret(SECRET) }, "--signature 'format=sha256,v=...' is required")
    usage({ "webhook", "verify", "--secret-file", dir .. "/none", "--signature", sig },
      "--secret-file: " .. dir .. "/none: No such file or directory")
    usage({ "webhook", "verify", "--secret-file", secret("\n"), "--signature", sig },
      "--secret-file " .. dir .. "/secret is empty")
    usage({ "webhook", "verify", "--secret-file", secret(SECRET), "--signature", sig, "--tolerance", "-1" },
      "--tolerance expects a number >= 0, got '-1'")
    usage({ "webhook", "verify", "--port", "1" }, "unknown option '--port' for webhook verify")
    usage({ "webhook", "sign" }, "unknown webhook command 'sign' (verify, listen)")
    usage({ "webhook", "listen", "--secret-file", secret(SECRET) }, "--port N is required")
    usage({ "mock", "--port", "1", "--webhook", "http://127.0.0.1:1/" }, "--webhook URL and --webhook-secret SECRET go together")
    usage({ "mock", "--port", "1", "--webhook", "ftp://x/", "--webhook-secret", "s" },
      "--webhook must be an http:// or https:// URL, got 'ftp://x/'")
    usage({ "mock", "--webhook", "http://127.0.0.1:1/", "--webhook-secret", "s" }, "mock needs --port N (0: any free port)")
  end)

  it("prints its help", function()
    local out, _, code = run.cli { "webhook", "--help" }
    assert.equal(0, code)
    assert.truthy(out:find("^Usage: lua%-truto webhook verify"))
    assert.equal(out, (run.cli { "help", "webhook" }))
  end)
end)

describe("lua-truto webhook listen with lua-truto mock --webhook", function()
  local started = {}
  local function spawn(argv, log)
    local parts = { "cd", run.quote(run.ROOT), "&&", "exec", "lua5.4", "./lua-truto" }
    for _, a in ipairs(argv) do parts[#parts + 1] = run.quote(a) end
    local pid = run.spawn(table.concat(parts, " ") .. " >" .. run.quote(log), log .. ".err")
    started[#started + 1] = pid
    return pid
  end
  local function stop(pid)
    run.kill(pid)
    for _ = 1, 50 do
      if not run.alive(pid) then return end
      socket.sleep(0.1)
    end
  end
  teardown(function() for _, pid in ipairs(started) do stop(pid) end end)

  local function wait_lines(path, n, seconds)
    local deadline = socket.gettime() + (seconds or 10)
    local lines
    repeat
      lines = {}
      for line in run.slurp(path):gmatch("[^\n]+") do lines[#lines + 1] = line end
      if #lines >= n then return lines end
      socket.sleep(0.05)
    until socket.gettime() > deadline
    return lines
  end

  local function mock(hook_port, mock_dir)
    local port = run.free_port()
    spawn({ "mock", "--port", tostring(port), "--dir", mock_dir, "--webhook",
      ("http://127.0.0.1:%d/truto"):format(hook_port), "--webhook-secret", SECRET }, mock_dir .. ".out")
    assert(run.wait_port(port, 10), "the mock does not start")
    return truto.new { token = "test-token", base_url = "http://127.0.0.1:" .. port, max_retries = 0,
      integrated_account_id = "acct-small" }
  end

  it("prints the event of each write, with the item the write created", function()
    local hook_port = run.free_port()
    local events = dir .. "/events"
    local listener = spawn({ "webhook", "listen", "--port", tostring(hook_port), "--secret-file", secret(SECRET .. "\n"),
      "--max-events", "3" }, events)
    assert(run.wait_port(hook_port, 10), "webhook listen does not start")
    local client = mock(hook_port, dir .. "/mock1")

    local created = assert(client:create("user-directory", "users", { name = "Ada", emails = truto.array { "a@x.example" } }))
    local lines = wait_lines(events, 1)
    assert.equal(1, #lines, run.slurp(events .. ".err"))
    local event = assert(truto.decode_json(lines[1]))
    assert.equal("record:created", event.event)
    assert.equal("acct-small", event.payload.integrated_account_id)
    assert.equal("user-directory/users", event.payload.resource)
    assert.same(created, event.payload.record)
    assert.equal('["a@x.example"]', truto.encode_json(event.payload.record.emails))

    assert(client:update_organization("org-1", { name = "Acme II" }))
    assert(client:delete("user-directory", "users", "u001"))
    lines = wait_lines(events, 3)
    assert.equal(3, #lines)
    local updated, deleted = truto.decode_json(lines[2]), truto.decode_json(lines[3])
    assert.equal("record:updated", updated.event)
    assert.equal("user-directory/organizations", updated.payload.resource)
    assert.equal("Acme II", updated.payload.record.name)
    assert.equal("record:deleted", deleted.event)
    assert.same({ id = "u001" }, deleted.payload.record)
    -- --max-events 3: it has exited, with 0
    for _ = 1, 50 do
      if not run.alive(listener) then break end
      socket.sleep(0.1)
    end
    assert.is_falsy(run.alive(listener))
  end)

  it("is sent again when the receiver is not there yet (Truto's retries)", function()
    local hook_port = run.free_port()
    local mock_dir = dir .. "/mock2"
    local client = mock(hook_port, mock_dir)
    local created = assert(client:create("user-directory", "groups", { name = "Ops" }))
    local log = wait_lines(mock_dir .. "/webhooks.log", 1)
    assert.equal(1, #log)
    local first = truto.decode_json(log[1])
    assert.equal(1, first.attempt)
    assert.truthy(first.error:find("^connect: "), first.error)

    local events = dir .. "/events2"
    spawn({ "webhook", "listen", "--port", tostring(hook_port), "--secret-file", secret(SECRET), "--max-events", "1" },
      events)
    local lines = wait_lines(events, 1, 15)
    assert.equal(1, #lines)
    local event = truto.decode_json(lines[1])
    assert.same(created, event.payload.record)
    assert.equal(first.id, event.id)
    -- the listener printed the event before the mock read its answer and logged the attempt
    local last
    local deadline = socket.gettime() + 10
    repeat
      log = wait_lines(mock_dir .. "/webhooks.log", 2)
      last = truto.decode_json(log[#log])
      if last.status == 200 then break end
      socket.sleep(0.05)
    until socket.gettime() > deadline
    assert.equal(200, last.status)
    assert.is_true(last.attempt >= 2 and last.attempt <= 4)
    for i = 1, #log - 1 do assert.is_nil(truto.decode_json(log[i]).status) end -- the ones before: not reached
  end)

  it("is sent 4 times in all, 1, 2 and 4 s apart, to a receiver that keeps refusing it", function()
    local hook_port = run.free_port()
    local events = dir .. "/events3"
    spawn({ "webhook", "listen", "--port", tostring(hook_port), "--secret-file", secret("not-the-secret") }, events)
    assert(run.wait_port(hook_port, 10), "webhook listen does not start")
    local mock_dir = dir .. "/mock3"
    local client = mock(hook_port, mock_dir)
    assert(client:create("user-directory", "users", { name = "Refused" }))
    wait_lines(mock_dir .. "/webhooks.log", 4, 20)
    socket.sleep(1) -- and nothing after the 4th
    local log = wait_lines(mock_dir .. "/webhooks.log", 5, 0)
    assert.equal(4, #log)
    local attempts = {}
    for i, line in ipairs(log) do attempts[i] = truto.decode_json(line) end
    for i, a in ipairs(attempts) do
      assert.equal(i, a.attempt)
      assert.equal(401, a.status)
      assert.equal(attempts[1].id, a.id)
    end
    for i, delay in ipairs { 1, 2, 4 } do
      local gap = attempts[i + 1].time - attempts[i].time
      assert.is_true(gap >= delay * 0.9 and gap < delay + 2, ("gap %d: %.2f s"):format(i, gap))
    end
    assert.equal("", run.slurp(events))
    assert.equal(4, select(2, run.slurp(events .. ".err"):gsub("refused: signature", "")))
  end)
end)
