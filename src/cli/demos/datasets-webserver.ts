/**
 * One "web server" of the datasets demo: an HTTP server that answers GET /price/<sku> from its
 * local replica of the `prices` dataset. Spawned by datasets.ts with an IPC channel; reports
 * `ready` (its port) and every change it applies, with a timestamp comparable across processes.
 * argv: <sqlite path> <name>
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { openDataset } from '../../datasets/index.js';
import { wallNow } from '../../core/clock.js';
import { makeIdentity } from '../../core/identity.js';
import { sqliteDatasetStore } from '../../sqlite/dataset-store.js';

export type WebServerMessage =
  | { type: 'ready'; name: string; port: number; version: number; prices: number }
  | { type: 'applied'; name: string; version: number; kind: string; at: number; changes: string[] };

const [dbPath, name] = process.argv.slice(2);
if (!dbPath || !name) throw new Error('usage: datasets-webserver <sqlite path> <name>');
const send = (m: WebServerMessage) => process.send?.(m);

const store = sqliteDatasetStore({ path: dbPath });
const prices = await openDataset<number>('prices', {
  store,
  identity: makeIdentity('WebShop', 'localhost', process.pid, name),
  leaseMs: 3000,
  // A price above 1000 is a typo in this shop: refuse to stage it.
  validate: (changes) => (changes.some((c) => (c.value ?? 0) > 1000) ? `${name}: price above 1000` : undefined),
});
prices.onChange((change) => {
  send({
    type: 'applied',
    name,
    version: change.version,
    kind: change.kind,
    at: wallNow(),
    changes: change.changes.map((c) => `${c.key}=${c.deleted ? '(deleted)' : String(c.value)}`),
  });
});

const server = http.createServer((req, res) => {
  const match = /^\/price\/([^/]+)$/.exec(req.url ?? '');
  const price = match?.[1] ? prices.get(decodeURIComponent(match[1])) : undefined;
  res.writeHead(price === undefined ? 404 : 200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ server: name, version: prices.version, price: price ?? null }));
});
server.listen(0, '127.0.0.1', () => {
  send({ type: 'ready', name, port: (server.address() as AddressInfo).port, version: prices.version, prices: prices.size });
});

process.on('disconnect', () => {
  server.close();
  void prices.close().then(() => store.close()).then(() => process.exit(0));
});
