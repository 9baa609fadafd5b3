/**
 * Dataset benchmarks.
 *   dataset.read                 local reads/s from a replica vs a plain Map.get loop (same keys, same run)
 *   dataset.<backend>.converge-10, -100  a write until all 10 (100) replica PROCESSES applied it: p50/p99 convergence
 *                                latency over 200 writes at a fixed offered rate after 200 warm-up writes at
 *                                that rate; msgs/s = writes/s achieved. Baseline: the same change pushed
 *                                through a plain broadcast to the same processes (Redis PUBLISH, PostgreSQL
 *                                NOTIFY, SQLite: every process polls one row every 20 ms), measured after
 *                                the replicas closed, so each row runs alone.
 *                                Settings report store writes per change (the append plus membership
 *                                writes, counted in the children) and, on PostgreSQL, connections per
 *                                replica. PostgreSQL at 100 runs on a private server (test/transports/fixtures/private-postgres.ts).
 *   dataset.pubsub-events.converge-10  the comparison the issue asks for: the same writes pushed as a
 *                                Switchyard event on SQLite to 10 processes, each subscribed as a logical
 *                                endpoint of its own (publish/subscribe reaches one instance per logical
 *                                subscriber, so that is what reaching every process takes); p50/p99 until all
 *                                10 handled it. Baseline: the dataset.sqlite.converge-10 row of the same run.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { Redis } from 'ioredis';
import { createEndpoint, defineEvent, silentLogger } from '../../src/index.js';
import { openDataset } from '../../src/datasets/index.js';
import { subscriptions } from '../../src/pubsub/subscriptions.js';
import { sqliteSubscriptionStore, sqliteTransport } from '../../src/sqlite/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { sqliteDatasetStore } from '../../src/sqlite/dataset-store.js';
import type { BenchChildConfig, BenchChildMessage, Broadcast } from '../../test/datasets/fixtures/bench-child.js';
import type { BenchEventChildConfig } from '../../test/datasets/fixtures/bench-event-child.js';
import { openStore, type StoreSpec } from '../../test/datasets/fixtures/stores.js';
import { forkReplicas, stopReplicas } from '../../test/datasets/fixtures/replica-fleet.js';
import { privatePostgresSkipReason, startPrivatePostgres } from '../../test/transports/fixtures/private-postgres.js';
import { nodeScript } from '../../src/testing/node-script.js';
import { reachable, serviceUrls } from '../../test/support/services.js';
import { wallNow } from '../../src/core/clock.js';
import { offerAtFixedRate } from '../load.js';
import { percentile } from '../stats.js';
import type { BenchResult, BenchSuite } from '../types.js';

const CHILD = nodeScript('../../test/datasets/fixtures/bench-child.ts', import.meta.url);
const EVENT_CHILD = nodeScript('../../test/datasets/fixtures/bench-event-child.ts', import.meta.url);
/** Replica processes of the converge rows; the pubsub-events row uses the first. */
const FLEETS = [10, 100] as const;
const REPLICAS = FLEETS[0];
const WARMUP = 200;
const WRITES = 200;
const RATE = 100; // offered writes per second
const SQLITE_POLL_MS = 20;
const WRITER_CONNECTIONS = 4;
const urls = { postgres: serviceUrls.postgres, redis: serviceUrls.redis };
const now = wallNow;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function benchRead(log: (l: string) => void): Promise<BenchResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-bench-ds-'));
  const store = sqliteDatasetStore({ path: path.join(dir, 'read.db') });
  const ds = await openDataset<number>('bench-read', { store });
  const keys = Array.from({ length: 1000 }, (_, i) => `sku-${i}`);
  await ds.batch(keys.map((key, i) => ({ key, value: i })));
  const map = new Map(keys.map((k, i) => [k, i]));
  // Lookup keys are separate string objects, as keys from requests would be, for both maps.
  const lookups = Array.from({ length: 1000 }, (_, i) => ['sku', String(i)].join('-'));
  const N = 5_000_000;
  const loop = (get: (k: string) => number | undefined) => {
    let sum = 0;
    const t0 = performance.now();
    for (let i = 0; i < N; i++) sum += get(lookups[i % 1000]!) ?? 0;
    return { perSec: N / ((performance.now() - t0) / 1000), sum };
  };
  // Alternate the two and keep each one's best of three: the machine may be busy.
  let base = { perSec: 0, sum: 0 };
  let mine = { perSec: 0, sum: 0 };
  for (let round = 0; round < 3; round++) {
    const b = loop((k) => map.get(k));
    const m = loop((k) => ds.get(k));
    if (b.perSec > base.perSec) base = b;
    if (m.perSec > mine.perSec) mine = m;
  }
  if (base.sum !== mine.sum) throw new Error('dataset.read: the dataset and the Map disagree');
  log(`dataset.read: ${mine.perSec.toFixed(0)} reads/s vs Map.get ${base.perSec.toFixed(0)}/s`);
  await ds.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    name: 'dataset.read', transport: 'sqlite', messages: N, msgsPerSec: mine.perSec, p50Ms: null, p99Ms: null,
    baseline: 'Map.get loop over the same 1000 entries (best of 3, alternating)', baselineMsgsPerSec: base.perSec, ratio: mine.perSec / base.perSec,
    settings: { keys: 1000, onStale: 'serve' },
  };
}

