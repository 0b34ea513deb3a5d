--- Output formats: the registry FORMATS (table, json, ndjson, csv), one
-- entry per format. A list streams through the format's writer
-- ({ item, page_done, finish }); a single answer goes through its `single`.
-- -o's help, completion and error message are made from the registry.
-- Everything shown on a terminal is cleaned of control characters (every
-- format; JSON by escaping them); a file or a pipe gets exact bytes.
local json = require "truto.cli.json"
local text = require "truto.cli.text"
local truto = require "truto"

local M = {}

local concat = table.concat

-- Columns shown by `-o table` when --fields is not given.
local TABLE_COLUMNS = {
  users = { "id", "name", "username", "status" },
  groups = { "id", "name", "type", "members" },
  organizations = { "id", "name", "pricing_plan" },
}

local MAX_CELL, MIN_CELL = 48, 6

--- item[field], or the value at a dotted path ("emails.1.email") when the
-- item has no key by that very name. `false` stays `false`.
function M.field_value(item, field)
  if type(item) ~= "table" then return nil end
  local v = item[field]
  if v ~= nil or not field:find(".", 1, true) then return v end
  v = item
  for part in field:gmatch("[^.]+") do
    if type(v) ~= "table" then return nil end
    local index = math.tointeger(tonumber(part))
    if index ~= nil and v[index] ~= nil then v = v[index] else v = v[part] end
  end
  return v
end

local function encode(sys, v, as_item)
  local t, err = (as_item and json.item or json.text)(v)
  if not t then sys:fail(1, "cannot write the answer as JSON: " .. tostring(err)) end
  return t
end

--- A value as text for a table cell or a CSV field: "" for nil and null,
-- "true"/"false" for booleans, exact integers, tables as JSON.
function M.cell_text(sys, v)
  if v == nil or v == truto.null then return "" end
  local t = type(v)
  if t == "string" then return v end
  if t == "boolean" then return tostring(v) end
  return encode(sys, v)
end

local function is_scalar(v)
  local t = type(v)
  return t == "string" or t == "number" or t == "boolean"
end

