"""Peer: Python with requests (one Session: keep-alive), a sequential page loop.

  TRUTO_BASE_URL=... TRUTO_API_TOKEN=... /usr/bin/python3 bench/peers/python_requests.py \
      accounts=a,b limit=100 [max=N] [every=100 work_ms=50] [cursor=C]

Accounts are read one after another. Prints items=N (items with a string id).
"""
import os
import sys
import time

import requests


def main():
    opt = {}
    for a in sys.argv[1:]:
        k, sep, v = a.partition("=")
        if not sep:
            raise SystemExit("bad argument: " + a)
        opt[k] = v
    base = os.environ["TRUTO_BASE_URL"]
    limit = int(opt.get("limit", "100"))
    cap = int(opt.get("max", "0"))
    every = int(opt.get("every", "0"))
    work = float(opt.get("work_ms", "0")) / 1000

    session = requests.Session()
    session.headers.update({
        "Authorization": "Bearer " + os.environ["TRUTO_API_TOKEN"],
        "Accept": "application/json",
    })

    def users(account):
        cursor = opt.get("cursor") or None
        while True:
            params = {"integrated_account_id": account, "limit": limit}
            if cursor:
                params["next_cursor"] = cursor
            res = session.get(base + "/unified/user-directory/users", params=params, timeout=30)
            res.raise_for_status()
            page = res.json()
            yield from page["result"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    total = 0
    for account in filter(None, opt.get("accounts", "").split(",")):
        n = 0
        for user in users(account):
            n += 1
            if isinstance(user.get("id"), str):
                total += 1
            if every and n % every == 0:
                time.sleep(work)
            if n == cap:
                break
    print("items=%d" % total)


if __name__ == "__main__":
    main()
