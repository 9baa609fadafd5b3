/**
 * The SQL of the PostgreSQL transport and the connections it runs on: the schema and its
 * migrations, every statement on `<schema>.messages`, and the fenced operations the protocol
 * (src/postgres/transport.ts) is made of. State transitions and fencing: see that file.
 * @internal (pg types stay out of the published declarations)
 */
import type pg from 'pg';
import type { Address } from '../core/identity.js';
import { LeaseKeeper, queueNotFound, topicsUnsupported } from '../core/leases.js';
import { isTopicOutgoing } from '../core/transport.js';
import type { Outgoing, QueueOutgoing, TransportMessage } from '../core/transport.js';
import { decodeStoredMessage } from '../core/wire-headers.js';
import { migrate, type PostgresMigration } from './migrations.js';
import { adapterPool, inTransaction, NOW_MS, pgDriver, preparedName, unreachable, type AdapterPool, type PostgresConnectionOptions } from './pool.js';
import { groupWriteSql, groupWriteValues, WriteBatcher } from './write-batcher.js';

const MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    breaking: false,
    sql: `
      CREATE TABLE {s}.queues (name text PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now());
      CREATE TABLE {s}.messages (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        queue text NOT NULL,
        id text NOT NULL,
        headers text NOT NULL,
        body text NOT NULL,
        visible_at bigint NOT NULL,
        lease_token bigint NOT NULL DEFAULT 0,
        delivery_count int NOT NULL DEFAULT 0
      );
      CREATE INDEX messages_ready ON {s}.messages (queue, visible_at, seq);`,
  },
];

/**
 * The least lease token a claim or abandon hands out: above every token handed out before the
 * server last started. Claims commit without waiting for the WAL flush (see `bookkeeping`), so a
 * server crash can undo a claim its holder already has; without this floor the next claim would
 * hand the same (seq, token) to a second consumer, and both could complete. 1024 tokens per ms of
 * uptime between restarts is more than any message is ever claimed.
 */
export const TOKEN_FLOOR = `(extract(epoch from pg_postmaster_start_time()) * 1000)::bigint * 1024`;

export interface Row {
  seq: string;
  id: unknown;
  headers: unknown;
  body: unknown;
  lease_token: string;
  delivery_count: number;
}

export function toMessage(row: Pick<Row, 'seq' | 'id' | 'headers' | 'body'>): TransportMessage {
  return decodeStoredMessage(row, `row-${row.seq}`);
}

/** SQL of the statements; `s` is the quoted schema. */
export function statements(s: string) {
  return {
    /** Sends and fenced completions, many at once (src/postgres/write-batcher.ts). */
    groupWrite: groupWriteSql(s, NOW_MS),
    /**
     * The claimed rows; when there are none, one row of nulls whose wait_ms says how long until
     * the next message of the queue becomes visible (a due delay, an expiring lease; null: empty),
     * so an empty receive learns how long it may sleep in the same round trip.
     */
    claim: `WITH picked AS (SELECT seq FROM ${s}.messages WHERE queue = $1 AND visible_at <= ${NOW_MS}
        ORDER BY visible_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED),
      claimed AS (UPDATE ${s}.messages m SET visible_at = ${NOW_MS} + $3, lease_token = greatest(m.lease_token + 1, ${TOKEN_FLOOR}),
        delivery_count = m.delivery_count + 1
        FROM picked WHERE m.seq = picked.seq RETURNING m.seq, m.id, m.headers, m.body, m.lease_token, m.delivery_count)
      SELECT seq, id, headers, body, lease_token, delivery_count, NULL::bigint AS wait_ms FROM claimed
      UNION ALL
      SELECT NULL, NULL, NULL, NULL, NULL, NULL, (SELECT min(visible_at) - ${NOW_MS} FROM ${s}.messages WHERE queue = $1)
      WHERE NOT EXISTS (SELECT 1 FROM claimed)`,
    /** The visible rows of a queue, locked for the forward's transaction (no lease taken). */
    lockVisible: `SELECT seq, id, headers, body, lease_token FROM ${s}.messages WHERE queue = $1 AND visible_at <= ${NOW_MS}
      ORDER BY visible_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED`,
    renew: `UPDATE ${s}.messages SET visible_at = ${NOW_MS} + $3 WHERE seq = $1 AND lease_token = $2`,
    abandon: `WITH u AS (UPDATE ${s}.messages SET visible_at = ${NOW_MS} + $3, lease_token = greatest(lease_token + 1, ${TOKEN_FLOOR})
      WHERE seq = $1 AND lease_token = $2 RETURNING queue) SELECT pg_notify($4, queue) FROM u`,
    knownQueues: `SELECT name FROM ${s}.queues WHERE name = ANY($1::text[])`,
    createQueue: `INSERT INTO ${s}.queues (name) VALUES ($1) ON CONFLICT DO NOTHING`,
  };
}

