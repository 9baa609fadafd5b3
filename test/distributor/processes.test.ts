/**
 * The distributor with separate processes on the SQLite transport: the seed's two sequence
 * diagrams, fairness, a worker killed mid-run, the distributor killed and restarted mid-run, and
 * capacity accounting with failures, delayed retries and direct sends mixed in.
 */
import Database from 'better-sqlite3';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createEndpoint, Headers, silentLogger, type Endpoint } from '../../src/index.js';
import { sqliteDistributorStore } from '../../src/sqlite/distributor-store.js';
import { sqliteSubscriptionStore, sqliteTransport } from '../../src/sqlite/index.js';
import type { DistributorStore } from '../../src/scaleout/distributor-store.js';
import { waitFor } from '../../src/testing/wait.js';
import { spawnRole, started, type RoleProcess } from './fixtures/harness.js';
import { Work } from './fixtures/messages.js';

const run = promisify(execFile);
const dir = mkdtempSync(path.join(tmpdir(), 'sy-distributor-'));
let dbCount = 0;
const running: RoleProcess[] = [];
const closers: Array<() => Promise<void>> = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.kill()));
  for (const close of closers.splice(0).reverse()) await close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function freshDb(): string {
  return path.join(dir, `d${++dbCount}.db`);
}

function track(processes: RoleProcess[]): RoleProcess[] {
  running.push(...processes);
  return processes;
}

/** A send-only endpoint in the test process. */
async function sender(db: string, to: string): Promise<Endpoint> {
  const endpoint = createEndpoint({ name: 'Sender', transport: sqliteTransport({ path: db }), sendOnly: true, routes: { 'Test.Work': to }, logger: silentLogger });
  await endpoint.start();
  closers.push(() => endpoint.stop());
  return endpoint;
}

async function openStore(db: string): Promise<DistributorStore> {
  const store = sqliteDistributorStore({ path: db });
  await store.open();
  closers.push(() => store.close());
  return store;
}

/** Free and taken slots of each live worker, from the store (what `distributor status` shows). */
async function slots(store: DistributorStore, endpoint: string) {
  const { workers, slots } = await store.load(endpoint);
  return workers.map((w) => {
    const own = slots.filter((s) => s.worker === w.address);
    return { worker: w.address, status: w.status, capacity: w.capacity, free: own.filter((s) => s.messageId === null).length, taken: own.filter((s) => s.messageId !== null).length };
  });
}

async function liveWorkers(store: DistributorStore, endpoint: string, count: number) {
  return waitFor(async () => {
    const view = await slots(store, endpoint);
    return view.filter((w) => w.status === 'live').length === count && view;
  }, { timeoutMs: 20_000, what: `${count} live workers of ${endpoint}` });
}

const handledBy = (processes: RoleProcess[]) => {
  const seen = new Map<number, string[]>();
  for (const p of processes) for (const r of p.reports) if (typeof r.handled === 'number') seen.set(r.handled, [...(seen.get(r.handled) ?? []), String(r.by)]);
  return seen;
};

