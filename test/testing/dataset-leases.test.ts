/**
 * Datasets on the test bus's virtual clock: a replica's membership lease, its renewal and the
 * staged activation's vote timeout run on `bus.clock`, so `bus.advance()` expires the lease of a
 * replica that stopped heart-beating (and keeps the lease of one that still beats) in
 * milliseconds of wall time instead of the lease's length.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeIdentity } from '../../src/core/identity.js';
import { openDataset, type Dataset, type DatasetStore } from '../../src/datasets/index.js';
import { sqliteDatasetStore } from '../../src/sqlite/index.js';
import { testBus, type TestBus } from '../../src/testing/index.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A store whose heartbeats stop reaching it once `silence()` is called: the replica looks paused or dead to the others. */
function silenceable(store: DatasetStore) {
  let silent = false;
  const wrapped: DatasetStore = { ...store, heartbeat: async (dataset, report) => (silent ? undefined : store.heartbeat(dataset, report)) };
  return { store: wrapped, silence: () => void (silent = true) };
}

async function twoReplicas(): Promise<{ bus: TestBus; a: Dataset<number>; b: Dataset<number>; silenceA: () => void }> {
  const bus = testBus([]);
  await bus.start();
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-ds-virtual-'));
  const store = sqliteDatasetStore({ path: path.join(dir, 'datasets.db') });
  const quiet = silenceable(store);
  const common = { clock: bus.clock, leaseMs: 5000, stalenessMs: 10_000 } as const;
  const a = await openDataset<number>('prices', { ...common, store: quiet.store, identity: makeIdentity('Shop', 'host', 1, 'a') });
  const b = await openDataset<number>('prices', { ...common, store, identity: makeIdentity('Shop', 'host', 2, 'b') });
  cleanups.push(async () => {
    await a.close();
    await b.close();
    await store.close();
    await bus.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { bus, a, b, silenceA: quiet.silence };
}

const liveness = async (ds: Dataset<number>) =>
  Object.fromEntries((await ds.status()).replicas.map((r) => [r.instance.split(':').at(-1), r.live]));

describe('datasets on the virtual clock', () => {
  it("expires the lease of a replica that stopped heart-beating on advance('1m'), and renews the others', in well under a second of wall time", async () => {
    const { bus, a, b, silenceA } = await twoReplicas();
    expect(await liveness(b)).toEqual({ a: true, b: true });

    silenceA();
    const version = await b.set('sku-1', 12);
    const wallStart = performance.now();
    await bus.advance('1m');
    const wallMs = performance.now() - wallStart;

    // a's last report is a minute old (virtual): out of the live set. b renewed its lease on the way.
    expect(await liveness(b)).toEqual({ a: false, b: true });
    expect(a.get('sku-1')).toBe(12); // a still follows the log; only its reports are lost
    const convergence = await b.waitForVersion(version, { timeoutMs: 0 });
    expect(convergence.converged).toBe(true);
    expect(convergence.departed.map((r) => r.instance)).toEqual([a.instance]);
    expect(wallMs).toBeLessThan(1000);
  });

  it('keeps a lease alive while virtual time stays within it: nothing expires without advance', async () => {
    const { bus, b, silenceA } = await twoReplicas();
    silenceA();
    await bus.advance('4s'); // under the 5 s lease
    expect(await liveness(b)).toEqual({ a: true, b: true });
    await bus.advance('2s');
    expect(await liveness(b)).toEqual({ a: false, b: true });
  });

  it("times a staged change's vote out when virtual time passes its timeout, not before", async () => {
    const { bus, a, b, silenceA } = await twoReplicas();
    silenceA(); // a's vote rides its heartbeat: it never arrives
    const wallStart = performance.now();
    let outcome: Awaited<ReturnType<typeof b.stage>> | undefined;
    const staging = b.stage([{ key: 'sku-2', value: 30 }], { timeoutMs: 3000 }).then((o) => (outcome = o));

    await bus.advance('2s');
    expect(outcome).toBeUndefined(); // a is live (lease 5 s) and has not voted: still waiting
    await bus.advance('1s');
    // Decided at the virtual deadline, within the advance: the abort is in before advance returns.
    expect(outcome?.accepted).toBe(false);
    await staging;
    expect(outcome?.accepted === false && outcome.missing).toEqual([a.instance]);
    expect(performance.now() - wallStart).toBeLessThan(1000);
  });
});
