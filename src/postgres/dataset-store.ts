/**
 * PostgreSQL dataset store.
 *
 * Tables in `schema` (default `switchyard`): dataset_meta (version counter row + trim point + generation),
 * dataset_entries, dataset_log (one row per version), dataset_replicas (membership).
 * `append` (one function call) locks the dataset's counter row (FOR UPDATE) rather than using a sequence:
 * sequence values commit out of order, and a reader could then pass over a version committed
 * later. With the row lock, versions are gapless and commit in order.
 * Wake-ups: pg_notify in the write transaction (delivered on commit) to a LISTEN connection
 * that reconnects with jitter. NOTIFY is lossy; replicas also run a periodic catch-up read.
 * A database restored from an older backup keeps the old generation with a lower head; dropped
 * tables are created again (with a new generation) on the next call. See DatasetStore.advance.
 */
import type pg from 'pg';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import {
  appliedOps, checkDatasetName, conflictError, decodeHint, decodeRecord, decodeReport, decodeValue, encodeRecord, isDelete,
} from '../datasets/records.js';
import type {
  AppendOptions, Appended, DatasetStore, LogRecord, Membership, NewRecord, ReadResult, ReplicaReport, Snapshot,
} from '../datasets/store.js';
import { createListener } from './listener.js';
import { inTransaction, pgDriver, UNFLUSHED_COMMIT, withinTransaction } from './pool.js';

export interface PostgresDatasetStoreOptions {
  /** e.g. `postgres://user@127.0.0.1:5432/db`; or pass `pool`. */
  connectionString?: string;
  /** A pool you own (not ended by close()) for the queries; LISTEN then uses one more client from the pool's options. */
  pool?: pg.Pool;
  /** Schema for the dataset tables (default `switchyard`). */
  schema?: string;
  /**
   * Connections the store opens (default 1). With 1, one client LISTENs and runs every query,
   * one at a time: a replica process holds one connection however many datasets it opens on
   * this store (pass the same store to each openDataset to share it). With N > 1, a pool of N
   * runs the queries beside the LISTEN client (N + 1 in all): for a process that writes a lot.
   */
  maxConnections?: number;
  /**
   * Apply the record a wake-up carries instead of reading it (default true; saves a read per
   * replica per write). A wake-up is not authenticated: with this on, anyone who can connect to the database (any role may NOTIFY)
   * can feed replicas data. Turn it off when untrusted clients can reach the server.
   */
  wakeRecords?: boolean;
}

/** A wake-up's payload: "<dataset>", or "<dataset>\n<version>@<generation>\n<record>" when it carries the record. */
function parseWakeUp(payload: string, withRecord: boolean): { key: string; hint: LogRecord | undefined } {
  const a = payload.indexOf('\n');
  if (a < 0) return { key: payload, hint: undefined };
  const dataset = payload.slice(0, a);
  const b = payload.indexOf('\n', a + 1);
  if (!withRecord || b < 0) return { key: dataset, hint: undefined };
  return { key: dataset, hint: decodeHint(dataset, payload.slice(a + 1, b), payload.slice(b + 1)) };
}

