/**
 * distributor.workers-N: throughput through a distributor process to N worker processes whose
 * handler waits 5 ms (I/O-bound), concurrency 4 each; baseline: the ideal, N x 4 / 5 ms.
 * distributor.overhead: a no-op handler behind the distributor with one worker; baseline: the
 * same worker with no distributor process at all (its own database file), fed by direct sends to
 * its own queue and prefetching as many messages as the distributor's slots would let it hold.
 *
 * Messages are enqueued in batches of 200 as fast as SQLite takes them; the clock runs from the
 * first enqueue to the last message handled. SQLite synchronous=FULL (the default). After a
 * warm-up, each result is the median of 5 rounds (for the overhead, direct and through alternate),
 * so one slow round on the 2 shared cores does not decide it either way.
 *
 * The overhead's latency is a separate run on both rigs: one message at a time at a fixed offered
 * rate well below either capacity, each timed from its scheduled send to its handling in the worker.
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
import { offerAtFixedRate } from '../load.js';
import { spawnRole, started, type RoleProcess } from '../../test/distributor/fixtures/harness.js';
import { Work } from '../../test/distributor/fixtures/messages.js';
import { median, percentile } from '../stats.js';
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
const ROUNDS = 5;

function handledCount(workers: RoleProcess[]): number {
  let total = 0;
  for (const w of workers) {
    const last = [...w.reports].reverse().find((r) => typeof r.count === 'number');
    total += (last?.count as number | undefined) ?? 0;
  }
  return total;
}

function work(destination: string, n: number, scheduledAt?: number) {
  const id = uuidv7();
  const headers = { [Headers.MessageId]: id, [Headers.Intent]: 'send', [Headers.EnclosedTypes]: Work.typeName, [Headers.ReplyTo]: 'Bench.Client' };
  return { destination, message: { id, headers, body: JSON.stringify({ n, scheduledAt }) } };
}

async function enqueue(transport: Transport, destination: string, messages: number, from: number): Promise<void> {
  for (let sent = 0; sent < messages; sent += BATCH) {
    const batch = [];
    for (let i = sent; i < Math.min(messages, sent + BATCH); i++) batch.push(work(destination, from + i));
    await transport.dispatch(batch);
  }
}

/** Latencies the workers reported so far (ms from scheduled send to handled). */
function reportedLatencies(workers: RoleProcess[]): number[] {
  return workers.flatMap((w) => w.reports.flatMap((r) => (Array.isArray(r.latencies) ? (r.latencies as number[]) : [])));
}

interface Rig {
  transport: Transport;
  workers: RoleProcess[];
  /** Sends `messages` to `destination` and returns messages per second until all are handled. */
  drain(destination: string, messages: number): Promise<number>;
  /** Sends `messages` one at a time at `ratePerSec`; returns each one's latency, ascending. */
  offer(destination: string, messages: number, ratePerSec: number): Promise<number[]>;
  close(): Promise<void>;
}

interface RigOptions {
  endpoint: string;
  workers: number;
  delayMs: number;
  concurrency: number;
  capacity: number;
  /** false: one worker, no distributor process, fed through its own queue (prefetch capacity - concurrency). */
  distributor: boolean;
}

