#!/usr/bin/env bash
# Sync at scale: an account of 100,000 users (the mock's acct-sync-100k-*, pages of 1,000), a first
# run, then 1 % changed (800 updated, 100 deleted, 100 created) and the second run: incremental
# (updated_at[gt], the default) and complete (--full, which finds the deletions), with the JSON
# state file and with the SQLite mirror, beside a plain complete listing of the same account.
# For each: requests (counted at the mock), wall time and peak RSS (VmHWM) of the Lua process.
#
#   bench/sync.sh            # prints a table; needs nginx with lua-nginx-module, lua5.4, curl
set -euo pipefail
cd "$(dirname "$0")/.."
port=$(lua5.4 -e 'local s = assert(require("socket").bind("127.0.0.1", 0)); local _, p = s:getsockname(); s:close(); print(p)')
dir=$(spec/mock/serve --port "$port")
work=$(mktemp -d)
trap 'spec/mock/serve --stop "$dir"; rm -rf "$work"' EXIT
url="http://127.0.0.1:$port"
tag=$(date +%s)

requests() { grep -c "\"account\":\"$1\"" "$dir/requests.log" || true; }

# measure LABEL ACCOUNT MODE [PATH] [full]
measure() {
  local label=$1 account=$2 before after line
  shift
  before=$(requests "$account")
  line=$(lua5.4 bench/sync_run.lua "$url" "$@")
  after=$(requests "$account")
  printf '%-34s requests=%-5d %s\n' "$label" $((after - before)) "$line"
}

# 1 % of 100,000: every 100th user updated (800), deleted (100), and 100 created.
change() {
  ACCOUNT=$1 lua5.4 -e '
    local up, del, new = {}, {}, {}
    for i = 1, 1000 do
      local id = string.format("L%06d", i * 100 - 50)
      if i <= 800 then up[#up + 1] = string.format("{\"id\":\"%s\",\"title\":\"changed\"}", id)
      elseif i <= 900 then del[#del + 1] = string.format("\"%s\"", id)
      else new[#new + 1] = string.format("{\"name\":\"New %d\"}", i) end
    end
    print(string.format("{\"account\":\"%s\",\"resource\":\"users\",\"update\":[%s],\"delete\":[%s],\"create\":[%s]}",
      os.getenv("ACCOUNT"), table.concat(up, ","), table.concat(del, ","), table.concat(new, ",")))' >"$work/change.json"
  curl -s -o /dev/null -w '' -X POST --data-binary @"$work/change.json" "$url/__mock/changes"
  # the mock indexes an account's base data on its first filtered read: not part of the measure
  curl -s -o /dev/null -H 'Authorization: Bearer test-token' \
    "$url/unified/user-directory/users?integrated_account_id=$1&updated_at%5Bgt%5D=2999-01-01T00:00:00Z"
}

echo "sync bench: 100,000 users, pages of 1,000, mock on $url"
measure "plain complete listing" "acct-sync-100k-list$tag" list
for store in file sqlite; do
  for second in incremental full; do
    acct="acct-sync-100k-$store$second$tag"
    path="$work/$acct.$store"
    measure "$store: first run" "$acct" "$store" "$path"
    change "$acct"
    measure "$store: 1 % changed, $second" "$acct" "$store" "$path" $([ "$second" = full ] && echo full)
  done
done
ls -l "$work" | awk 'NR > 1 && $NF !~ /change/ { printf "state %s: %d bytes\n", $NF, $5 }'
