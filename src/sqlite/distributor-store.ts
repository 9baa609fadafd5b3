/**
 * The distributor's state in the shared SQLite file (usually the transport's own file): workers,
 * ready slots and the ownership lease, in three tables. Its own connection; every save is one
 * IMMEDIATE transaction, grouped with saves queued in the same tick (one fsync).
 */
import type Database from 'better-sqlite3';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { SlotRecord, StateChange, WorkerRecord, WorkerStatus } from '../scaleout/distributor-state.js';
import { fencedError, type DistributorStore, type OwnershipClaim, type OwnershipFence, type StoredDistributorState } from '../scaleout/distributor-store.js';
import { GroupCommitter, migrate, openDatabase } from './database.js';
import { SqliteUnitOfWork, StatementCache, type SqliteConnection } from './session.js';
import type { SqliteOptions, Synchronous } from './options.js';
import type { StorageSession } from '../core/transport.js';

/**
 * The durability a distributor process's own connections (its transport and this store) need:
 * `normal`, no fsync per commit. Everything a distributor commits is a move of a message that is
 * already durable (data queue -> worker queue, control queue -> consumed) plus slot bookkeeping.
 * WAL frames carry cumulative checksums, so a power loss rolls back a suffix of commits, never a
 * commit while keeping a later one: a forward lost that way leaves its message in the data queue
 * (forwarded again), and anything built on a forward (a worker's claim, its completion) commits
 * with `full` later, making the forward durable with it. Measured: distributor.workers-4 1,450 ->
 * 1,710 msgs/s in one A/B run on the benchmark machine (docs/distributor.md).
 */
export const DISTRIBUTOR_SYNCHRONOUS: Synchronous = 'normal';

const MIGRATIONS = [
  {
    version: 1,
    breaking: false,
    sql: `
      CREATE TABLE sy_distributor_workers (
        endpoint TEXT NOT NULL, address TEXT NOT NULL, session TEXT NOT NULL, capacity INTEGER NOT NULL,
        status TEXT NOT NULL, last_seen INTEGER NOT NULL, PRIMARY KEY (endpoint, address));
      CREATE TABLE sy_distributor_slots (
        endpoint TEXT NOT NULL, id TEXT NOT NULL, worker TEXT NOT NULL, session TEXT NOT NULL, seq INTEGER NOT NULL,
        message_id TEXT, PRIMARY KEY (endpoint, id));
      CREATE INDEX sy_distributor_slots_worker ON sy_distributor_slots (endpoint, worker);
      CREATE TABLE sy_distributor_owner (endpoint TEXT PRIMARY KEY, owner TEXT NOT NULL, until INTEGER NOT NULL);`,
  },
  {
    // The fencing epoch: grows with each change of owner; a release keeps the row (until = 0) so it is never reused.
    version: 2,
    breaking: false,
    sql: 'ALTER TABLE sy_distributor_owner ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;',
  },
] as const;

interface WorkerRow {
  address: string;
  session: string;
  capacity: number;
  status: string;
  last_seen: number;
}
interface OwnerRow {
  owner: string;
  epoch: number;
  until: number;
}
interface SlotRow {
  id: string;
  worker: string;
  session: string;
  seq: number;
  message_id: string | null;
}

/** Every statement the store runs, prepared once per connection (its own, or the transport's for a forward's writes). */
function prepare(d: SqliteConnection) {
  return {
    workers: d.prepare('SELECT address, session, capacity, status, last_seen FROM sy_distributor_workers WHERE endpoint = ?'),
    slots: d.prepare('SELECT id, worker, session, seq, message_id FROM sy_distributor_slots WHERE endpoint = ?'),
    putWorker: d.prepare(`INSERT INTO sy_distributor_workers (endpoint, address, session, capacity, status, last_seen) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (endpoint, address) DO UPDATE SET session = excluded.session, capacity = excluded.capacity, status = excluded.status, last_seen = excluded.last_seen`),
    dropSlots: d.prepare('DELETE FROM sy_distributor_slots WHERE endpoint = ? AND worker = ?'),
    putSlot: d.prepare(`INSERT INTO sy_distributor_slots (endpoint, id, worker, session, seq, message_id) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (endpoint, id) DO UPDATE SET message_id = excluded.message_id`),
    deleteSlot: d.prepare('DELETE FROM sy_distributor_slots WHERE endpoint = ? AND id = ?'),
    owner: d.prepare(OWNER),
    putOwner: d.prepare(`INSERT INTO sy_distributor_owner (endpoint, owner, epoch, until) VALUES (?, ?, ?, ?)
      ON CONFLICT (endpoint) DO UPDATE SET owner = excluded.owner, epoch = excluded.epoch, until = excluded.until`),
    renewOwner: d.prepare('UPDATE sy_distributor_owner SET until = ? WHERE endpoint = ? AND owner = ? AND epoch = ?'),
  };
}
type Statements = ReturnType<typeof prepare>;