/** What queries run on: the pool, or the store's one connection. */
interface Queryable {
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** 2: dataset_meta.generation, dataset_advance. */
const SCHEMA_VERSION = 2;
const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

const GENERATION = `md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text)`;

/**
 * advance: lock the counter row (creating it with a generation); when head < floor the data was
 * lost: new generation, head and trim point at floor, older log rows dropped, replicas woken.
 */
function advanceFunction(s: string): string {
  return `CREATE OR REPLACE FUNCTION ${s}.dataset_advance(p_dataset text, p_floor bigint, p_channel text,
  OUT o_generation text, OUT o_head bigint)
LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO ${s}.dataset_meta (dataset, version, trimmed_through, generation) VALUES (p_dataset, 0, 0, ${GENERATION})
    ON CONFLICT DO NOTHING;
  SELECT m.version, m.generation INTO o_head, o_generation FROM ${s}.dataset_meta m WHERE m.dataset = p_dataset FOR UPDATE;
  IF o_head < p_floor THEN
    o_generation := ${GENERATION};
    o_head := p_floor;
    UPDATE ${s}.dataset_meta SET version = p_floor, generation = o_generation,
      trimmed_through = greatest(trimmed_through, p_floor) WHERE dataset = p_dataset;
    DELETE FROM ${s}.dataset_log WHERE dataset = p_dataset AND version <= p_floor;
    PERFORM pg_notify(p_channel, p_dataset);
  ELSIF o_generation = '' THEN
    o_generation := ${GENERATION};
    UPDATE ${s}.dataset_meta SET generation = o_generation WHERE dataset = p_dataset;
  END IF;
END
$fn$`;
}

/**
 * append as one round trip: advance (locks the counter row), check conditions (SQLSTATE SY409,
 * message = key, detail = actual version), bump, change entries, log, notify (delivered on commit).
 */
function appendFunction(s: string): string {
  return `CREATE OR REPLACE FUNCTION ${s}.dataset_append(p_dataset text, p_record text, p_apply boolean,
  p_keys text[], p_deletes boolean[], p_if bigint[], p_values text[], p_channel text, p_above bigint,
  OUT o_version bigint, OUT o_generation text)
LANGUAGE plpgsql AS $fn$
DECLARE
  cur bigint;
  n int := coalesce(array_length(p_keys, 1), 0);
BEGIN
  SELECT a.o_generation, a.o_head INTO o_generation, o_version FROM ${s}.dataset_advance(p_dataset, p_above, p_channel) a;
  FOR i IN 1 .. n LOOP
    IF p_if[i] IS NOT NULL THEN
      cur := NULL;
      SELECT version INTO cur FROM ${s}.dataset_entries WHERE dataset = p_dataset AND key = p_keys[i];
      IF coalesce(cur, 0) <> p_if[i] THEN
        RAISE EXCEPTION USING ERRCODE = 'SY409', MESSAGE = p_keys[i], DETAIL = coalesce(cur, 0)::text;
      END IF;
    END IF;
  END LOOP;
  o_version := o_version + 1;
  IF p_apply THEN
    FOR i IN 1 .. n LOOP
      IF p_deletes[i] THEN
        DELETE FROM ${s}.dataset_entries WHERE dataset = p_dataset AND key = p_keys[i];
      ELSE
        INSERT INTO ${s}.dataset_entries VALUES (p_dataset, p_keys[i], p_values[i], o_version)
          ON CONFLICT (dataset, key) DO UPDATE SET value = excluded.value, version = excluded.version;
      END IF;
    END LOOP;
  END IF;
  INSERT INTO ${s}.dataset_log VALUES (p_dataset, o_version, p_record);
  UPDATE ${s}.dataset_meta SET version = o_version WHERE dataset = p_dataset;
  -- NOTIFY payloads are limited to 8000 bytes: carry the record only when it fits.
  PERFORM pg_notify(p_channel, CASE WHEN octet_length(p_record) < 7000
    THEN p_dataset || E'\\n' || o_version || '@' || o_generation || E'\\n' || p_record ELSE p_dataset END);
END
$fn$`;
}

/**
 * A membership report in one round trip. It need not survive a crash (the next one comes within
 * lease / 3), so its commit does not wait for the WAL flush: 100 replicas' reports do not queue
 * behind 100 fsyncs. (Local to the statement's own transaction: other commits stay durable.)
 */
function reportFunction(s: string): string {
  return `CREATE OR REPLACE FUNCTION ${s}.dataset_report(p_dataset text, p_replica text, p_report text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM ${UNFLUSHED_COMMIT};
  INSERT INTO ${s}.dataset_replicas VALUES (p_dataset, p_replica, p_report)
    ON CONFLICT (dataset, replica) DO UPDATE SET report = excluded.report;
END
$fn$`;
}

/** SQLSTATEs that mean the tables or functions are gone (dropped schema, restored database): migrate again. */
const MISSING = new Set(['42P01', '3F000', '42883']);

/** Catalog races a concurrent CREATE ... IF NOT EXISTS can still cause (another component creating the schema): try again. */
const CATALOG_RACE = new Set(['23505', '42P06', '42P07']);
async function retryCatalogRace<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      if (attempt >= 3 || !CATALOG_RACE.has((error as { code?: string }).code ?? '')) throw error;
    }
  }
}

