// Peer: Node.js with its built-in fetch (undici: keep-alive) and JSON.parse, reading pages the
// way the official TypeScript SDK's cursor does: one page at a time, `for await` over an async
// generator that yields the page's items and then asks for next_cursor. No npm packages.
//
//   TRUTO_BASE_URL=... TRUTO_API_TOKEN=... node bench/peers/node_fetch.mjs accounts=a,b limit=100 \
//     [max=N] [every=100 work_ms=50] [cursor=C]
//
// Accounts are read one after another. Prints items=N (items with a string id).
const opt = {};
for (const a of process.argv.slice(2)) {
  const i = a.indexOf('=');
  if (i < 0) throw new Error(`bad argument: ${a}`);
  opt[a.slice(0, i)] = a.slice(i + 1);
}
const base = process.env.TRUTO_BASE_URL;
const headers = {
  'Content-Type': 'application/json',
  Accept: 'application/json',
  Authorization: `Bearer ${process.env.TRUTO_API_TOKEN}`,
};
const limit = Number(opt.limit || 100);
const max = Number(opt.max || 0);
const every = Number(opt.every || 0);
const workMs = Number(opt.work_ms || 0);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function* users(account) {
  let cursor = opt.cursor || '';
  do {
    const query = new URLSearchParams({ integrated_account_id: account, limit: String(limit) });
    if (cursor) query.set('next_cursor', cursor);
    const res = await fetch(`${base}/unified/user-directory/users?${query}`, { headers });
    const text = await res.text();
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${text}`);
    const page = JSON.parse(text);
    for (const item of page.result) yield item;
    cursor = page.next_cursor || '';
  } while (cursor);
}

let total = 0;
for (const account of (opt.accounts || '').split(',').filter(Boolean)) {
  let n = 0;
  for await (const user of users(account)) {
    n += 1;
    if (typeof user.id === 'string') total += 1;
    if (every > 0 && n % every === 0) await sleep(workMs);
    if (n === max) break;
  }
}
process.stdout.write(`items=${total}\n`);
