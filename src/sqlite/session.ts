/**
 * The unit of work on SQLite: a handler's own writes on the transport's database commit in the
 * same transaction as the completion of its message and the messages it sent, and roll back
 * with them.
 *
 * better-sqlite3 is synchronous and one connection serves the whole process (its group commit
 * batches many completions into one transaction), so a transaction cannot stay open across a
 * handler's awaits. The handler's writes are therefore queued and run at completion, inside
 * the completing transaction, under a savepoint of their own: a write that fails rolls back its
 * own message's unit (the removal, the sends, every write) and no one else's in the group.
 * Reads (`query`) see what is committed, not the handler's own queued writes.
 */
import type Database from 'better-sqlite3';
import type { HandlerContext } from '../core/context.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { StorageSession } from '../core/transport.js';

/** What a SQLite column takes (better-sqlite3's bind values), spelled out so the public types need no @types package. */
export type SqliteValue = string | number | bigint | Buffer | null;

/** The part of a better-sqlite3 statement a queued write uses. */
export interface SqliteStatement {
  run(...params: SqliteValue[]): { changes: number; lastInsertRowid: number | bigint };
  get(...params: SqliteValue[]): unknown;
  all(...params: SqliteValue[]): unknown[];
}

/** The connection a queued write function gets, inside the completing transaction. */
export interface SqliteConnection {
  prepare(sql: string): SqliteStatement;
}

export interface SqliteSession extends StorageSession {
  readonly storage: 'sqlite';
  /** Queues one statement to run in the completing transaction, in the order queued. */
  run(sql: string, ...params: SqliteValue[]): void;
  /** Queues a function to run in the completing transaction (several statements, a read-modify-write). Must not await. */
  write(fn: (db: SqliteConnection) => void): void;
  /** Reads what is committed now, outside the transaction (queued writes are not visible yet). */
  query<Row = Record<string, unknown>>(sql: string, ...params: SqliteValue[]): Row[];
}

/**
 * Statements a process's handlers run again and again, prepared once per connection.
 * @internal (better-sqlite3 types stay out of the published declarations)
 */
export class StatementCache implements SqliteConnection {
  readonly #statements = new Map<string, Database.Statement>();
  constructor(private readonly db: Database.Database) {}

  prepare(sql: string): SqliteStatement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      // A bound on what a handler building SQL strings per message can pin in memory.
      if (this.#statements.size >= 256) this.#statements.clear();
      statement = this.db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement as unknown as SqliteStatement;
  }
}

/** @internal (handlers reach it through sqliteSession) */
export class SqliteUnitOfWork implements SqliteSession {
  readonly storage = 'sqlite' as const;
  #writes: Array<(db: SqliteConnection) => void> = [];

  constructor(private readonly connection: StatementCache) {}

  get pending(): boolean {
    return this.#writes.length > 0;
  }

  run(sql: string, ...params: SqliteValue[]): void {
    this.#writes.push((db) => void db.prepare(sql).run(...params));
  }

  write(fn: (db: SqliteConnection) => void): void {
    this.#writes.push(fn);
  }

  query<Row = Record<string, unknown>>(sql: string, ...params: SqliteValue[]): Row[] {
    return this.connection.prepare(sql).all(...params) as Row[];
  }

  discard(): void {
    this.#writes = [];
  }

  /**
   * Runs the queued writes. Inside the completing transaction, under the savepoint the caller
   * opened: a SwitchyardError lets the group commit the others without this unit.
   */
  apply(): void {
    try {
      for (const write of this.#writes) write(this.connection);
    } catch (cause) {
      throw new SwitchyardError(ErrorCodes.UNIT_OF_WORK_FAILED, `A write queued on the SQLite unit of work failed: ${(cause as Error)?.message ?? String(cause)}. Nothing of this message's unit was committed.`, {
        fix: 'The cause is the database error: fix the SQL or the data; the message is retried like a handler failure.',
        cause,
      });
    }
  }
}

/**
 * The SQLite unit of work of the message a handler is handling:
 * `sqliteSession(ctx).run('INSERT INTO orders (id) VALUES (?)', order.id)`.
 */
export function sqliteSession(context: Pick<HandlerContext, 'unitOfWork'>): SqliteSession {
  const session = context.unitOfWork;
  if (session instanceof SqliteUnitOfWork) return session;
  throw new SwitchyardError(
    ErrorCodes.NO_UNIT_OF_WORK,
    session
      ? `sqliteSession() was given a handler context whose unit of work is on ${session.storage}, not SQLite.`
      : 'sqliteSession() was given a context with no unit of work: the endpoint does not run on sqliteTransport, or this is not a handler context.',
    { fix: "Run the endpoint on sqliteTransport({ path }) and pass the handler's own context; see docs/sqlite.md." },
  );
}
