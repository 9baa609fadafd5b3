/**
 * Opening a shared SQLite database file: checks the path, WAL, the durability setting, numbered
 * migrations that are race-safe across processes and refuse a schema newer than this code, and
 * group commit (many operations, one transaction, one fsync).
 */
import Database from 'better-sqlite3';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { SqliteOptions, Synchronous } from './options.js';

/**
 * A LIMIT bound at run time. SQLite (3.53 here) folds a bare `LIMIT ?` into the query plan, so
 * every bind expires the statement and each run re-prepares it (parse and plan again: twice the
 * cost of a one-row read). An expression is evaluated at run time and keeps the plan.
 */
export const BOUND_LIMIT = 'LIMIT CAST(? AS INTEGER)';

export interface Migration {
  readonly version: number;
  /** A breaking migration: older code must refuse to run against it. */
  readonly breaking: boolean;
  readonly sql: string;
}

/** @internal (better-sqlite3 types stay out of the published declarations) */
export function openDatabase(options: SqliteOptions): Database.Database {
  const file = options.path;
  if (typeof file !== 'string' || file.length === 0) {
    throw new SwitchyardError(ErrorCodes.CONFIG, 'The SQLite option `path` is missing.', {
      fix: "Pass sqliteTransport({ path: './switchyard.db' }); every process of the system must use the same file.",
    });
  }
  const dir = path.dirname(path.resolve(file));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `The SQLite option \`path\` is ${JSON.stringify(file)}, but its folder ${dir} does not exist.`, {
      fix: `Create the folder (mkdir -p ${dir}) or point \`path\` at an existing one.`,
    });
  }
  let db: Database.Database;
  try {
    db = new Database(file, { timeout: options.busyTimeoutMs ?? 5000 });
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
  } catch (cause) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `Cannot open the SQLite database at ${JSON.stringify(file)}: ${(cause as Error).message}.`, {
      fix: 'Check that the file is a SQLite database and that this process may read and write it and its folder.',
      cause,
    });
  }
  return db;
}

/**
 * Applies pending migrations for one schema (`component`), each in its own IMMEDIATE transaction.
 * @internal (better-sqlite3 types stay out of the published declarations)
 */
export function migrate(db: Database.Database, component: string, migrations: readonly Migration[]): void {
  db.exec(`CREATE TABLE IF NOT EXISTS sy_schema (
    component TEXT NOT NULL, version INTEGER NOT NULL, breaking INTEGER NOT NULL, applied_at INTEGER NOT NULL,
    PRIMARY KEY (component, version))`);
  const known = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  for (const migration of migrations) {
    db.transaction(() => {
      const newestBreaking = db
        .prepare('SELECT MAX(version) AS v FROM sy_schema WHERE component = ? AND breaking = 1')
        .get(component) as { v: number | null };
      if ((newestBreaking.v ?? 0) > known) {
        throw new SwitchyardError(
          ErrorCodes.SCHEMA_TOO_NEW,
          `The ${component} schema in this database is at breaking version ${newestBreaking.v}, newer than this code understands (${known}).`,
          { fix: 'Upgrade Switchyard in this process to the version the other processes run.' },
        );
      }
      // Inserting the version row first makes a lost race a no-op for the loser.
      const claimed = db
        .prepare('INSERT OR IGNORE INTO sy_schema (component, version, breaking, applied_at) VALUES (?, ?, ?, ?)')
        .run(component, migration.version, migration.breaking ? 1 : 0, Date.now());
      if (claimed.changes === 1) db.exec(migration.sql);
    }).immediate();
  }
}

