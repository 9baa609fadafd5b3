import pg from 'pg';
import { describe } from 'vitest';
import { postgresSubscriptionStore } from '../../src/postgres/index.js';
import { subscriptionStoreConformance } from '../../src/testing/subscription-store-conformance.js';
import { service } from '../support/services.js';

const { url, skipReason } = await service('postgres');

describe.skipIf(!!skipReason)(`postgres subscription store${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  subscriptionStoreConformance('postgres', async () => {
    const schema = `sy_subs_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`;
    return {
      create: () => postgresSubscriptionStore({ connectionString: url, schema }),
      cleanup: async () => {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await client.end();
      },
    };
  });
});
