import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sqliteSubscriptionStore } from '../../src/sqlite/subscription-store.js';
import { subscriptionStoreConformance } from '../../src/testing/subscription-store-conformance.js';

subscriptionStoreConformance('sqlite', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-subs-'));
  const file = path.join(dir, 'bus.db');
  return {
    create: () => sqliteSubscriptionStore({ path: file }),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
});