interface Converge {
  latencies: number[];
  perSec: number;
}

/**
 * Issues writes at RATE (open loop), each timed from when it was due, and waits until every
 * replica reported it or a later id (a polling baseline skips values it never saw; the latest value subsumes them).
 */
async function drive(
  children: ChildProcess[],
  pick: (m: BenchChildMessage) => number | undefined,
  write: (i: number) => Promise<number>,
): Promise<Converge> {
  const received = children.map(() => [] as { id: number; at: number }[]);
  const maxSeen = children.map(() => -Infinity);
  const listeners = children.map((child, index) => {
    const listener = (raw: unknown) => {
      const m = raw as BenchChildMessage;
      const id = pick(m);
      if (id === undefined || !('at' in m)) return;
      received[index]!.push({ id, at: m.at });
      maxSeen[index] = Math.max(maxSeen[index]!, id);
    };
    child.on('message', listener);
    return listener;
  });
  const waitAll = async (id: number) => {
    const deadline = Date.now() + 10_000;
    while (Math.min(...maxSeen) < id) {
      if (Date.now() > deadline) throw new Error(`write ${id} did not reach all ${children.length} replicas in 10 s`);
      await sleep(1);
    }
  };
  // Warm-up at the offered rate: each process's code paths get hot (100 cold processes cost
  // several times what warm ones do), and only then is anything timed.
  const warm: Promise<number>[] = [];
  await offerAtFixedRate(WARMUP, RATE, () => void warm.push(write(warm.length)));
  await waitAll(Math.max(...(await Promise.all(warm))));
  const started = new Map<number, number>();
  const writes: Promise<unknown>[] = [];
  const t0 = now();
  // Open loop, timed from when each write was due (no coordinated omission: a slow write cannot push the ones behind it later).
  await offerAtFixedRate(WRITES, RATE, (due) => void writes.push(write(WARMUP + writes.length).then((id) => started.set(id, due))), t0);
  await Promise.all(writes);
  const elapsed = (now() - t0) / 1000;
  await waitAll(Math.max(...started.keys()));
  children.forEach((child, index) => child.off('message', listeners[index]!));
  const latencies = [...started].map(([id, at]) => {
    const reached = received.map((list) => list.find((r) => r.id >= id)?.at ?? Infinity);
    return Math.max(...reached) - at;
  });
  return { latencies: latencies.sort((a, b) => a - b), perSec: WRITES / elapsed };
}

