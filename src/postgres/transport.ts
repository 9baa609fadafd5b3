/**
 * The PostgreSQL transport: queues are rows of `<schema>.messages`, as on SQLite; `visible_at`
 * (epoch ms, the database's clock) is both the due time of a delayed message and the lease expiry
 * of a received one; `lease_token` fences settlements.
 *
 * State transitions (each one statement, so one round trip and one commit):
 * - enqueue:  INSERT ... SELECT FROM unnest(...) and pg_notify(channel, queue) per destination
 * - claim:    UPDATE visible_at = now + lease, lease_token + 1, delivery_count + 1 of the oldest
 *             visible rows, picked FOR UPDATE SKIP LOCKED (concurrent receivers never wait on,
 *             or take, each other's rows)
 * - renew:    UPDATE visible_at WHERE seq AND lease_token   (0 rows: lease lost)
 * - complete: DELETE WHERE seq AND lease_token, and the INSERTs of the outgoing messages only
 *             when that DELETE found the row (a data-modifying CTE): a stale holder removes and
 *             sends nothing. With a unit of work open it runs on the handler's transaction, and
 *             the COMMIT that follows takes the handler's own SQL with it.
 * - abandon:  UPDATE visible_at = now + delay, lease_token + 1 WHERE seq AND lease_token
 *
 * Fencing: seq is an identity column (never reused) and lease_token only grows for a seq, so a
 * (seq, lease_token) pair names one lease of one message, once.
 *
 * Wake-up: every commit that makes a message available notifies `sy_queues_<schema>` with the
 * queue's name; receivers LISTEN on one connection per transport. Notifications are hints: a
 * receiver also polls every `pollMs`, and after the LISTEN connection comes back it wakes all
 * waiting receivers, so a lost notification (dropped connection, a row written by another tool)
 * costs at most `pollMs` of latency, never a message.
 */
import type pg from 'pg';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { Address } from '../core/identity.js';
import { checkAddress } from '../core/identity.js';
import { LeaseKeeper, leaseLost, queueNotFound, topicsUnsupported, waitForWake } from '../core/leases.js';
import { isTopicOutgoing } from '../core/transport.js';
import type { Outgoing, QueueAdmin, Receipt, ReceiveOptions, Transport, TransportMessage } from '../core/transport.js';
import { decodeStoredMessage, MAX_ID_CHARS } from '../core/wire-headers.js';
import { createListener } from './listener.js';
import { migrate, quotedSchema, type PostgresMigration } from './migrations.js';
import { adapterPool, checkConnectionOptions, describeTarget, NOW_MS, pgDriver, unreachable, type AdapterPool, type PostgresConnectionOptions } from './pool.js';
import { PostgresSession } from './session.js';
import { groupWriteSql, groupWriteValues, WriteBatcher } from './write-batcher.js';

/** `pool`: LISTEN uses its own client made from the pool's options. `maxConnections` defaults to 10. */
export interface PostgresTransportOptions extends PostgresConnectionOptions {
  /** How long a received message is held before another consumer may take it (renewed while held). */
  leaseMs?: number;
  /** Fallback poll when no notification arrives (default 500). */
  pollMs?: number;
}

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
const TOKEN_FLOOR = `(extract(epoch from pg_postmaster_start_time()) * 1000)::bigint * 1024`;

interface Row {
  seq: string;
  id: unknown;
  headers: unknown;
  body: unknown;
  lease_token: string;
  delivery_count: number;
}

function toMessage(row: Pick<Row, 'seq' | 'id' | 'headers' | 'body'>): TransportMessage {
  return decodeStoredMessage(row, `row-${row.seq}`);
}

/** SQL of the statements; `s` is the quoted schema. */
function statements(s: string) {
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
    renew: `UPDATE ${s}.messages SET visible_at = ${NOW_MS} + $3 WHERE seq = $1 AND lease_token = $2`,
    abandon: `WITH u AS (UPDATE ${s}.messages SET visible_at = ${NOW_MS} + $3, lease_token = greatest(lease_token + 1, ${TOKEN_FLOOR})
      WHERE seq = $1 AND lease_token = $2 RETURNING queue) SELECT pg_notify($4, queue) FROM u`,
    knownQueues: `SELECT name FROM ${s}.queues WHERE name = ANY($1::text[])`,
    createQueue: `INSERT INTO ${s}.queues (name) VALUES ($1) ON CONFLICT DO NOTHING`,
  };
}