describe('the seed diagrams (separate processes, SQLite)', () => {
  it('forwards Subscribe messages round-robin to the publisher workers, which share one store; publishes reach Subscriber@Distributor, then Worker1, then Worker2', async () => {
    const db = freshDb();
    const store = await openStore(db);
    const [publisherDistributor, subscriberDistributor] = track([spawnRole('distributor', { db, endpoint: 'Publisher' }), spawnRole('distributor', { db, endpoint: 'Subscriber' })]);
    await started([publisherDistributor!, subscriberDistributor!]);
    const [p1] = await started(track([spawnRole('worker', { db, endpoint: 'Publisher', discriminator: 'w1', concurrency: 1, publisher: true })]));
    await liveWorkers(store, 'Publisher', 1);
    const [p2] = await started(track([spawnRole('worker', { db, endpoint: 'Publisher', discriminator: 'w2', concurrency: 1, publisher: true })]));
    await liveWorkers(store, 'Publisher', 2);

    // Subscribe diagram: one subscriber instance subscribes to Message1 and Message2 at start.
    const [s1] = await started(track([spawnRole('worker', { db, endpoint: 'Subscriber', discriminator: 'w1', concurrency: 1, subscriber: true })]));
    const subscribes = () => [...p1!.reports, ...p2!.reports].filter((r) => r.settled === 'subscribe');
    await waitFor(() => subscribes().length === 2, { timeoutMs: 20_000, what: 'both subscribe messages settled' });
    expect(subscribes().map((r) => [r.type, r.by]).sort()).toEqual([
      ['Test.Message1', 'w1'],
      ['Test.Message2', 'w2'],
    ]);
    const subscriptionStore = sqliteSubscriptionStore({ path: db });
    closers.push(() => subscriptionStore.close());
    const stored = await subscriptionStore.subscribersOf(['Test.Message1', 'Test.Message2']);
    expect(stored.map((s) => [s.messageType, s.endpoint, s.address]).sort()).toEqual([
      ['Test.Message1', 'Subscriber', 'Subscriber'],
      ['Test.Message2', 'Subscriber', 'Subscriber'],
    ]);

    // Publish diagram: the store says Subscriber@Distributor (address `Subscriber`); the
    // subscriber's distributor forwards successive publishes to Worker1, then Worker2.
    const [s2] = await started(track([spawnRole('worker', { db, endpoint: 'Subscriber', discriminator: 'w2', concurrency: 1 })]));
    await liveWorkers(store, 'Subscriber', 2);
    const client = await sender(db, 'Publisher');
    const events = () => [...s1!.reports, ...s2!.reports].filter((r) => r.event === 'Test.Message1');
    await client.send(Work, { n: 1 });
    await waitFor(() => events().length === 1, { timeoutMs: 20_000, what: 'the first Message1' });
    await client.send(Work, { n: 3 });
    await waitFor(() => events().length === 2, { timeoutMs: 20_000, what: 'the second Message1' });
    expect(events().map((r) => [r.n, r.by])).toEqual([
      [1, 'w1'],
      [3, 'w2'],
    ]);
    // One copy per publish: nothing else arrives.
    await client.send(Work, { n: 5 });
    await waitFor(() => events().length === 3, { timeoutMs: 20_000, what: 'the third Message1' });
    expect(events().map((r) => r.n).sort()).toEqual([1, 3, 5]);
  });
});

