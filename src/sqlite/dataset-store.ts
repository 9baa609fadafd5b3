/**
 * SQLite dataset store: processes on one machine sharing one database file.
 *
 * Tables (prefix sy_dataset_): meta (version counter + trim point + generation per dataset), entries (current
 * value and the version that wrote it), log (one row per version), replicas (membership).
 * `append` is one IMMEDIATE transaction: check conditions, bump the counter, change entries,
 * insert the log row; so versions are gapless and committed in order.
 * Wake-ups: a writer touches the dataset's signal file after its commit; a touch triggers a check
 * of `PRAGMA data_version` (it changes when another connection commits), backed by a cheap poll of
 * the same pragma (fs events can be missed, and other writers ring no bell).
 * Membership lives in a second file (`<path>-members`, synchronous=OFF): heartbeats are rewritten
 * often, need no fsync, and in the data file they would contend for its write lock and wake
 * every replica's data_version check.
 * Durability: WAL + synchronous=FULL by default (an acknowledged write survives power loss).
 * A file replaced by an older copy keeps its old generation with a lower head; a new empty file
 * has none. See DatasetStore.advance.
 */
import Database from 'better-sqlite3';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import {
  appliedOps, checkDatasetName, conditionsOf, conflictError, decodeRecord, decodeReport, decodeValue, encodeRecord, isDelete,
  newGeneration,
} from '../datasets/records.js';
import { BOUND_LIMIT } from './database.js';
import { QueueSignals } from './queue-signals.js';
import type { Appended, DatasetStore, LogRecord, NewRecord, ReadResult, ReplicaReport, Snapshot } from '../datasets/store.js';

export interface SqliteDatasetStoreOptions {
  /** Database file; every process that shares the dataset opens the same file. */
  path: string;
  /** `FULL` (default) survives power loss; `NORMAL` survives process crashes only. */
  synchronous?: 'FULL' | 'NORMAL';
  /** Fallback check for commits that rang no doorbell (a missed fs event, another tool; default 250 ms). */
  pollMs?: number;
  /** How long a writer waits for the write lock (default 5000 ms). */
  busyTimeoutMs?: number;
  /** Membership (heartbeat) database file (default `<path>-members`). */
  membershipPath?: string;
}

/** 2: sy_dataset_meta.generation. */
const SCHEMA_VERSION = 2;

const DDL = `
CREATE TABLE IF NOT EXISTS sy_dataset_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sy_dataset_meta (dataset TEXT PRIMARY KEY, version INTEGER NOT NULL, trimmed_through INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sy_dataset_entries (dataset TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (dataset, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sy_dataset_log (dataset TEXT NOT NULL, version INTEGER NOT NULL, record TEXT NOT NULL, PRIMARY KEY (dataset, version)) WITHOUT ROWID;
`;
const MEMBERS_DDL = `CREATE TABLE IF NOT EXISTS sy_dataset_replicas (dataset TEXT NOT NULL, replica TEXT NOT NULL, report TEXT NOT NULL, PRIMARY KEY (dataset, replica)) WITHOUT ROWID;`;

type Db = Database.Database;
type Meta = { version: number; trimmed: number; generation: string };
type PageRow = { head: number; trimmed: number; generation: string; version: number | null; record: string | null };

/** The data file: WAL, the chosen durability, the tables migrated; a schema newer than this code is refused. */
function openDataFile(options: SqliteDatasetStoreOptions): Db {
  const db = new Database(options.path);
  db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL'}`);
  db.transaction(() => {
    db.exec(DDL);
    const columns = db.prepare('PRAGMA table_info(sy_dataset_meta)').all() as { name: string }[];
    if (!columns.some((c) => c.name === 'generation')) db.exec("ALTER TABLE sy_dataset_meta ADD COLUMN generation TEXT NOT NULL DEFAULT ''");
    db.prepare('INSERT OR IGNORE INTO sy_dataset_schema (id, version) VALUES (1, ?)').run(SCHEMA_VERSION);
    db.prepare('UPDATE sy_dataset_schema SET version = ? WHERE id = 1 AND version < ?').run(SCHEMA_VERSION, SCHEMA_VERSION);
  }).immediate();
  const found = (db.prepare('SELECT version FROM sy_dataset_schema WHERE id = 1').get() as { version: number }).version;
  if (found > SCHEMA_VERSION) {
    db.close();
    throw new SwitchyardError(ErrorCodes.SCHEMA_TOO_NEW, `SQLite dataset schema in ${options.path} is version ${found}; this code knows ${SCHEMA_VERSION}.`, {
      fix: 'Upgrade Switchyard in this process to the version the other processes use.',
    });
  }
  return db;
}

