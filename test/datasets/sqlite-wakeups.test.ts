/**
 * SQLite dataset wake-ups across connections (as across processes): a writer rings the dataset's
 * doorbell after its commit, so another connection's replica applies the change without waiting
 * for the fallback poll or the catch-up read, both set here far beyond the test's deadline.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDataset } from '../../src/datasets/index.js';
import { sqliteDatasetStore } from '../../src/sqlite/dataset-store.js';
import { waitFor } from '../../src/testing/wait.js';

const SLOW = { pollMs: 60_000 };
const NO_CATCH_UP = { catchUpMs: 60_000, stalenessMs: 240_000, leaseMs: 240_000 };
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function twoConnections(options: { pollMs: number } = SLOW, prepare?: (file: string) => void) {
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-ds-wake-'));
  const file = path.join(dir, 'datasets.db');
  prepare?.(file);
  const writerStore = sqliteDatasetStore({ path: file, ...options });
  const readerStore = sqliteDatasetStore({ path: file, ...options });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => writerStore.close(), () => readerStore.close());
  return { writerStore, readerStore };
}

describe('sqlite dataset wake-ups', () => {
  it("a write on another connection reaches a replica by the writer's doorbell, not by a poll", async () => {
    const { writerStore, readerStore } = twoConnections();
    const writer = await openDataset<number>('prices', { store: writerStore, ...NO_CATCH_UP });
    const reader = await openDataset<number>('prices', { store: readerStore, ...NO_CATCH_UP });
    cleanups.push(() => writer.close(), () => reader.close());
    for (let n = 1; n <= 20; n++) {
      const version = await writer.set('sku-1', n);
      await waitFor(() => reader.version >= version, { timeoutMs: 5000, what: `version ${version} applied by the other connection's replica` });
      expect(reader.get('sku-1')).toBe(n);
    }
  });


  it('without a usable doorbell (its folder cannot be made), the fallback poll still brings every write', async () => {
    const { writerStore, readerStore } = twoConnections({ pollMs: 20 }, (file) => writeFileSync(`${file}-switchyard-signals`, 'not a folder'));
    const writer = await openDataset<number>('prices', { store: writerStore, ...NO_CATCH_UP });
    const reader = await openDataset<number>('prices', { store: readerStore, ...NO_CATCH_UP });
    cleanups.push(() => writer.close(), () => reader.close());
    for (let n = 1; n <= 5; n++) {
      const version = await writer.set('sku-1', n);
      await waitFor(() => reader.version >= version, { timeoutMs: 5000, what: `version ${version} applied through the poll` });
    }
    expect(reader.get('sku-1')).toBe(5);
  });
});