describe('dispatch by readiness (separate processes, SQLite)', () => {
  it('gives a fast worker proportionally more messages than a slow one', async () => {
    const db = freshDb();
    const store = await openStore(db);
    await started(track([spawnRole('distributor', { db, endpoint: 'Fair' })]));
    const workers = await started(track([
      spawnRole('worker', { db, endpoint: 'Fair', discriminator: 'fast', concurrency: 1, delayMs: 2 }),
      spawnRole('worker', { db, endpoint: 'Fair', discriminator: 'slow', concurrency: 1, delayMs: 150 }),
    ]));
    await liveWorkers(store, 'Fair', 2);
    const client = await sender(db, 'Fair');
    const total = 80;
    for (let n = 1; n <= total; n++) await client.send(Work, { n });
    await waitFor(() => handledBy(workers).size === total, { timeoutMs: 30_000, what: 'every message handled' });
    const counts = { fast: 0, slow: 0 };
    for (const by of handledBy(workers).values()) counts[by[0] as 'fast' | 'slow'] += 1;
    expect(counts.slow).toBeGreaterThan(0);
    // Round-robin would give 40/40. Under load every slot round trip costs several ms of commits
    // and wake-ups, so the margin asked for is well inside the 75x speed difference.
    expect(counts.fast).toBeGreaterThan(counts.slow * 2);
  });

  it('keeps every worker within its capacity and returns every slot: failures, delayed retries, poison messages and direct sends mixed in', async () => {
    const db = freshDb();
    const store = await openStore(db);
    await started(track([spawnRole('distributor', { db, endpoint: 'Acct' })]));
    const workers = await started(track([
      spawnRole('worker', { db, endpoint: 'Acct', discriminator: 'a1', concurrency: 3, delayMs: 3, failEvery: 5, poisonEvery: 7 }),
      spawnRole('worker', { db, endpoint: 'Acct', discriminator: 'a2', concurrency: 2, delayMs: 3, failEvery: 5, poisonEvery: 7 }),
    ]));
    await liveWorkers(store, 'Acct', 2);
    let sampling = true;
    let over = 0;
    closers.push(async () => void (sampling = false));
    const sampler = (async () => {
      while (sampling) {
        for (const w of await slots(store, 'Acct')) if (w.free + w.taken > w.capacity || w.free < 0) over += 1;
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
    })();
    const client = await sender(db, 'Acct');
    const total = 60;
    for (let n = 1; n <= total; n++) await client.send(Work, { n });
    // Direct sends to a worker's own queue must not return capacity they never took.
    const transport = sqliteTransport({ path: db });
    await transport.open();
    closers.push(() => transport.close());
    for (let n = 1002; n <= 1004; n++) {
      const headers = { [Headers.MessageId]: `direct-${n}`, [Headers.Intent]: 'send', [Headers.EnclosedTypes]: Work.typeName };
      await transport.dispatch([{ destination: 'Acct@a1', message: { id: `direct-${n}`, headers, body: JSON.stringify({ n }) } }]);
    }
    const expected = [...Array.from({ length: total }, (_, i) => i + 1).filter((n) => n % 7 !== 0), 1002, 1003, 1004];
    await waitFor(() => expected.every((n) => handledBy(workers).has(n)), { timeoutMs: 30_000, what: 'every good message handled' }).catch((error: Error) => {
      throw new Error(`${error.message}; missing: ${expected.filter((n) => !handledBy(workers).has(n)).join(', ')}`);
    });
    await waitFor(async () => (await transport.admin!.depth('error')) === Math.floor(total / 7), { timeoutMs: 10_000, what: 'poison messages in the error queue' });
    const settledView = await waitFor(async () => {
      const view = await slots(store, 'Acct');
      return view.every((w) => w.taken === 0) && view;
    }, { timeoutMs: 10_000, what: 'every slot returned' });
    sampling = false;
    await sampler;
    expect(over).toBe(0);
    expect(settledView.map((w) => [w.worker, w.free]).sort()).toEqual([
      ['Acct@a1', 3],
      ['Acct@a2', 2],
    ]);
    // What an operator sees: `switchyard distributor status --json`.
    const { stdout } = await run(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url)), 'distributor', 'status', '--endpoint', 'Acct', '--sqlite', db, '--json']);
    const status = JSON.parse(stdout) as { freeSlots: number; dataQueue: { depth: number }; workers: Array<{ worker: string; status: string; free: number; busy: number }> };
    expect(status.freeSlots).toBe(5);
    expect(status.dataQueue.depth).toBe(0);
    expect(status.workers.map((w) => [w.worker, w.status, w.free, w.busy]).sort()).toEqual([
      ['Acct@a1', 'live', 3, 0],
      ['Acct@a2', 'live', 2, 0],
    ]);
  });
});

