/** The connection options every PostgreSQL adapter takes, and the pool it uses. */
import type pg from 'pg';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import { loadPeerDependency } from '../core/peer-dependency.js';

/** The `pg` module, loaded once for every PostgreSQL adapter; missing, it fails with SY_ERR_PACKAGE_MISSING. */
export const pgDriver = loadPeerDependency<typeof pg>('pg', 'switchyard/postgres');

export interface PostgresConnectionOptions {
  /** e.g. `postgres://user@127.0.0.1:5432/db`; or pass `pool`. */
  connectionString?: string;
  /** A pool you own (not ended by close()). */
  pool?: pg.Pool;
  /** Schema of the adapter's tables (default `switchyard`). */
  schema?: string;
  /** Max pool size when the adapter creates the pool. */
  maxConnections?: number;
}

export interface AdapterPool {
  readonly pool: pg.Pool;
  /** Ends the pool when the adapter made it; leaves a pool it was given alone. */
  end(): Promise<void>;
}

export function checkConnectionOptions(adapter: string, options: PostgresConnectionOptions): void {
  if (!options.pool && !options.connectionString) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `${adapter} needs a connectionString or a pool.`, {
      fix: `Pass ${adapter}({ connectionString: process.env.DATABASE_URL }) or { pool }.`,
    });
  }
}

export function adapterPool(options: PostgresConnectionOptions, defaultMax: number): AdapterPool {
  if (options.pool) return { pool: options.pool, end: async () => undefined };
  const pool = new pgDriver.Pool({ connectionString: options.connectionString, max: options.maxConnections ?? defaultMax });
  // An idle client's error (a server restart) must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  return { pool, end: () => (pool.ended ? Promise.resolve() : pool.end()) };
}

/** Where an adapter connects, for errors: host, port and database, never the password. */
export function describeTarget(options: PostgresConnectionOptions): string {
  if (!options.connectionString) return 'the given pool';
  try {
    const url = new URL(options.connectionString);
    return `${url.hostname}:${url.port || '5432'}${url.pathname}`;
  } catch {
    return 'the connection string';
  }
}

/** A pg error (the database unreachable or restarting) as a coded error that names the database. */
export function unreachable(cause: unknown, where: string): SwitchyardError {
  if (cause instanceof SwitchyardError) return cause;
  return new SwitchyardError(ErrorCodes.TRANSPORT, `PostgreSQL at ${where} failed: ${(cause as Error).message}.`, {
    fix: 'Check that the database is running and reachable; the transport reconnects by itself once it is.',
    cause,
  });
}

/**
 * An expression that makes the current transaction commit without waiting for the WAL flush (for
 * that transaction only): for writes whose loss in a server crash is harmless, since the next
 * report or the durability agent repeats them.
 */
export const UNFLUSHED_COMMIT = "set_config('synchronous_commit', 'off', true)";

/** Epoch ms on the database server's clock: every process leases and delays by the same clock. */
export const NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

const preparedNames = new Map<string, string>();
/**
 * A prepared-statement name for a statement's text, the same in every adapter of the process
 * (the text includes the schema, so schemas never share a name): named, a statement is parsed and
 * planned once per connection, not per call.
 */
export function preparedName(text: string): string {
  let name = preparedNames.get(text);
  if (!name) preparedNames.set(text, (name = `sy_pg_${preparedNames.size}`));
  return name;
}

/** Runs `work` on `client` between `begin` and COMMIT (ROLLBACK when it throws). */
export async function withinTransaction<C extends { query(text: string): Promise<unknown> }, T>(client: C, work: (client: C) => Promise<T>, begin = 'BEGIN'): Promise<T> {
  await client.query(begin);
  try {
    const value = await work(client);
    await client.query('COMMIT');
    return value;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** Runs `work` in a transaction on one pooled client (`begin`: e.g. `BEGIN ISOLATION LEVEL SERIALIZABLE`). */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
  const client = await pool.connect();
  try {
    return await withinTransaction(client, work, begin);
  } finally {
    client.release();
  }
}