--- The scalar fields of some items: id first, then by name.
function M.scalar_fields(items)
  local set, fields, has_id = {}, {}, false
  for _, item in ipairs(items) do
    if type(item) == "table" then
      for k, v in pairs(item) do
        if type(k) == "string" and is_scalar(v) then
          if k == "id" then has_id = true
          elseif not set[k] then set[k] = true fields[#fields + 1] = k end
        end
      end
    end
  end
  table.sort(fields)
  if has_id then table.insert(fields, 1, "id") end
  return fields
end

-- One item as JSON: as is (id first), or projected onto `fields` in their
-- order, a missing field giving null.
local function projected_json(sys, item, fields)
  if not fields or type(item) ~= "table" then return encode(sys, item, true) end
  local parts = {}
  for i, f in ipairs(fields) do
    local v = M.field_value(item, f)
    parts[i] = encode(sys, f) .. ":" .. (v == nil and "null" or encode(sys, v))
  end
  return "{" .. concat(parts, ",") .. "}"
end

-- On a terminal the JSON escapes the control characters an encoder leaves raw.
local function item_json(sys, item, fields)
  local t = projected_json(sys, item, fields)
  return sys:is_tty(1) and text.json_for_terminal(t) or t
end

local FORMULA = { ["="] = true, ["+"] = true, ["-"] = true, ["@"] = true }

-- `terminal`: stdout is one, so every cell is cleaned of control
-- characters (a file or a pipe gets the bytes exactly).
local function csv_row(values, safe, terminal)
  local parts = {}
  for i, s in ipairs(values) do
    if terminal then s = text.clean(s) end
    if safe and FORMULA[s:sub(1, 1)] then s = "'" .. s end
    if s:find('[,"\r\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
    parts[i] = s
  end
  return concat(parts, ",") .. "\r\n"
end

-- A cell for a terminal: one line, control characters dropped.
local function table_cell(sys, v)
  return text.clean(M.cell_text(sys, v))
end

-- Column widths from rows of cells, each at most MAX_CELL, then narrowed
-- until the line fits `columns` (nil: no limit).
local function column_widths(rows, columns, max)
  local widths = {}
  for _, row in ipairs(rows) do
    for c, cell in ipairs(row) do
      local w = math.min(text.width(cell), max)
      if not widths[c] or w > widths[c] then widths[c] = w end
    end
  end
  if columns then
    local function total()
      local sum = 2 * (#widths - 1)
      for _, w in ipairs(widths) do sum = sum + w end
      return sum
    end
    while total() > columns do
      local widest = 1
      for c, w in ipairs(widths) do if w > widths[widest] then widest = c end end
      if widths[widest] <= MIN_CELL then break end
      widths[widest] = widths[widest] - 1
    end
  end
  return widths
end

-- `room`: how wide the last column may grow (it is not padded, so a value
-- of a later page longer than the first page's is cut only at the edge of
-- the terminal, or at MAX_CELL when its width is unknown).
local function table_line(row, widths, room)
  local parts = {}
  for c, cell in ipairs(row) do
    local limit = widths[c] or MAX_CELL
    if c == #row and room and room > limit then limit = room end
    local s, w = text.cut(cell, limit)
    parts[c] = c < #row and s .. string.rep(" ", (widths[c] or w) - w) or s
  end
  return (concat(parts, "  "):gsub("%s+$", "")) .. "\n"
end

local function json_list(sys, o)
  local n = 0
  return {
    item = function(item)
      sys:write(n == 0 and "[\n" or ",\n", item_json(sys, item, o.fields))
      n = n + 1
    end,
    page_done = function() sys:flush() end,
    finish = function() sys:write(n == 0 and "[]\n" or "\n]\n") end,
  }
end

local function ndjson_list(sys, o)
  return {
    item = function(item) sys:write(item_json(sys, item, o.fields), "\n") end,
    page_done = function() sys:flush() end,
    finish = function() end,
  }
end

-- CSV's header and rows over st.columns (st: { columns, pending }).
local function csv_emitters(sys, o, st)
  local tty = sys:is_tty(1)
  local function emit_row(item)
    local values = {}
    for i, f in ipairs(st.columns) do values[i] = M.cell_text(sys, M.field_value(item, f)) end
    if #st.columns > 0 then sys:write(csv_row(values, o.csv_safe, tty)) end
  end
  local function emit_header()
    if #st.columns > 0 then sys:write(csv_row(st.columns, o.csv_safe, tty)) end
    for _, item in ipairs(st.pending) do emit_row(item) end
  end
  return emit_header, emit_row
end

-- The table's header and rows: widths from the header and the rows held
-- so far (st.pending), narrowed to the terminal's width when it has one.
local function table_emitters(sys, st)
  local widths, room
  local function cells(item)
    local row = {}
    for i, f in ipairs(st.columns) do row[i] = table_cell(sys, M.field_value(item, f)) end
    return row
  end
  local function emit_header()
    local head = {}
    for i, f in ipairs(st.columns) do head[i] = text.clean(f:upper()) end
    local rows = { head }
    for i, item in ipairs(st.pending) do rows[i + 1] = cells(item) end
    local columns_wide = sys:width()
    widths = column_widths(rows, columns_wide, MAX_CELL)
    room = MAX_CELL
    if columns_wide then
      room = columns_wide
      for c = 1, #widths - 1 do room = room - widths[c] - 2 end
    end
    for _, row in ipairs(rows) do sys:write(table_line(row, widths, room)) end
  end
  local function emit_row(item) sys:write(table_line(cells(item), widths, room)) end
  return emit_header, emit_row
end

-- The columns when --fields gave none: the resource's usual ones that the
-- held items have (table), or the scalar fields of the first page (csv).
local function default_columns(sys, format, o, pending)
  if format == "table" then
    local columns = {}
    for _, f in ipairs(TABLE_COLUMNS[o.resource] or { "id", "name" }) do
      for _, item in ipairs(pending) do
        if type(item) == "table" and item[f] ~= nil then columns[#columns + 1] = f break end
      end
    end
    if #columns == 0 then columns = M.scalar_fields({ pending[1] }) end
    return columns
  end
  local columns = M.scalar_fields(pending)
  if #columns > 0 then sys:say("CSV columns are the fields of the first page; --fields A,B,... fixes them") end
  return columns
end

-- csv and table: the first page fixes the columns, then rows stream.
local function columns_list(sys, format, o)
  local st = { columns = o.fields, pending = {} }
  local emit_header, emit_row
  if format == "csv" then emit_header, emit_row = csv_emitters(sys, o, st)
  else emit_header, emit_row = table_emitters(sys, st) end
  local started = false
  local function start()
    if started then return end
    started = true
    st.columns = st.columns or default_columns(sys, format, o, st.pending)
    emit_header()
    st.pending = nil
  end
  return {
    item = function(item)
      if started then emit_row(item) else st.pending[#st.pending + 1] = item end
    end,
    page_done = function()
      if not started and #st.pending > 0 then start() end
      sys:flush()
    end,
    finish = function()
      if started then return end
      if #st.pending > 0 then start() return end
      -- Nothing listed: a header when the columns are known.
      if st.columns then
        start()
      elseif format == "table" then
        sys:write("no ", text.clean(o.resource or "items"), "\n")
      end
    end,
  }
end

local function json_single(sys, value, o)
  sys:write(item_json(sys, value, o.fields), "\n")
end

local function csv_single(sys, value, o)
  local fields = o.fields
  local header = fields or M.scalar_fields({ value })
  if #header == 0 and type(value) == "table" then -- e.g. { result = {...} }: every key
    for k in pairs(value) do header[#header + 1] = tostring(k) end
    table.sort(header)
  end
  local values = {}
  for i, f in ipairs(header) do values[i] = M.cell_text(sys, M.field_value(value, f)) end
  local tty = sys:is_tty(1)
  if #header > 0 then sys:write(csv_row(header, o.csv_safe, tty), csv_row(values, o.csv_safe, tty)) end
end

local function table_single(sys, value, o)
  local fields = o.fields
  if type(value) ~= "table" then
    sys:write(table_cell(sys, value), "\n")
    return
  end
  local keys = fields
  if not keys then
    keys = {}
    for k in pairs(value) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
  end
  local rows = {}
  for i, k in ipairs(keys) do rows[i] = { text.clean(k), table_cell(sys, M.field_value(value, k)) } end
  local widths = column_widths(rows, sys:width(), math.huge)
  for _, row in ipairs(rows) do sys:write(table_line(row, widths)) end
end

--- The output formats, in the order help lists them; FORMATS[name] is the
-- entry. A format is { name, help (for `lua-truto list --help`), list =
-- function(sys, o) -> writer, single = function(sys, value, o) }.
M.FORMATS = {
  { name = "table", help = "aligned columns sized from the first page, rows\n"
      .. "written as pages arrive (default on a terminal)",
    list = function(sys, o) return columns_list(sys, "table", o) end, single = table_single },
  { name = "json", help = "one JSON array, one item per line (default otherwise)",
    list = json_list, single = json_single },
  { name = "ndjson", help = "one JSON object per line, written as pages arrive",
    list = ndjson_list, single = json_single },
  { name = "csv", help = "RFC 4180 (CRLF), header from --fields, else from the\n"
      .. "scalar fields of the first page (id first, then by name)",
    list = function(sys, o) return columns_list(sys, "csv", o) end, single = csv_single },
}
for _, f in ipairs(M.FORMATS) do M.FORMATS[f.name] = f end

--- The names of the formats, in order.
function M.format_names()
  local names = {}
  for i, f in ipairs(M.FORMATS) do names[i] = f.name end
  return names
end

--- "table, json, ndjson or csv" (`last`: the word before the last name).
function M.format_list(last)
  local names = M.format_names()
  if #names == 1 then return names[1] end
  return concat(names, ", ", 1, #names - 1) .. " " .. (last or "or") .. " " .. names[#names]
end

--- -o's lines in `lua-truto list --help`: NAME: HELP, indented by `indent`.
function M.format_help(indent)
  local lines = {}
  for _, f in ipairs(M.FORMATS) do
    lines[#lines + 1] = (f.name .. ": " .. f.help):gsub("\n", "\n" .. indent)
  end
  return concat(lines, "\n" .. indent)
end

--- A list writer for `format`: item(item), page_done(), finish().
-- `o`: fields, resource, csv_safe.
function M.list_writer(sys, format, o)
  return M.FORMATS[format].list(sys, o)
end

--- One object (get, create, update, delete, call).
function M.single(sys, format, value, o)
  return M.FORMATS[format].single(sys, value, o)
end

return M
