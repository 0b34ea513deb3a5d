#!/usr/bin/env bash
# Peer: curl + jq in a shell loop: one curl process (a new connection) and one jq per page.
#
#   TRUTO_BASE_URL=... TRUTO_API_TOKEN=... bench/peers/curl_jq.sh accounts=a,b limit=100 \
#     [max=N] [every=100 work_ms=50] [cursor=C]
#
# Accounts are read one after another. The caller's work (sleep work_ms after every `every`-th
# item) is done per page, as many sleeps as the page crossed multiples of `every`.
# Prints items=N (items with a string id).
set -euo pipefail

accounts="" limit=100 max=0 every=0 work_ms=0 cursor=""
for a in "$@"; do
  case $a in
    accounts=* | limit=* | max=* | every=* | work_ms=* | cursor=*) declare "${a%%=*}=${a#*=}" ;;
    *) echo "curl_jq.sh: bad argument: $a" >&2; exit 2 ;;
  esac
done
: "${TRUTO_BASE_URL:?}" "${TRUTO_API_TOKEN:?}"
work=$(printf '%d.%03d' $((work_ms / 1000)) $((work_ms % 1000)))

uri() { jq -rn --arg s "$1" '$s|@uri'; }

total=0
IFS=, read -r -a list <<<"$accounts"
for account in "${list[@]}"; do
  [ -n "$account" ] || continue
  n=0
  next=""
  if [ -n "$cursor" ]; then next=$(uri "$cursor"); fi
  first="$TRUTO_BASE_URL/unified/user-directory/users?integrated_account_id=$(uri "$account")&limit=$limit"
  while :; do
    url=$first
    [ -z "$next" ] || url="$url&next_cursor=$next"
    got=""
    # One jq per page: the items with a string id, then the next cursor, URI-encoded ("" at the end).
    { read -r got; read -r next; } < <(
      curl -sS --fail --max-time 30 -H "Authorization: Bearer $TRUTO_API_TOKEN" \
        -H 'Accept: application/json' "$url" |
        jq -r '([.result[] | select(.id | type == "string")] | length), ((.next_cursor // "") | @uri)')
    [ -n "${got:-}" ] || { echo "curl_jq.sh: no page from $url" >&2; exit 1; }
    before=$n
    n=$((n + got))
    if ((max > 0 && n > max)); then n=$max; fi
    if ((every > 0)); then
      for ((s = before / every; s < n / every; s++)); do sleep "$work"; done
    fi
    if [ -z "$next" ] || ((max > 0 && n >= max)); then break; fi
  done
  total=$((total + n))
done
echo "items=$total"
