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
 * - forward:  SELECT the visible rows FOR UPDATE SKIP LOCKED, then the completion's statement
 *             (DELETE + INSERT of the copies) in the same transaction: a message is in exactly
 *             one of the two queues, never leased in between (the distributor's hop)
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
import { leaseLost, waitForWake } from '../core/leases.js';
import type { Receipt, ReceiveOptions, Transport } from '../core/transport.js';
import { createListener } from './listener.js';
import { quotedSchema } from './migrations.js';
import { checkConnectionOptions, describeTarget, pgDriver, unreachable, type PostgresConnectionOptions } from './pool.js';
import { postgresQueueAdmin } from './queue-admin.js';
import { PostgresQueueTable, toMessage, type QueueTableSettings, type Row } from './queue-table.js';
import { PostgresSession } from './session.js';

/** `pool`: LISTEN uses its own client made from the pool's options. `maxConnections` defaults to 10. */
export interface PostgresTransportOptions extends PostgresConnectionOptions {
  /** How long a received message is held before another consumer may take it (renewed while held). */
  leaseMs?: number;
  /** Fallback poll when no notification arrives (default 500). */
  pollMs?: number;
}

function checkTimings(leaseMs: number, pollMs: number): void {
  if (!(leaseMs > 0) || !(pollMs > 0)) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `The PostgreSQL transport options leaseMs (${leaseMs}) and pollMs (${pollMs}) must be positive.`, {
      fix: 'Leave them unset for the defaults (30000 and 500) or pass positive numbers of milliseconds.',
    });
  }
}

function notOpen(): SwitchyardError {
  return new SwitchyardError(ErrorCodes.NOT_RUNNING, 'The PostgreSQL transport is not open.', {
    fix: 'Start the endpoint (or call transport.open()) before sending, and do not use it after stop.',
  });
}

/** One try at a receive or forward: what it got, whether the queue had anything visible, and how long until something is due. */
interface Attempt<T> {
  readonly value: T;
  readonly found: boolean;
  readonly untilDueMs: number;
}

/** A received message: its lease renewed while held, settled fenced by (seq, lease token), with its unit of work. */
function receiptFor(table: PostgresQueueTable, address: Address, row: Row): Receipt {
  const { seq, lease_token: token } = row;
  const message = toMessage(row);
  const lease = table.leases.hold(() => table.renew(seq, token));
  let session: PostgresSession | undefined;
  return {
    message,
    address,
    deliveryCount: row.delivery_count,
    get signal() {
      return lease.signal;
    },
    get session() {
      return (session ??= new PostgresSession(table.pool));
    },
    async complete(outgoing = []) {
      lease.release();
      try {
        await table.checkDestinations(outgoing);
      } catch (error) {
        await session?.rollback();
        throw error;
      }
      const ok = session?.active
        ? await session.commitIf((client) => table.complete(seq, token, outgoing, client)).catch((error: unknown) => {
            throw unreachable(error, table.settings.where);
          })
        : await table.complete(seq, token, outgoing);
      if (!ok) throw leaseLost(address, message.id);
    },
    async abandon(delayMs = 0) {
      lease.release();
      await session?.rollback();
      await table.abandon(seq, token, delayMs);
    },
  };
}

/**
 * Wake-ups: one LISTEN connection per transport. `wakeCounts` counts the notifications seen per
 * queue: a receiver compares before and after its claim, so a wake-up during the claim is not missed.
 */
function queueWakeups(channel: string, connect: () => Promise<pg.Client>) {
  const wakeCounts = new Map<string, number>();
  const listener = createListener<never>({
    channel,
    parse: (payload) => {
      wakeCounts.set(payload, (wakeCounts.get(payload) ?? 0) + 1);
      return { key: payload, hint: undefined };
    },
    connect,
  });
  return {
    listener,
    seen: (address: Address) => wakeCounts.get(address) ?? 0,
    /** Waits for a notification, the fallback poll or the next due message, unless one came since `seenBefore`. */
    async wait(address: Address, waitMs: number, signal: AbortSignal, seenBefore: number): Promise<void> {
      if ((wakeCounts.get(address) ?? 0) !== seenBefore) return;
      await waitForWake((wake) => listener.watch(address, wake), waitMs, signal);
    },
  };
}

/** The table settings the options give, or a coded error naming the wrong one. */
function tableSettings(options: PostgresTransportOptions): QueueTableSettings {
  const schema = options.schema ?? 'switchyard';
  checkConnectionOptions('postgresTransport', options);
  return { schema, s: quotedSchema(schema, 'postgresTransport'), channel: `sy_queues_${schema}`, leaseMs: options.leaseMs ?? 30_000, where: describeTarget(options) };
}

export function postgresTransport(options: PostgresTransportOptions): Transport {
  const settings = tableSettings(options);
  const pollMs = options.pollMs ?? 500;
  let table: PostgresQueueTable | undefined;
  let opening: Promise<void> | undefined;
  let closed = false;
  const opened = (): PostgresQueueTable => {
    if (!table || closed) throw notOpen();
    return table;
  };
  const wakeups = queueWakeups(settings.channel, async () => {
    const client = new pgDriver.Client(PostgresQueueTable.clientConfig(options, opened().pool));
    client.on('error', () => undefined);
    await client.connect();
    return client;
  });

  /** Runs `attempt`; when it finds nothing and `waitMs` allows, waits for a wake-up and tries once more. */
  const withWait = async <T>(address: Address, { waitMs, signal }: ReceiveOptions, empty: T, attempt: (t: PostgresQueueTable) => Promise<Attempt<T>>): Promise<T> => {
    if (closed) return empty;
    const seenBefore = wakeups.seen(address);
    const first = await attempt(opened());
    if (first.found || waitMs <= 0 || closed || signal.aborted) return first.value;
    await wakeups.wait(address, Math.min(waitMs, pollMs, first.untilDueMs), signal, seenBefore);
    return closed || signal.aborted ? empty : (await attempt(opened())).value;
  };

  const open = async () => {
    checkTimings(settings.leaseMs, pollMs);
    table = await PostgresQueueTable.open(options, settings);
    // The first LISTEN is awaited so a receive right after open is woken; later drops reconnect by themselves.
    await wakeups.listener.connect();
  };

  return {
    name: 'postgres',
    capabilities: { delayedDelivery: true, nativePubSub: false, atomicSendWithReceive: true, competingConsumers: true, exactDeliveryCount: true },
    admin: postgresQueueAdmin(settings, opened),
    async open() {
      opening ??= open().catch((error: unknown) => {
        opening = undefined;
        throw error;
      });
      return opening;
    },
    async createQueue(address) {
      checkAddress('Queue', address);
      await opened().createQueue(address);
    },
    async queueExists(address) {
      return opened().queueExists(address);
    },
    async dispatch(batch) {
      const t = opened();
      if (batch.length > 0) await t.send(batch);
    },
    async receive(address, receiveOptions) {
      return withWait(address, receiveOptions, [], async (t) => {
        const { rows, untilDueMs } = await t.claim(address, receiveOptions.max);
        return { value: rows.map((row) => receiptFor(t, address, row)), found: rows.length > 0, untilDueMs };
      });
    },
    async forward(from, forwardOptions, route) {
      return withWait(from, forwardOptions, 0, async (t) => {
        const { moved, locked } = await t.forward(from, forwardOptions.max, route);
        return { value: moved.length, found: locked > 0, untilDueMs: Infinity };
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      await opening?.catch(() => undefined);
      await wakeups.listener.close();
      await table?.close();
    },
  };
}
