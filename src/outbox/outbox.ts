/**
 * The transactional outbox, for transports that cannot commit a handler's database writes with
 * the messages it sends (RabbitMQ, memory; SQLite when the data lives in another file):
 *
 *   inside the unit of work, in ONE transaction of the application's own database
 *     1. inbox:   (endpoint, message id) inserted; already there = a redelivery of a message
 *                 whose effects committed: the handlers are skipped and the message acknowledged
 *     2. the handlers run; their own SQL joins the transaction (postgresClient(ctx), sqliteSession(ctx))
 *     3. outbox:  the messages they sent, as one record, claimed by this instance for `leaseMs`
 *   after the commit
 *     4. the record is dispatched to the transport and removed (fenced by its claim token)
 *     5. the incoming message is completed
 *
 * A crash after 1-3 committed and before 4 leaves the record; the durability agent of any live
 * instance claims it once its claim has expired (a new claim token fences the dead writer) and
 * dispatches it. A crash before 5 makes the broker redeliver the message; step 1 skips it.
 * Dispatch is at least once (a claimant paused between its last check and the broker's confirm
 * may still send); the inbox of the receiving endpoint makes the effects happen once.
 */
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { StorageSession, Outgoing } from '../core/transport.js';

/** One unit of work's messages, stored with its writes and dispatched after the commit. */
export interface OutboxRecord {
  readonly id: string;
  /** Fences the record's claim: only the holder of the latest token may renew or remove it. */
  readonly token: number;
  readonly batch: readonly Outgoing[];
}

/** What the unit-of-work step does inside the application's database transaction. */
export interface OutboxTransaction {
  /** The session the handlers reach through the storage's accessor. */
  readonly session: StorageSession;
  /** Records the message as processed by `endpoint`; false when it already was (a redelivery). */
  markProcessed(endpoint: string, messageId: string): Promise<boolean>;
  /** Stores `batch` as one record in this transaction, claimed by the transaction's owner. */
  store(batch: readonly Outgoing[]): Promise<void>;
}

/** An outbox adapter: one database the application writes to (src/postgres/outbox.ts, src/sqlite/outbox.ts). */
export interface OutboxStore {
  readonly storage: string;
  open(): Promise<void>;
  close(): Promise<void>;
  /**
   * Runs `work` in one transaction: committed when it resolves, rolled back when it throws.
   * Returns its value and the records stored in it, claimed by `owner` for `leaseMs`. `duplicate`
   * is true when the commit found the message already processed (a concurrent copy committed
   * first): nothing of this transaction was kept.
   */
  transaction<T>(owner: string, leaseMs: number, work: (tx: OutboxTransaction) => Promise<T>): Promise<{ value: T; records: OutboxRecord[]; duplicate: boolean }>;
  /** Records whose claim has run out (their writer died or could not dispatch), claimed for `owner` under new tokens. */
  claimExpired(owner: string, leaseMs: number, max: number): Promise<OutboxRecord[]>;
  /** Extends the claim; false when it was lost to another claimant (then do not send). */
  renew(record: OutboxRecord, leaseMs: number): Promise<boolean>;
  /** Removes a dispatched record; false when the claim was lost. */
  remove(record: OutboxRecord): Promise<boolean>;
  /** Deletes inbox entries recorded before `before` (epoch ms); returns how many. */
  pruneInbox(before: number): Promise<number>;
}

export interface OutboxSettings {
  /** How long the instance that committed a record has to dispatch it before an agent may (default 30 000 ms). */
  leaseMs?: number;
  /** How often the durability agent looks for records whose claim ran out (default 1000 ms). */
  agentPollMs?: number;
  /**
   * How long a processed message id is remembered (default 7 days). A copy redelivered later than
   * this runs its handlers again: keep it above the broker's longest redelivery delay.
   */
  inboxRetentionMs?: number;
}

export interface Outbox {
  readonly store: OutboxStore;
  readonly leaseMs: number;
  readonly agentPollMs: number;
  readonly inboxRetentionMs: number;
}

/** Used by the adapters (`postgresOutbox`, `sqliteOutbox`): the store with its settings checked. */
export function outboxWith(store: OutboxStore, settings: OutboxSettings = {}): Outbox {
  const positive = (name: keyof OutboxSettings, fallback: number) => {
    const value = settings[name] ?? fallback;
    if (!Number.isInteger(value) || value <= 0) {
      throw new SwitchyardError(ErrorCodes.CONFIG, `The outbox option \`${name}\` is ${String(value)}.`, { fix: 'Use a positive whole number of milliseconds, or leave it out for the default.' });
    }
    return value;
  };
  return {
    store,
    leaseMs: positive('leaseMs', 30_000),
    agentPollMs: positive('agentPollMs', 1000),
    inboxRetentionMs: positive('inboxRetentionMs', 7 * 24 * 3600 * 1000),
  };
}
