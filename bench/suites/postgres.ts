/**
 * postgres.send: end-to-end throughput of the bus on the PostgreSQL transport (send N 1 KB
 * commands, 100 at a time, to an endpoint with a no-op handler), next to a raw `pg` SKIP LOCKED
 * queue loop doing the same durable work on the same server in the same run: the same rows (real
 * header map, 1 KB body) inserted 100 per statement, claimed 100 at a time FOR UPDATE SKIP
 * LOCKED with a lease token, parsed and deleted, every commit with the server's
 * synchronous_commit (on: acknowledged means flushed to the WAL). pg-boss 10, where installed,
 * runs the same workload (insert 100 per call, PG_BOSS_WORKERS workers fetching 100 at a time, its
 * shortest polling interval) and is named in
 * the result's settings. Latency is a separate run at a fixed offered rate (1,000/s), timed from
 * each message's scheduled send (no coordinated omission).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createEndpoint, defineCommand, silentLogger } from '../../src/index.js';
import { buildHeaders } from '../../src/core/envelope.js';
import { makeIdentity } from '../../src/core/identity.js';
import { postgresTransport } from '../../src/postgres/index.js';
import { reachable, serviceUrls } from '../../test/support/services.js';
import { PING_PAYLOAD, pingCounter, sendPings, type PingBody } from '../load.js';
import { median, percentile } from '../stats.js';
import type { BenchResult, BenchSuite } from '../types.js';

const URL_ = serviceUrls.postgres;
const MESSAGES = 10_000;
const BATCH = 100;
const ROUNDS = 3;
const CONCURRENCY = 64;
const LATENCY_RATE = 1000;
const LATENCY_MESSAGES = 5000;
/** pg-boss workers: each fetches up to BATCH jobs per poll (every 0.5 s at the shortest), so they bound its rate. */
const PG_BOSS_WORKERS = 16;

const run = randomBytes(3).toString('hex');
const schemaName = (what: string) => `sy_bench_${run}_${what}`;
const Ping = defineCommand<PingBody>('Bench.Ping');

