/**
 * The distributor's state on PostgreSQL (the contract: src/scaleout/distributor-store.ts):
 * workers, ready slots and the ownership lease with its fencing epoch, in three tables of
 * `schema`. Every method is one transaction; `save` and `renewOwnership` lock the owner row and
 * check the fence first, so a distributor that lost ownership writes nothing. The lease runs on
 * the database server's clock.
 */
import type pg from 'pg';
import type { SlotRecord, StateChange, WorkerRecord, WorkerStatus } from '../scaleout/distributor-state.js';
import { fencedError, type DistributorStore } from '../scaleout/distributor-store.js';
import { migrate, quotedSchema, type PostgresMigration } from './migrations.js';
import { adapterPool, checkConnectionOptions, inTransaction, NOW_MS, type PostgresConnectionOptions } from './pool.js';

export type PostgresDistributorStoreOptions = PostgresConnectionOptions;

const MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    breaking: false,
    sql: `
      CREATE TABLE {s}.distributor_workers (endpoint text NOT NULL, address text NOT NULL, session text NOT NULL, capacity int NOT NULL,
        status text NOT NULL, last_seen bigint NOT NULL, PRIMARY KEY (endpoint, address));
      CREATE TABLE {s}.distributor_slots (endpoint text NOT NULL, id text NOT NULL, worker text NOT NULL, session text NOT NULL, seq bigint NOT NULL,
        message_id text, PRIMARY KEY (endpoint, id));
      CREATE INDEX distributor_slots_worker ON {s}.distributor_slots (endpoint, worker);
      CREATE TABLE {s}.distributor_owner (endpoint text PRIMARY KEY, owner text NOT NULL, epoch int NOT NULL, until bigint NOT NULL);`,
  },
];

/** One change as a statement and its values. */
function statementFor(s: string, endpoint: string, change: StateChange): [string, unknown[]] {
  switch (change.kind) {
    case 'put-worker': {
      const w = change.worker;
      return [
        `INSERT INTO ${s}.distributor_workers (endpoint, address, session, capacity, status, last_seen) VALUES ($1, $2, $3, $4, $5, $6)
          ON CONFLICT (endpoint, address) DO UPDATE SET session = excluded.session, capacity = excluded.capacity, status = excluded.status, last_seen = excluded.last_seen`,
        [endpoint, w.address, w.session, w.capacity, w.status, w.lastSeen],
      ];
    }
    case 'drop-slots':
      return [`DELETE FROM ${s}.distributor_slots WHERE endpoint = $1 AND worker = $2`, [endpoint, change.worker]];
    case 'put-slot': {
      const slot = change.slot;
      return [
        `INSERT INTO ${s}.distributor_slots (endpoint, id, worker, session, seq, message_id) VALUES ($1, $2, $3, $4, $5, $6)
          ON CONFLICT (endpoint, id) DO UPDATE SET message_id = excluded.message_id`,
        [endpoint, slot.id, slot.worker, slot.session, slot.seq, slot.messageId],
      ];
    }
    case 'delete-slot':
      return [`DELETE FROM ${s}.distributor_slots WHERE endpoint = $1 AND id = $2`, [endpoint, change.slot]];
  }
}

export function postgresDistributorStore(options: PostgresDistributorStoreOptions): DistributorStore {
  const schema = options.schema ?? 'switchyard';
  const s = quotedSchema(schema, 'postgresDistributorStore');
  checkConnectionOptions('postgresDistributorStore', options);
  const { pool, end } = adapterPool(options, 2);
  const ownerRow = (client: pg.PoolClient, endpoint: string) =>
    client.query<{ owner: string; epoch: number; until: string }>(`SELECT owner, epoch, until FROM ${s}.distributor_owner WHERE endpoint = $1 FOR UPDATE`, [endpoint]);

  return {
    open: () => migrate(pool, schema, 'distributor', MIGRATIONS),
    async load(endpoint) {
      const [workers, slots] = await Promise.all([
        pool.query<{ address: string; session: string; capacity: number; status: string; last_seen: string }>(
          `SELECT address, session, capacity, status, last_seen FROM ${s}.distributor_workers WHERE endpoint = $1`, [endpoint]),
        pool.query<{ id: string; worker: string; session: string; seq: string; message_id: string | null }>(
          `SELECT id, worker, session, seq, message_id FROM ${s}.distributor_slots WHERE endpoint = $1`, [endpoint]),
      ]);
      return {
        workers: workers.rows.map((r): WorkerRecord => ({ address: r.address, session: r.session, capacity: r.capacity, status: r.status as WorkerStatus, lastSeen: Number(r.last_seen) })),
        slots: slots.rows.map((r): SlotRecord => ({ id: r.id, worker: r.worker, session: r.session, seq: Number(r.seq), messageId: r.message_id })),
      };
    },
    async save(endpoint, fence, changes) {
      await inTransaction(pool, async (client) => {
        const current = (await ownerRow(client, endpoint)).rows[0];
        if (current?.owner !== fence.owner || current.epoch !== fence.epoch) throw fencedError(endpoint, fence, current?.owner);
        for (const change of changes) await client.query(...statementFor(s, endpoint, change));
      });
    },
    async claimOwnership(endpoint, owner, leaseMs) {
      return inTransaction(pool, async (client) => {
        // The row exists from the first claim on (a release keeps it), so the lock serialises claimants.
        await client.query(`INSERT INTO ${s}.distributor_owner (endpoint, owner, epoch, until) VALUES ($1, '', 0, 0) ON CONFLICT DO NOTHING`, [endpoint]);
        const current = (await client.query<{ owner: string; epoch: number; until: string; now: string }>(
          `SELECT owner, epoch, until, ${NOW_MS} AS now FROM ${s}.distributor_owner WHERE endpoint = $1 FOR UPDATE`, [endpoint])).rows[0]!;
        if (Number(current.until) > Number(current.now)) return { acquired: false, holder: current.owner, until: Number(current.until) };
        const epoch = current.epoch + 1;
        await client.query(`UPDATE ${s}.distributor_owner SET owner = $2, epoch = $3, until = ${NOW_MS} + $4 WHERE endpoint = $1`, [endpoint, owner, epoch, leaseMs]);
        return { acquired: true, fence: { owner, epoch } };
      });
    },
    async renewOwnership(endpoint, fence, leaseMs) {
      const renewed = await pool.query(`UPDATE ${s}.distributor_owner SET until = ${NOW_MS} + $4 WHERE endpoint = $1 AND owner = $2 AND epoch = $3`, [endpoint, fence.owner, fence.epoch, leaseMs]);
      return renewed.rowCount === 1;
    },
    async releaseOwnership(endpoint, fence) {
      await pool.query(`UPDATE ${s}.distributor_owner SET until = 0 WHERE endpoint = $1 AND owner = $2 AND epoch = $3`, [endpoint, fence.owner, fence.epoch]);
    },
    close: () => end(),
  };
}