/** Sends `request` to every child and waits for each one's message of type `answer`. */
async function askAll<T extends BenchChildMessage['type']>(children: readonly ChildProcess[], request: object, answer: T): Promise<Extract<BenchChildMessage, { type: T }>[]> {
  return Promise.all(children.map((child) => new Promise<Extract<BenchChildMessage, { type: T }>>((resolve) => {
    const listener = (m: unknown) => {
      if ((m as BenchChildMessage).type !== answer) return;
      child.off('message', listener);
      resolve(m as Extract<BenchChildMessage, { type: T }>);
    };
    child.on('message', listener);
    child.send(request);
  })));
}

/** The membership writes (heartbeats) all children made so far. */
async function countReports(children: readonly ChildProcess[]): Promise<number> {
  return (await askAll(children, { type: 'count' }, 'reports')).reduce((sum, m) => sum + m.count, 0);
}

/** Replica connections per process: PostgreSQL backends named by the replicas' application_name. */
async function pgConnectionsPerReplica(url: string, app: string, replicas: number): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const n = Number((await client.query('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1', [app])).rows[0].n);
    return n / replicas;
  } finally {
    await client.end();
  }
}

async function benchConverge(backend: 'sqlite' | 'postgres' | 'redis', replicas: number, log: (l: string) => void): Promise<BenchResult | undefined> {
  const row = `dataset.${backend}.converge-${replicas}`;
  if (backend !== 'sqlite' && !(await reachable(urls[backend]))) {
    log(`${row}: skipped: ${backend} is not reachable at ${new URL(urls[backend]).host}`);
    return undefined;
  }
  const closers: (() => Promise<unknown> | void)[] = [];
  // 100 replica and 100 baseline connections do not fit the shared server (max_connections 100).
  const privatePg = backend === 'postgres' && replicas > 40 && !privatePostgresSkipReason ? await startPrivatePostgres({ maxConnections: replicas * 2 + 50 }) : undefined;
  if (backend === 'postgres' && replicas > 40 && !privatePg) {
    log(`${row}: skipped: needs a private PostgreSQL (pg_ctl, initdb) for ${replicas * 2} connections`);
    return undefined;
  }
  if (privatePg) closers.push(() => privatePg.stop());
  const pgUrl = privatePg?.url ?? urls.postgres;
  const replicaApp = 'sy-bench-replica';
  const tag = `${process.pid}_${Date.now().toString(36)}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-bench-ds-'));
  const channel = `sy_bench_broadcast_${tag}`;
  let spec: StoreSpec;
  let broadcast: Broadcast;
  let publish: (n: number) => Promise<void>;
  if (backend === 'sqlite') {
    spec = { backend: 'sqlite', path: path.join(dir, 'datasets.db') };
    const file = path.join(dir, 'broadcast.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE bench_broadcast (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO bench_broadcast VALUES (1, -1)');
    const update = db.prepare('UPDATE bench_broadcast SET n = ? WHERE id = 1');
    publish = async (n) => void update.run(n);
    broadcast = { kind: 'sqlite', path: file, pollMs: SQLITE_POLL_MS };
    closers.push(() => void db.close());
  } else if (backend === 'postgres') {
    const replicaUrl = new URL(pgUrl);
    replicaUrl.searchParams.set('application_name', replicaApp);
    spec = { backend: 'postgres', url: replicaUrl.toString(), schema: `sy_bench_${tag}` };
    const client = new pg.Client({ connectionString: pgUrl });
    await client.connect();
    publish = async (n) => void (await client.query('SELECT pg_notify($1, $2)', [channel, String(n)]));
    broadcast = { kind: 'postgres', url: pgUrl, channel };
    closers.unshift(async () => {
      await client.query(`DROP SCHEMA IF EXISTS "sy_bench_${tag}" CASCADE`);
      await client.end();
    });
  } else {
    spec = { backend: 'redis', url: urls.redis, prefix: `sy-bench-${tag}` };
    const client = new Redis(urls.redis);
    publish = async (n) => void (await client.publish(channel, String(n)));
    broadcast = { kind: 'redis', url: urls.redis, channel };
    closers.push(async () => {
      const found = await client.keys(`sy-bench-${tag}:*`);
      if (found.length > 0) await client.del(...found);
      await client.quit();
    });
  }
  const dataset = `bench-converge-${tag}`.replace(/_/g, '-');
  // The writer is a process that writes a lot: on PostgreSQL, queries beside its LISTEN client (docs/data-distribution.md).
  const store = openStore(backend === 'postgres' ? { backend, url: pgUrl, schema: `sy_bench_${tag}`, maxConnections: WRITER_CONNECTIONS } : spec);
  const writer = await openDataset<number>(dataset, { store });
  let children: ChildProcess[] = [];
  try {
    const t = Date.now();
    children = await forkReplicas(
      CHILD,
      Array.from({ length: replicas }, (_, i): BenchChildConfig => ({ store: spec, dataset, instance: `bench-${i}`, broadcast })),
    );
    log(`${row}: ${replicas} replica processes up in ${Date.now() - t} ms`);
    const connections = backend === 'postgres' ? await pgConnectionsPerReplica(pgUrl, replicaApp, replicas) : undefined;
    const reportsBefore = await countReports(children);
    const mine = await drive(children, (m) => (m.type === 'applied' ? m.version : undefined), (i) => writer.set('price', i));
    // One append per change, plus the replicas' membership writes over the same writes (warm-up included).
    const writesPerChange = 1 + ((await countReports(children)) - reportsBefore) / (WARMUP + WRITES);
    // The replicas close and the plain subscribers start: neither row pays for the other's machinery.
    await askAll(children, { type: 'broadcast-phase' }, 'broadcasting');
    const base = await drive(children, (m) => (m.type === 'broadcast' ? m.n : undefined), async (i) => {
      await publish(i);
      return i;
    });
    const [p50, p99, b50, b99] = [percentile(mine.latencies, 0.5), percentile(mine.latencies, 0.99), percentile(base.latencies, 0.5), percentile(base.latencies, 0.99)];
    log(`${row}: p50 ${p50?.toFixed(2)} ms p99 ${p99?.toFixed(2)} ms, ${mine.perSec.toFixed(1)} writes/s, ${writesPerChange.toFixed(2)} store writes per change${connections === undefined ? '' : `, ${connections} connections per replica`}; broadcast p50 ${b50?.toFixed(2)} ms p99 ${b99?.toFixed(2)} ms`);
    const baseline = {
      sqlite: `every process polls one row every ${SQLITE_POLL_MS} ms (no log, no resume, no membership)`,
      postgres: `pg_notify to ${replicas} LISTEN connections (lossy; no log, no resume)`,
      redis: `Redis PUBLISH to ${replicas} subscribers (lossy; no log, no resume)`,
    }[backend];
    return {
      name: row, transport: backend, messages: WRITES, msgsPerSec: mine.perSec, p50Ms: p50, p99Ms: p99,
      baseline: `${baseline}; its p50/p99 in settings`, baselineMsgsPerSec: base.perSec, ratio: mine.perSec / base.perSec,
      settings: {
        replicas, offeredWritesPerSec: RATE, warmup: WARMUP,
        baselineP50Ms: Number(b50?.toFixed(3) ?? -1), baselineP99Ms: Number(b99?.toFixed(3) ?? -1),
        storeWritesPerChange: Number(writesPerChange.toFixed(3)),
        ...(connections === undefined ? {} : {
          connectionsPerReplica: connections, writerConnections: WRITER_CONNECTIONS + 1, server: privatePg ? 'private PostgreSQL (max_connections raised)' : 'shared',
        }),
        ...(backend === 'sqlite' ? { synchronous: 'FULL', baselinePollMs: SQLITE_POLL_MS } : {}),
      },
    };
  } finally {
    await stopReplicas(children);
    await writer.close();
    await store.close();
    for (const close of closers) await close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function benchEvents(log: (l: string) => void, dataset: BenchResult | undefined): Promise<BenchResult> {
  const tag = `${process.pid}${Date.now().toString(36)}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-bench-ev-'));
  const db = path.join(dir, 'events.db');
  const eventType = `Bench${tag}.PriceChanged`;
  const PriceChanged = defineEvent<{ n: number }>(eventType);
  const store = sqliteSubscriptionStore({ path: db });
  const publisher = createEndpoint({
    name: 'PriceAdmin',
    transport: sqliteTransport({ path: db }),
    logger: silentLogger,
    features: [subscriptions({ store, publishes: [PriceChanged], cacheMs: 0 })],
  });
  await publisher.start();
  let children: ChildProcess[] = [];
  try {
    const configs = Array.from({ length: REPLICAS }, (_, i): BenchEventChildConfig => ({ db, instance: `web-${i}`, publisher: 'PriceAdmin', eventType }));
    children = await forkReplicas(EVENT_CHILD, configs);
    await waitFor(async () => (await store.subscribersOf([eventType])).length === REPLICAS, { timeoutMs: 20_000, what: `${REPLICAS} subscriptions stored` });
    const events = await drive(children, (m) => (m.type === 'broadcast' ? m.n : undefined), async (i) => {
      await publisher.publish(PriceChanged, { n: i });
      return i;
    });
    const [p50, p99] = [percentile(events.latencies, 0.5), percentile(events.latencies, 0.99)];
    log(`dataset.pubsub-events.converge-10: p50 ${p50?.toFixed(2)} ms p99 ${p99?.toFixed(2)} ms (dataset on SQLite: p50 ${dataset?.p50Ms?.toFixed(2) ?? '-'} ms p99 ${dataset?.p99Ms?.toFixed(2) ?? '-'} ms)`);
    return {
      name: 'dataset.pubsub-events.converge-10', transport: 'sqlite', messages: WRITES, msgsPerSec: events.perSec, p50Ms: p50, p99Ms: p99,
      baseline: dataset ? 'dataset.sqlite.converge-10 in the same run (its p50/p99 in settings)' : `offered rate (${RATE}/s; run dataset.sqlite.converge-10 too for the dataset row)`,
      baselineMsgsPerSec: dataset?.msgsPerSec ?? RATE, ratio: events.perSec / (dataset?.msgsPerSec ?? RATE),
      settings: {
        replicas: REPLICAS, offeredWritesPerSec: RATE, warmup: WARMUP, synchronous: 'FULL',
        subscribers: `${REPLICAS} logical endpoints, one per process`,
        ...(dataset ? { datasetP50Ms: Number(dataset.p50Ms?.toFixed(3) ?? -1), datasetP99Ms: Number(dataset.p99Ms?.toFixed(3) ?? -1) } : {}),
      },
    };
  } finally {
    await stopReplicas(children);
    await publisher.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const suite: BenchSuite = {
  names: [
    'dataset.read',
    ...FLEETS.flatMap((n) => ['sqlite', 'postgres', 'redis'].map((backend) => `dataset.${backend}.converge-${n}`)),
    'dataset.pubsub-events.converge-10',
  ],
  async run({ only, log }) {
    const results: BenchResult[] = [];
    if (only('dataset.read')) results.push(await benchRead(log));
    for (const replicas of FLEETS) {
      for (const backend of ['sqlite', 'postgres', 'redis'] as const) {
        const row = `dataset.${backend}.converge-${replicas}`;
        if (!only(row)) continue;
        const r = await benchConverge(backend, replicas, log).catch((error: unknown) => {
          log(`${row}: failed: ${String(error)}`);
          return undefined;
        });
        if (r) results.push(r);
      }
    }
    if (only('dataset.pubsub-events.converge-10')) {
      const dataset = results.find((r) => r.name === 'dataset.sqlite.converge-10');
      const r = await benchEvents(log, dataset).catch((error: unknown) => {
        log(`dataset.pubsub-events.converge-10: failed: ${String(error)}`);
        return undefined;
      });
      if (r) results.push(r);
    }
    return results;
  },
};
export default suite;
