/**
 * A replica's applied-version reports are coalesced: a burst of changes costs at most one
 * membership write per reportMs (plus the one at once when the window was quiet), not one per
 * change, and the last version of a burst is reported.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes, isSwitchyardError } from '../../src/core/errors.js';
import { openDataset, type DatasetStore } from '../../src/datasets/index.js';
import { sqliteDatasetStore } from '../../src/sqlite/dataset-store.js';
import { waitFor } from '../../src/testing/wait.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function countingStore(file: string): { store: DatasetStore; reports: () => number } {
  const store = sqliteDatasetStore({ path: file });
  let reports = 0;
  const heartbeat = store.heartbeat.bind(store);
  store.heartbeat = (dataset, report) => {
    reports++;
    return heartbeat(dataset, report);
  };
  return { store, reports: () => reports };
}

describe('applied-version reports', () => {
  it('a burst of 100 changes costs a bounded number of reports, and the last version is reported', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sy-ds-report-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'ds.db');
    const writerStore = sqliteDatasetStore({ path: file });
    const reader = countingStore(file);
    const writer = await openDataset<number>('burst', { store: writerStore, reportMs: 50 });
    const replica = await openDataset<number>('burst', { store: reader.store, reportMs: 50 });
    cleanups.push(async () => {
      await replica.close();
      await writer.close();
      await reader.store.close();
      await writerStore.close();
    });

    const before = reader.reports();
    const started = performance.now();
    let last = 0;
    for (let i = 0; i < 100; i++) last = await writer.set('n', i);
    await waitFor(() => replica.version === last, { what: 'the replica applied the burst' });
    const elapsed = performance.now() - started;
    const converged = await writer.waitForVersion(last, { timeoutMs: 2000 });
    expect(converged.converged).toBe(true);
    const during = reader.reports() - before;
    // One at once, then at most one per 50 ms window, plus a lease heartbeat or two.
    expect(during).toBeLessThanOrEqual(Math.ceil(elapsed / 50) + 3);
    expect(during).toBeLessThan(100);

  });

  it('a reportMs that is not a positive number is a coded error', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sy-ds-report-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const store = sqliteDatasetStore({ path: path.join(dir, 'ds.db') });
    cleanups.push(() => store.close());
    const error = await openDataset('bad', { store, reportMs: 0 }).catch((e: unknown) => e);
    expect(isSwitchyardError(error, ErrorCodes.CONFIG)).toBe(true);
    expect(String(error)).toContain('reportMs 0');
  });
});
