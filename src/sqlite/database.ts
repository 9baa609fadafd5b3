/**
 * Opening a shared SQLite database file: checks the path, WAL, the durability setting, numbered
 * migrations that are race-safe across processes and refuse a schema newer than this code, and
 * group commit (many operations, one transaction, one fsync).
 */
import Database from 'better-sqlite3';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';

export type Synchronous = 'full' | 'normal';

export interface SqliteOptions {
  /** Database file; every process of the system opens the same file. */
  path: string;
  /**
   * `full` (default): what is acknowledged survives power loss. `normal`: survives a process
   * crash, but a power loss may roll back the last commits. Measure before choosing `normal`.
   */
  synchronous?: Synchronous;
  /** How long a writer waits for another process's write lock before failing. */
  busyTimeoutMs?: number;
}

export interface Migration {
  readonly version: number;
  /** A breaking migration: older code must refuse to run against it. */
  readonly breaking: boolean;
  readonly sql: string;
}

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

/** Applies pending migrations for one schema (`component`), each in its own IMMEDIATE transaction. */
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
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit: operations queued in the same tick run in one IMMEDIATE transaction (one fsync).
 * An operation must check everything before it writes and throw a SwitchyardError if a check
 * fails (a fenced completion, a missing queue): it then has written nothing, so the others in
 * the group commit without it. Any other error (I/O, constraint) fails the whole group.
 */
export class GroupCommitter {
  private queue: PendingOp[] = [];
  private scheduled = false;

  constructor(private readonly db: Database.Database) {}

  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  flush(): void {
    this.scheduled = false;
    const ops = this.queue;
    this.queue = [];
    if (ops.length === 0) return;
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    try {
      this.db
        .transaction(() => {
          for (const op of ops) {
            try {
              outcomes.push({ ok: true, value: op.fn() });
            } catch (error) {
              if (!(error instanceof SwitchyardError)) throw error;
              outcomes.push({ ok: false, error });
            }
          }
        })
        .immediate();
    } catch (error) {
      // The group failed as a whole (busy past the timeout, I/O): nothing of it happened.
      for (const op of ops) op.reject(error);
      return;
    }
    ops.forEach((op, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) op.resolve(outcome.value);
      else op.reject(outcome.error);
    });
  }
}
