/**
 * Numbered migrations for the PostgreSQL transport and stores, the same story as src/sqlite's:
 * a version table per schema (`<schema>.schema_versions`, one row per component and version),
 * race-safe across processes (one transaction under an advisory lock per schema, so two first
 * starts serialise and the second finds the rows and skips), and a schema migrated by newer code
 * with a breaking change is refused with SY_ERR_SCHEMA_TOO_NEW.
 */
import type pg from 'pg';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';

export interface PostgresMigration {
  readonly version: number;
  /** A breaking migration: older code must refuse to run against it. */
  readonly breaking: boolean;
  /** Statements; `{s}` stands for the quoted schema name. */
  readonly sql: string;
}

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

/** Checks a schema name (it is spliced into SQL) and returns it quoted. */
export function quotedSchema(schema: string, adapter: string): string {
  if (!IDENT.test(schema)) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `The ${adapter} option \`schema\` is ${JSON.stringify(schema)}, which is not a valid schema name here.`, {
      fix: 'Use lower-case letters, digits and underscores, starting with a letter or underscore (at most 63 characters).',
    });
  }
  return `"${schema}"`;
}

/** Catalog races that another process's concurrent CREATE can still cause (e.g. the dataset store, under its own lock). */
const CREATE_RACE = new Set(['23505', '42P06', '42P07']);

/** Applies pending migrations of `component` in `schema`, in one transaction. */
export async function migrate(pool: pg.Pool, schema: string, component: string, migrations: readonly PostgresMigration[]): Promise<void> {
  const s = `"${schema}"`;
  const known = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  for (let attempt = 1; ; attempt++) {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`switchyard.schema.${schema}`]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${s}.schema_versions (
        component text NOT NULL, version int NOT NULL, breaking boolean NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (component, version))`);
      const newest = await client.query<{ v: number | null }>(
        `SELECT max(version) AS v FROM ${s}.schema_versions WHERE component = $1 AND breaking`, [component]);
      const newestBreaking = newest.rows[0]?.v ?? 0;
      if (newestBreaking > known) {
        throw new SwitchyardError(
          ErrorCodes.SCHEMA_TOO_NEW,
          `The PostgreSQL ${component} schema ${schema} is at breaking version ${newestBreaking}, newer than this code understands (${known}).`,
          { fix: 'Upgrade Switchyard in this process to the version the other processes run.' },
        );
      }
      for (const m of migrations) {
        const claimed = await client.query(
          `INSERT INTO ${s}.schema_versions (component, version, breaking) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
          [component, m.version, m.breaking]);
        if (claimed.rowCount === 1) await client.query(m.sql.replaceAll('{s}', s));
      }
      await client.query('COMMIT');
      return;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      if (attempt < 3 && CREATE_RACE.has((error as { code?: string }).code ?? '')) continue;
      throw error;
    } finally {
      client.release();
    }
  }
}
