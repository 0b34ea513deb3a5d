"""Peer for the HTTPS scenario: Python requests with one Session (keep-alive), COUNT GETs of one
organization. The CA comes from REQUESTS_CA_BUNDLE.

    python3 bench/peers/python_orgs.py URL COUNT     prints items=N (answers with a string id)
"""
import sys

import requests

url, count = sys.argv[1], int(sys.argv[2])
session = requests.Session()
headers = {"Accept": "application/json", "Authorization": "Bearer test-token"}
items = 0
for _ in range(count):
    res = session.get(url, headers=headers)
    res.raise_for_status()
    if isinstance(res.json().get("id"), str):
        items += 1
print(f"items={items}")
