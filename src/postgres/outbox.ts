/**
 * The transactional outbox on PostgreSQL (see src/outbox/outbox.ts for the protocol). Two tables
 * in `schema`: `inbox` (endpoint, message id: processed once) and `outbox` (one row per unit of
 * work: its messages, and a claim: who may dispatch it, under which token, until when).
 *
 * Claims use the database's clock (clock_timestamp), so instances on machines whose clocks
 * disagree still agree on when a claim has run out. An expired claim is taken with
 * FOR UPDATE SKIP LOCKED under a new token: two agents never claim one row at once, and a
 * claimant whose token is stale can neither renew nor remove it.
 */
import type pg from 'pg';
import { outboxWith, type Outbox, type OutboxRecord, type OutboxSettings, type OutboxStore, type OutboxTransaction } from '../outbox/outbox.js';
import { coalesced } from '../core/coalesce.js';
import type { Outgoing } from '../core/transport.js';
import { migrate, quotedSchema, type PostgresMigration } from './migrations.js';
import { adapterPool, checkConnectionOptions, inTransaction, NOW_MS, type PostgresConnectionOptions } from './pool.js';
import { PostgresTransactionSession } from './session.js';

export interface PostgresOutboxOptions extends PostgresConnectionOptions, OutboxSettings {}

/** `outbox: postgresOutbox({ pool })` in an endpoint's options. */
export function postgresOutbox(options: PostgresOutboxOptions): Outbox {
  return outboxWith(postgresOutboxStore(options), options);
}

const MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    breaking: false,
    sql: `
      CREATE TABLE {s}.inbox (endpoint text NOT NULL, message_id text NOT NULL, processed_at bigint NOT NULL, PRIMARY KEY (endpoint, message_id));
      CREATE INDEX inbox_processed_at ON {s}.inbox (processed_at);
      CREATE TABLE {s}.outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, batch jsonb NOT NULL, claimed_by text NOT NULL,
        claim_token int NOT NULL, claimed_until bigint NOT NULL, created_at bigint NOT NULL);
      CREATE INDEX outbox_claimed_until ON {s}.outbox (claimed_until);`,
  },
];

/** The unit of work's side of the outbox: the inbox row and the outbox record, on the transaction's client. */
function outboxTransaction(client: pg.PoolClient, s: string, owner: string, leaseMs: number, records: OutboxRecord[]): OutboxTransaction {
  return {
    session: new PostgresTransactionSession(client),
    async markProcessed(endpoint, messageId) {
      // A concurrent copy holding the same key makes this wait for its commit or rollback.
      const inserted = await client.query(`INSERT INTO ${s}.inbox (endpoint, message_id, processed_at) VALUES ($1, $2, ${NOW_MS}) ON CONFLICT DO NOTHING`, [endpoint, messageId]);
      return inserted.rowCount === 1;
    },
    async store(batch) {
      if (batch.length === 0) return;
      const { rows } = await client.query<{ id: string }>(
        `INSERT INTO ${s}.outbox (batch, claimed_by, claim_token, claimed_until, created_at) VALUES ($1::jsonb, $2, 1, ${NOW_MS} + $3, ${NOW_MS}) RETURNING id`,
        [JSON.stringify(batch), owner, leaseMs],
      );
      records.push({ id: String(rows[0]!.id), token: 1, batch });
    },
  };
}

export function postgresOutboxStore(options: PostgresConnectionOptions): OutboxStore {
  const schema = options.schema ?? 'switchyard';
  const s = quotedSchema(schema, 'postgresOutbox');
  checkConnectionOptions('postgresOutbox', options);
  const { pool, end } = adapterPool(options, 4);
  const toRecord = (row: { id: string; claim_token: number; batch: Outgoing[] }): OutboxRecord => ({ id: String(row.id), token: row.claim_token, batch: row.batch });

  // Every dispatched record is removed: one DELETE for all the removals of a turn, not one each.
  const removeAll = coalesced(async (records: OutboxRecord[]) => {
    const { rows } = await pool.query<{ id: string }>(
      `DELETE FROM ${s}.outbox o USING unnest($1::bigint[], $2::int[]) AS r(id, token) WHERE o.id = r.id AND o.claim_token = r.token RETURNING o.id`,
      [records.map((r) => r.id), records.map((r) => r.token)],
    );
    const removed = new Set(rows.map((row) => String(row.id)));
    return records.map((r) => removed.has(r.id));
  });

  return {
    storage: 'postgres',
    open: () => migrate(pool, schema, 'outbox', MIGRATIONS),
    close: () => end(),
    async transaction(owner, leaseMs, work) {
      const records: OutboxRecord[] = [];
      const value = await inTransaction(pool, (client) => work(outboxTransaction(client, s, owner, leaseMs, records)));
      return { value, records, duplicate: false };
    },
    async claimExpired(owner, leaseMs, max) {
      const { rows } = await pool.query<{ id: string; claim_token: number; batch: Outgoing[] }>(
        `UPDATE ${s}.outbox o SET claimed_by = $1, claim_token = o.claim_token + 1, claimed_until = ${NOW_MS} + $2
          WHERE o.id IN (SELECT id FROM ${s}.outbox WHERE claimed_until < ${NOW_MS} ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
          RETURNING o.id, o.claim_token, o.batch`,
        [owner, leaseMs, max],
      );
      return rows.map(toRecord).sort((a, b) => Number(a.id) - Number(b.id));
    },
    async renew(record, leaseMs) {
      const renewed = await pool.query(`UPDATE ${s}.outbox SET claimed_until = ${NOW_MS} + $3 WHERE id = $1 AND claim_token = $2`, [record.id, record.token, leaseMs]);
      return renewed.rowCount === 1;
    },
    remove: removeAll,
    async pruneInbox(before) {
      const pruned = await pool.query(`DELETE FROM ${s}.inbox WHERE processed_at < $1`, [before]);
      return pruned.rowCount ?? 0;
    },
  };
}
