/**
 * The SQL of the SQLite transport: its schema, its migrations and every statement it runs on
 * `sy_messages` and `sy_queues`. Writes run inside the group commit's transaction (the caller
 * passes them to GroupCommitter.run); reads are plain WAL reads that never wait for the write
 * lock. State transitions and fencing: see src/sqlite/transport.ts.
 */
import type Database from 'better-sqlite3';
import type { Clock } from '../core/clock.js';
import type { Address } from '../core/identity.js';
import { leaseLost, queueNotFound, topicsUnsupported } from '../core/leases.js';
import { isTopicOutgoing } from '../core/transport.js';
import type { Outgoing, QueueOutgoing, TransportMessage } from '../core/transport.js';
import { decodeStoredMessage, MAX_ID_CHARS } from '../core/wire-headers.js';
import { BOUND_LIMIT, savepointRunner } from './database.js';
import type { SqliteUnitOfWork } from './session.js';

export const MIGRATIONS = [
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
export interface Row {
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
export function toMessage(row: Pick<Row, 'seq' | 'id' | 'headers' | 'body'>): TransportMessage {
  return decodeStoredMessage(row, `row-${row.seq}`);
}

function prepare(d: Database.Database) {
  return {
    insert: d.prepare('INSERT INTO sy_messages (queue, id, headers, body, visible_at) VALUES (?, ?, ?, ?, ?)'),
    claim: d.prepare(`UPDATE sy_messages SET visible_at = ?, lease_token = lease_token + 1, delivery_count = delivery_count + 1
      WHERE seq IN (SELECT seq FROM sy_messages WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, seq ${BOUND_LIMIT})
      RETURNING seq, id, headers, body, lease_token, delivery_count`),
    renew: d.prepare('UPDATE sy_messages SET visible_at = ? WHERE seq = ? AND lease_token = ?'),
    remove: d.prepare('DELETE FROM sy_messages WHERE seq = ? AND lease_token = ?'),
    abandon: d.prepare('UPDATE sy_messages SET visible_at = ?, lease_token = lease_token + 1 WHERE seq = ? AND lease_token = ?'),
    visible: d.prepare(`SELECT seq, id, headers, body FROM sy_messages WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, seq ${BOUND_LIMIT}`),
    /** Removes a message whatever its lease: forward selects only unheld ones, the admin take is an operator's choice. */
    removeUnheld: d.prepare('DELETE FROM sy_messages WHERE seq = ?'),
    anyVisible: d.prepare('SELECT 1 FROM sy_messages WHERE queue = ? AND visible_at <= ? LIMIT 1').pluck(),
    nextVisible: d.prepare('SELECT MIN(visible_at) AS at FROM sy_messages WHERE queue = ?').pluck(),
    queueExists: d.prepare('SELECT 1 FROM sy_queues WHERE name = ?').pluck(),
    createQueue: d.prepare('INSERT OR IGNORE INTO sy_queues (name, created_at) VALUES (?, ?)'),
    depth: d.prepare('SELECT COUNT(*) FROM sy_messages WHERE queue = ?').pluck(),
    queues: d.prepare('SELECT name FROM sy_queues ORDER BY name').pluck(),
    peek: d.prepare(`SELECT seq, id, headers, body FROM sy_messages WHERE queue = ? ORDER BY seq ${BOUND_LIMIT} OFFSET ?`),
    schedule: d.prepare('SELECT seq, id, headers, body, visible_at FROM sy_messages WHERE queue = ? ORDER BY seq'),
    // One pass over the queue for all ids (there is no index on id: it would slow every send).
    // A row whose id column is not a usable id goes by the id toMessage gives it (its header's
    // message id, or row-<seq>): such rows are selected too and matched on that id by the caller.
    takeCandidates: d.prepare(`SELECT seq, id, headers, body FROM sy_messages WHERE queue = ? AND (id IN (SELECT value FROM json_each(?))
      OR typeof(id) != 'text' OR id = '' OR length(id) > ${MAX_ID_CHARS} OR seq IN (SELECT value FROM json_each(?))) ORDER BY seq`),
    moveAll: d.prepare('UPDATE sy_messages SET queue = ?, visible_at = ?, lease_token = lease_token + 1 WHERE queue = ?'),
    moveUnheld: d.prepare('UPDATE sy_messages SET queue = ?, visible_at = ?, lease_token = lease_token + 1 WHERE queue = ? AND (visible_at <= ? OR lease_token = 0)'),
  };
}

/**
 * The queue tables of one connection. Methods marked "in a transaction" must run inside GroupCommitter.run.
 * @internal (better-sqlite3 types stay out of the published declarations)
 */
export class QueueTable {
  readonly #s: ReturnType<typeof prepare>;
  readonly #underSavepoint: <T>(work: () => T) => T;
  readonly #known = new Set<string>();

  constructor(
    db: Database.Database,
    private readonly clock: Clock,
  ) {
    this.#s = prepare(db);
    this.#underSavepoint = savepointRunner(db);
  }

  /** The transport's time: visibility, leases and delays are read against it. */
  now(): number {
    return this.clock.now();
  }

  createQueue(address: Address): void {
    this.#s.createQueue.run(address, this.clock.now());
    this.#known.add(address);
  }

  queueExists(address: Address): boolean {
    return this.#known.has(address) || this.#s.queueExists.get(address) !== undefined;
  }

  checkQueue(address: Address): void {
    if (this.#known.has(address)) return;
    if (!this.#s.queueExists.get(address)) throw queueNotFound('sqlite', address);
    this.#known.add(address);
  }

  /** Checks before any write (see GroupCommitter): every destination must be a known queue. */
  checkDestinations(batch: readonly Outgoing[]): void {
    for (const o of batch) {
      if (isTopicOutgoing(o)) throw topicsUnsupported('SQLite');
      this.checkQueue(o.destination);
    }
  }

  /** In a transaction, after checkDestinations. */
  insertAll(batch: readonly Outgoing[]): void {
    const now = this.clock.now();
    for (const o of batch) {
      const q = o as QueueOutgoing;
      this.#s.insert.run(q.destination, q.message.id, JSON.stringify(q.message.headers), q.message.body, q.deliverAt ?? now);
    }
  }

  /** In a transaction. */
  enqueue(batch: readonly Outgoing[]): void {
    this.checkDestinations(batch);
    this.insertAll(batch);
  }

  /** A plain read: a receiver woken for another queue, or asking again, takes no write lock. */
  anyVisible(address: Address): boolean {
    return this.#s.anyVisible.get(address, this.clock.now()) !== undefined;
  }

  /** When the earliest message of `address` is due (or was), null when it is empty. */
  nextVisibleAt(address: Address): number | null {
    return this.#s.nextVisible.get(address) as number | null;
  }

  /** In a transaction: leases up to `max` visible messages for `leaseMs`, oldest first. */
  claim(address: Address, max: number, leaseMs: number): Row[] {
    const now = this.clock.now();
    const rows = this.#s.claim.all(now + leaseMs, address, now, max) as Row[];
    return rows.sort((a, b) => a.seq - b.seq);
  }

  /** In a transaction: false when the lease was lost. */
  renew(row: Row, leaseMs: number): boolean {
    return this.#s.renew.run(this.clock.now() + leaseMs, row.seq, row.lease_token).changes === 1;
  }

  /** In a transaction: returns the message to its queue, due after `delayMs`, under a new lease token. */
  abandon(row: Row, delayMs: number): void {
    this.#s.abandon.run(this.clock.now() + delayMs, row.seq, row.lease_token);
  }

  /**
   * In a transaction: the completion of one message, its sends and its unit of work's writes.
   * With own writes, under a savepoint: a failing one undoes only this message's unit.
   */
  complete(address: Address, row: Row, message: TransportMessage, outgoing: readonly Outgoing[], unit: SqliteUnitOfWork | undefined): void {
    this.checkDestinations(outgoing);
    const removeAndSend = () => {
      if (this.#s.remove.run(row.seq, row.lease_token).changes !== 1) throw leaseLost(address, message.id);
      unit?.apply();
      this.insertAll(outgoing);
    };
    if (unit?.pending) this.#underSavepoint(removeAndSend);
    else removeAndSend();
  }

  /**
   * In a transaction: removes each row that `replace` returns an array for and sends that array
   * in its place (`[]`: removed, nothing sent; `undefined`: the row stays). Every destination is
   * checked before the first write; `beforeWrite` (forward's `alongside`) runs after that check
   * when something is replaced. Forward and the admin take share it.
   */
  replaceRows(rows: readonly Row[], replace: (message: TransportMessage) => readonly Outgoing[] | undefined, beforeWrite?: () => void): Outgoing[] {
    const removed: Row[] = [];
    const outgoing: Outgoing[] = [];
    for (const row of rows) {
      const replacements = replace(toMessage(row));
      if (!replacements) continue;
      removed.push(row);
      outgoing.push(...replacements);
    }
    this.checkDestinations(outgoing);
    if (removed.length > 0) beforeWrite?.();
    for (const row of removed) this.#s.removeUnheld.run(row.seq);
    this.insertAll(outgoing);
    return outgoing;
  }

  /** In a transaction: the visible messages of `from`, for forward (no lease taken). */
  visible(from: Address, max: number): Row[] {
    return this.#s.visible.all(from, this.clock.now(), max) as Row[];
  }

  depth(address: Address): number {
    return this.#s.depth.get(address) as number;
  }

  queues(): string[] {
    return this.#s.queues.all() as string[];
  }

  /** Every message of `address` with when it becomes visible (the test kit's view of what is due later). */
  schedule(address: Address): (Row & { visible_at: number })[] {
    this.checkQueue(address);
    return this.#s.schedule.all(address) as (Row & { visible_at: number })[];
  }

  peek(address: Address, offset: number, limit: number): Row[] {
    this.checkQueue(address);
    return this.#s.peek.all(address, limit, offset) as Row[];
  }

  /** In a transaction: the rows of `address` whose message id is one of `ids`. */
  rowsWithIds(address: Address, ids: readonly string[]): Row[] {
    const wanted = new Set(ids);
    const seqs = ids.flatMap((id) => (/^row-\d{1,15}$/.test(id) ? [Number(id.slice(4))] : []));
    const candidates = this.#s.takeCandidates.all(address, JSON.stringify(ids), JSON.stringify(seqs)) as Row[];
    return candidates.filter((row) => wanted.has(toMessage(row).id));
  }

  /** In a transaction: moves the messages no consumer holds (all with `includeLeased`); returns how many. */
  moveAll(from: Address, to: Address, includeLeased: boolean): number {
    this.checkQueue(to);
    const now = this.clock.now();
    return (includeLeased ? this.#s.moveAll.run(to, now, from) : this.#s.moveUnheld.run(to, now, from, now)).changes;
  }
}
