/**
 * Building a transport from CLI flags or environment variables, for every command that operates
 * on queues (`switchyard errors ...`, `switchyard distributor ...`). Each store is one
 * `StoreConnector` in `connectors`: its flag, its environment variable, how to open it and where
 * a distributor keeps its state there; adding a store (e.g. `--postgres <url>`) is adding one
 * entry. Exactly one store must be chosen; a flag wins over the environment. The command says
 * which store it used (on stderr, so `--json` output stays clean).
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import { lineLogger } from '../core/logger.js';
import type { Transport } from '../core/transport.js';
import type { DistributorStore } from '../scaleout/distributor-store.js';

export interface OpenOptions {
  /**
   * False for commands that read or repair what endpoints made: a store that is not there is
   * refused (a typo must not create an empty database and report it empty). True for a
   * distributor, which may start before any endpoint.
   */
  readonly create: boolean;
  /** `distributor`: the connection a running distributor forwards on; `operator`: a short command. */
  readonly role: 'operator' | 'distributor';
}

export interface StoreConnector {
  /** Commander option property, e.g. `sqlite` for `--sqlite <path>`. */
  readonly key: string;
  readonly flag: string;
  readonly env: string;
  readonly description: string;
  /** What the user sees: the store kind and where it is, without secrets. */
  describe(value: string): string;
  /** Opens the transport; fails with a coded error naming the flag when it cannot. */
  open(value: string, options: OpenOptions): Promise<Transport>;
  /**
   * Opens where a distributor keeps its workers and ready slots on this store, so they survive
   * its restart and `distributor status` can read them. Absent: the distributor keeps them in
   * its own process (its workers announce themselves again after a restart).
   */
  openDistributorStore?(value: string, options: OpenOptions): Promise<DistributorStore>;
}

const sqliteConnector: StoreConnector = {
  key: 'sqlite',
  flag: '--sqlite <path>',
  env: 'SWITCHYARD_SQLITE_PATH',
  description: 'the SQLite database file the endpoints use',
  describe: (value) => `sqlite ${path.resolve(value)}`,
  async open(value, options) {
    const { sqliteTransport, DISTRIBUTOR_SYNCHRONOUS } = await import('../sqlite/index.js');
    const transport = sqliteTransport({ path: existingSqliteFile(value, options), ...(options.role === 'distributor' && { synchronous: DISTRIBUTOR_SYNCHRONOUS }) });
    await transport.open();
    return transport;
  },
  async openDistributorStore(value, options) {
    const { sqliteDistributorStore, DISTRIBUTOR_SYNCHRONOUS } = await import('../sqlite/index.js');
    const store = sqliteDistributorStore({ path: existingSqliteFile(value, options), synchronous: DISTRIBUTOR_SYNCHRONOUS });
    await store.open();
    return store;
  },
};

/** The absolute path; refuses a missing file unless the command may create the database. */
function existingSqliteFile(value: string, { create }: OpenOptions): string {
  const file = path.resolve(value);
  const exists = existsSync(file);
  if (exists ? statSync(file).isFile() : create) return file;
  throw new SwitchyardError(ErrorCodes.CONFIG, exists ? `${file} is not a file, so not a SQLite database.` : `There is no SQLite database at ${file}.`, {
    fix: 'Pass the file your endpoints use with --sqlite <path> or SWITCHYARD_SQLITE_PATH.',
  });
}

const rabbitmqConnector: StoreConnector = {
  key: 'rabbitmq',
  flag: '--rabbitmq <url>',
  // Not SWITCHYARD_RABBITMQ_URL: test runs export that for the broker, and the CLI must not pick it up by accident.
  env: 'SWITCHYARD_CLI_RABBITMQ_URL',
  description: 'the RabbitMQ broker the endpoints use (amqp://user:password@host:5672/vhost)',
  describe: (value) => `rabbitmq ${value.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@')}`,
  async open(value, options) {
    const { rabbitmqTransport } = await import('../rabbitmq/index.js');
    // Only a distributor declares its queues: a typo in an operator's queue name must not create a queue.
    const transport = rabbitmqTransport({ url: value, createTopology: options.create, logger: lineLogger((level, line) => void (level !== 'info' && console.error(line))) });
    await transport.open();
    return transport;
  },
};

