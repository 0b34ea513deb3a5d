// Peer for the HTTPS scenario: Node's built-in fetch (undici keeps the connection alive) and
// JSON.parse, COUNT GETs of one organization. The CA comes from NODE_EXTRA_CA_CERTS.
//
//   node bench/peers/node_orgs.mjs URL COUNT      prints items=N (answers with a string id)
const [url, count] = process.argv.slice(2);
const headers = { Accept: 'application/json', Authorization: 'Bearer test-token' };
let items = 0;
for (let i = 0; i < Number(count); i++) {
  const res = await fetch(url, { headers });
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
  const org = await res.json();
  if (typeof org.id === 'string') items++;
}
console.log(`items=${items}`);
