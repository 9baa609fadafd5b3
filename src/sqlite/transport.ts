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
 * - complete: DELETE WHERE seq AND lease_token (0 rows: SY_ERR_LEASE_LOST, savepoint rolls back
 *            the sends queued with it), then the enqueues of the handler's outgoing messages
 * - abandon: UPDATE visible_at = now + delay, lease_token + 1 WHERE seq AND lease_token
 *
 * Fencing: seq is AUTOINCREMENT (migration 2), never reused, and lease_token only grows for a
 * seq, so a (seq, lease_token) pair names one lease of one message, once: a holder paused past
 * its lease can never settle, renew or abandon a later lease, of its message or of another.
 */
import { systemClock, type Clock } from '../core/clock.js';
import type Database from 'better-sqlite3';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { Address } from '../core/identity.js';
import { checkAddress } from '../core/identity.js';
import { LeaseKeeper, leaseLost, queueNotFound, topicsUnsupported, waitForWake } from '../core/leases.js';
import { isTopicOutgoing } from '../core/transport.js';
import { decodeStoredMessage, MAX_ID_CHARS } from '../core/wire-headers.js';
import type { Outgoing, QueueOutgoing, QueueAdmin, Receipt, ReceiveOptions, Transport, TransportMessage } from '../core/transport.js';
import { GroupCommitter, migrate, openDatabase, type SqliteOptions } from './database.js';
import { QueueSignals } from './queue-signals.js';

export interface SqliteTransportOptions extends SqliteOptions {
  /** How long a received message is held before another consumer may take it (renewed while held). */
  leaseMs?: number;
  /** Fallback poll when no wake-up event arrives. */
  pollMs?: number;
  /** Where visibility, leases and delays read time (default: the system clock; the test kit passes a virtual one). */
  clock?: Clock;
}

const MIGRATIONS = [
  {
    version: 1,
    breaking: false,
    sql: `
      CREATE TABLE sy_queues (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
      CREATE TABLE sy_messages (
        seq INTEGER PRIMARY KEY,
        queue TEXT NOT NULL,
        id TEXT NOT NULL,
        headers TEXT NOT NULL,
        body TEXT NOT NULL,
        visible_at INTEGER NOT NULL,
        lease_token INTEGER NOT NULL DEFAULT 0,
        delivery_count INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX sy_messages_ready ON sy_messages (queue, visible_at, seq);`,
  },
  {
    // Fencing: without AUTOINCREMENT SQLite gives a new row max(seq) + 1, so completing the newest
    // row handed its seq to the next message, whose lease_token counts from 0 again: a stale
    // holder's "seq + token" could match that message once claimed. AUTOINCREMENT never reuses a
    // seq, so (seq, lease_token) names one lease of one message for the life of the database.
    // SQLite cannot add AUTOINCREMENT to a table: it is rebuilt in place, messages kept, inside the
    // migration's IMMEDIATE transaction (another process opening meanwhile waits, then skips it).
    // Seqs of rows deleted before this migration are recorded nowhere, so new seqs start 2^40 above
    // the highest one left: a holder paused across the migration cannot meet its seq again.
    // Not breaking: code at version 1 reads and writes the rebuilt table unchanged (and, from now
    // on, never reuses a seq either).
    version: 2,
    breaking: false,
    sql: `
      CREATE TABLE sy_messages_v2 (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        id TEXT NOT NULL,
        headers TEXT NOT NULL,
        body TEXT NOT NULL,
        visible_at INTEGER NOT NULL,
        lease_token INTEGER NOT NULL DEFAULT 0,
        delivery_count INTEGER NOT NULL DEFAULT 0
      );
      INSERT INTO sy_messages_v2 (seq, queue, id, headers, body, visible_at, lease_token, delivery_count)
        SELECT seq, queue, id, headers, body, visible_at, lease_token, delivery_count FROM sy_messages;
      DROP TABLE sy_messages;
      ALTER TABLE sy_messages_v2 RENAME TO sy_messages;
      CREATE INDEX sy_messages_ready ON sy_messages (queue, visible_at, seq);
      DELETE FROM sqlite_sequence WHERE name IN ('sy_messages', 'sy_messages_v2');
      INSERT INTO sqlite_sequence (name, seq) SELECT 'sy_messages', COALESCE(MAX(seq), 0) + 1099511627776 FROM sy_messages;`,
  },
] as const;

