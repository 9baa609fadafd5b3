import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sqliteDatasetStore } from '../../src/sqlite/dataset-store.js';
import { datasetStoreConformance } from '../../src/testing/dataset-conformance.js';

datasetStoreConformance('sqlite', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-ds-conf-'));
  return { makeStore: () => sqliteDatasetStore({ path: path.join(dir, 'datasets.db') }), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});
