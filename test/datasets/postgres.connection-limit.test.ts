/**
 * A replica whose PostgreSQL connection is refused ("too many connections for role", the same
 * path as a refused or restarting server) keeps its process alive, retries with backoff, says it
 * is stale, and catches up once it may connect again. The replica runs as a role of its own
 * with CONNECTION LIMIT 1: that it works at all shows it needs one connection. The shared
 * server's settings are never touched; only this test's role.
 */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes, isSwitchyardError } from '../../src/core/errors.js';
import { openDataset } from '../../src/datasets/index.js';
import { postgresDatasetStore } from '../../src/postgres/index.js';
import { eventually, recordingLogger } from '../../src/testing/dataset-conformance.js';
import { service } from '../support/services.js';

const postgres = await service('postgres');
const tag = `${process.pid}_${Date.now().toString(36)}`;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

const as = (url: string, user: string, app: string) => {
  const u = new URL(url);
  u.username = user;
  u.password = '';
  u.searchParams.set('application_name', app);
  return u.toString();
};

describe.skipIf(!!postgres.skipReason)(`postgres: a replica's connection is refused${postgres.skipReason ? ` (skipped: ${postgres.skipReason})` : ''}`, () => {
  it('retries with backoff, reports stale, never crashes, and catches up when it may connect again', async () => {
    const role = `sy_ds_limit_${tag}`;
    const schema = `sy_ds_limit_${tag}`;
    const admin = new pg.Client({ connectionString: postgres.url });
    await admin.connect();
    await admin.query(`CREATE ROLE "${role}" LOGIN CONNECTION LIMIT 1`);
    const database = String((await admin.query('SELECT current_database() AS d')).rows[0].d);
    await admin.query(`GRANT CREATE ON DATABASE "${database}" TO "${role}"`); // the store's migration runs CREATE SCHEMA IF NOT EXISTS
    await admin.query(`CREATE SCHEMA "${schema}" AUTHORIZATION "${role}"`);
    cleanups.push(async () => {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role]);
      await admin.query(`REVOKE CREATE ON DATABASE "${database}" FROM "${role}"`);
      await admin.query(`DROP ROLE IF EXISTS "${role}"`);
      await admin.end();
    });

    const logger = recordingLogger();
    const readerStore = postgresDatasetStore({ connectionString: as(postgres.url, role, role), schema });
    const reader = await openDataset<number>('limited', { store: readerStore, catchUpMs: 100, stalenessMs: 600, onStale: 'refuse', logger });
    const writerStore = postgresDatasetStore({ connectionString: postgres.url, schema });
    const writer = await openDataset<number>('limited', { store: writerStore, catchUpMs: 100 });
    cleanups.push(async () => {
      await reader.close();
      await writer.close();
      await readerStore.close();
      await writerStore.close();
    });

    // Wake-ups reach this store: it LISTENs on the same, only, connection.
    const wakes: number[] = [];
    const unwatch = await readerStore.watch('limited', (hint) => wakes.push(hint?.version ?? -1));
    await writer.set('n', 1);
    await eventually('the reader has n = 1', () => reader.get('n') === 1);
    await eventually('the wake-up for version 1 arrived', () => wakes.includes(1));
    await unwatch();
    const backends = async () => Number((await admin.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE usename = $1`, [role])).rows[0].n);
    expect(await backends()).toBe(1);

    // No connection for this role any more, then drop the one it has.
    await admin.query(`ALTER ROLE "${role}" CONNECTION LIMIT 0`);
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role]);
    for (let i = 2; i <= 5; i++) await writer.set('n', i);

    await eventually('the reader says it is stale', () => logger.lines.some((l) => l.includes('stale:')), 10_000);
    let refused: unknown;
    try {
      reader.get('n');
    } catch (error) {
      refused = error;
    }
    expect(isSwitchyardError(refused, ErrorCodes.DATASET_STALE)).toBe(true);
    expect(reader.version).toBe(1);
    expect(logger.lines.some((l) => l.includes('lost contact with the postgres store'))).toBe(true);

    await admin.query(`ALTER ROLE "${role}" CONNECTION LIMIT 1`);
    await eventually('the reader catches up', () => reader.version === writer.version, 15_000);
    expect(reader.get('n')).toBe(5);
    expect(logger.lines.some((l) => l.includes('reconnected: continuing from 1'))).toBe(true);
    expect(await backends()).toBe(1);
  }, 40_000);
});