/** As stored: id, headers and body are whatever the row holds (TEXT columns take any value). */
interface Row {
  seq: number;
  id: unknown;
  headers: unknown;
  body: unknown;
  lease_token: number;
  delivery_count: number;
}

/**
 * Never throws, whatever the row holds (another tool or an older version may have written it): a
 * row that cannot be read as sent comes out marked (see src/core/wire-headers.ts), and the
 * endpoint moves it to the error queue; the rest of its batch is unaffected.
 */
function toMessage(row: Pick<Row, 'seq' | 'id' | 'headers' | 'body'>): TransportMessage {
  return decodeStoredMessage(row, `row-${row.seq}`);
}

export function sqliteTransport(options: SqliteTransportOptions): Transport {
  const leaseMs = options.leaseMs ?? 30_000;
  const pollMs = options.pollMs ?? 250;
  const clock = options.clock ?? systemClock;
  let db: Database.Database | undefined;
  let committer: GroupCommitter;
  let signals: QueueSignals;
  let leases: LeaseKeeper;
  let statements: ReturnType<typeof prepare>;
  const knownQueues = new Set<string>();
  let closed = false;

  function prepare(d: Database.Database) {
    return {
      insert: d.prepare('INSERT INTO sy_messages (queue, id, headers, body, visible_at) VALUES (?, ?, ?, ?, ?)'),
      claim: d.prepare(`UPDATE sy_messages SET visible_at = ?, lease_token = lease_token + 1, delivery_count = delivery_count + 1
        WHERE seq IN (SELECT seq FROM sy_messages WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, seq LIMIT ?)
        RETURNING seq, id, headers, body, lease_token, delivery_count`),
      renew: d.prepare('UPDATE sy_messages SET visible_at = ? WHERE seq = ? AND lease_token = ?'),
      remove: d.prepare('DELETE FROM sy_messages WHERE seq = ? AND lease_token = ?'),
      abandon: d.prepare('UPDATE sy_messages SET visible_at = ?, lease_token = lease_token + 1 WHERE seq = ? AND lease_token = ?'),
      visible: d.prepare('SELECT seq, id, headers, body FROM sy_messages WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, seq LIMIT ?'),
      /** Removes a message whatever its lease: forward selects only unheld ones, the admin take is an operator's choice. */
      removeUnheld: d.prepare('DELETE FROM sy_messages WHERE seq = ?'),
      anyVisible: d.prepare('SELECT 1 FROM sy_messages WHERE queue = ? AND visible_at <= ? LIMIT 1').pluck(),
      nextVisible: d.prepare('SELECT MIN(visible_at) AS at FROM sy_messages WHERE queue = ?').pluck(),
      queueExists: d.prepare('SELECT 1 FROM sy_queues WHERE name = ?').pluck(),
      createQueue: d.prepare('INSERT OR IGNORE INTO sy_queues (name, created_at) VALUES (?, ?)'),
    };
  }

  const opened = () => {
    if (!db || closed) {
      throw new SwitchyardError(ErrorCodes.NOT_RUNNING, 'The SQLite transport is not open.', {
        fix: 'Start the endpoint (or call transport.open()) before sending, and do not use it after stop.',
      });
    }
    return db;
  };

  const checkQueue = (address: Address) => {
    if (knownQueues.has(address)) return;
    if (!statements.queueExists.get(address)) throw queueNotFound('sqlite', address);
    knownQueues.add(address);
  };

  /** Checks before any write (see GroupCommitter): every destination must be a known queue. */
  const checkDestinations = (batch: readonly Outgoing[]) => {
    for (const o of batch) {
      if (isTopicOutgoing(o)) {
        throw topicsUnsupported('SQLite');
      }
      checkQueue(o.destination);
    }
  };

  /** Runs inside a transaction, after checkDestinations. */
  const insertAll = (batch: readonly Outgoing[]) => {
    const now = clock.now();
    for (const o of batch) {
      const q = o as QueueOutgoing;
      statements.insert.run(q.destination, q.message.id, JSON.stringify(q.message.headers), q.message.body, q.deliverAt ?? now);
    }
  };

  const enqueue = (batch: readonly Outgoing[]) => {
    checkDestinations(batch);
    insertAll(batch);
  };

  /**
   * Runs inside a transaction: removes each row that `replace` returns an array for and sends that
   * array in its place (`[]`: removed, nothing sent; `undefined`: the row stays). Every
   * destination is checked before the first write. Forward and the admin take share it.
   */
  const replaceRows = (rows: readonly Row[], replace: (message: TransportMessage) => readonly Outgoing[] | undefined) => {
    const removed: Row[] = [];
    const outgoing: Outgoing[] = [];
    for (const row of rows) {
      const replacements = replace(toMessage(row));
      if (!replacements) continue;
      removed.push(row);
      outgoing.push(...replacements);
    }
    checkDestinations(outgoing);
    for (const row of removed) statements.removeUnheld.run(row.seq);
    insertAll(outgoing);
    return outgoing;
  };

  /**
   * A read, outside any transaction: WAL readers never wait for the write lock. A receiver woken
   * by a signal for another queue, or asking again after an empty receive, takes no write lock.
   */
  const anyVisible = (address: Address) => statements.anyVisible.get(address, clock.now()) !== undefined;

  /** Waits for a wake-up, the fallback poll or the next due message; true when `address` then has one. */
  const waitForVisible = async (address: Address, waitMs: number, signal: AbortSignal): Promise<boolean> => {
    const next = statements.nextVisible.get(address) as number | null;
    const untilDue = next === null ? Infinity : Math.max(0, next - clock.now());
    await waitForWake((wake) => signals.subscribe(address, wake), Math.min(waitMs, pollMs, untilDue), signal);
    return !closed && anyVisible(address);
  };

  const claim = async (address: Address, max: number): Promise<Receipt[]> => {
    const rows = await committer.run(() => {
      const now = clock.now();
      return statements.claim.all(now + leaseMs, address, now, max) as Row[];
    }, 'bookkeeping');
    rows.sort((a, b) => a.seq - b.seq);
    return rows.map((row) => receiptFor(address, row));
  };

  const receiptFor = (address: Address, row: Row): Receipt => {
    const { seq, lease_token: token } = row;
    const message = toMessage(row);
    const lease = leases.hold(() => committer.run(() => statements.renew.run(clock.now() + leaseMs, seq, token).changes === 1, 'bookkeeping'));
    return {
      message,
      address,
      deliveryCount: row.delivery_count,
      get signal() {
        return lease.signal;
      },
      async complete(outgoing: readonly Outgoing[] = []) {
        lease.release();
        await committer.run(() => {
          checkDestinations(outgoing);
          if (statements.remove.run(seq, token).changes !== 1) throw leaseLost(address, message.id);
          insertAll(outgoing);
        });
        notifyDestinations(outgoing);
      },
      async abandon(delayMs = 0) {
        lease.release();
        await committer.run(() => statements.abandon.run(clock.now() + delayMs, seq, token), 'bookkeeping');
        signals.notify([address]);
      },
    };
  };

  /** After a commit that made `batch` available. */
  const notifyDestinations = (batch: readonly Outgoing[]) => {
    if (batch.length > 0) signals.notify(batch.map((o) => (o as QueueOutgoing).destination));
  };

  const admin: QueueAdmin = {
    async depth(address) {
      return opened().prepare('SELECT COUNT(*) FROM sy_messages WHERE queue = ?').pluck().get(address) as number;
    },
    async queues() {
      return opened().prepare('SELECT name FROM sy_queues ORDER BY name').pluck().all() as string[];
    },
    async schedule(address) {
      checkQueue(address);
      const rows = opened().prepare('SELECT seq, id, headers, body, visible_at FROM sy_messages WHERE queue = ? ORDER BY seq').all(address) as (Row & { visible_at: number })[];
      return rows.map((row) => ({ message: toMessage(row), visibleAt: row.visible_at }));
    },
    async peek(address, { offset, limit }) {
      checkQueue(address);
      const rows = opened()
        .prepare('SELECT seq, id, headers, body FROM sy_messages WHERE queue = ? ORDER BY seq LIMIT ? OFFSET ?')
        .all(address, limit, offset) as Row[];
      return rows.map(toMessage);
    },
    async take(address, ids, replacements) {
      const d = opened();
      // One pass over the queue for all ids (there is no index on id: it would slow every send).
      // A row whose id column is not a usable id goes by the id toMessage gives it (its header's
      // message id, or row-<seq>): such rows are selected too and matched on that id here.
      const select = d.prepare(`SELECT seq, id, headers, body FROM sy_messages WHERE queue = ? AND (id IN (SELECT value FROM json_each(?))
        OR typeof(id) != 'text' OR id = '' OR length(id) > ${MAX_ID_CHARS} OR seq IN (SELECT value FROM json_each(?))) ORDER BY seq`);
      const wanted = new Set(ids);
      const seqs = ids.flatMap((id) => (/^row-\d{1,15}$/.test(id) ? [Number(id.slice(4))] : []));
      const taken = await committer.run(() => {
        const rows = (select.all(address, JSON.stringify(ids), JSON.stringify(seqs)) as Row[]).filter((row) => wanted.has(toMessage(row).id));
        const outgoing = replaceRows(rows, (message) => replacements?.(message) ?? []);
        return { ids: [...new Set(rows.map((row) => toMessage(row).id))], outgoing };
      });
      notifyDestinations(taken.outgoing);
      return taken.ids;
    },
    async moveAll(from, to, moveOptions = {}) {
      const d = opened();
      const moved = await committer.run(() => {
        checkQueue(to);
        const now = clock.now();
        const sql = moveOptions.includeLeased
          ? 'UPDATE sy_messages SET queue = ?, visible_at = ?, lease_token = lease_token + 1 WHERE queue = ?'
          : 'UPDATE sy_messages SET queue = ?, visible_at = ?, lease_token = lease_token + 1 WHERE queue = ? AND (visible_at <= ? OR lease_token = 0)';
        const stmt = d.prepare(sql);
        return (moveOptions.includeLeased ? stmt.run(to, now, from) : stmt.run(to, now, from, now)).changes;
      });
      signals.notify([to]);
      return moved;
    },
  };

  return {
    name: 'sqlite',
    capabilities: { delayedDelivery: true, nativePubSub: false, atomicSendWithReceive: true, competingConsumers: true, exactDeliveryCount: true },
    admin,
    async open() {
      if (db) return;
      if (!(leaseMs > 0) || !(pollMs > 0)) {
        throw new SwitchyardError(ErrorCodes.CONFIG, `The SQLite transport options leaseMs (${leaseMs}) and pollMs (${pollMs}) must be positive.`, {
          fix: 'Leave them unset for the defaults (30000 and 250) or pass positive numbers of milliseconds.',
        });
      }
      const d = openDatabase(options);
      migrate(d, 'transport', MIGRATIONS);
      db = d;
      statements = prepare(d);
      committer = new GroupCommitter(d, options.busyTimeoutMs, options.synchronous);
      leases = new LeaseKeeper(Math.max(50, Math.floor(leaseMs / 3)));
      signals = new QueueSignals(options.path);
    },
    async createQueue(address) {
      checkAddress('Queue', address);
      opened();
      statements.createQueue.run(address, clock.now());
      knownQueues.add(address);
    },
    async queueExists(address) {
      opened();
      return knownQueues.has(address) || statements.queueExists.get(address) !== undefined;
    },
    async dispatch(batch) {
      opened();
      await committer.run(() => enqueue(batch));
      notifyDestinations(batch);
    },
    async receive(address: Address, { max, waitMs, signal }: ReceiveOptions) {
      if (closed) return [];
      opened();
      if (anyVisible(address)) {
        const got = await claim(address, max);
        if (got.length > 0 || waitMs <= 0 || closed) return got;
      } else if (waitMs <= 0) {
        return [];
      }
      return (await waitForVisible(address, waitMs, signal)) ? claim(address, max) : [];
    },
    async forward(from, { max, waitMs, signal }, route) {
      if (closed) return 0;
      opened();
      if (!anyVisible(from) && (waitMs <= 0 || !(await waitForVisible(from, waitMs, signal)))) return 0;
      // Bookkeeping durability: a forward moves a message that is already durable; a power loss
      // can only undo it together with every later commit, leaving the message in `from`.
      const moved = await committer.run(() => {
        const rows = statements.visible.all(from, clock.now(), max) as Row[];
        return replaceRows(rows, (message) => {
          const copy = route(message);
          return copy && [copy];
        });
      }, 'bookkeeping');
      notifyDestinations(moved);
      return moved.length;
    },
    async close() {
      if (closed || !db) {
        closed = true;
        return;
      }
      closed = true;
      leases.close();
      signals.close();
      committer.close();
      db.close();
    },
  };
}
