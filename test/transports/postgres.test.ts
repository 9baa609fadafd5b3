import pg from 'pg';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe } from 'vitest';
import { postgresTransport } from '../../src/postgres/index.js';
import { recoverabilityConformance, transportConformance, type TransportFixture } from '../../src/testing/conformance.js';
import { service } from '../support/services.js';

const { url, skipReason } = await service('postgres');

/** Each fixture gets its own schema, so parallel runs on the shared server never meet. */
const fixture = async (): Promise<TransportFixture> => {
  const schema = `sy_tr_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`;
  const direct = async (text: string, values: unknown[]) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(text, values);
    } finally {
      await client.end();
    }
  };
  return {
    create: (options) => postgresTransport({ connectionString: url, schema, maxConnections: 4, ...options }),
    childSpec: ({ leaseMs }) => ({
      module: pathToFileURL(path.resolve('src/postgres/index.ts')).href,
      factory: 'postgresTransport',
      options: { connectionString: url, schema, leaseMs, maxConnections: 2 },
    }),
    queue: (name) => name,
    expireLeases: (queue) => direct(`UPDATE "${schema}".messages SET visible_at = 0 WHERE queue = $1 AND lease_token > 0`, [queue]),
    injectRaw: (queue, { id, headers, body }) =>
      direct(`INSERT INTO "${schema}".messages (queue, id, headers, body, visible_at) VALUES ($1, $2, $3, $4, 0)`, [queue, id, headers, body]),
    cleanup: () => direct(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`, []),
  };
};

describe.skipIf(!!skipReason)(`postgres transport${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  transportConformance('postgres', fixture);
  recoverabilityConformance('postgres', fixture);
});
