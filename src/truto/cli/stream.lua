--- `--response-format stream`: Truto answers a list (or a get) with one
-- JSON object per line (NDJSON) instead of pages. The answer is not a
-- page, so it goes through `client:request` and its body is written as it
-- came: byte for byte into a file or a pipe, each line cleaned of control
-- characters on a terminal.
local core = require "truto.core"
local commands = require "truto.cli.commands"
local text = require "truto.cli.text"

local M = {}

-- The error object of an answer that is not a success.
local function http_error(answer)
  local body = type(answer.json) == "table" and answer.json or {}
  local message = type(body.message) == "string" and body.message or answer.body:sub(1, 512)
  return {
    kind = "http", status = answer.status, message = message ~= "" and message or nil,
    error = type(body.error) == "string" and body.error or nil,
    remote = body.is_remote_error == true or nil, insight = body.insight,
  }
end

local function for_terminal(body)
  local lines = {}
  for line in body:gmatch("[^\n]+") do lines[#lines + 1] = text.clean(line) end
  return table.concat(lines, "\n") .. (#lines > 0 and "\n" or "")
end

--- Runs list or get with the stream format; returns the exit code.
function M.run(sys, client, cmd)
  local path = "/unified/" .. cmd.model .. "/" .. cmd.resource
  if cmd.id then path = path .. "/" .. assert(core.segment(cmd.id)) end
  local query = {}
  for k, v in pairs(cmd.query) do query[k] = v end
  query.integrated_account_id = query.integrated_account_id or client.integrated_account_id
  local answer, err = client:request({ path = path, query = query }, cmd.call_opts)
  if not answer then return commands.report_error(sys, err) end
  if answer.status < 200 or answer.status > 299 then return commands.report_error(sys, http_error(answer)) end
  sys:write(sys:is_tty(1) and for_terminal(answer.body) or answer.body)
  sys:flush()
  return 0
end

return M