interface PendingOp {
  fn: () => unknown;
  durable: boolean;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * Runs work under a savepoint of the transaction in progress (the group commit's): a throw undoes
 * only what that work wrote, then propagates, and the rest of the group commits. better-sqlite3
 * makes a transaction function called inside a transaction a SAVEPOINT ... RELEASE pair.
 * @internal
 */
export function savepointRunner(db: Database.Database): <T>(work: () => T) => T {
  const nested = db.transaction((work: () => unknown) => work());
  return <T>(work: () => T): T => nested(work) as T;
}

/**
 * `durable`: an acknowledgement (a send, a completion) that must survive power loss when the
 * connection is synchronous=FULL. `bookkeeping`: a change that is safe to lose with the commits
 * after it (a claim, a lease renewal, an abandon: the message then becomes visible again).
 */
export type Durability = 'durable' | 'bookkeeping';

/** How long a group waits between attempts at the write lock while another process holds it. */
const LOCK_RETRY_MS = 1;

function isBusy(error: unknown): boolean {
  return (error as { code?: string } | null)?.code === 'SQLITE_BUSY';
}

/**
 * Group commit: operations queued in the same tick run in one IMMEDIATE transaction (one fsync).
 * An operation must check everything before it writes and throw a SwitchyardError if a check
 * fails (a fenced completion, a missing queue): it then has written nothing, so the others in
 * the group commit without it. Any other error (I/O, constraint) fails the whole group.
 *
 * A group of bookkeeping operations only commits with synchronous=NORMAL (no fsync) on a FULL
 * connection. That is safe: WAL recovery keeps a prefix of commits (cumulative checksums), and
 * the next durable commit's fsync covers every earlier commit's frames, so a power loss can
 * undo a claim only together with everything that came after it.
 *
 * The write lock is taken without SQLite's busy handler, which sleeps inside the call (1, 2, 5,
 * 10 ... ms) and so blocks the whole process while another process commits. Here a busy lock
 * is tried again on a 1 ms timer: the event loop keeps running, operations queued meanwhile join
 * the waiting group, and a group gives up with the busy error after `busyTimeoutMs`. (Waking
 * waiters at other processes' commits instead was tried: see docs/sqlite.md.)
 * @internal (better-sqlite3 types stay out of the published declarations)
 */
export class GroupCommitter {
  private queue: PendingOp[] = [];
  private scheduled = false;
  /** When the waiting group first found the lock busy. */
  private busySince: number | undefined;
  private retry: NodeJS.Timeout | undefined;
  private readonly begin;
  private readonly commit;
  private readonly rollback;
  /** The level the connection is at now; FULL groups need `synchronous` full. */
  private level: Synchronous;

  constructor(
    private readonly db: Database.Database,
    private readonly busyTimeoutMs = 5000,
    private readonly synchronous: Synchronous = 'full',
  ) {
    this.level = synchronous;
    this.begin = db.prepare('BEGIN IMMEDIATE');
    this.commit = db.prepare('COMMIT');
    this.rollback = db.prepare('ROLLBACK');
  }

  run<T>(fn: () => T, durability: Durability = 'durable'): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, durable: durability === 'durable', resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits what is queued, waiting for the lock if need be; call before closing the database. */
  close(): void {
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    this.flush(true);
  }

  /** Runs the queued group. `wait`: let SQLite's busy handler block instead of retrying later. */
  private flush(wait = false): void {
    this.scheduled = false;
    this.retry = undefined;
    if (this.queue.length === 0) return;
    if (!this.lock(wait)) return;
    const ops = this.queue;
    this.queue = [];
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    try {
      for (const op of ops) {
        try {
          outcomes.push({ ok: true, value: op.fn() });
        } catch (error) {
          if (!(error instanceof SwitchyardError)) throw error;
          outcomes.push({ ok: false, error });
        }
      }
      this.commit.run();
    } catch (error) {
      // The group failed as a whole (I/O, a constraint): nothing of it happened.
      if (this.db.inTransaction) this.rollback.run();
      for (const op of ops) op.reject(error);
      return;
    }
    ops.forEach((op, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) op.resolve(outcome.value);
      else op.reject(outcome.error);
    });
  }

  /** Begins the transaction; false when the lock is busy and a retry is scheduled (or the group failed). */
  private lock(wait: boolean): boolean {
    const level = this.synchronous === 'full' && !this.queue.some((op) => op.durable) ? 'normal' : this.synchronous;
    // Not prepared statements: SQLite applies these pragmas when they are prepared, not when run.
    if (level !== this.level) {
      this.db.pragma(`synchronous = ${level === 'full' ? 'FULL' : 'NORMAL'}`);
      this.level = level;
    }
    if (!wait) this.db.pragma('busy_timeout = 0');
    try {
      this.begin.run();
      this.busySince = undefined;
      return true;
    } catch (error) {
      const now = Date.now();
      this.busySince ??= now;
      if (!isBusy(error) || wait || now - this.busySince >= this.busyTimeoutMs) {
        this.busySince = undefined;
        const ops = this.queue;
        this.queue = [];
        for (const op of ops) op.reject(error);
        return false;
      }
      this.scheduled = true;
      this.retry = setTimeout(() => this.flush(), LOCK_RETRY_MS);
      return false;
    } finally {
      if (!wait) this.db.pragma(`busy_timeout = ${Math.max(0, Math.floor(this.busyTimeoutMs))}`);
    }
  }
}