async function dropSchema(pool: pg.Pool, schema: string): Promise<void> {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

/** The physical limit: the same rows, the same durable statements, without the bus. */
async function rawLoop(pool: pg.Pool, messages: number): Promise<number> {
  const schema = schemaName(`raw_${randomBytes(2).toString('hex')}`);
  await pool.query(`CREATE SCHEMA "${schema}"`);
  const q = `"${schema}".q`;
  await pool.query(`CREATE TABLE ${q} (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, queue text NOT NULL, id text NOT NULL,
    headers text NOT NULL, body text NOT NULL, visible_at bigint NOT NULL, token bigint NOT NULL DEFAULT 0)`);
  await pool.query(`CREATE INDEX ON ${q} (queue, visible_at, seq)`);
  const headers = JSON.stringify(buildHeaders([Ping.typeName], { intent: 'send', identity: makeIdentity('Bench', 'bench-host', process.pid, 'a'), replyTo: 'Bench', causedBy: undefined }));
  const now = `(extract(epoch from clock_timestamp()) * 1000)::bigint`;
  const started = performance.now();
  const insert = async (base: number) => {
    const ids = Array.from({ length: BATCH }, (_, i) => String(base + i));
    const bodies = ids.map(() => JSON.stringify({ payload: PING_PAYLOAD, scheduledAt: 0 }));
    await pool.query(`INSERT INTO ${q} (queue, id, headers, body, visible_at) SELECT 'bench', i, $2, b, ${now} FROM unnest($1::text[], $3::text[]) AS r(i, b)`, [ids, headers, bodies]);
  };
  const producing = (async () => {
    for (let sent = 0; sent < messages; sent += BATCH) await insert(sent);
  })();
  let handled = 0;
  const consume = async () => {
    while (handled < messages) {
      const { rows } = await pool.query<{ seq: string; token: string; body: string }>(
        `WITH picked AS (SELECT seq FROM ${q} WHERE queue = 'bench' AND visible_at <= ${now} ORDER BY visible_at, seq LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)
         UPDATE ${q} m SET visible_at = ${now} + 30000, token = m.token + 1 FROM picked WHERE m.seq = picked.seq RETURNING m.seq, m.token, m.body`);
      if (rows.length === 0) {
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      for (const row of rows) JSON.parse(row.body);
      await pool.query(`DELETE FROM ${q} WHERE (seq, token) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[]))`, [rows.map((r) => r.seq), rows.map((r) => r.token)]);
      handled += rows.length;
    }
  };
  await Promise.all([producing, consume()]);
  const elapsed = performance.now() - started;
  await dropSchema(pool, schema);
  return (messages / elapsed) * 1000;
}

async function busRun(pool: pg.Pool, messages: number, ratePerSec: number | undefined): Promise<{ msgsPerSec: number; latencies: number[] }> {
  const schema = schemaName(`bus_${randomBytes(2).toString('hex')}`);
  const counter = pingCounter(Ping, messages);
  const endpoint = createEndpoint({
    name: 'Bench',
    transport: postgresTransport({ connectionString: URL_, schema }),
    routes: { 'Bench.*': 'Bench' },
    concurrency: CONCURRENCY,
    logger: silentLogger,
    handlers: [counter.handler],
  });
  await endpoint.start();
  const started = performance.now();
  await sendPings(endpoint, Ping, messages, { batch: BATCH, ratePerSec });
  await counter.finished;
  const elapsed = performance.now() - started;
  await endpoint.stop();
  await dropSchema(pool, schema);
  return { msgsPerSec: (messages / elapsed) * 1000, latencies: counter.latencies };
}

interface PgBossLike {
  start(): Promise<unknown>;
  stop(options?: { graceful?: boolean; wait?: boolean }): Promise<void>;
  createQueue(name: string): Promise<void>;
  insert(jobs: { name: string; data: object }[]): Promise<void>;
  work(name: string, options: { batchSize: number; pollingIntervalSeconds: number }, handler: (jobs: { data: unknown }[]) => Promise<void>): Promise<string>;
  on(event: 'error', listener: (error: Error) => void): void;
}

/** pg-boss on the same workload; undefined when it is not installed. */
async function pgBossRun(pool: pg.Pool, messages: number): Promise<number | undefined> {
  let PgBoss: new (options: { connectionString: string; schema: string; max: number }) => PgBossLike;
  try {
    PgBoss = ((await import('pg-boss')) as unknown as { default: typeof PgBoss }).default;
  } catch {
    return undefined;
  }
  const schema = schemaName('pgboss');
  const boss = new PgBoss({ connectionString: URL_, schema, max: 10 });
  boss.on('error', () => undefined);
  await boss.start();
  await boss.createQueue('bench');
  let handled = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const started = performance.now();
  for (let w = 0; w < PG_BOSS_WORKERS; w++) {
    await boss.work('bench', { batchSize: BATCH, pollingIntervalSeconds: 0.5 }, async (jobs) => {
      for (const job of jobs) JSON.stringify(job.data);
      handled += jobs.length;
      if (handled >= messages) finish();
    });
  }
  for (let sent = 0; sent < messages; sent += BATCH) {
    await boss.insert(Array.from({ length: BATCH }, () => ({ name: 'bench', data: { payload: PING_PAYLOAD, scheduledAt: 0 } })));
  }
  await finished;
  const elapsed = performance.now() - started;
  await boss.stop({ graceful: false, wait: true });
  await dropSchema(pool, schema);
  return (messages / elapsed) * 1000;
}

const suite: BenchSuite = {
  names: ['postgres.send'],
  async run({ log }) {
    if (!(await reachable(URL_))) {
      log(`postgres.send skipped: PostgreSQL is not reachable at ${new URL(URL_).host}`);
      return [];
    }
    const pool = new pg.Pool({ connectionString: URL_, max: 10 });
    const setting = (await pool.query<{ synchronous_commit: string }>('SHOW synchronous_commit')).rows[0]!.synchronous_commit;
    log(`warming up (synchronous_commit=${setting}, 1 KB bodies, batches of ${BATCH})`);
    await rawLoop(pool, 2000);
    await busRun(pool, 2000, undefined);
    const baselines: number[] = [];
    const buses: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      baselines.push(await rawLoop(pool, MESSAGES));
      buses.push((await busRun(pool, MESSAGES, undefined)).msgsPerSec);
      log(`round ${round}: raw pg loop ${baselines.at(-1)!.toFixed(0)} msgs/s, bus ${buses.at(-1)!.toFixed(0)} msgs/s`);
    }
    const pgBoss = await pgBossRun(pool, MESSAGES);
    log(pgBoss === undefined ? 'pg-boss is not installed: not measured' : `pg-boss: ${pgBoss.toFixed(0)} msgs/s`);
    const latency = await busRun(pool, LATENCY_MESSAGES, LATENCY_RATE);
    const sorted = latency.latencies.sort((a, b) => a - b);
    await pool.end();
    const baseline = median(baselines);
    const bus = median(buses);
    return [
      {
        name: 'postgres.send',
        transport: 'postgres',
        messages: MESSAGES,
        msgsPerSec: bus,
        p50Ms: percentile(sorted, 0.5),
        p99Ms: percentile(sorted, 0.99),
        baseline: 'raw pg SKIP LOCKED loop (insert 100 per statement, claim 100, delete 100; same header and body bytes per row)',
        baselineMsgsPerSec: baseline,
        ratio: bus / baseline,
        settings: {
          synchronousCommit: setting,
          bodyBytes: 1000,
          concurrency: CONCURRENCY,
          latencyOfferedRatePerSec: LATENCY_RATE,
          latencyMessages: LATENCY_MESSAGES,
          pgBoss10MsgsPerSec: pgBoss === undefined ? 'not installed' : Math.round(pgBoss),
          pgBossWorkers: PG_BOSS_WORKERS,
        },
      },
    ];
  },
};

export default suite;