/** One state change, inside the save's transaction. */
function applyChange(statements: Statements, endpoint: string, change: StateChange): void {
  switch (change.kind) {
    case 'put-worker': {
      const w = change.worker;
      statements.putWorker.run(endpoint, w.address, w.session, w.capacity, w.status, w.lastSeen);
      return;
    }
    case 'drop-slots':
      statements.dropSlots.run(endpoint, change.worker);
      return;
    case 'put-slot': {
      const s = change.slot;
      statements.putSlot.run(endpoint, s.id, s.worker, s.session, s.seq, s.messageId);
      return;
    }
    case 'delete-slot':
      statements.deleteSlot.run(endpoint, change.slot);
      return;
  }
}

/** What `load` returns: the stored rows as records. */
function readState(statements: Statements, endpoint: string): StoredDistributorState {
  const workers = (statements.workers.all(endpoint) as WorkerRow[]).map(
    (r): WorkerRecord => ({ address: r.address, session: r.session, capacity: r.capacity, status: r.status as WorkerStatus, lastSeen: r.last_seen }),
  );
  const slots = (statements.slots.all(endpoint) as SlotRow[]).map(
    (r): SlotRecord => ({ id: r.id, worker: r.worker, session: r.session, seq: r.seq, messageId: r.message_id }),
  );
  return { workers, slots };
}

const MAIN_FILE = "SELECT file FROM pragma_database_list WHERE name = 'main'";
const OWNER = 'SELECT owner, epoch, until FROM sy_distributor_owner WHERE endpoint = ?';

/** Statements on the transport connections whose transactions a save rode (one per transport). */
const alongsideStatements = new WeakMap<SqliteConnection, Statements>();

/**
 * A fenced save inside another connection's transaction on the same file (the forward's): the
 * fence is read there and then, under that transaction's write lock, and the changes are queued
 * to run right after, before the forward's own writes.
 */
function saveOn(session: SqliteUnitOfWork, file: string, endpoint: string, fence: OwnershipFence, changes: readonly StateChange[]): boolean {
  if (session.query<{ file: string }>(MAIN_FILE)[0]?.file !== file) return false;
  const current = session.query<OwnerRow>(OWNER, endpoint)[0];
  if (current?.owner !== fence.owner || current.epoch !== fence.epoch) throw fencedError(endpoint, fence, current?.owner);
  session.write((db) => {
    let statements = alongsideStatements.get(db);
    if (!statements) alongsideStatements.set(db, (statements = prepare(db)));
    for (const change of changes) applyChange(statements, endpoint, change);
  });
  return true;
}

/** The claim's transaction: the lease is free or expired on this machine's clock -> a new epoch. */
function claimIn(statements: Statements, endpoint: string, owner: string, leaseMs: number): OwnershipClaim {
  const now = Date.now();
  const current = statements.owner.get(endpoint) as OwnerRow | undefined;
  if (current && current.until > now) return { acquired: false, holder: current.owner, until: current.until };
  const epoch = (current?.epoch ?? 0) + 1;
  statements.putOwner.run(endpoint, owner, epoch, now + leaseMs);
  return { acquired: true, fence: { owner, epoch } };
}

export function sqliteDistributorStore(options: SqliteOptions): DistributorStore {
  let db: Database.Database | undefined;
  let committer: GroupCommitter;
  let statements: Statements;
  let file = '';

  const opened = () => {
    if (!db) {
      throw new SwitchyardError(ErrorCodes.NOT_RUNNING, 'The SQLite distributor store is not open.', {
        fix: 'Call store.open() (startDistributor does) before using it, and do not use it after close().',
      });
    }
    return db;
  };

  return {
    async open() {
      if (db) return;
      const d = openDatabase(options);
      migrate(d, 'distributor', MIGRATIONS);
      statements = prepare(new StatementCache(d));
      file = d.prepare(MAIN_FILE).pluck().get() as string;
      committer = new GroupCommitter(d, options.busyTimeoutMs, options.synchronous);
      db = d;
    },
    async load(endpoint) {
      opened();
      return readState(statements, endpoint);
    },
    async save(endpoint, fence, changes) {
      opened();
      await committer.run(() => {
        const current = statements.owner.get(endpoint) as OwnerRow | undefined;
        if (current?.owner !== fence.owner || current.epoch !== fence.epoch) throw fencedError(endpoint, fence, current?.owner);
        for (const change of changes) applyChange(statements, endpoint, change);
      });
    },
    saveAlongside(session: StorageSession, endpoint, fence, changes) {
      opened();
      return session instanceof SqliteUnitOfWork && saveOn(session, file, endpoint, fence, changes);
    },
    async claimOwnership(endpoint, owner, leaseMs) {
      opened();
      return committer.run(() => claimIn(statements, endpoint, owner, leaseMs));
    },
    async renewOwnership(endpoint, fence, leaseMs) {
      opened();
      return committer.run(() => statements.renewOwner.run(Date.now() + leaseMs, endpoint, fence.owner, fence.epoch).changes === 1);
    },
    async releaseOwnership(endpoint, fence) {
      opened();
      await committer.run(() => statements.renewOwner.run(0, endpoint, fence.owner, fence.epoch));
    },
    async close() {
      if (!db) return;
      committer.close();
      db.close();
      db = undefined;
    },
  };
}
