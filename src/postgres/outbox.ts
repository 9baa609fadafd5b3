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
import { adapterPool, checkConnectionOptions, NOW_MS, preparedName, UNFLUSHED_COMMIT, type PostgresConnectionOptions } from './pool.js';
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

function statements(s: string) {
  return {
    /** The inbox check with its values as literals already escaped (it goes with BEGIN, in the simple protocol). */
    processed: (endpoint: string, messageId: string) => `SELECT 1 FROM ${s}.inbox WHERE endpoint = ${endpoint} AND message_id = ${messageId}`,
    /**
     * The end of a unit of work, one statement: the inbox row (when there is an incoming message)
     * and a record per stored batch (ids handed out in batch order), the records only when the
     * inbox row went in. `fresh` 0 with an incoming message: a concurrent copy committed first (the insert waited
     * for it on the primary key), so the caller rolls back.
     */
    finish: `WITH inbox_row AS (INSERT INTO ${s}.inbox (endpoint, message_id, processed_at)
        SELECT $1::text, $2::text, ${NOW_MS} WHERE $1::text IS NOT NULL ON CONFLICT DO NOTHING RETURNING 1),
      records AS (INSERT INTO ${s}.outbox (batch, claimed_by, claim_token, claimed_until, created_at)
        SELECT b, $4, 1, ${NOW_MS} + $5, ${NOW_MS} FROM unnest($3::jsonb[]) WITH ORDINALITY AS u(b, n)
        WHERE $1::text IS NULL OR EXISTS (SELECT 1 FROM inbox_row) ORDER BY n RETURNING id)
      SELECT (SELECT count(*) FROM inbox_row)::int AS fresh, array(SELECT id::text FROM records ORDER BY id) AS ids`,
  };
}

/**
 * One unit of work on the application's database: BEGIN, the inbox check, the handlers' SQL on
 * the same client, then `finish` and COMMIT. BEGIN is sent lazily: with the inbox check as one
 * simple-protocol round trip (the check's values as escaped literals), or before the handlers'
 * first query; a unit with neither runs `finish` alone, one statement and atomic by itself.
 * The inbox row is written at the end, with the records: no row lock is held while the handlers
 * run, and a concurrent copy that got past the check keeps nothing (its `finish` finds the row
 * and it rolls back). Returns whether a transaction was begun (to COMMIT or ROLLBACK).
 */
async function unitOfWork<T>(client: pg.PoolClient, sql: ReturnType<typeof statements>, owner: string, leaseMs: number, work: (tx: OutboxTransaction) => Promise<T>) {
  let processed: [string, string] | undefined;
  let begun: Promise<unknown> | undefined;
  const begin = () => (begun ??= client.query('BEGIN'));
  const batches: (readonly Outgoing[])[] = [];
  const value = await work({
    session: new PostgresTransactionSession(client, begin),
    async markProcessed(endpoint, messageId) {
      const check = sql.processed(client.escapeLiteral(endpoint), client.escapeLiteral(messageId));
      let rows: number | null;
      if (begun) {
        await begun;
        rows = (await client.query(check)).rowCount;
      } else {
        begun = client.query(`BEGIN; ${check}`);
        rows = ((await begun) as unknown as pg.QueryResult[])[1]!.rowCount;
      }
      if (rows !== 0) return false;
      processed = [endpoint, messageId];
      return true;
    },
    async store(batch) {
      if (batch.length > 0) batches.push(batch);
    },
  });
  const values = [processed?.[0] ?? null, processed?.[1] ?? null, batches.map((batch) => JSON.stringify(batch)), owner, leaseMs];
  const { rows } = await client.query<{ fresh: number; ids: string[] }>({ name: preparedName(sql.finish), text: sql.finish, values });
  const duplicate = processed !== undefined && rows[0]!.fresh === 0;
  return { value, duplicate, begun: begun !== undefined, records: rows[0]!.ids.map((id, i): OutboxRecord => ({ id, token: 1, batch: batches[i]! })) };
}

export function postgresOutboxStore(options: PostgresConnectionOptions): OutboxStore {
  const schema = options.schema ?? 'switchyard';
  const s = quotedSchema(schema, 'postgresOutbox');
  checkConnectionOptions('postgresOutbox', options);
  const { pool, end } = adapterPool(options, 4);
  const sql = statements(s);
  const toRecord = (row: { id: string; claim_token: number; batch: Outgoing[] }): OutboxRecord => ({ id: String(row.id), token: row.claim_token, batch: row.batch });

  // Every dispatched record is removed: one DELETE for all the removals of a turn, not one each.
  // Its commit does not wait for the WAL flush (synchronous_commit off for its own transaction):
  // a removal lost in a crash only means the agent sends the record again, as for a crash
  // between the send and the removal, and receivers skip it by message id.
  const removeAll = coalesced(async (records: OutboxRecord[]) => {
    const { rows } = await pool.query<{ id: string }>(
      `DELETE FROM ${s}.outbox o USING unnest($1::bigint[], $2::int[]) AS r(id, token), (SELECT ${UNFLUSHED_COMMIT}) AS unflushed
        WHERE o.id = r.id AND o.claim_token = r.token RETURNING o.id`,
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
      const client = await pool.connect();
      try {
        const { begun, ...done } = await unitOfWork(client, sql, owner, leaseMs, work);
        if (begun) await client.query(done.duplicate ? 'ROLLBACK' : 'COMMIT');
        return done.duplicate ? { value: done.value, records: [], duplicate: true } : done;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
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
