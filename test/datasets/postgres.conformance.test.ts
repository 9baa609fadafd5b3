import pg from 'pg';
import { describe } from 'vitest';
import { postgresDatasetStore } from '../../src/postgres/index.js';
import { datasetStoreConformance } from '../../src/testing/dataset-conformance.js';
import { service } from '../support/services.js';

const { url, skipReason } = await service('postgres');

describe.skipIf(!!skipReason)(`postgres datasets${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  for (const wakeRecords of [true, false]) {
    datasetStoreConformance(`postgres (wakeRecords: ${wakeRecords})`, async () => {
      const schema = `sy_ds_conf_${process.pid}_${Date.now().toString(36)}_${wakeRecords ? 'w' : 'r'}`;
      return {
        makeStore: () => postgresDatasetStore({ connectionString: url, schema, wakeRecords }),
        cleanup: async () => {
          const client = new pg.Client({ connectionString: url });
          await client.connect();
          await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
          await client.end();
        },
      };
    });
  }
});