/** The schema name and connection count, checked: a bad option is a coded error that says which. */
function checkOptions(options: PostgresDatasetStoreOptions) {
  const schema = options.schema ?? 'switchyard';
  if (!IDENT.test(schema)) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `PostgreSQL schema name ${JSON.stringify(schema)} is not valid.`, {
      fix: 'Use lower-case letters, digits and underscores, starting with a letter or underscore.',
    });
  }
  if (!options.pool && !options.connectionString) {
    throw new SwitchyardError(ErrorCodes.CONFIG, 'postgresDatasetStore needs a connectionString or a pool.', {
      fix: 'Pass { connectionString: process.env.DATABASE_URL } or { pool }.',
    });
  }
  const maxConnections = options.maxConnections ?? 1;
  if (!(Number.isInteger(maxConnections) && maxConnections >= 1)) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `postgresDatasetStore: maxConnections ${maxConnections} is not a whole number of at least 1.`, {
      fix: 'Leave maxConnections out (one connection per process), or pass a whole number such as 4.',
    });
  }
  return { schema, maxConnections };
}

/**
 * Where the store's statements run: with one connection, the listener's client runs every query
 * one at a time (a transaction is never interleaved with another caller's statements); with a
 * pool (the caller's, or the store's own of maxConnections), the queries run on the pool beside
 * the LISTEN client.
 */
function openConnections(options: PostgresDatasetStoreOptions, channel: string, maxConnections: number) {
  const ownPool = !options.pool && maxConnections > 1;
  const pool = options.pool ?? (ownPool ? new pgDriver.Pool({ connectionString: options.connectionString, max: maxConnections }) : undefined);
  // An idle client's error (server restart) must not crash the process; the next query reconnects.
  if (ownPool) pool?.on('error', () => undefined);
  const wakeRecords = options.wakeRecords ?? true;
  const listener = createListener<LogRecord>({
    channel,
    parse: (payload) => parseWakeUp(payload, wakeRecords),
    connect: async () => {
      const client = new pgDriver.Client(options.connectionString ? { connectionString: options.connectionString } : pool?.options);
      client.on('error', () => undefined); // a refused or dropped connection is retried, never thrown at the process
      await client.connect();
      return client;
    },
  });
  const db: Queryable = pool ?? { query: (text, values) => listener.exclusive((c) => c.query(text, values)) };

  async function transaction<T>(isolation: string, body: (c: Queryable) => Promise<T>): Promise<T> {
    const begin = `BEGIN ISOLATION LEVEL ${isolation}`;
    return pool ? inTransaction(pool, body, begin) : listener.exclusive((client) => withinTransaction(client, body, begin));
  }

  return {
    db,
    transaction,
    watch: (dataset: string, onWake: (hint?: LogRecord) => void) => listener.add(dataset, onWake),
    async close() {
      await listener.close();
      if (ownPool && pool && !pool.ended) await pool.end();
    },
  };
}
type Connections = ReturnType<typeof openConnections>;

/** Creates or upgrades the tables and functions, once per store and again when they turn out to be gone. */
function migration(connections: Connections, schema: string) {
  const s = `"${schema}"`;
  const migrateOnce = () =>
    connections.transaction('READ COMMITTED', async (client) => {
      // Serialise concurrent first starts: CREATE ... IF NOT EXISTS races on the catalog.
      await client.query("SELECT pg_advisory_xact_lock(hashtext('switchyard.datasets'))");
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${s}.dataset_schema (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL)`);
      await client.query(`INSERT INTO ${s}.dataset_schema VALUES (1, $1) ON CONFLICT DO NOTHING`, [SCHEMA_VERSION]);
      await client.query(`UPDATE ${s}.dataset_schema SET version = $1 WHERE id = 1 AND version < $1`, [SCHEMA_VERSION]);
      const found = (await client.query<{ version: number }>(`SELECT version FROM ${s}.dataset_schema WHERE id = 1`)).rows[0]?.version ?? 0;
      if (found > SCHEMA_VERSION) {
        throw new SwitchyardError(ErrorCodes.SCHEMA_TOO_NEW, `PostgreSQL dataset schema ${schema} is version ${found}; this code knows ${SCHEMA_VERSION}.`, {
          fix: 'Upgrade Switchyard in this process to the version the other processes use.',
        });
      }
      await client.query(`CREATE TABLE IF NOT EXISTS ${s}.dataset_meta (dataset text PRIMARY KEY, version bigint NOT NULL, trimmed_through bigint NOT NULL)`);
      await client.query(`ALTER TABLE ${s}.dataset_meta ADD COLUMN IF NOT EXISTS generation text NOT NULL DEFAULT ''`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${s}.dataset_entries (dataset text NOT NULL, key text NOT NULL, value text NOT NULL, version bigint NOT NULL, PRIMARY KEY (dataset, key))`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${s}.dataset_log (dataset text NOT NULL, version bigint NOT NULL, record text NOT NULL, PRIMARY KEY (dataset, version))`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${s}.dataset_replicas (dataset text NOT NULL, replica text NOT NULL, report text NOT NULL, PRIMARY KEY (dataset, replica))`);
      await client.query(`DROP FUNCTION IF EXISTS ${s}.dataset_append(text, text, boolean, text[], boolean[], bigint[], text[], text)`);
      await client.query(advanceFunction(s));
      await client.query(appendFunction(s));
      await client.query(reportFunction(s));
    });
  let ready: Promise<void> | undefined;
  const ensure = () => {
    ready ??= retryCatalogRace(migrateOnce).catch((error: unknown) => {
      ready = undefined; // retry on the next call
      throw error;
    });
    return ready;
  };
  /**
   * Runs a query after the migration. When the tables turn out to be gone (dropped, restored
   * database), the call wrote nothing: migrate again and retry it once.
   */
  async function run<T>(body: () => Promise<T>): Promise<T> {
    await ensure();
    try {
      return await body();
    } catch (error) {
      if (!MISSING.has((error as { code?: string }).code ?? '')) throw error;
      ready = undefined;
      await ensure();
      return body();
    }
  }
  return { ensure, run };
}
type Migration = ReturnType<typeof migration>;

