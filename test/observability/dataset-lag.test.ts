/**
 * The per-replica lag of datasets as OpenTelemetry gauges, read back from an in-memory metric
 * reader: a replica held behind (its onChange listener throws) reports one version and the time
 * since the change was written; once it catches up, 0 and 0. The replicas run on virtual
 * clocks, so the time behind is exact.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openDataset, openReplicas } from '../../src/index.js';
import { openTelemetry } from '../../src/opentelemetry/index.js';
import { sqliteDatasetStore } from '../../src/sqlite/index.js';
import { VirtualClock } from '../../src/testing/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { inMemoryTelemetry, tempDb, total } from './fixtures/otel.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('dataset replica lag metrics', () => {
  it('reports versions and time behind per replica, from its own knowledge of the head', async () => {
    const otel = inMemoryTelemetry();
    const db = tempDb();
    cleanups.push(() => db.cleanup(), () => otel.shutdown());
    const stopObserving = openTelemetry({ meterProvider: otel.meterProvider, traces: false }).observeDatasets();
    cleanups.push(stopObserving);
    // Two machines' clocks: the reader's runs 400 ms ahead of the writer's.
    const writerClock = new VirtualClock(1_000_000);
    const readerClock = new VirtualClock(1_000_400);
    const store = sqliteDatasetStore({ path: db.file });
    const writer = await openDataset<number>('prices', { store, clock: writerClock });
    const reader = await openDataset<number>('prices', { store, clock: readerClock });
    cleanups.push(() => store.close(), () => writer.close(), () => reader.close());

    const lagOf = async (ds: { instance: string }) => {
      const where = { 'switchyard.dataset.name': 'prices', 'switchyard.dataset.replica': ds.instance, 'switchyard.dataset.backend': 'sqlite' };
      return {
        versions: total(await otel.metric('switchyard.dataset.replica.versions_behind'), where),
        seconds: total(await otel.metric('switchyard.dataset.replica.time_behind'), where),
      };
    };
    expect(await lagOf(reader)).toEqual({ versions: 0, seconds: 0 });

    const unsubscribe = reader.onChange(() => {
      throw new Error('the cache rebuild failed');
    });
    const version = await writer.set('sku-1', 12); // written at 1_000_000 on the writer's clock
    await waitFor(async () => (await lagOf(reader)).versions === 1, { what: 'the reader held one version behind' });
    readerClock.moveTo(1_001_500);
    // Counted from when the change was written (the record's time), not from when the reader learned of it (1_000_400).
    expect(await lagOf(reader)).toEqual({ versions: 1, seconds: 1.5 });
    expect(await lagOf(writer)).toEqual({ versions: 0, seconds: 0 });

    unsubscribe(); // the held change is retried without the listener that threw, and applied
    await waitFor(() => reader.version === version, { what: 'the reader caught up' });
    expect(await lagOf(reader)).toEqual({ versions: 0, seconds: 0 });

    await reader.close();
    expect([...openReplicas()].map((r) => r.instance)).toEqual([writer.instance]);
  });
});
