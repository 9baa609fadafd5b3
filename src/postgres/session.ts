/**
 * The unit of work on PostgreSQL: the client of the transaction a handler's message is handled
 * in. Its queries, the messages the handler sends and the record that the message was processed
 * commit together; a throw rolls all of it back.
 */
import type pg from 'pg';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { StorageSession } from '../core/transport.js';

/** @internal (handlers reach it through postgresClient) */
export class PostgresUnitOfWork implements StorageSession {
  readonly storage = 'postgres' as const;
  constructor(private readonly transaction: pg.PoolClient) {}

  /** The transaction's client (already begun). */
  client(): Promise<pg.ClientBase> {
    return Promise.resolve(this.transaction);
  }
  /** The transaction rolls back when the handler throws: nothing to forget here. */
  discard(): void {}
}

/**
 * The transaction's client for the message a handler is handling (or for `endpoint.transaction`'s
 * work): `const db = await postgresClient(ctx); await db.query('INSERT INTO orders ...', [...])`.
 */
export function postgresClient(context: { readonly unitOfWork: StorageSession | undefined }): Promise<pg.ClientBase> {
  const session = context.unitOfWork;
  if (session instanceof PostgresUnitOfWork) return session.client();
  throw new SwitchyardError(
    ErrorCodes.NO_UNIT_OF_WORK,
    session
      ? `postgresClient() was given a context whose unit of work is on ${session.storage}, not PostgreSQL.`
      : 'postgresClient() was given a context with no unit of work: the endpoint has no PostgreSQL outbox, or this is not a handler context.',
    { fix: "Give the endpoint outbox: postgresOutbox({ pool }) from 'switchyard/postgres' and pass the handler's own context." },
  );
}