export type Statements = ReturnType<typeof statements>;

/**
 * `durable`: an acknowledgement (a send, a completion). `bookkeeping`: a claim, renewal, abandon
 * or forward, on connections that commit without waiting for the WAL flush
 * (synchronous_commit=off). Losing one in a server crash only makes its message visible again in
 * the queue it was in (TOKEN_FLOOR keeps the fencing), and the next durable commit flushes it anyway.
 */
export type Durability = 'durable' | 'bookkeeping';

export interface QueueTableSettings {
  readonly schema: string;
  /** The quoted schema. */
  readonly s: string;
  readonly channel: string;
  readonly leaseMs: number;
  /** Where the database is, for errors. */
  readonly where: string;
}

/**
 * Group writes run at most two at a time; what is asked meanwhile joins the next group. A commit
 * that NOTIFYs holds PostgreSQL's notification queue lock through its WAL flush, so parallel
 * group writes only queue behind each other: at 1,000 sends/s with up to five in flight a group
 * statement took 4.1 ms (p50) and a send 5–7 ms; with one or two, 0.4–0.8 ms and 1.4–2.0 ms.
 */
const GROUP_WRITES_IN_FLIGHT = 2;

/** The connections of one open transport and the operations on its tables. */
export class PostgresQueueTable {
  readonly sql: Statements;
  readonly leases: LeaseKeeper;
  readonly #known = new Set<string>();

  private constructor(
    readonly settings: QueueTableSettings,
    private readonly main: AdapterPool,
    private readonly bookkeeping: pg.Pool,
    private readonly writes: WriteBatcher,
  ) {
    this.sql = statements(settings.s);
    this.leases = new LeaseKeeper(Math.max(50, Math.floor(settings.leaseMs / 3)));
  }

  /** Connects, migrates, and opens the bookkeeping pool beside the main one. */
  static async open(options: PostgresConnectionOptions, settings: QueueTableSettings): Promise<PostgresQueueTable> {
    const main = adapterPool(options, 10);
    try {
      await migrate(main.pool, settings.schema, 'transport', MIGRATIONS);
    } catch (error) {
      await main.end().catch(() => undefined);
      throw unreachable(error, settings.where);
    }
    const base = PostgresQueueTable.clientConfig(options, main.pool);
    const bookkeeping = new pgDriver.Pool({ ...base, max: 3, options: `${base.options ?? ''} -c synchronous_commit=off`.trim() });
    bookkeeping.on('error', () => undefined);
    const groupWrite = statements(settings.s).groupWrite;
    const writes = new WriteBatcher((text, values) => main.pool.query({ name: preparedName(text), text, values }), groupWrite, settings.channel, GROUP_WRITES_IN_FLIGHT);
    return new PostgresQueueTable(settings, main, bookkeeping, writes);
  }

  /** What a new client of this database connects with (the LISTEN client, the bookkeeping pool). */
  static clientConfig(options: PostgresConnectionOptions, pool: pg.Pool): pg.PoolConfig {
    return options.connectionString ? { connectionString: options.connectionString } : pool.options;
  }

  get pool(): pg.Pool {
    return this.main.pool;
  }

  async close(): Promise<void> {
    this.leases.close();
    await this.bookkeeping.end().catch(() => undefined);
    await this.main.end().catch(() => undefined);
  }

  async query<R extends pg.QueryResultRow>(text: string, values: unknown[], durability: Durability = 'durable'): Promise<pg.QueryResult<R>> {
    const target = durability === 'bookkeeping' ? this.bookkeeping : this.main.pool;
    try {
      // Named: the server parses and plans each statement once per connection, not per call.
      return await target.query<R>({ name: preparedName(text), text, values });
    } catch (error) {
      throw unreachable(error, this.settings.where);
    }
  }

  async createQueue(address: Address): Promise<void> {
    await this.query(this.sql.createQueue, [address]);
    this.#known.add(address);
  }