describe('failures (separate processes, SQLite)', () => {
  it('loses nothing when a worker is killed with SIGKILL mid-run: its queued messages go back to the data queue', async () => {
    const db = freshDb();
    const store = await openStore(db);
    await started(track([spawnRole('distributor', { db, endpoint: 'Kill', workerTimeoutMs: 1500 })]));
    const workers = await started(track([
      // Capacity above concurrency: k1 always has messages waiting in its queue when it dies.
      spawnRole('worker', { db, endpoint: 'Kill', discriminator: 'k1', concurrency: 2, capacity: 8, delayMs: 15 }),
      spawnRole('worker', { db, endpoint: 'Kill', discriminator: 'k2', concurrency: 4, delayMs: 15 }),
    ]));
    await liveWorkers(store, 'Kill', 2);
    const client = await sender(db, 'Kill');
    const total = 150;
    for (let n = 1; n <= total; n++) await client.send(Work, { n });
    await waitFor(() => workers[0]!.reports.filter((r) => r.handled !== undefined).length >= 10, { timeoutMs: 20_000, what: 'k1 handling' });
    await workers[0]!.kill();
    const transport = sqliteTransport({ path: db });
    await transport.open();
    closers.push(() => transport.close());
    expect(await transport.admin!.depth('Kill@k1')).toBeGreaterThan(0);
    await waitFor(() => handledBy(workers).size === total, { timeoutMs: 40_000, what: 'every message handled after the kill' });
    expect(await transport.admin!.depth('Kill@k1')).toBe(0);
    const view = await slots(store, 'Kill');
    expect(view.find((w) => w.worker === 'Kill@k1')?.status).toBe('dead');
  });

  it('loses nothing when the distributor is killed with SIGKILL mid-run and started again', async () => {
    const db = freshDb();
    const store = await openStore(db);
    const [first] = await started(track([spawnRole('distributor', { db, endpoint: 'Restart' })]));
    const workers = await started(track([
      spawnRole('worker', { db, endpoint: 'Restart', discriminator: 'r1', concurrency: 3, delayMs: 10 }),
      spawnRole('worker', { db, endpoint: 'Restart', discriminator: 'r2', concurrency: 3, delayMs: 10 }),
    ]));
    await liveWorkers(store, 'Restart', 2);
    const client = await sender(db, 'Restart');
    const total = 150;
    for (let n = 1; n <= total; n++) await client.send(Work, { n });
    await waitFor(() => handledBy(workers).size >= 20, { timeoutMs: 20_000, what: '20 handled' });
    await first!.kill();
    const handledAtKill = handledBy(workers).size;
    await started(track([spawnRole('distributor', { db, endpoint: 'Restart' })]));
    await waitFor(() => handledBy(workers).size === total, { timeoutMs: 40_000, what: 'every message handled after the restart' });
    expect(handledAtKill).toBeLessThan(total);
    // Dispatch did not stall and every slot came back.
    await waitFor(async () => (await slots(store, 'Restart')).every((w) => w.taken === 0 && w.free === 3), { timeoutMs: 15_000, what: 'every slot returned after the restart' });
  });
});

describe('coalesced readiness (separate processes, SQLite)', () => {
  it('under load, one ready message returns the slots of several completions', async () => {
    const db = freshDb();
    const store = await openStore(db);
    const [distributor] = await started(track([spawnRole('distributor', { db, endpoint: 'Coal' })]));
    const workers = await started(track([
      spawnRole('worker', { db, endpoint: 'Coal', discriminator: 'c1', concurrency: 4, delayMs: 5 }),
      spawnRole('worker', { db, endpoint: 'Coal', discriminator: 'c2', concurrency: 4, delayMs: 5 }),
    ]));
    await liveWorkers(store, 'Coal', 2);
    const client = await sender(db, 'Coal');
    const total = 400;
    for (let n = 1; n <= total; n++) await client.send(Work, { n });
    await waitFor(() => handledBy(workers).size === total, { timeoutMs: 30_000, what: 'every message handled' });
    await waitFor(async () => (await slots(store, 'Coal')).every((w) => w.taken === 0 && w.free === 4), { timeoutMs: 10_000, what: 'every slot returned' });
    // A report made after every slot came back counts every ready.
    const seen = distributor!.reports.length;
    const last = await waitFor(() => distributor!.reports.slice(seen).find((r) => typeof r.readies === 'number'), { timeoutMs: 5000, what: 'a fresh count of ready messages' });
    expect(Number(last.readies)).toBeGreaterThan(0);
    expect(Number(last.readies)).toBeLessThan(total * 0.7);
  });
});

