/**
 * The distributor store contract (src/scaleout/distributor-store.ts), run against every store in
 * the project: a store for another database (PostgreSQL) adds itself to `stores`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import pg from 'pg';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/core/errors.js';
import { memoryDistributorStore, type DistributorStore } from '../../src/scaleout/distributor-store.js';
import type { SlotRecord } from '../../src/scaleout/distributor-state.js';
import { postgresDistributorStore } from '../../src/postgres/distributor-store.js';
import { sqliteDistributorStore } from '../../src/sqlite/distributor-store.js';
import { service } from '../support/services.js';
import { waitFor } from '../../src/testing/wait.js';

const dir = mkdtempSync(path.join(tmpdir(), 'sy-distributor-store-'));
const schemas: string[] = [];
const postgresSchema = () => {
  schemas.push(`sy_dstore_${randomBytes(4).toString('hex')}`);
  return schemas.at(-1)!;
};
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  if (schemas.length === 0) return;
  const pool = new pg.Pool({ connectionString: postgres.url });
  for (const schema of schemas) await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await pool.end();
});

const postgres = await service('postgres');
const stores: Array<[string, () => DistributorStore]> = [
  ['memory', () => memoryDistributorStore()],
  ['sqlite', () => sqliteDistributorStore({ path: path.join(dir, `s${Math.random().toString(36).slice(2)}.db`) })],
  // Each store its own schema (migrated by its open()); the schemas are dropped at the end.
  ...(postgres.skipReason ? [] : [['postgres', () => postgresDistributorStore({ connectionString: postgres.url, schema: postgresSchema() })] as [string, () => DistributorStore]]),
];

/** Claims for `owner` as soon as the current lease has run out. */
const claimOnceExpired = (store: DistributorStore, owner: string, leaseMs: number) =>
  waitFor(async () => {
    const claim = await store.claimOwnership('Sales', owner, leaseMs);
    return claim.acquired && claim;
  }, { timeoutMs: 2000, intervalMs: 5, what: `the lease to run out for ${owner}` });

const slot = (id: string): SlotRecord => ({ id, worker: 'Sales@w1', session: 's1', seq: 1, messageId: null });

describe.each(stores)('the %s distributor store', (_name, create) => {
  const opened = async () => {
    const store = create();
    await store.open();
    return store;
  };

  it('gives a lease to one owner at a time, and a new owner a higher epoch once it expired', async () => {
    const store = await opened();
    const first = await store.claimOwnership('Sales', 'a', 400);
    expect(first.acquired).toBe(true);
    const refused = await store.claimOwnership('Sales', 'b', 400);
    expect(refused).toMatchObject({ acquired: false, holder: 'a' });
    const second = await claimOnceExpired(store, 'b', 1000);
    expect(second.fence!.epoch).toBeGreaterThan(first.fence!.epoch);
    await store.close();
  });

  it('refuses a save and a renewal from an owner another one has replaced, writing nothing', async () => {
    const store = await opened();
    const old = (await store.claimOwnership('Sales', 'a', 30)).fence!;
    await store.save('Sales', old, [{ kind: 'put-slot', slot: slot('one') }]);
    // The old owner "paused" past its lease: the next one claims as soon as it ran out.
    const next = (await claimOnceExpired(store, 'b', 10_000)).fence!;
    await expect(store.save('Sales', old, [{ kind: 'put-slot', slot: slot('two') }])).rejects.toMatchObject({ code: ErrorCodes.DISTRIBUTOR_FENCED });
    expect(await store.renewOwnership('Sales', old, 10_000)).toBe(false);
    expect((await store.load('Sales')).slots.map((s) => s.id)).toEqual(['one']);
    await store.save('Sales', next, [{ kind: 'delete-slot', slot: 'one' }]);
    expect((await store.load('Sales')).slots).toEqual([]);
    await store.close();
  });

  it('keeps the epoch across a release, so a released fence never writes again', async () => {
    const store = await opened();
    const first = (await store.claimOwnership('Sales', 'a', 10_000)).fence!;
    expect(await store.renewOwnership('Sales', first, 10_000)).toBe(true);
    await store.releaseOwnership('Sales', first);
    const again = (await store.claimOwnership('Sales', 'a', 10_000)).fence!;
    expect(again.epoch).toBe(first.epoch + 1);
    await expect(store.save('Sales', first, [])).rejects.toMatchObject({ code: ErrorCodes.DISTRIBUTOR_FENCED });
    await store.close();
  });
});