  async queueExists(address: Address): Promise<boolean> {
    if (this.#known.has(address)) return true;
    const found = await this.query<{ name: string }>(this.sql.knownQueues, [[address]]);
    if (found.rows.length > 0) this.#known.add(address);
    return found.rows.length > 0;
  }

  /** Every destination must be a queue that exists (checked once per queue, then remembered). */
  async checkDestinations(batch: readonly Outgoing[]): Promise<void> {
    const unknown = new Set<string>();
    for (const o of batch) {
      if (isTopicOutgoing(o)) throw topicsUnsupported('PostgreSQL');
      if (!this.#known.has(o.destination)) unknown.add(o.destination);
    }
    if (unknown.size === 0) return;
    // On the bookkeeping pool: a completion holding a unit-of-work connection must never wait for another one of the main pool.
    const found = await this.query<{ name: string }>(this.sql.knownQueues, [[...unknown]], 'bookkeeping');
    for (const row of found.rows) this.#known.add(row.name);
    for (const name of unknown) if (!this.#known.has(name)) throw queueNotFound('postgres', name);
  }

  /** The rows claimed, or none and how long until the queue's next message is visible (Infinity: empty). */
  async claim(address: Address, max: number): Promise<{ rows: Row[]; untilDueMs: number }> {
    const { rows } = await this.query<Row & { wait_ms: string | null }>(this.sql.claim, [address, max, this.settings.leaseMs], 'bookkeeping');
    const claimed = rows.filter((row) => row.seq !== null);
    if (claimed.length === 0) {
      const wait = rows[0]?.wait_ms;
      return { rows: [], untilDueMs: wait === null || wait === undefined ? Infinity : Math.max(0, Number(wait)) };
    }
    return { rows: claimed.sort((a, b) => Number(a.seq) - Number(b.seq)), untilDueMs: 0 };
  }

  /** True when the lease (seq, token) still holds and now runs for another leaseMs. */
  async renew(seq: string, token: string): Promise<boolean> {
    return (await this.query(this.sql.renew, [seq, token, this.settings.leaseMs], 'bookkeeping')).rowCount === 1;
  }

  async abandon(seq: string, token: string, delayMs: number): Promise<void> {
    await this.query(this.sql.abandon, [seq, token, Math.max(0, Math.floor(delayMs)), this.settings.channel], 'bookkeeping');
  }

  /** Sends a batch (destinations checked) in the next group write. */
  async send(batch: readonly Outgoing[]): Promise<void> {
    await this.checkDestinations(batch);
    await this.writes.send(batch).catch((error: unknown) => {
      throw unreachable(error, this.settings.where);
    });
  }

  /** Removes (seq, token) and sends `outgoing` in one statement: on `client` (a unit of work's transaction) or in the next group write. */
  async complete(seq: string, token: string, outgoing: readonly Outgoing[], client?: pg.ClientBase): Promise<boolean> {
    try {
      if (!client) return await this.writes.complete(seq, token, outgoing);
      const values = groupWriteValues([{ remove: { seq, token }, outgoing }], this.settings.channel);
      return (await client.query<{ removed: string[] }>(this.sql.groupWrite, values)).rows[0]?.removed.length === 1;
    } catch (error) {
      throw unreachable(error, this.settings.where);
    }
  }

  /**
   * Moves up to `max` visible rows of `from` to where `route` sends each, in one transaction:
   * the rows are locked (SKIP LOCKED: a receiver's claim and this never take the same row), then
   * removed and their copies inserted by the group write's statement. The copies moved, and how many rows were visible.
   */
  async forward(from: Address, max: number, route: (message: TransportMessage) => QueueOutgoing | undefined): Promise<{ moved: QueueOutgoing[]; locked: number }> {
    try {
      return await inTransaction(this.bookkeeping, async (client) => {
        const rows = (await client.query<Row>({ name: preparedName(this.sql.lockVisible), text: this.sql.lockVisible, values: [from, max] })).rows;
        const moves = rows.flatMap((row) => {
          const copy = route(toMessage(row));
          return copy ? [{ remove: { seq: row.seq, token: row.lease_token }, outgoing: [copy] }] : [];
        });
        const moved = moves.flatMap((m) => m.outgoing);
        if (moved.length > 0) {
          await this.checkDestinations(moved);
          await client.query({ name: preparedName(this.sql.groupWrite), text: this.sql.groupWrite, values: groupWriteValues(moves, this.settings.channel) });
        }
        return { moved, locked: rows.length };
      });
    } catch (error) {
      throw unreachable(error, this.settings.where);
    }
  }
}
