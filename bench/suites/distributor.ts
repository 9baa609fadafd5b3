/**
 * distributor.workers-N: throughput through a distributor process to N worker processes whose
 * handler waits 5 ms (I/O-bound), concurrency 4 each; baseline: the ideal, N x 4 / 5 ms.
 * distributor.overhead: a no-op handler behind the distributor with one worker; baseline: the
 * same worker process fed by direct sends to its own queue (no distributor).
 *
 * Messages are enqueued in batches of 200 as fast as SQLite takes them; the clock runs from the
 * first enqueue to the last message handled. SQLite synchronous=FULL (the default).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Headers } from '../../src/core/headers.js';
import { uuidv7 } from '../../src/core/ids.js';
import { sqliteDistributorStore } from '../../src/sqlite/distributor-store.js';
import { sqliteTransport } from '../../src/sqlite/index.js';
import type { Transport } from '../../src/core/transport.js';
import { waitFor } from '../../src/testing/wait.js';
import { spawnRole, started, type RoleProcess } from '../../test/distributor/fixtures/harness.js';
import { Work } from '../../test/distributor/fixtures/messages.js';
import type { BenchResult, BenchSuite } from '../types.js';

const DELAY_MS = 5;
const CONCURRENCY = 4;
const BATCH = 200;
/**
 * Slots each worker announces, per unit of concurrency. Every slot round trip costs about five
 * SQLite commits in sequence (forward, worker claim, worker completion + ready, distributor
 * claims); with capacity = concurrency the worker idles during them. A few slots of prefetch
 * keep its handlers busy; the baseline stays the ideal for its concurrency.
 */
const PREFETCH = 3;

function handledCount(workers: RoleProcess[]): number {
  let total = 0;
  for (const w of workers) {
    const last = [...w.reports].reverse().find((r) => typeof r.count === 'number');
    total += (last?.count as number | undefined) ?? 0;
  }
  return total;
}

async function enqueue(transport: Transport, destination: string, messages: number, from: number): Promise<void> {
  for (let sent = 0; sent < messages; sent += BATCH) {
    const batch = [];
    for (let i = sent; i < Math.min(messages, sent + BATCH); i++) {
      const id = uuidv7();
      const headers = { [Headers.MessageId]: id, [Headers.Intent]: 'send', [Headers.EnclosedTypes]: Work.typeName, [Headers.ReplyTo]: 'Bench.Client' };
      batch.push({ destination, message: { id, headers, body: JSON.stringify({ n: from + i }) } });
    }
    await transport.dispatch(batch);
  }
}

interface Rig {
  transport: Transport;
  workers: RoleProcess[];
  /** Sends `messages` to `destination` and returns messages per second until all are handled. */
  drain(destination: string, messages: number): Promise<number>;
  close(): Promise<void>;
}

async function rig(endpoint: string, workerCount: number, delayMs: number, concurrency: number, capacity: number): Promise<Rig> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-bench-dist-'));
  const db = path.join(dir, 'bench.db');
  const distributor = spawnRole('distributor', { db, endpoint, workerTimeoutMs: 30_000, leaseMs: 30_000 });
  await started([distributor]);
  const workers = Array.from({ length: workerCount }, (_, i) =>
    spawnRole('worker', { db, endpoint, discriminator: `w${i + 1}`, concurrency, capacity, delayMs, countOnly: true, heartbeatMs: 2000 }),
  );
  await started(workers);
  const store = sqliteDistributorStore({ path: db });
  await store.open();
  await waitFor(async () => (await store.load(endpoint)).slots.length === workerCount * capacity, { timeoutMs: 20_000, what: 'every worker ready' });
  await store.close();
  const transport = sqliteTransport({ path: db });
  await transport.open();
  let base = 0;
  return {
    transport,
    workers,
    async drain(destination, messages) {
      const before = handledCount(workers);
      const startedAt = performance.now();
      await enqueue(transport, destination, messages, base);
      base += messages;
      await waitFor(() => handledCount(workers) - before >= messages, { timeoutMs: 120_000, intervalMs: 5, what: `${messages} handled` });
      return (messages / (performance.now() - startedAt)) * 1000;
    },
    async close() {
      await transport.close();
      await Promise.all([...workers, distributor].map((p) => p.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const settings = { synchronous: 'full', handlerDelayMs: DELAY_MS, concurrencyPerWorker: CONCURRENCY, capacityPerWorker: CONCURRENCY * PREFETCH, processes: 'distributor + workers, separate' };

const suite: BenchSuite = {
  names: ['distributor.workers-1', 'distributor.workers-2', 'distributor.workers-4', 'distributor.overhead'],
  async run({ only, log }) {
    const results: BenchResult[] = [];
    for (const workers of [1, 2, 4]) {
      const name = `distributor.workers-${workers}`;
      if (!only(name)) continue;
      const ideal = (workers * CONCURRENCY * 1000) / DELAY_MS;
      const messages = Math.round(ideal * 2.5);
      const r = await rig('BenchWork', workers, DELAY_MS, CONCURRENCY, CONCURRENCY * PREFETCH);
      try {
        await r.drain('BenchWork', Math.round(messages / 5)); // warm-up
        const rate = await r.drain('BenchWork', messages);
        log(`${name}: ${rate.toFixed(0)} msgs/s (ideal ${ideal.toFixed(0)})`);
        results.push({
          name,
          transport: 'sqlite',
          messages,
          msgsPerSec: rate,
          p50Ms: null,
          p99Ms: null,
          baseline: `ideal: ${workers} workers x ${CONCURRENCY} / ${DELAY_MS} ms`,
          baselineMsgsPerSec: ideal,
          ratio: rate / ideal,
          settings: { ...settings, workers },
        });
      } finally {
        await r.close();
      }
    }
    if (only('distributor.overhead')) {
      const messages = 4000;
      const r = await rig('BenchNoop', 1, 0, 8, 8 * PREFETCH);
      try {
        await r.drain('BenchNoop', 500); // warm-up
        const direct = await r.drain('BenchNoop@w1', messages);
        const through = await r.drain('BenchNoop', messages);
        log(`distributor.overhead: ${through.toFixed(0)} msgs/s through the distributor, ${direct.toFixed(0)} msgs/s direct`);
        results.push({
          name: 'distributor.overhead',
          transport: 'sqlite',
          messages,
          msgsPerSec: through,
          p50Ms: null,
          p99Ms: null,
          baseline: 'direct sends to the worker queue, no distributor',
          baselineMsgsPerSec: direct,
          ratio: through / direct,
          settings: { synchronous: 'full', handler: 'no-op', workers: 1, concurrency: 8, capacity: 8 * PREFETCH },
        });
      } finally {
        await r.close();
      }
    }
    return results;
  },
};

export default suite;