function prepareStatements(db: Db) {
  return {
    ensureMeta: db.prepare('INSERT OR IGNORE INTO sy_dataset_meta (dataset, version, trimmed_through, generation) VALUES (?, 0, 0, ?)'),
    meta: db.prepare('SELECT version, trimmed_through AS trimmed, generation FROM sy_dataset_meta WHERE dataset = ?'),
    setGeneration: db.prepare('UPDATE sy_dataset_meta SET generation = ? WHERE dataset = ?'),
    restart: db.prepare('UPDATE sy_dataset_meta SET version = ?, trimmed_through = max(trimmed_through, ?), generation = ? WHERE dataset = ?'),
    setVersion: db.prepare('UPDATE sy_dataset_meta SET version = ? WHERE dataset = ?'),
    entryVersion: db.prepare('SELECT version FROM sy_dataset_entries WHERE dataset = ? AND key = ?'),
    upsert: db.prepare(
      'INSERT INTO sy_dataset_entries (dataset, key, value, version) VALUES (?, ?, ?, ?) ON CONFLICT (dataset, key) DO UPDATE SET value = excluded.value, version = excluded.version',
    ),
    deleteEntry: db.prepare('DELETE FROM sy_dataset_entries WHERE dataset = ? AND key = ?'),
    insertLog: db.prepare('INSERT INTO sy_dataset_log (dataset, version, record) VALUES (?, ?, ?)'),
    // The meta row, joined with the page of the log after a version (none when that is below the trim point).
    readPage: db.prepare(
      `SELECT m.version AS head, m.trimmed_through AS trimmed, m.generation, l.version, l.record FROM sy_dataset_meta m
       LEFT JOIN sy_dataset_log l ON l.dataset = m.dataset AND l.version > ? AND ? >= m.trimmed_through
       WHERE m.dataset = ? ORDER BY l.version ${BOUND_LIMIT}`,
    ),
    entries: db.prepare('SELECT key, value, version FROM sy_dataset_entries WHERE dataset = ?'),
    trimLog: db.prepare('DELETE FROM sy_dataset_log WHERE dataset = ? AND version <= ?'),
    setTrimmed: db.prepare('UPDATE sy_dataset_meta SET trimmed_through = ? WHERE dataset = ?'),
  };
}
type Statements = ReturnType<typeof prepareStatements>;

/** Reads never write (a deferred read upgraded to a write can fail with SQLITE_BUSY_SNAPSHOT). */
const readMeta = (q: Statements, dataset: string): Meta => (q.meta.get(dataset) as Meta | undefined) ?? { version: 0, trimmed: 0, generation: '' };

/** Inside a write transaction: the counter row, created when missing. */
function ensureMeta(q: Statements, dataset: string): Meta {
  q.ensureMeta.run(dataset, newGeneration());
  return q.meta.get(dataset) as Meta;
}

/** Inside a write transaction: the counter row exists with a generation, and head >= floor (a new generation when it was below). */
function advanceInTransaction(q: Statements, dataset: string, floor: number): Meta {
  const m = ensureMeta(q, dataset);
  if (m.version < floor) {
    const generation = newGeneration();
    q.restart.run(floor, floor, generation, dataset);
    q.trimLog.run(dataset, floor);
    return { version: floor, trimmed: Math.max(m.trimmed, floor), generation };
  }
  if (m.generation === '') {
    const generation = newGeneration();
    q.setGeneration.run(generation, dataset);
    return { ...m, generation };
  }
  return m;
}

