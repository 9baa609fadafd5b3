/** What every PostgreSQL adapter takes to reach its database: a schema name and a pool, checked the same way. */
import type pg from 'pg';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import { loadPeerDependency } from '../core/peer-dependency.js';

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

export interface PostgresConnectionOptions {
  /** e.g. `postgres://user@127.0.0.1:5432/db`; or pass `pool`. */
  connectionString?: string;
  /** A pool you own (not ended by close()). */
  pool?: pg.Pool;
  /** Schema for the tables (default `switchyard`). */
  schema?: string;
  /** Max pool size when the adapter creates the pool (default 4). */
  maxConnections?: number;
}

/** The quoted schema name, or SY_ERR_CONFIG saying what a valid one looks like. */
export function quotedSchema(schema: string | undefined): string {
  const name = schema ?? 'switchyard';
  if (!IDENT.test(name)) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `PostgreSQL schema name ${JSON.stringify(name)} is not valid.`, {
      fix: 'Use lower-case letters, digits and underscores, starting with a letter or underscore.',
    });
  }
  return `"${name}"`;
}

/** The caller's pool, or one made from `connectionString` (then `owned`: the adapter ends it on close). */
export function poolFor(options: PostgresConnectionOptions, adapter: string): { pool: pg.Pool; owned: boolean } {
  if (options.pool) return { pool: options.pool, owned: false };
  if (!options.connectionString) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `${adapter} needs a connectionString or a pool.`, {
      fix: 'Pass { connectionString: process.env.DATABASE_URL } or { pool }.',
    });
  }
  const { Pool } = loadPeerDependency<typeof pg>('pg', 'switchyard/postgres');
  const pool = new Pool({ connectionString: options.connectionString, max: options.maxConnections ?? 4 });
  // An idle client's error (server restart) must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  return { pool, owned: true };
}