const postgresConnector: StoreConnector = {
  key: 'postgres',
  flag: '--postgres <url>',
  // Not SWITCHYARD_POSTGRES_URL or DATABASE_URL: tests and apps export those, and the CLI must not pick them up by accident.
  env: 'SWITCHYARD_CLI_POSTGRES_URL',
  description: 'the PostgreSQL database the endpoints use (postgres://user:password@host:5432/db; add ?schema= if not `switchyard`)',
  describe: (value) => `postgres ${value.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@')}`,
  async open(value) {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new SwitchyardError(ErrorCodes.CONFIG, 'The --postgres value is not a URL.', { fix: 'Pass --postgres postgres://user@host:5432/db (or SWITCHYARD_CLI_POSTGRES_URL).' });
    }
    const schema = url.searchParams.get('schema') ?? 'switchyard';
    url.searchParams.delete('schema');
    const connectionString = url.toString();
    // Opening the transport would create the tables: a wrong database or schema must say so, not show an empty error queue.
    const { default: pg } = await import('pg');
    const probe = new pg.Client({ connectionString });
    try {
      await probe.connect();
      const found = await probe.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [`"${schema.replaceAll('"', '')}".messages`]);
      if (!found.rows[0]?.t) {
        throw new SwitchyardError(ErrorCodes.CONFIG, `There are no Switchyard queues in schema ${schema} of ${url.host}${url.pathname}.`, {
          fix: 'Pass the database your endpoints use, and ?schema=<name> when they use another schema than `switchyard`.',
        });
      }
    } finally {
      await probe.end().catch(() => undefined);
    }
    const { postgresTransport } = await import('../postgres/index.js');
    const transport = postgresTransport({ connectionString, schema, maxConnections: 2 });
    await transport.open();
    return transport;
  },
};

/** The stores the CLI can connect to, in the order they are listed in help. */
export const connectors: StoreConnector[] = [sqliteConnector, rabbitmqConnector, postgresConnector];

/** Adds every store's flag to a command. */
export function addStoreOptions(command: Command): Command {
  for (const c of connectors) command.option(c.flag, `${c.description} (env ${c.env})`);
  return command;
}

export interface Connection {
  readonly transport: Transport;
  /** E.g. `sqlite /srv/app/switchyard.db (from --sqlite)`. */
  readonly store: string;
  /** The distributor's state store on the chosen store; undefined where a distributor keeps its state in its process. */
  openDistributorStore(): Promise<DistributorStore | undefined>;
  /** Closes the transport and, if opened, the distributor store. */
  close(): Promise<void>;
}

interface Choice {
  connector: StoreConnector;
  value: string;
  source: string;
}

function choose(flags: Readonly<Record<string, unknown>>, env: NodeJS.ProcessEnv): Choice {
  const fromFlags = connectors.flatMap((connector) => {
    const value = flags[connector.key];
    return typeof value === 'string' && value.length > 0 ? [{ connector, value, source: `--${connector.key}` }] : [];
  });
  const fromEnv = connectors.flatMap((connector) => {
    const value = env[connector.env];
    return value ? [{ connector, value, source: connector.env }] : [];
  });
  const chosen = fromFlags.length > 0 ? fromFlags : fromEnv;
  const flagsHelp = connectors.map((c) => `${c.flag} or ${c.env}`).join('; ');
  if (chosen.length === 0) {
    throw new SwitchyardError(ErrorCodes.CONFIG, 'No store given: the command does not know which queues to look at.', {
      fix: `Pass one of: ${flagsHelp}.`,
    });
  }
  if (chosen.length > 1) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `Several stores given (${chosen.map((c) => c.source).join(', ')}); the command needs exactly one.`, {
      fix: 'Pass one store flag; a flag overrides the environment variables.',
    });
  }
  return chosen[0]!;
}

/** Opens the store chosen by `flags` (or, without a store flag, by `env`) and says which it is. */
export async function connect(
  flags: Readonly<Record<string, unknown>>,
  options: OpenOptions = { create: false, role: 'operator' },
  env: NodeJS.ProcessEnv = process.env,
  announce: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<Connection> {
  const { connector, value, source } = choose(flags, env);
  const store = `${connector.describe(value)} (from ${source})`;
  announce(`switchyard: using ${store}`);
  const transport = await connector.open(value, options);
  let distributorStore: DistributorStore | undefined;
  return {
    transport,
    store,
    async openDistributorStore() {
      distributorStore ??= await connector.openDistributorStore?.(value, options);
      return distributorStore;
    },
    async close() {
      try {
        await distributorStore?.close();
      } finally {
        await transport.close();
      }
    },
  };
}