/** Every store operation on the data file as one transaction (writes run them IMMEDIATE, reads DEFERRED or as one statement). */
function createTransactions(db: Db) {
  const q = prepareStatements(db);
  return {
    append: db.transaction((dataset: string, record: NewRecord, above: number): Appended => {
      const { version, generation } = advanceInTransaction(q, dataset, above);
      for (const c of conditionsOf(record)) {
        const row = q.entryVersion.get(dataset, c.key) as { version: number } | undefined;
        const actual = row?.version ?? 0;
        if (actual !== c.ifVersion) throw conflictError(dataset, c.key, c.ifVersion, actual);
      }
      const next = version + 1;
      for (const op of appliedOps(record)) {
        if (isDelete(op)) q.deleteEntry.run(dataset, op.key);
        else q.upsert.run(dataset, op.key, JSON.stringify(op.value), next);
      }
      q.insertLog.run(dataset, next, encodeRecord(record));
      q.setVersion.run(next, dataset);
      return { version: next, generation };
    }),
    advance: db.transaction((dataset: string, floor: number) => {
      const m = advanceInTransaction(q, dataset, floor);
      return { head: m.version, generation: m.generation };
    }),
    /** One statement, so one implicit read transaction: the head, the trim point and the page agree. */
    read(dataset: string, after: number, limit: number): ReadResult {
      const rows = q.readPage.all(after, after, dataset, limit) as PageRow[];
      const m = rows[0] ?? { head: 0, trimmed: 0, generation: '', version: null, record: null };
      const at = { head: m.head, generation: m.generation };
      if (after < m.trimmed) return { kind: 'gap', trimmedThrough: m.trimmed, ...at };
      const records: LogRecord[] = [];
      for (const r of rows) if (r.version !== null) records.push(decodeRecord(dataset, r.version, r.record!));
      return { kind: 'records', records, ...at };
    },
    snapshot: db.transaction((dataset: string): Snapshot => {
      const { version, generation } = readMeta(q, dataset);
      const rows = q.entries.all(dataset) as { key: string; value: string; version: number }[];
      return { version, generation, entries: rows.map((r) => ({ key: r.key, value: decodeValue(dataset, r.key, r.value), version: r.version })) };
    }),
    trim: db.transaction((dataset: string, through: number): number => {
      const m = ensureMeta(q, dataset);
      const point = Math.max(m.trimmed, Math.min(through, m.version));
      q.trimLog.run(dataset, point);
      q.setTrimmed.run(point, dataset);
      return point;
    }),
    readMeta: (dataset: string) => readMeta(q, dataset),
  };
}

/** The membership file: heartbeats rewritten often, no fsync, away from the data file's write lock. */
function openMembershipFile(options: SqliteDatasetStoreOptions) {
  const members = new Database(options.membershipPath ?? (options.path === ':memory:' ? ':memory:' : `${options.path}-members`));
  members.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
  members.pragma('journal_mode = WAL');
  members.pragma('synchronous = OFF');
  members.exec(MEMBERS_DDL);
  const beat = members.prepare(
    'INSERT INTO sy_dataset_replicas (dataset, replica, report) VALUES (?, ?, ?) ON CONFLICT (dataset, replica) DO UPDATE SET report = excluded.report',
  );
  const leave = members.prepare('DELETE FROM sy_dataset_replicas WHERE dataset = ? AND replica = ?');
  const replicas = members.prepare('SELECT report FROM sy_dataset_replicas WHERE dataset = ?');
  return {
    beat: (dataset: string, report: ReplicaReport) => void beat.run(dataset, report.replica, JSON.stringify(report)),
    leave: (dataset: string, replica: string) => void leave.run(dataset, replica),
    reports: (dataset: string) => (replicas.all(dataset) as { report: string }[]).map((r) => decodeReport(dataset, r.report)),
    close: () => members.close(),
  };
}

