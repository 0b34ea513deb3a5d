-- Turns bench/run's measurements into bench/RESULTS.md and the data of bench/ratios.svg.
--
--   lua5.4 bench/report.lua RESULTS.tsv META.tsv RESULTS.md RATIOS.dat
--
-- RESULTS.tsv: one line per repetition: scenario, client, rep, status (ok / na / fail / timeout /
-- count), wall s, user s, sys s, peak RSS KiB, items, expected items, extras (k=v;...), note.
-- META.tsv: key, value (machine, versions, run settings).
-- Exits 2 when a target was missed, 0 otherwise.

local results_path, meta_path, md_path, dat_path = arg[1], arg[2], arg[3], arg[4]
assert(results_path and meta_path and md_path and dat_path,
  "usage: report.lua RESULTS.tsv META.tsv RESULTS.md RATIOS.dat")

local format, concat = string.format, table.concat

local function split_tabs(line)
  local t = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do t[#t + 1] = field end
  return t
end

local meta = {}
for line in io.lines(meta_path) do
  local f = split_tabs(line)
  meta[f[1]] = line:match("^[^\t]*\t(.*)$") or ""
end

-- runs[scenario][client] = { reps = { ... }, status = ..., note = ... }
local runs, order = {}, {}
for line in io.lines(results_path) do
  if line ~= "" then
    local f = split_tabs(line)
    local scen, client = f[1], f[2]
    runs[scen] = runs[scen] or {}
    local r = runs[scen][client]
    if not r then
      r = { reps = {}, client = client, note = f[12] ~= "" and f[12] or nil }
      runs[scen][client] = r
      order[scen] = order[scen] or {}
      order[scen][#order[scen] + 1] = client
    end
    local extras = {}
    for k, v in (f[11] or ""):gmatch("([%w_]+)=([^;]*)") do extras[k] = v end
    r.reps[#r.reps + 1] = {
      rep = tonumber(f[3]), status = f[4], wall = tonumber(f[5]), user = tonumber(f[6]),
      sys = tonumber(f[7]), rss = tonumber(f[8]), items = tonumber(f[9]), expected = tonumber(f[10]),
      extras = extras,
    }
  end
end

local function median(list)
  local t = {}
  for _, v in ipairs(list) do if v == v and v ~= nil then t[#t + 1] = v end end
  if #t == 0 then return nil end
  table.sort(t)
  local m = (#t + 1) // 2
  return #t % 2 == 1 and t[m] or (t[m] + t[m + 1]) / 2
end

-- Medians over the repetitions that succeeded; status is "ok" only when all did.
local function summarize(r)
  local s = { status = "ok" }
  local wall, cpu, rss, items = {}, {}, {}, {}
  local extra_lists = {}
  for _, rep in ipairs(r.reps) do
    if rep.status ~= "ok" then
      s.status = rep.status
      s.na = rep.extras.na
    else
      wall[#wall + 1] = rep.wall
      if rep.user and rep.sys then cpu[#cpu + 1] = rep.user + rep.sys end
      rss[#rss + 1] = rep.rss
      items[#items + 1] = rep.items
      for k, v in pairs(rep.extras) do
        local n = tonumber(v)
        if n then
          extra_lists[k] = extra_lists[k] or {}
          table.insert(extra_lists[k], n)
        end
      end
    end
  end
  s.wall, s.cpu, s.rss, s.items = median(wall), median(cpu), median(rss), median(items)
  s.extras = {}
  for k, list in pairs(extra_lists) do
    s.extras[k] = median(list)
    table.sort(list)
    s.extras[k .. "_min"], s.extras[k .. "_max"] = list[1], list[#list]
  end
  s.ok_reps = #wall
  return s
end

local summary = {}
for scen, clients in pairs(runs) do
  summary[scen] = {}
  for client, r in pairs(clients) do summary[scen][client] = summarize(r) end
end

local function get(scen, client)
  local s = summary[scen] and summary[scen][client]
  if s and s.status == "ok" and s.wall then return s end
  return nil
end

local NAMES = {
  truto = "lua-truto",
  raw = "raw limit: libcurl + cjson (bench/raw_limit.lua)",
  truto_noprefetch = "lua-truto, `prefetch = false`",
  truto_multi = "lua-truto, 20 accounts in one `client:users`",
  truto_seq = "lua-truto, one account after another",
  node = "Node.js fetch + JSON.parse (SDK-style loop)",
  python = "Python requests.Session",
  luasocket = "Lua 5.4 socket.http + cjson",
  curl_jq = "curl + jq (shell loop)",
  truto_memory = "lua-truto",
  truto_keepalive = "lua-truto, one client",
  truto_fresh = "lua-truto, a new client per call",
}
local PEERS = { "node", "python", "luasocket", "curl_jq" }
local PEER_TITLES = { node = "Node fetch", python = "Python requests", luasocket = "Lua socket.http",
  curl_jq = "curl + jq" }

-- The row each scenario's "ratio to lua-truto" divides by, with fallbacks.
local REFERENCE = {
  S1 = { "truto" }, S2 = { "truto" }, S3 = { "truto_multi", "truto_seq" }, S4 = { "truto_memory" },
  S5 = { "truto_keepalive" },
}

local function reference(scen)
  for i, client in ipairs(REFERENCE[scen] or {}) do
    local s = get(scen, client)
    if s then return client, s, i > 1 end
  end
end

-- Time per item (S5: the in-process loop time of the calls, without process start-up).
local function per_item(scen, s)
  local t = s.wall
  if scen == "S5" and s.extras.loop_s then t = s.extras.loop_s end
  if not t or not s.items or s.items == 0 then return nil end
  return t / s.items
end

local function ratio(scen, client)
  local s = get(scen, client)
  local _, ref = reference(scen)
  if not s or not ref then return nil end
  local a, b = per_item(scen, s), per_item(scen, ref)
  if not a or not b or b == 0 then return nil end
  return a / b
end

local function num(v, fmt)
  if v == nil then return "–" end
  return format(fmt or "%.2f", v)
end

local function thousands(n)
  local s = format("%.0f", n)
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end

local md = {}
local function w(...) md[#md + 1] = concat({ ... }) end

local SCENARIOS = {
  S1 = {
    title = "S1 throughput: every user of acct-large (100,000 users, pages of 100, no latency)",
    what = "One process per client lists all 100,000 users, page after page. items/s is users per "
      .. "second of wall time. The raw limit fetches the same pages with lua-truto's own libcurl "
      .. "handle and decodes them with cjson, nothing else.",
  },
  S2 = {
    title = "S2 latency + work: acct-large@50, first 40 pages of 100, 50 ms of caller work per page",
    what = "Each answer is 50 ms late (the account's `@50`); the caller sleeps 50 ms after every "
      .. "100th user and stops after 4,000. Read one page at a time, each page costs latency + work "
      .. "(ideal 40 × 100 ms = 4.0 s); reading the next page while the caller works hides the "
      .. "latency (ideal 40 × 50 ms + 50 ms = 2.05 s).",
  },
  S3 = {
    title = "S3 many accounts: 20 accounts × 10 pages of 100, 100 ms per page",
    what = "20 accounts of the mock's acct-1k family (`acct-1k-01@100` … `acct-1k-20@100`: 1,000 users each, "
      .. "100 ms per answer): 10 pages of 100 each. One after another that is "
      .. "200 × 100 ms = 20 s; 8 at a time the ideal is 200 / 8 × 100 ms = 2.5 s (that needs the 20 walks "
      .. "interleaved, which lua-truto does round-robin). "
      .. "The peers read the accounts one after another, as they are written.",
  },
  S4 = {
    title = "S4 memory: every user of acct-huge (1,000,000 users, pages of 100)",
    what = "lua-truto alone. RSS is read from /proc/self/statm after the first 10 pages and on every "
      .. "page after; the peak is the kernel's VmHWM at the end. Flat memory means the peak stays "
      .. "close to the RSS after 10 pages.",
  },
  S5 = {
    title = "S5 keep-alive: 1,000 sequential `get_organization` calls",
    what = "One client for all calls against a new client for each (closed after its call when the "
      .. "module can, else collected every 100). The ratio uses the time of the 1,000 calls "
      .. "measured inside the process (`loop s`), without Lua's start-up; the connections are "
      .. "counted in the mock's request log.",
  },
}

local targets, missed = {}, false
local function target(desc, source, measured, met)
  local result
  if met == nil then result = "n/a" elseif met then result = "met" else result = "**missed**"; missed = true end
  targets[#targets + 1] = { desc, source, measured, result }
end

w("# Benchmark results")
w("")
w("Made by `bench/run` (`make bench`) on ", meta.date, ". Every number is the median of ", meta.reps,
  " runs of a separate client process against one mock Truto server on 127.0.0.1, same data for every ",
  "client. How to read it: [README.md](README.md).")
w("")
w("| machine | |")
w("|---|---|")
w("| CPUs (nproc) | ", meta.nproc, " |")
w("| CPU | ", meta.cpu, " |")
w("| memory | ", meta.memory, " |")
w("| system | ", meta.os, ", ", meta.kernel, " |")
w("")
w("| software | version |")
w("|---|---|")
for _, k in ipairs { "lua-truto", "lua", "libcurl", "lua-cjson", "luasocket", "node", "python", "curl", "jq",
  "nginx", "gnuplot" } do
  w("| ", k, " | ", meta[k] or "?", " |")
end
w("")
local load_before, load_after = (meta.load or ""):match("^(.-)\t(.*)$")
w("Load average (1, 5, 15 min) before the run: ", load_before or "?", "; after: ", load_after or "?", ".")
if tonumber((load_before or ""):match("^[%d.]+") or "0") > 0.5 then
  w("**The machine was busy before the run started: the numbers are noisier than they should be.**")
end
w("")
w("Installed by this run: ", meta.installed ~= "" and meta.installed or "nothing", ". Run time: ",
  meta.runtime, " s. lua-truto's client-side rate limit: ",
  meta.rate_limit == "rate_limit=off" and "off (`rate_limit = false`; the peers have none)" or "its default", ".")
w("")

local function scenario_table(scen)
  local info = SCENARIOS[scen]
  w("## ", info.title)
  w("")
  w(info.what)
  w("")
  local ref_client, _, fallback = reference(scen)
  w("| client | wall s | CPU s | mock CPU s | peak RSS MiB | items | items/s | ratio to lua-truto |",
    " requests / connections | notes |")
  w("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
  for _, client in ipairs(order[scen] or {}) do
    local s = summary[scen][client]
    local name = NAMES[client] or client
    if client == ref_client then name = "**" .. name .. "**" end
    local notes = {}
    if runs[scen][client].note then notes[#notes + 1] = runs[scen][client].note end
    if s.status == "na" then
      w("| ", name, " | n/a (feature missing) | | | | | | | | ", (s.na or ""):gsub("|", "\\|"), " |")
    elseif s.status ~= "ok" and s.ok_reps == 0 then
      w("| ", name, " | **", s.status, "** | | | | | | | | see the log of the run |")
    else
      if s.status ~= "ok" then notes[#notes + 1] = format("**%s** in some runs", s.status) end
      local e = s.extras
      if e.loop_s then notes[#notes + 1] = format("loop %.3f s", e.loop_s) end
      if e.rss_after_pages_kb then
        notes[#notes + 1] = format("RSS after 10 pages %.1f MiB, at the end %.1f MiB", e.rss_after_pages_kb / 1024,
          e.rss_end_kb / 1024)
      end
      if e.other_cpu_s and e.other_cpu_s > 0.2 * s.wall then
        notes[#notes + 1] = format("other processes used %.1f CPU s meanwhile", e.other_cpu_s)
      end
      local ips = s.items / (scen == "S5" and e.loop_s or s.wall)
      local r = ratio(scen, client)
      w("| ", name, " | ", num(s.wall, "%.3f"), " | ", num(s.cpu), " | ", num(e.mock_cpu_s), " | ",
        num(s.rss and s.rss / 1024, "%.1f"),
        " | ", thousands(s.items), " | ", thousands(ips), " | ", r and format("%.2f×", r) or "–", " | ",
        e.requests and format("%d / %d", e.requests, e.connections) or "–", " | ", concat(notes, "; "), " |")
    end
  end
  w("")
  if fallback then
    w("The ratios here divide by **", NAMES[ref_client], "**: the row they should divide by is n/a.")
    w("")
  end
end

for _, scen in ipairs { "S1", "S2", "S3", "S4", "S5" } do
  if runs[scen] then scenario_table(scen) end
end

-- Targets. "issue": named by the issue; "harness": chosen here where the issue names no number.
if runs.S1 then
  local t, raw = get("S1", "truto"), get("S1", "raw")
  local r = t and raw and (t.items / t.wall) / (raw.items / raw.wall)
  target("S1: lua-truto's users/s ≥ 0.9 × the raw libcurl + cjson limit", "issue",
    r and format("%.2f×", r) or "n/a", r and r >= 0.9)
  local rc = t and raw and raw.cpu and t.cpu and (t.cpu / t.items) / (raw.cpu / raw.items)
  if rc then
    targets[#targets + 1] = { "S1, for information: lua-truto's CPU time per user / the raw limit's", "",
      format("%.2f×", rc), "" }
  end
end
if runs.S2 then
  local t, np = get("S2", "truto"), get("S2", "truto_noprefetch")
  local r = t and np and np.wall / t.wall
  target("S2: read-ahead ≥ 1.5× faster than `prefetch = false` (ideal 4.0 s / 2.05 s = 1.95×)", "harness",
    r and format("%.2f× (%.2f s vs %.2f s)", r, t.wall, np.wall) or "n/a (prefetch option missing)", r and r >= 1.5)
end
if runs.S3 then
  local t = get("S3", "truto_multi")
  local ideal = 200 / 8 * 0.1
  local r = t and t.wall / ideal
  target("S3: 20 accounts in one call within 1.5× the ideal 2.5 s (200 pages / 8 × 100 ms)",
    "issue (ideal); harness (1.5×)", r and format("%.2f× (%.2f s)", r, t.wall) or "n/a (multi-account call missing)",
    r and r <= 1.5)
end
if runs.S4 then
  local t = get("S4", "truto_memory")
  local e = t and t.extras
  local r = e and e.rss_peak_kb and e.rss_after_pages_kb and e.rss_peak_kb / e.rss_after_pages_kb
  target("S4: peak RSS ≤ 2× the RSS after the first 10 pages", "issue",
    r and format("%.2f× (%.1f / %.1f MiB)", r, e.rss_peak_kb / 1024, e.rss_after_pages_kb / 1024) or "n/a",
    r and r <= 2)
end
if runs.S5 then
  local r = ratio("S5", "truto_fresh")
  target("S5: one client ≥ 2× faster than a new client per call", "issue", r and format("%.2f×", r) or "n/a",
    r and r >= 2)
  local k = summary.S5.truto_keepalive
  local c_min, c_max = k and k.extras.connections_min, k and k.extras.connections_max
  target("S5: the one client used exactly one connection (mock request log), in every run", "issue",
    c_min and (c_min == c_max and format("%d", c_min) or format("%d to %d", c_min, c_max)) or "n/a",
    c_min and c_min == 1 and c_max == 1)
end

w("## Targets")
w("")
w("| target | from | measured | result |")
w("|---|---|---|---|")
for _, t in ipairs(targets) do w("| ", t[1], " | ", t[2], " | ", t[3], " | ", t[4], " |") end
w("")
w("![wall time per item of each peer relative to lua-truto](ratios.svg)")
w("")

w("<details><summary>Every run</summary>")
w("")
w("| scenario | client | run | status | wall s | user s | sys s | peak RSS KiB | items | extras |")
w("|---|---|--:|---|--:|--:|--:|--:|--:|---|")
for _, scen in ipairs { "S1", "S2", "S3", "S4", "S5" } do
  for _, client in ipairs(order[scen] or {}) do
    for _, rep in ipairs(runs[scen][client].reps) do
      local extras = {}
      for k, v in pairs(rep.extras) do extras[#extras + 1] = k .. "=" .. v end
      table.sort(extras)
      w("| ", scen, " | ", client, " | ", rep.rep, " | ", rep.status, " | ", num(rep.wall, "%.3f"), " | ",
        num(rep.user), " | ", num(rep.sys), " | ", num(rep.rss, "%d"), " | ", num(rep.items, "%d"), " | ",
        (concat(extras, " "):gsub("|", "\\|")), " |")
    end
  end
end
w("")
w("</details>")

local f = assert(io.open(md_path, "w"))
f:write(concat(md, "\n"), "\n")
f:close()

local CHART_LABELS = { S1 = "S1 throughput", S2 = "S2 latency + work", S3 = "S3 many accounts" }

-- The chart's data: one row per scenario with peers, one column per peer ("?" = none).
local rows = {}
for _, scen in ipairs { "S1", "S2", "S3" } do
  local ref_client, _, fallback = reference(scen)
  if runs[scen] and ref_client then
    local cells = { CHART_LABELS[scen] .. (fallback and " (vs sequential lua-truto)" or "") }
    local any = false
    for _, peer in ipairs(PEERS) do
      local r = ratio(scen, peer)
      cells[#cells + 1] = r and format("%.3f", r) or "?"
      any = any or r ~= nil
    end
    if any then rows[#rows + 1] = concat(cells, "\t") end
  end
end
f = assert(io.open(dat_path, "w"))
if #rows > 0 then
  local header = { "scenario" }
  for _, peer in ipairs(PEERS) do header[#header + 1] = PEER_TITLES[peer] end
  f:write(concat(header, "\t"), "\n", concat(rows, "\n"), "\n")
end
f:close()

for _, t in ipairs(targets) do io.stderr:write("target: ", t[1], ": ", t[3], " -> ", t[4], "\n") end
os.exit(missed and 2 or 0)