/** The statements that change the store; the version counter row is locked inside dataset_advance / dataset_append. */
function writeQueries({ db, transaction }: Connections, { run }: Migration, s: string, channel: string) {
  return {
    async append(dataset: string, record: NewRecord, options: AppendOptions = {}): Promise<Appended> {
      checkDatasetName(dataset);
      const ops = record.kind === 'abort' ? [] : record.ops;
      try {
        const result = await run(() => db.query<{ o_version: string; o_generation: string }>(`SELECT * FROM ${s}.dataset_append($1, $2, $3, $4, $5, $6, $7, $8, $9)`, [
          dataset,
          encodeRecord(record),
          appliedOps(record).length > 0,
          ops.map((op) => op.key),
          ops.map((op) => isDelete(op)),
          ops.map((op) => op.ifVersion ?? null),
          ops.map((op) => (isDelete(op) ? null : JSON.stringify(op.value))),
          channel,
          Math.max(0, Math.floor(options.above ?? 0)),
        ]));
        return { version: Number(result.rows[0]?.o_version), generation: String(result.rows[0]?.o_generation) };
      } catch (error) {
        const e = error as { code?: string; message?: string; detail?: string };
        if (e.code === 'SY409') {
          const key = String(e.message);
          const expected = ops.find((op) => op.key === key)?.ifVersion ?? 0;
          throw conflictError(dataset, key, expected, Number(e.detail ?? 0));
        }
        throw error;
      }
    },
    async advance(dataset: string, floor: number) {
      checkDatasetName(dataset);
      const row = (await run(() => db.query<{ o_generation: string; o_head: string }>(
        `SELECT * FROM ${s}.dataset_advance($1, $2, $3)`, [dataset, Math.max(0, Math.floor(floor)), channel],
      ))).rows[0];
      return { generation: String(row?.o_generation), head: Number(row?.o_head ?? 0) };
    },
    trim: (dataset: string, throughVersion: number) =>
      run(() => transaction('READ COMMITTED', async (c) => {
        await c.query(`INSERT INTO ${s}.dataset_meta (dataset, version, trimmed_through, generation) VALUES ($1, 0, 0, ${GENERATION}) ON CONFLICT DO NOTHING`, [dataset]);
        const row = (await c.query<{ version: string; trimmed: string }>(
          `SELECT version, trimmed_through AS trimmed FROM ${s}.dataset_meta WHERE dataset = $1 FOR UPDATE`, [dataset],
        )).rows[0];
        const point = Math.max(Number(row?.trimmed ?? 0), Math.min(throughVersion, Number(row?.version ?? 0)));
        await c.query(`DELETE FROM ${s}.dataset_log WHERE dataset = $1 AND version <= $2`, [dataset, point]);
        await c.query(`UPDATE ${s}.dataset_meta SET trimmed_through = $2 WHERE dataset = $1`, [dataset, point]);
        return point;
      })),
  };
}