type Statements = ReturnType<typeof statements>;

const statementNames = new Map<string, string>();
/** A prepared-statement name for a statement's text (the text includes the schema, so schemas never share a name). */
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (!name) statementNames.set(text, (name = `sy_pg_${statementNames.size}`));
  return name;
}

export function postgresTransport(options: PostgresTransportOptions): Transport {
  const schema = options.schema ?? 'switchyard';
  const s = quotedSchema(schema, 'postgresTransport');
  checkConnectionOptions('postgresTransport', options);
  const leaseMs = options.leaseMs ?? 30_000;
  const pollMs = options.pollMs ?? 500;
  const channel = `sy_queues_${schema}`;
  const sql: Statements = statements(s);
  const where = describeTarget(options);
  let pool: AdapterPool | undefined;
  let leases: LeaseKeeper;
  let writes: WriteBatcher;
  let bookkeeping: pg.Pool;
  let opening: Promise<void> | undefined;
  let closed = false;
  const knownQueues = new Set<string>();
  /** Notifications seen per queue: a receiver compares before and after its claim so a wake-up during the claim is not missed. */
  const wakeCounts = new Map<string, number>();
  const listener = createListener<never>({
    channel,
    parse: (payload) => {
      wakeCounts.set(payload, (wakeCounts.get(payload) ?? 0) + 1);
      return { key: payload, hint: undefined };
    },
    connect: async () => {
      const client = new pgDriver.Client(options.connectionString ? { connectionString: options.connectionString } : opened().options);
      client.on('error', () => undefined);
      await client.connect();
      return client;
    },
  });

  const opened = (): pg.Pool => {
    if (!pool || closed) {
      throw new SwitchyardError(ErrorCodes.NOT_RUNNING, 'The PostgreSQL transport is not open.', {
        fix: 'Start the endpoint (or call transport.open()) before sending, and do not use it after stop.',
      });
    }
    return pool.pool;
  };

  /**
   * `bookkeeping`: a claim, renewal or abandon, on connections that commit without waiting for
   * the WAL flush (synchronous_commit=off). Losing one in a server crash only makes its message
   * visible again (TOKEN_FLOOR keeps the fencing), and the next durable commit flushes it anyway.
   */
  async function query<R extends pg.QueryResultRow>(text: string, values: unknown[], durability: 'durable' | 'bookkeeping' = 'durable'): Promise<pg.QueryResult<R>> {
    const main = opened();
    const target = durability === 'bookkeeping' ? bookkeeping : main;
    try {
      // Named: the server parses and plans each statement once per connection, not per call.
      return await target.query<R>({ name: statementName(text), text, values });
    } catch (error) {
      throw unreachable(error, where);
    }
  }

  /** Every destination must be a queue that exists (checked once per queue, then remembered). */
  const checkDestinations = async (batch: readonly Outgoing[]) => {
    const unknown = new Set<string>();
    for (const o of batch) {
      if (isTopicOutgoing(o)) throw topicsUnsupported('PostgreSQL');
      if (!knownQueues.has(o.destination)) unknown.add(o.destination);
    }
    if (unknown.size === 0) return;
    // On the bookkeeping pool: a completion holding a unit-of-work connection must never wait for another one of the main pool.
    const found = await query<{ name: string }>(sql.knownQueues, [[...unknown]], 'bookkeeping');
    for (const row of found.rows) knownQueues.add(row.name);
    for (const name of unknown) if (!knownQueues.has(name)) throw queueNotFound('postgres', name);
  };

  /** The receipts claimed, or none and how long until the queue's next message is visible (Infinity: empty). */
  const claim = async (address: Address, max: number): Promise<{ receipts: Receipt[]; untilDueMs: number }> => {
    const { rows } = await query<Row & { wait_ms: string | null }>(sql.claim, [address, max, leaseMs], 'bookkeeping');
    const claimed = rows.filter((row) => row.seq !== null);
    if (claimed.length === 0) {
      const wait = rows[0]?.wait_ms;
      return { receipts: [], untilDueMs: wait === null || wait === undefined ? Infinity : Math.max(0, Number(wait)) };
    }
    claimed.sort((a, b) => Number(a.seq) - Number(b.seq));
    return { receipts: claimed.map((row) => receiptFor(address, row)), untilDueMs: 0 };
  };

  /** Waits for a notification, the fallback poll or the next due message. */
  const waitForVisible = async (address: Address, waitMs: number, signal: AbortSignal, wakesBefore: number, untilDue: number) => {
    if ((wakeCounts.get(address) ?? 0) !== wakesBefore) return;
    await waitForWake((wake) => listener.watch(address, wake), Math.min(waitMs, pollMs, untilDue), signal);
  };

  const receiptFor = (address: Address, row: Row): Receipt => {
    const seq = row.seq;
    const token = row.lease_token;
    const message = toMessage(row);
    const lease = leases.hold(async () => (await query(sql.renew, [seq, token, leaseMs], 'bookkeeping')).rowCount === 1);
    let session: PostgresSession | undefined;
    return {
      message,
      address,
      deliveryCount: row.delivery_count,
      get signal() {
        return lease.signal;
      },
      get session() {
        return (session ??= new PostgresSession(opened()));
      },
      async complete(outgoing: readonly Outgoing[] = []) {
        lease.release();
        try {
          await checkDestinations(outgoing);
        } catch (error) {
          await session?.rollback();
          throw error;
        }
        const ok = session?.active
          ? await session.commitIf(async (client) => {
              const values = groupWriteValues([{ remove: { seq, token }, outgoing }], channel);
              return (await client.query<{ removed: string[] }>(sql.groupWrite, values)).rows[0]?.removed.length === 1;
            }).catch((error: unknown) => {
              throw unreachable(error, where);
            })
          : await writes.complete(seq, token, outgoing).catch((error: unknown) => {
              throw unreachable(error, where);
            });
        if (!ok) throw leaseLost(address, message.id);
      },
      async abandon(delayMs = 0) {
        lease.release();
        await session?.rollback();
        await query(sql.abandon, [seq, token, Math.max(0, Math.floor(delayMs)), channel], 'bookkeeping');
      },
    };
  };

  const admin = queueAdmin({ s, sql, channel, where, query, checkDestinations, connect: () => opened().connect() });

  const open = async () => {
    if (!(leaseMs > 0) || !(pollMs > 0)) {
      throw new SwitchyardError(ErrorCodes.CONFIG, `The PostgreSQL transport options leaseMs (${leaseMs}) and pollMs (${pollMs}) must be positive.`, {
        fix: 'Leave them unset for the defaults (30000 and 500) or pass positive numbers of milliseconds.',
      });
    }
    const p = adapterPool(options, 10);
    try {
      await migrate(p.pool, schema, 'transport', MIGRATIONS);
    } catch (error) {
      await p.end().catch(() => undefined);
      throw unreachable(error, where);
    }
    pool = p;
    const base: pg.PoolConfig = options.connectionString ? { connectionString: options.connectionString } : p.pool.options;
    bookkeeping = new pgDriver.Pool({ ...base, max: 3, options: `${base.options ?? ''} -c synchronous_commit=off`.trim() });
    bookkeeping.on('error', () => undefined);
    // At most half the pool carries group writes; the rest is for units of work and the admin.
    writes = new WriteBatcher((text, values) => p.pool.query({ name: statementName(text), text, values }), sql.groupWrite, channel, Math.max(1, Math.floor((options.maxConnections ?? 10) / 2)));
    leases = new LeaseKeeper(Math.max(50, Math.floor(leaseMs / 3)));
    // The first LISTEN is awaited so a receive right after open is woken; later drops reconnect by themselves.
    await listener.connect();
  };

  return {
    name: 'postgres',
    capabilities: { delayedDelivery: true, nativePubSub: false, atomicSendWithReceive: true, competingConsumers: true, exactDeliveryCount: true },
    admin,
    async open() {
      opening ??= open().catch((error: unknown) => {
        opening = undefined;
        throw error;
      });
      return opening;
    },
    async createQueue(address) {
      checkAddress('Queue', address);
      await query(sql.createQueue, [address]);
      knownQueues.add(address);
    },
    async queueExists(address) {
      if (knownQueues.has(address)) return true;
      const found = await query<{ name: string }>(sql.knownQueues, [[address]]);
      if (found.rows.length > 0) knownQueues.add(address);
      return found.rows.length > 0;
    },
    async dispatch(batch) {
      opened();
      if (batch.length === 0) return;
      await checkDestinations(batch);
      await writes.send(batch).catch((error: unknown) => {
        throw unreachable(error, where);
      });
    },
    async receive(address: Address, { max, waitMs, signal }: ReceiveOptions) {
      if (closed) return [];
      const wakesBefore = wakeCounts.get(address) ?? 0;
      const first = await claim(address, max);
      if (first.receipts.length > 0 || waitMs <= 0 || closed || signal.aborted) return first.receipts;
      await waitForVisible(address, waitMs, signal, wakesBefore, first.untilDueMs);
      return closed || signal.aborted ? [] : (await claim(address, max)).receipts;
    },
    async close() {
      if (closed) return;
      closed = true;
      await opening?.catch(() => undefined);
      leases?.close();
      await listener.close();
      await bookkeeping?.end().catch(() => undefined);
      await pool?.end().catch(() => undefined);
    },
  };
}

