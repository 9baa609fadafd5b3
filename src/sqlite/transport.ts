/**
 * The embedded default transport: one SQLite database file that every process on the machine
 * opens (WAL). A queue is a set of rows in `sy_messages`; `visible_at` is both the due time of a
 * delayed message and the lease expiry of a received one; `lease_token` fences settlements.
 *
 * State transitions (each one statement inside a group-committed transaction):
 * - enqueue: INSERT (queue, id, headers, body, visible_at = deliverAt or now)
 * - claim:   UPDATE visible_at = now + lease, lease_token + 1, delivery_count + 1 for the oldest
 *            visible rows of a queue; returns the rows and their tokens
 * - renew:   UPDATE visible_at = now + lease WHERE seq AND lease_token   (0 rows: lease lost)
 * - complete: DELETE WHERE seq AND lease_token (0 rows: SY_ERR_LEASE_LOST, nothing written), the
 *            handler's own queued writes (src/sqlite/session.ts) and the enqueues of its outgoing
 *            messages; with own writes, under a savepoint so a failing one undoes only its unit
 * - abandon: UPDATE visible_at = now + delay, lease_token + 1 WHERE seq AND lease_token
 *
 * Fencing: seq is AUTOINCREMENT (migration 2), never reused, and lease_token only grows for a
 * seq, so a (seq, lease_token) pair names one lease of one message, once: a holder paused past
 * its lease can never settle, renew or abandon a later lease, of its message or of another.
 */
import { systemClock, type Clock } from '../core/clock.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { Address } from '../core/identity.js';
import { checkAddress } from '../core/identity.js';
import { LeaseKeeper, waitForWake } from '../core/leases.js';
import type { ForwardOptions, Outgoing, QueueOutgoing, Receipt, ReceiveOptions, Transport } from '../core/transport.js';
import { GroupCommitter, migrate, openDatabase } from './database.js';
import type { SqliteOptions } from './options.js';
import { sqliteQueueAdmin, type OpenQueues } from './queue-admin.js';
import { QueueSignals } from './queue-signals.js';
import { MIGRATIONS, QueueTable, toMessage, type Row } from './queue-table.js';
import { SqliteUnitOfWork, StatementCache } from './session.js';

export interface SqliteTransportOptions extends SqliteOptions {
  /** How long a received message is held before another consumer may take it (renewed while held). */
  leaseMs?: number;
  /** Fallback poll when no wake-up event arrives. */
  pollMs?: number;
  /** Where visibility, leases and delays read time (default: the system clock; the test kit passes a virtual one). */
  clock?: Clock;
}

/** What an open transport holds; made by open(), dropped by close(). */
interface Open extends OpenQueues {
  readonly db: { close(): void };
  readonly leases: LeaseKeeper;
  readonly signals: QueueSignals;
  readonly handlerStatements: StatementCache;
}

function notOpen(): SwitchyardError {
  return new SwitchyardError(ErrorCodes.NOT_RUNNING, 'The SQLite transport is not open.', {
    fix: 'Start the endpoint (or call transport.open()) before sending, and do not use it after stop.',
  });
}

function checkTimings(leaseMs: number, pollMs: number): void {
  if (leaseMs > 0 && pollMs > 0) return;
  throw new SwitchyardError(ErrorCodes.CONFIG, `The SQLite transport options leaseMs (${leaseMs}) and pollMs (${pollMs}) must be positive.`, {
    fix: 'Leave them unset for the defaults (30000 and 250) or pass positive numbers of milliseconds.',
  });
}

function openQueues(options: SqliteTransportOptions, leaseMs: number, clock: Clock): Open {
  const db = openDatabase(options);
  migrate(db, 'transport', MIGRATIONS);
  const signals = new QueueSignals(options.path);
  return {
    db,
    table: new QueueTable(db, clock),
    committer: new GroupCommitter(db, options.busyTimeoutMs, options.synchronous),
    leases: new LeaseKeeper(Math.max(50, Math.floor(leaseMs / 3))),
    signals,
    handlerStatements: new StatementCache(db),
    notify: (queues) => signals.notify(queues),
    notifyDestinations: (batch) => {
      if (batch.length > 0) signals.notify(batch.map((o) => (o as QueueOutgoing).destination));
    },
  };
}