/**
 * SIGSTOPs `child` at a moment it holds no SQLite write lock. A process paused inside a write
 * transaction blocks every writer of the file until it resumes (SQLite's lock, not the
 * distributor's fencing), and the successor could not even claim the lease. The probe waits a
 * little for the lock (the workers' own short writes hold it too) and tries until a deadline.
 */
async function pauseOutsideWrites(child: ChildProcess, file: string, deadlineMs = 15_000): Promise<void> {
  const probe = new Database(file, { timeout: 20 });
  const deadline = Date.now() + deadlineMs;
  try {
    for (;;) {
      child.kill('SIGSTOP');
      try {
        probe.prepare('BEGIN IMMEDIATE').run();
        probe.prepare('ROLLBACK').run();
        return;
      } catch (error) {
        child.kill('SIGCONT');
        if (Date.now() >= deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
      }
    }
  } finally {
    probe.close();
  }
}

describe('ownership fencing (separate processes, SQLite)', () => {
  it('a distributor paused (SIGSTOP) past its lease while another takes over stops dispatching when resumed: no message is dispatched twice', async () => {
    const db = freshDb();
    const store = await openStore(db);
    // Workers silent for longer than workerTimeoutMs on the paused one's clock: unfenced, it would declare them dead on resume and hand their leased messages back.
    const config = { db, endpoint: 'Fence', ownershipLeaseMs: 1000, workerTimeoutMs: 1500 };
    const [old] = await started(track([spawnRole('distributor', config)]));
    const workers = await started(track([
      spawnRole('worker', { db, endpoint: 'Fence', discriminator: 'f1', concurrency: 2, delayMs: 20 }),
      spawnRole('worker', { db, endpoint: 'Fence', discriminator: 'f2', concurrency: 2, delayMs: 20 }),
    ]));
    await liveWorkers(store, 'Fence', 2);
    const client = await sender(db, 'Fence');
    const total = 1000;
    for (let n = 1; n <= total; n++) await client.send(Work, { n });
    await waitFor(() => handledBy(workers).size >= 50, { timeoutMs: 20_000, what: '50 handled by the first distributor' });

    await pauseOutsideWrites(old!.child, db);
    const pausedAt = Date.now();
    const [next] = await started(track([spawnRole('distributor', config)]));
    const forwardedBy = (p: RoleProcess) => Math.max(0, ...p.reports.map((r) => (typeof r.forwarded === 'number' ? r.forwarded : 0)));
    await waitFor(() => forwardedBy(next!) >= 50 && Date.now() - pausedAt > 2500, { timeoutMs: 20_000, what: 'the new distributor dispatching, the old one paused past its lease and the worker timeout' });
    old!.child.kill('SIGCONT');

    const lost = await old!.waitForReport((r) => typeof r.lostOwnership === 'string', 10_000);
    await waitFor(() => handledBy(workers).size === total, { timeoutMs: 60_000, what: 'every message handled' });
    const twice = [...handledBy(workers)].filter(([, by]) => by.length > 1);
    expect(twice).toEqual([]);
    expect(String(lost.lostOwnership)).toContain('lost the ownership of Fence');
    // Nothing forwarded by the old one after it noticed: its count stays where the pause left it.
    const lostAt = old!.reports.findIndex((r) => r.lostOwnership !== undefined);
    const after = old!.reports.slice(lostAt).filter((r) => typeof r.forwarded === 'number').map((r) => r.forwarded);
    expect(new Set(after).size).toBeLessThanOrEqual(1);
    const { workers: stored } = await store.load('Fence');
    expect(stored.map((w) => w.status)).toEqual(['live', 'live']);
  });
});