interface AdminDeps {
  readonly s: string;
  readonly sql: Statements;
  readonly channel: string;
  readonly where: string;
  query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>>;
  checkDestinations(batch: readonly Outgoing[]): Promise<void>;
  connect(): Promise<pg.PoolClient>;
}

/** Operator views of the queues (the errors CLI, the distributor status). */
function queueAdmin({ s, sql, channel, where, query, checkDestinations, connect }: AdminDeps): QueueAdmin {
  return {
    async depth(address) {
      return Number((await query<{ n: string }>(`SELECT count(*) AS n FROM ${s}.messages WHERE queue = $1`, [address])).rows[0]?.n ?? 0);
    },
    async queues() {
      return (await query<{ name: string }>(`SELECT name FROM ${s}.queues ORDER BY name`, [])).rows.map((r) => r.name);
    },
    async peek(address, { offset, limit }) {
      await checkDestinations([{ destination: address, message: { id: '', headers: {}, body: '' } }]);
      const { rows } = await query<Row>(`SELECT seq, id, headers, body FROM ${s}.messages WHERE queue = $1 ORDER BY seq LIMIT $2 OFFSET $3`, [address, limit, offset]);
      return rows.map(toMessage);
    },
    async take(address, ids, replacements) {
      // A row whose id column is not a usable id goes by the id toMessage gives it (its header's
      // message id, or row-<seq>): such rows are selected too and matched on that id here.
      const seqs = ids.flatMap((id) => (/^row-\d{1,15}$/.test(id) ? [id.slice(4)] : []));
      const wanted = new Set(ids);
      const client = await connect().catch((error: unknown) => {
        throw unreachable(error, where);
      });
      try {
        await client.query('BEGIN');
        const rows = (await client.query<Row>(
          `SELECT seq, id, headers, body FROM ${s}.messages WHERE queue = $1 AND (id = ANY($2::text[]) OR id = '' OR length(id) > ${MAX_ID_CHARS}
           OR seq = ANY($3::bigint[])) ORDER BY seq FOR UPDATE`, [address, [...ids], seqs],
        )).rows.filter((row) => wanted.has(toMessage(row).id));
        const outgoing = rows.flatMap((row) => replacements?.(toMessage(row)) ?? []);
        await checkDestinations(outgoing);
        await client.query(`DELETE FROM ${s}.messages WHERE seq = ANY($1::bigint[])`, [rows.map((r) => r.seq)]);
        if (outgoing.length > 0) await client.query(sql.groupWrite, groupWriteValues([{ remove: undefined, outgoing }], channel));
        await client.query('COMMIT');
        return [...new Set(rows.map((row) => toMessage(row).id))];
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw unreachable(error, where);
      } finally {
        client.release();
      }
    },
    async moveAll(from, to, moveOptions = {}) {
      await checkDestinations([{ destination: to, message: { id: '', headers: {}, body: '' } }]);
      const unheld = moveOptions.includeLeased ? '' : `AND (visible_at <= ${NOW_MS} OR lease_token = 0)`;
      const moved = await query<{ n: number }>(
        `WITH u AS (UPDATE ${s}.messages SET queue = $2, visible_at = ${NOW_MS}, lease_token = greatest(lease_token + 1, ${TOKEN_FLOOR}) WHERE queue = $1 ${unheld} RETURNING 1)
         SELECT count(*)::int AS n, pg_notify($3, $2) FROM u`, [from, to, channel]);
      return moved.rows[0]?.n ?? 0;
    },
  };
}
