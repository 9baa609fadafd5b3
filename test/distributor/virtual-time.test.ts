/**
 * The distributor on the test kit's virtual clock (issue 18) and its slot takes committed with
 * the forward (issue 22), on a SQLite test bus: endpoint `Sales@live` runs the hosted distributor
 * and a worker; the test plays a second worker, `Sales@ghost`, that announces itself, takes
 * (leases) what it is forwarded and then says nothing again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Headers } from '../../src/core/headers.js';
import { uuidv7 } from '../../src/core/ids.js';
import type { Receipt, Transport } from '../../src/core/transport.js';
import { handle } from '../../src/index.js';
import type { DistributorHealth } from '../../src/scaleout/distributor.js';
import { hostedDistributor } from '../../src/scaleout/distributor-feature.js';
import { controlAddress } from '../../src/scaleout/distributor-protocol.js';
import { distributorWorker } from '../../src/scaleout/worker.js';
import type { StateChange } from '../../src/scaleout/distributor-state.js';
import type { DistributorStore } from '../../src/scaleout/distributor-store.js';
import { sqliteDistributorStore } from '../../src/sqlite/distributor-store.js';
import { sqliteTransport } from '../../src/sqlite/index.js';
import { testBus, waitFor, type TestBus } from '../../src/testing/index.js';
import { Work } from './fixtures/messages.js';

const GHOST = 'Sales@ghost';
const WORKER_TIMEOUT_MS = 10_000;

interface Rig {
  bus: TestBus;
  distributor: ReturnType<typeof hostedDistributor>;
  store: DistributorStore;
  /** Every change the distributor saved with `save` (apart from a forward). */
  separateSaves: StateChange[];
  /** What the ghost worker holds: leased, never settled. */
  ghostHolds: Receipt[];
  handled: number[];
  close(): Promise<void>;
}

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

async function startRig(): Promise<Rig> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-dist-virtual-'));
  const file = path.join(dir, 'bus.db');
  const handled: number[] = [];
  const store = sqliteDistributorStore({ path: file });
  const separateSaves: StateChange[] = [];
  const recording: DistributorStore = {
    ...store,
    save: (endpoint, fence, changes) => {
      separateSaves.push(...changes);
      return store.save(endpoint, fence, changes);
    },
  };
  const distributor = hostedDistributor({ store: recording, workerTimeoutMs: WORKER_TIMEOUT_MS });
  const bus = testBus(
    [
      {
        name: 'Sales',
        queues: { shared: false, instance: true },
        instance: { discriminator: 'live' },
        concurrency: 1,
        features: [distributor, distributorWorker({ distributor: 'Sales', capacity: 1 })],
        handlers: [handle(Work, ({ n }) => void handled.push(n))],
      },
    ],
    { transport: 'sqlite', sqlitePath: file },
  );
  await bus.start();
  // The ghost: its own connection on the bus's file and clock, outside what the bus watches.
  const ghost: Transport = sqliteTransport({ path: file, clock: bus.clock });
  await ghost.open();
  await ghost.createQueue(GHOST);
  const id = uuidv7();
  const start = { kind: 'start', worker: GHOST, session: 'ghost1', capacity: 3 };
  await ghost.dispatch([{ destination: controlAddress('Sales'), message: { id, headers: { [Headers.MessageId]: id, [Headers.Intent]: 'ready' }, body: JSON.stringify(start) } }]);
  const ghostHolds: Receipt[] = [];
  const stopping = new AbortController();
  const holding = (async () => {
    while (!stopping.signal.aborted) ghostHolds.push(...(await ghost.receive(GHOST, { max: 10, waitMs: 20, signal: stopping.signal })));
  })();
  await bus.runUntilIdle();
  await store.open();
  return {
    bus,
    distributor,
    store,
    separateSaves,
    ghostHolds,
    handled,
    async close() {
      stopping.abort();
      await holding;
      await bus.stop();
      await ghost.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Six messages: the ghost (3 free slots) takes three, the live worker handles the others. */
async function sendSix(r: Rig): Promise<void> {
  for (let n = 1; n <= 6; n++) await r.bus.send(Work, { n });
  await waitFor(() => r.ghostHolds.length === 3, { timeoutMs: 5000, what: 'the ghost holding three messages' });
  await r.bus.runUntilIdle();
}

describe('the distributor on a test bus', () => {
  it('saves a slot take in the forward that moved its message: stored as taken once the worker holds it', async () => {
    rig = await startRig();
    await sendSix(rig);
    const held = rig.ghostHolds.map((r) => r.message.id).sort();
    const stored = await rig.store.load('Sales');
    expect(stored.slots.filter((s) => s.worker === GHOST).map((s) => s.messageId).sort()).toEqual(held);
    // ... and no separate save carried those takes: they were committed by the forwards themselves.
    const takenApart = rig.separateSaves.flatMap((c) => (c.kind === 'put-slot' && c.slot.messageId !== null ? [c.slot.messageId] : []));
    expect(takenApart.filter((id) => held.includes(id))).toEqual([]);
  });

  it("times out a silent worker on bus.advance and hands its messages to the live one, with no wall-clock wait", async () => {
    rig = await startRig();
    await sendSix(rig);
    expect(rig.handled).toHaveLength(3);
    const wallStart = Date.now();
    await rig.bus.advance('1m');
    expect(Date.now() - wallStart).toBeLessThan(WORKER_TIMEOUT_MS / 2);
    // Declared dead at 10 s of virtual silence; what it held went back and was handled.
    expect(rig.handled.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
    const workers = Object.fromEntries(rig.distributor.handle!.status().workers.map((w) => [w.address, w.status]));
    // The live worker's heartbeats run on the same clock: a minute of virtual time does not kill it.
    expect(workers).toEqual({ [GHOST]: 'dead', 'Sales@live': 'live' });
  });
});

describe('the health of the endpoint that hosts the distributor', () => {
  it("lists the distributor's workers: name, status, capacity, messages in flight, last seen", async () => {
    rig = await startRig();
    await sendSix(rig);
    const report = () => (rig!.bus.endpoint('Sales').health().features as { distributor: DistributorHealth }).distributor;
    const byName = () => Object.fromEntries(report().workers.map((w) => [w.name, w]));
    expect(byName()[GHOST]).toMatchObject({ status: 'live', capacity: 3, inFlight: 3, lastSeen: new Date(rig.bus.clock.now()).toISOString() });
    expect(byName()['Sales@live']).toMatchObject({ status: 'live', capacity: 1, inFlight: 0 });
    expect(report()).toMatchObject({ ownership: 'held', freeSlots: 1, forwarded: 6 });
    await rig.bus.advance('1m');
    expect(byName()[GHOST]).toMatchObject({ status: 'dead', inFlight: 0 });
  });
});