/** Membership: one row per replica, rewritten by each report (dataset_report). */
function membershipQueries({ db }: Connections, { run }: Migration, s: string) {
  return {
    heartbeat: async (dataset: string, report: ReplicaReport) => {
      await run(() => db.query(`SELECT ${s}.dataset_report($1, $2, $3)`, [dataset, report.replica, JSON.stringify(report)]));
    },
    async leave(dataset: string, replica: string) {
      await run(() => db.query(`DELETE FROM ${s}.dataset_replicas WHERE dataset = $1 AND replica = $2`, [dataset, replica]));
    },
    async membership(dataset: string): Promise<Membership> {
      const row = (await run(() => db.query<{ head: string; generation: string; reports: string[] }>(
        `SELECT coalesce((SELECT version FROM ${s}.dataset_meta WHERE dataset = $1), 0) AS head,
                coalesce((SELECT generation FROM ${s}.dataset_meta WHERE dataset = $1), '') AS generation,
                array(SELECT report FROM ${s}.dataset_replicas WHERE dataset = $1) AS reports`,
        [dataset],
      ))).rows[0];
      return {
        head: Number(row?.head ?? 0),
        generation: row?.generation ?? '',
        replicas: (row?.reports ?? []).map((r) => decodeReport(dataset, r)),
      };
    },
  };
}

/** The reads a replica makes: the log since a version, and a snapshot; each sees one moment of the store. */
function readQueries({ db, transaction }: Connections, { run }: Migration, s: string) {
  return {
    async readSince(dataset: string, afterVersion: number, limit: number): Promise<ReadResult> {
      // One statement, so the trim point, head, generation and records come from one snapshot.
      const rows = (await run(() => db.query<{ trimmed: string; head: string; generation: string; version: string | null; record: string | null }>(
        `SELECT m.trimmed_through AS trimmed, m.version AS head, m.generation, l.version, l.record FROM ${s}.dataset_meta m
         LEFT JOIN LATERAL (SELECT version, record FROM ${s}.dataset_log
           WHERE dataset = m.dataset AND version > $2 ORDER BY version LIMIT $3) l ON true
         WHERE m.dataset = $1 ORDER BY l.version`,
        [dataset, afterVersion, limit],
      ))).rows;
      const trimmed = Number(rows[0]?.trimmed ?? 0);
      const at = { head: Number(rows[0]?.head ?? 0), generation: rows[0]?.generation ?? '' };
      if (afterVersion < trimmed) return { kind: 'gap', trimmedThrough: trimmed, ...at };
      const records = rows.flatMap((r) => (r.version === null || r.record === null ? [] : [decodeRecord(dataset, Number(r.version), r.record)]));
      return { kind: 'records', records, ...at };
    },
    snapshot: (dataset: string) =>
      run(() => transaction('REPEATABLE READ', async (c): Promise<Snapshot> => {
        const meta = (await c.query<{ version: string; generation: string }>(
          `SELECT version, generation FROM ${s}.dataset_meta WHERE dataset = $1`, [dataset],
        )).rows[0];
        const rows = (await c.query<{ key: string; value: string; version: string }>(
          `SELECT key, value, version FROM ${s}.dataset_entries WHERE dataset = $1`, [dataset],
        )).rows;
        const entries = rows.map((r) => ({ key: r.key, value: decodeValue(dataset, r.key, r.value), version: Number(r.version) }));
        return { version: Number(meta?.version ?? 0), generation: meta?.generation ?? '', entries };
      })),
  };
}

export function postgresDatasetStore(options: PostgresDatasetStoreOptions): DatasetStore {
  const { schema, maxConnections } = checkOptions(options);
  const s = `"${schema}"`;
  const channel = `sy_datasets_${schema}`;
  const connections = openConnections(options, channel, maxConnections);
  const migrated = migration(connections, schema);
  return {
    backend: 'postgres',
    ...writeQueries(connections, migrated, s, channel),
    ...membershipQueries(connections, migrated, s),
    ...readQueries(connections, migrated, s),
    async watch(dataset, onWake) {
      await migrated.ensure();
      return connections.watch(dataset, onWake);
    },
    close: () => connections.close(),
  };
}