async function rig(options: RigOptions): Promise<Rig> {
  const { endpoint, concurrency, capacity, delayMs } = options;
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-bench-dist-'));
  const db = path.join(dir, 'bench.db');
  const distributor = options.distributor ? await started([spawnRole('distributor', { db, endpoint, workerTimeoutMs: 30_000, leaseMs: 30_000 })]) : [];
  const workers = Array.from({ length: options.workers }, (_, i) =>
    spawnRole('worker', { db, endpoint, discriminator: `w${i + 1}`, concurrency, capacity, delayMs, countOnly: true, heartbeatMs: 2000, standalone: !options.distributor }),
  );
  await started(workers);
  if (options.distributor) {
    const store = sqliteDistributorStore({ path: db });
    await store.open();
    await waitFor(async () => (await store.load(endpoint)).slots.length === options.workers * capacity, { timeoutMs: 20_000, what: 'every worker ready' });
    await store.close();
  }
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
    async offer(destination, messages, ratePerSec) {
      const before = reportedLatencies(workers).length;
      const sends: Promise<void>[] = [];
      await offerAtFixedRate(messages, ratePerSec, (scheduledAt) => void sends.push(transport.dispatch([work(destination, base++, scheduledAt)])));
      await Promise.all(sends);
      await waitFor(() => reportedLatencies(workers).length - before >= messages, { timeoutMs: 60_000, intervalMs: 5, what: `${messages} timed messages handled` });
      return reportedLatencies(workers).slice(before).sort((a, b) => a - b);
    },
    async close() {
      await transport.close();
      await Promise.all([...workers, ...distributor].map((p) => p.stop()));
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
      const r = await rig({ endpoint: 'BenchWork', workers, delayMs: DELAY_MS, concurrency: CONCURRENCY, capacity: CONCURRENCY * PREFETCH, distributor: true });
      try {
        await r.drain('BenchWork', Math.round(messages / 5)); // warm-up
        const rates: number[] = [];
        for (let round = 0; round < ROUNDS; round++) rates.push(await r.drain('BenchWork', messages));
        const rate = median(rates);
        log(`${name}: ${rates.map((x) => x.toFixed(0)).join(', ')} msgs/s (ideal ${ideal.toFixed(0)})`);
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
          settings: { ...settings, workers, rounds: ROUNDS },
        });
      } finally {
        await r.close();
      }
    }
    if (only('distributor.overhead')) {
      const messages = 4000;
      const noop = { endpoint: 'BenchNoop', workers: 1, delayMs: 0, concurrency: 8, capacity: 8 * PREFETCH };
      const behind = await rig({ ...noop, distributor: true });
      const alone = await rig({ ...noop, distributor: false });
      try {
        await behind.drain('BenchNoop', 500); // warm-up
        await alone.drain('BenchNoop@w1', 500);
        const directRates: number[] = [];
        const throughRates: number[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          directRates.push(await alone.drain('BenchNoop@w1', messages));
          throughRates.push(await behind.drain('BenchNoop', messages));
          log(`distributor.overhead round ${round + 1}: ${throughRates.at(-1)!.toFixed(0)} msgs/s through the distributor, ${directRates.at(-1)!.toFixed(0)} msgs/s direct`);
        }
        const direct = median(directRates);
        const through = median(throughRates);
        const latencyRun = { messages: 2000, ratePerSec: 1000 };
        const percentiles = (sorted: number[]) => ({ p50Ms: percentile(sorted, 0.5)!, p99Ms: percentile(sorted, 0.99)! });
        const directLatency = percentiles(await alone.offer('BenchNoop@w1', latencyRun.messages, latencyRun.ratePerSec));
        const throughLatency = percentiles(await behind.offer('BenchNoop', latencyRun.messages, latencyRun.ratePerSec));
        const shown = ({ p50Ms, p99Ms }: typeof directLatency) => `p50 ${p50Ms.toFixed(2)} ms p99 ${p99Ms.toFixed(2)} ms`;
        log(`distributor.overhead latency at ${latencyRun.ratePerSec} msgs/s offered: through ${shown(throughLatency)}, direct ${shown(directLatency)}`);
        results.push({
          name: 'distributor.overhead',
          transport: 'sqlite',
          messages,
          msgsPerSec: through,
          ...throughLatency,
          baseline: 'the same worker with no distributor, fed through its own queue',
          baselineMsgsPerSec: direct,
          ratio: through / direct,
          settings: {
            synchronous: 'full',
            handler: 'no-op',
            workers: 1,
            concurrency: 8,
            capacity: 8 * PREFETCH,
            baselinePrefetch: 8 * PREFETCH - 8,
            rounds: ROUNDS,
            latencyOfferedRatePerSec: latencyRun.ratePerSec,
            latencyMessages: latencyRun.messages,
            directP50Ms: directLatency.p50Ms,
            directP99Ms: directLatency.p99Ms,
          },
        });
      } finally {
        await Promise.all([behind.close(), alone.close()]);
      }
    }
    return results;
  },
};

export default suite;
