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
 * CPU per message: before and after each round every process of the rig reports the CPU it used
 * so far (SIGUSR2, test/distributor/fixtures/roles.ts); the sum over the rounds of the
 * distributor's and the workers' CPU, divided by the messages handled, is the rig's CPU per
 * message. The sender (this process) is counted apart: it also polls for the handled counts.
 * Ready messages per handled message come from the distributor's counts in the same samples.
 * Idle CPU: after the warm-up, the CPU each process of the through rig uses in one idle second.
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

/** CPU used so far (ms) by the rig's processes and this one, and the ready messages the distributor took. */
interface CpuReading {
  distributorMs: number;
  workersMs: number;
  senderMs: number;
  readies: number;
}

async function readCpu(distributor: RoleProcess[], workers: RoleProcess[]): Promise<CpuReading> {
  const [d, ...w] = await Promise.all([...distributor, ...workers].map((p) => p.sample()));
  const { user, system } = process.cpuUsage();
  const sum = (reports: typeof w) => reports.reduce((total, r) => total + Number(r.cpuMs), 0);
  if (distributor.length === 0) return { distributorMs: 0, workersMs: sum([d!, ...w]), senderMs: (user + system) / 1000, readies: 0 };
  return { distributorMs: Number(d!.cpuMs), workersMs: sum(w), senderMs: (user + system) / 1000, readies: Number(d!.readies) };
}

/** Sums the CPU of rounds: add(before, after) per round, then per message. */
class CpuAccount {
  private total: CpuReading = { distributorMs: 0, workersMs: 0, senderMs: 0, readies: 0 };
  private messages = 0;

  add(before: CpuReading, after: CpuReading, messages: number): void {
    this.total = {
      distributorMs: this.total.distributorMs + after.distributorMs - before.distributorMs,
      workersMs: this.total.workersMs + after.workersMs - before.workersMs,
      senderMs: this.total.senderMs + after.senderMs - before.senderMs,
      readies: this.total.readies + after.readies - before.readies,
    };
    this.messages += messages;
  }

  /** Per handled message: ms of CPU (distributor + workers, the sender apart) and ready messages. */
  perMessage(): { cpuMs: number; distributorCpuMs: number; workersCpuMs: number; senderCpuMs: number; readies: number } {
    const per = (x: number) => x / this.messages;
    const { distributorMs, workersMs, senderMs, readies } = this.total;
    return { cpuMs: per(distributorMs + workersMs), distributorCpuMs: per(distributorMs), workersCpuMs: per(workersMs), senderCpuMs: per(senderMs), readies: per(readies) };
  }
}

const shownCpu = (p: ReturnType<CpuAccount['perMessage']>) =>
  `${p.cpuMs.toFixed(3)} ms CPU/msg (distributor ${p.distributorCpuMs.toFixed(3)}, workers ${p.workersCpuMs.toFixed(3)}; sender ${p.senderCpuMs.toFixed(3)})`;

const round3 = (x: number) => Number(x.toFixed(3));

interface Rig {
  transport: Transport;
  distributor: RoleProcess[];
  workers: RoleProcess[];
  /** CPU so far of every process (see CpuAccount). */
  cpu(): Promise<CpuReading>;
  /** CPU per second each process uses while nothing is sent: { distributor, workers } ms/s. */
  idleCpu(): Promise<{ distributorMsPerSec: number; workersMsPerSec: number }>;
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
  const distributor = options.distributor ? await started([spawnRole('distributor', { db, endpoint, workerTimeoutMs: 30_000, leaseMs: 30_000, statusEveryMs: 0 })]) : [];
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
    distributor,
    workers,
    cpu: () => readCpu(distributor, workers),
    async idleCpu() {
      // The second idle second: the first one still finishes the warm-up's settlements and timers.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const before = await readCpu(distributor, workers);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const after = await readCpu(distributor, workers);
      return { distributorMsPerSec: after.distributorMs - before.distributorMs, workersMsPerSec: after.workersMs - before.workersMs };
    },
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
        const account = new CpuAccount();
        for (let round = 0; round < ROUNDS; round++) {
          const before = await r.cpu();
          rates.push(await r.drain('BenchWork', messages));
          account.add(before, await r.cpu(), messages);
        }
        const rate = median(rates);
        const cpu = account.perMessage();
        log(`${name}: ${rates.map((x) => x.toFixed(0)).join(', ')} msgs/s (ideal ${ideal.toFixed(0)}); ${shownCpu(cpu)}, ${cpu.readies.toFixed(2)} readies/msg`);
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
          settings: { ...settings, workers, rounds: ROUNDS, cpuMsPerMsg: round3(cpu.cpuMs), distributorCpuMsPerMsg: round3(cpu.distributorCpuMs), readiesPerMsg: round3(cpu.readies) },
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
        const idle = await behind.idleCpu();
        log(`distributor.overhead idle CPU: distributor ${idle.distributorMsPerSec.toFixed(1)} ms/s, worker ${idle.workersMsPerSec.toFixed(1)} ms/s`);
        const directRates: number[] = [];
        const throughRates: number[] = [];
        const directCpu = new CpuAccount();
        const throughCpu = new CpuAccount();
        const measured = async (r: Rig, destination: string, account: CpuAccount) => {
          const before = await r.cpu();
          const rate = await r.drain(destination, messages);
          account.add(before, await r.cpu(), messages);
          return rate;
        };
        for (let round = 0; round < ROUNDS; round++) {
          directRates.push(await measured(alone, 'BenchNoop@w1', directCpu));
          throughRates.push(await measured(behind, 'BenchNoop', throughCpu));
          log(`distributor.overhead round ${round + 1}: ${throughRates.at(-1)!.toFixed(0)} msgs/s through the distributor, ${directRates.at(-1)!.toFixed(0)} msgs/s direct`);
        }
        const direct = median(directRates);
        const through = median(throughRates);
        const [directPer, throughPer] = [directCpu.perMessage(), throughCpu.perMessage()];
        log(`distributor.overhead CPU: through ${shownCpu(throughPer)}, ${throughPer.readies.toFixed(2)} readies/msg; direct ${shownCpu(directPer)}`);
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
            throughCpuMsPerMsg: round3(throughPer.cpuMs),
            throughDistributorCpuMsPerMsg: round3(throughPer.distributorCpuMs),
            directCpuMsPerMsg: round3(directPer.cpuMs),
            readiesPerMsg: round3(throughPer.readies),
            distributorIdleCpuMsPerSec: Number(idle.distributorMsPerSec.toFixed(1)),
            workerIdleCpuMsPerSec: Number(idle.workersMsPerSec.toFixed(1)),
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