/**
 * Wake-ups for commits by other processes. A writer touches the dataset's signal file after its
 * commit (`<path>-switchyard-signals/dataset-NN`, the doorbell the queues use too), so a woken
 * process finds the commit visible with one `PRAGMA data_version` check. A poll of the same pragma
 * every pollMs covers what no doorbell announces: a missed event, a replaced file, a writer of
 * another version or tool. (Watching the -wal file instead fired several events per commit, all
 * before the commit was visible: every replica re-checked about seven times per change.)
 */
function createCommitWakeups(db: Db, options: SqliteDatasetStoreOptions) {
  const watchers = new Set<() => void>();
  const dataVersion = db.prepare('PRAGMA data_version').pluck();
  // The queues' doorbells, in their own files (`dataset-NN`): a dataset write wakes no queue receiver.
  const bells = options.path === ':memory:' ? undefined : new QueueSignals(options.path, 'dataset-');
  let pollTimer: ReturnType<typeof setInterval> | undefined;
  let lastDataVersion = 0;
  let closed = false;

  const wakeAll = () => {
    for (const wake of watchers) wake();
  };
  /** Wakes the watchers when another connection committed since the last check. */
  const poll = () => {
    if (closed) return;
    let current: number;
    try {
      current = dataVersion.get() as number;
    } catch {
      return; // busy or closing: the next tick or the replica's catch-up read covers it
    }
    if (current === lastDataVersion) return;
    lastDataVersion = current;
    wakeAll();
  };

  return {
    /** After our own commit (it does not change our data_version): wake local watchers and ring the bell. */
    committed(dataset: string) {
      wakeAll();
      bells?.notify([dataset]);
    },
    watch(dataset: string, onWake: () => void): () => Promise<void> {
      watchers.add(onWake);
      const unsubscribe = bells?.subscribe(dataset, poll);
      if (!pollTimer) {
        lastDataVersion = dataVersion.get() as number;
        pollTimer = setInterval(poll, options.pollMs ?? 250);
        pollTimer.unref?.();
      }
      return async () => {
        watchers.delete(onWake);
        unsubscribe?.();
        if (watchers.size === 0 && pollTimer) {
          clearInterval(pollTimer);
          pollTimer = undefined;
        }
      };
    },
    close() {
      closed = true;
      clearInterval(pollTimer);
      bells?.close();
      watchers.clear();
    },
  };
}

export function sqliteDatasetStore(options: SqliteDatasetStoreOptions): DatasetStore {
  const db = openDataFile(options);
  const tx = createTransactions(db);
  const members = openMembershipFile(options);
  const wakeups = createCommitWakeups(db, options);
  let closed = false;

  return {
    backend: 'sqlite',
    async append(dataset, record, options = {}) {
      checkDatasetName(dataset);
      const appended = tx.append.immediate(dataset, record, Math.max(0, Math.floor(options.above ?? 0)));
      wakeups.committed(dataset);
      return appended;
    },
    async advance(dataset, floor) {
      checkDatasetName(dataset);
      const result = tx.advance.immediate(dataset, Math.max(0, Math.floor(floor)));
      wakeups.committed(dataset);
      return result;
    },
    async readSince(dataset, afterVersion, limit) {
      return tx.read(dataset, afterVersion, limit);
    },
    async snapshot(dataset) {
      return tx.snapshot.deferred(dataset);
    },
    async watch(dataset, onWake) {
      return wakeups.watch(dataset, () => onWake());
    },
    async heartbeat(dataset, report) {
      members.beat(dataset, report);
    },
    async leave(dataset, replica) {
      members.leave(dataset, replica);
    },
    async membership(dataset) {
      const { version: head, generation } = tx.readMeta(dataset);
      return { head, generation, replicas: members.reports(dataset) };
    },
    async trim(dataset, throughVersion) {
      return tx.trim.immediate(dataset, throughVersion);
    },
    async close() {
      if (closed) return;
      closed = true;
      wakeups.close();
      members.close();
      db.close();
    },
  };
}
