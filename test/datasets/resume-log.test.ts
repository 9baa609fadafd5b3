/**
 * A process paused while one of its reads is in flight (SIGSTOP, a long GC) still logs its resume:
 * that read completes after the pause with nothing new (the store answered before the writes), and
 * the next read, which brings what was written during the pause, says "resumed after N ms without
 * a read". Reproduced in one process: the store's read moves the replica's virtual clock by a
 * second and lets a write happen while it is "paused".
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDataset, type DatasetStore } from '../../src/datasets/index.js';
import { sqliteDatasetStore } from '../../src/sqlite/index.js';
import { eventually, recordingLogger } from '../../src/testing/dataset-conformance.js';
import { VirtualClock } from '../../src/testing/index.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('resume after a pause during a read', () => {
  it('is logged by the read that brings the changes written during the pause', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sy-ds-resume-'));
    const file = path.join(dir, 'datasets.db');
    const writerStore = sqliteDatasetStore({ path: file });
    const readerStore = sqliteDatasetStore({ path: file });
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => writerStore.close(), () => readerStore.close());
    const writer = await openDataset<number>('prices', { store: writerStore });
    cleanups.push(() => writer.close());

    const clock = new VirtualClock();
    let pauseNextRead = false;
    const pausing: DatasetStore = {
      ...readerStore,
      async readSince(dataset, after, limit) {
        const result = await readerStore.readSince(dataset, after, limit);
        if (pauseNextRead) {
          pauseNextRead = false;
          await writer.set('sku-1', 7); // written while this process is "stopped"
          clock.moveTo(clock.now() + 1000);
        }
        return result;
      },
    };
    const logger = recordingLogger();
    const reader = await openDataset<number>('prices', { store: pausing, clock, catchUpMs: 200, logger });
    cleanups.push(() => reader.close());

    pauseNextRead = true;
    clock.moveTo(clock.now() + 200); // the catch-up read, which the "pause" holds for a second
    await eventually('the reader has the change written during the pause', () => reader.get('sku-1') === 7);
    expect(logger.lines.filter((l) => /resumed after \d+ ms without a read: continuing from 0$/.test(l))).toHaveLength(1);
  });
});