/** A received message: its lease renewed while held, its settlements fenced by (seq, lease_token). */
function receiptFor(open: Open, address: Address, row: Row, leaseMs: number): Receipt {
  const { table, committer, notify, notifyDestinations } = open;
  const message = toMessage(row);
  const lease = open.leases.hold(() => committer.run(() => table.renew(row, leaseMs), 'bookkeeping'));
  let unit: SqliteUnitOfWork | undefined;
  return {
    message,
    address,
    deliveryCount: row.delivery_count,
    get signal() {
      return lease.signal;
    },
    get session() {
      return (unit ??= new SqliteUnitOfWork(open.handlerStatements));
    },
    async complete(outgoing: readonly Outgoing[] = []) {
      lease.release();
      await committer.run(() => table.complete(address, row, message, outgoing, unit));
      notifyDestinations(outgoing);
    },
    async abandon(delayMs = 0) {
      lease.release();
      await committer.run(() => table.abandon(row, delayMs), 'bookkeeping');
      notify([address]);
    },
  };
}

/** Waits for a wake-up, the fallback poll or the next due message (whichever is first). */
async function waitForVisible(open: Open, address: Address, waitMs: number, pollMs: number, signal: AbortSignal): Promise<void> {
  const next = open.table.nextVisibleAt(address);
  const untilDue = next === null ? Infinity : Math.max(0, next - open.table.now());
  await waitForWake((wake) => open.signals.subscribe(address, wake), Math.min(waitMs, pollMs, untilDue), signal);
}

async function claim(open: Open, address: Address, max: number, leaseMs: number): Promise<Receipt[]> {
  const rows = await open.committer.run(() => open.table.claim(address, max, leaseMs), 'bookkeeping');
  return rows.map((row) => receiptFor(open, address, row, leaseMs));
}

/** In the forward's transaction: the routed rows moved, after the `alongside` writes (its own errors, a refused fence, pass unchanged). */
function moveRows(open: Open, from: Address, max: number, route: Parameters<NonNullable<Transport['forward']>>[2], alongside: ForwardOptions['alongside']): Outgoing[] {
  const writeAlongside = alongside && (() => {
    const unit = new SqliteUnitOfWork(open.handlerStatements);
    alongside(unit);
    unit.apply();
  });
  return open.table.replaceRows(open.table.visible(from, max), (message) => {
    const copy = route(message);
    return copy && [copy];
  }, writeAlongside);
}

export function sqliteTransport(options: SqliteTransportOptions): Transport {
  const leaseMs = options.leaseMs ?? 30_000;
  const pollMs = options.pollMs ?? 250;
  const clock = options.clock ?? systemClock;
  let state: Open | undefined;
  let closed = false;

  const opened = (): Open => {
    if (!state || closed) throw notOpen();
    return state;
  };

  return {
    name: 'sqlite',
    capabilities: { delayedDelivery: true, nativePubSub: false, atomicSendWithReceive: true, competingConsumers: true, exactDeliveryCount: true },
    admin: sqliteQueueAdmin(opened),
    async open() {
      if (state || closed) return;
      checkTimings(leaseMs, pollMs);
      state = openQueues(options, leaseMs, clock);
    },
    async createQueue(address) {
      checkAddress('Queue', address);
      opened().table.createQueue(address);
    },
    async queueExists(address) {
      return opened().table.queueExists(address);
    },
    async dispatch(batch) {
      const { table, committer, notifyDestinations } = opened();
      await committer.run(() => table.enqueue(batch));
      notifyDestinations(batch);
    },
    async receive(address: Address, { max, waitMs, signal }: ReceiveOptions) {
      if (closed) return [];
      const open = opened();
      if (open.table.anyVisible(address)) {
        const got = await claim(open, address, max, leaseMs);
        if (got.length > 0 || waitMs <= 0 || closed) return got;
      } else if (waitMs <= 0) {
        return [];
      }
      await waitForVisible(open, address, waitMs, pollMs, signal);
      return !closed && open.table.anyVisible(address) ? claim(open, address, max, leaseMs) : [];
    },
    async forward(from, { max, waitMs, signal, alongside }, route) {
      if (closed) return 0;
      const open = opened();
      if (!open.table.anyVisible(from)) {
        if (waitMs <= 0) return 0;
        await waitForVisible(open, from, waitMs, pollMs, signal);
        if (closed || !open.table.anyVisible(from)) return 0;
      }
      // Bookkeeping durability: a forward moves a message that is already durable; a power loss
      // can only undo it together with every later commit, leaving the message in `from`.
      const moved = await open.committer.run(() => moveRows(open, from, max, route, alongside), 'bookkeeping');
      open.notifyDestinations(moved);
      return moved.length;
    },
    async close() {
      const open = state;
      closed = true;
      if (!open) return;
      state = undefined;
      open.leases.close();
      open.signals.close();
      open.committer.close();
      open.db.close();
    },
  };
}
