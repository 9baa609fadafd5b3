/**
 * The unit of work on PostgreSQL: a receipt's StorageSession holds one pooled client with an open
 * transaction, begun when a handler first asks for it (`postgresClient(ctx)`). The completion of
 * the message and its outgoing messages run on that client, and the COMMIT takes the handler's own
 * SQL with them; a throw (discard), a lost lease or an abandon rolls all of it back.
 */
import type pg from 'pg';
import type { HandlerContext } from '../core/context.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { StorageSession } from '../core/transport.js';

const STORAGE = 'postgres';

export class PostgresSession implements StorageSession {
  readonly storage = STORAGE;
  #client: Promise<pg.PoolClient> | undefined;
  /** The rollback started by discard(), awaited by whatever settles the message next. */
  #ending: Promise<void> | undefined;
  #ended = false;

  constructor(private readonly pool: pg.Pool) {}

  /** True when a handler opened the transaction and nothing has ended it yet. */
  get active(): boolean {
    return this.#client !== undefined && !this.#ended;
  }

  /** The transaction's client, begun on first call. */
  client(): Promise<pg.ClientBase> {
    if (this.#ended) {
      return Promise.reject(new SwitchyardError(ErrorCodes.NOT_RUNNING, 'The unit of work of this message has already been committed or rolled back.', {
        fix: 'Use the client from postgresClient(ctx) only inside the handler, before it returns.',
      }));
    }
    this.#client ??= this.pool.connect().then(async (client) => {
      try {
        await client.query('BEGIN');
        return client;
      } catch (error) {
        client.release(true);
        throw error;
      }
    });
    return this.#client;
  }

  discard(): void {
    this.#ending ??= this.rollback();
  }

  /** Rolls back and releases the client, if one was opened. Never throws: a broken connection rolls back by itself. */
  async rollback(): Promise<void> {
    if (this.#ending) return this.#ending;
    const pending = this.#finish();
    if (!pending) return;
    const client = await pending.catch(() => undefined);
    if (!client) return;
    try {
      await client.query('ROLLBACK');
      client.release();
    } catch (error) {
      client.release(error as Error);
    }
  }

  /** Runs `settle` on the transaction; commits when it returns true, rolls back when it returns false or throws. */
  async commitIf(settle: (client: pg.ClientBase) => Promise<boolean>): Promise<boolean> {
    const pending = this.#finish();
    if (!pending) throw new Error('commitIf needs an active session');
    const client = await pending;
    try {
      const ok = await settle(client);
      await client.query(ok ? 'COMMIT' : 'ROLLBACK');
      client.release();
      return ok;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release(error as Error);
      throw error;
    }
  }

  #finish(): Promise<pg.PoolClient> | undefined {
    if (this.#ended) return undefined;
    this.#ended = true;
    return this.#client;
  }
}

/**
 * The unit of work of a PostgreSQL outbox (src/postgres/outbox.ts): a transaction of the outbox,
 * on the application's database, whatever the transport.
 */
export class PostgresTransactionSession implements StorageSession {
  readonly storage = STORAGE;
  constructor(
    private readonly transaction: pg.PoolClient,
    /** Begins the transaction if the outbox has not yet (it sends BEGIN lazily). */
    private readonly begin: () => Promise<unknown>,
  ) {}

  async client(): Promise<pg.ClientBase> {
    await this.begin();
    return this.transaction;
  }

  /** The outbox rolls the transaction back when the handler throws: nothing to forget here. */
  discard(): void {}
}

/**
 * The transaction a handler's own SQL joins on the PostgreSQL transport (or in a PostgreSQL outbox): what it writes, the
 * messages it sends and the completion of the message it handles commit together; a throw rolls
 * back all of it. Do not commit, roll back or release it yourself.
 *
 * ```ts
 * handle(PlaceOrder, async (order, ctx) => {
 *   const db = await postgresClient(ctx);
 *   await db.query('INSERT INTO orders (id) VALUES ($1)', [order.id]);
 *   await ctx.publish(OrderPlaced, { id: order.id });
 * });
 * ```
 */
export function postgresClient(context: Pick<HandlerContext, 'unitOfWork'>): Promise<pg.ClientBase> {
  const session = context.unitOfWork;
  if (!(session instanceof PostgresSession) && !(session instanceof PostgresTransactionSession)) {
    return Promise.reject(new SwitchyardError(
      ErrorCodes.NO_UNIT_OF_WORK,
      session
        ? `postgresClient(ctx) needs a PostgreSQL unit of work, but this message's unit of work is on ${session.storage}.`
        : 'postgresClient(ctx) needs a PostgreSQL unit of work, and this context has none (not in a handler, or the transport is not PostgreSQL).',
      { fix: "Call it inside a handler (or endpoint.transaction's work) of an endpoint whose transport is postgresTransport(...) or whose outbox is postgresOutbox(...) (docs/outbox.md)." },
    ));
  }
  return session.client();
}
