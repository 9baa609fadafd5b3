/**
 * The dataset store contract (the port). SQLite, PostgreSQL and Redis implement it; NATS KV and
 * etcd can too (a revisioned log, a snapshot, a watch and a small membership table).
 *
 * The store is the truth: it assigns each appended record the next version of its dataset, in
 * the same transaction that changes the entries, so versions are gapless and committed in
 * version order. Everything a replica needs for correctness comes from `readSince` and
 * `snapshot`; `watch` is only a hint that something may have changed.
 */

/** A JSON value: dataset values cross process boundaries as JSON. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** One key change. `ifVersion` makes it a compare-and-set: 0 means "the key must not exist". */
export type EntryOp =
  | { readonly key: string; readonly value: JsonValue; readonly ifVersion?: number }
  | { readonly key: string; readonly delete: true; readonly ifVersion?: number };

/**
 * One change-log record. `write` and `activate` change entries; `stage` and `abort` are the
 * two-phase protocol's records and change nothing until an `activate` carries the same ops.
 * Putting them in the log gives one total order for data and protocol.
 */
export type NewRecord =
  | { readonly kind: 'write'; readonly at: number; readonly ops: readonly EntryOp[] }
  | {
      readonly kind: 'stage';
      readonly at: number;
      readonly stageId: string;
      readonly ops: readonly EntryOp[];
      readonly expiresAt: number;
      readonly by: string;
    }
  | { readonly kind: 'activate'; readonly at: number; readonly stageId: string; readonly ops: readonly EntryOp[] }
  | { readonly kind: 'abort'; readonly at: number; readonly stageId: string; readonly reason: string };

export type LogRecord = NewRecord & { readonly version: number };

export interface SnapshotEntry {
  readonly key: string;
  readonly value: JsonValue;
  /** The version that last wrote this key (what `ifVersion` compares with). */
  readonly version: number;
}

export interface Snapshot {
  readonly version: number;
  readonly entries: readonly SnapshotEntry[];
}

/** `records` are in version order starting at afterVersion + 1; `gap` means the log was trimmed past afterVersion. */
export type ReadResult =
  | { readonly kind: 'records'; readonly records: readonly LogRecord[] }
  | { readonly kind: 'gap'; readonly trimmedThrough: number };

export interface StageVote {
  readonly stageId: string;
  readonly accepted: boolean;
  readonly reason?: string;
}

/** What a replica writes on each heartbeat: its applied version and its membership lease. */
export interface ReplicaReport {
  readonly replica: string;
  readonly applied: number;
  /** Reporter's clock, ms since epoch. Live while reportedAt + leaseMs > now. */
  readonly reportedAt: number;
  readonly leaseMs: number;
  readonly stale: boolean;
  /** Votes on recent stages, newest last. */
  readonly votes: readonly StageVote[];
}

export interface Membership {
  /** The dataset's current version in the store. */
  readonly head: number;
  readonly replicas: readonly ReplicaReport[];
}

export interface DatasetStore {
  /** Backend name for logs and status: `sqlite`, `postgres`, `redis`. */
  readonly backend: string;
  /**
   * Appends one record atomically: checks every op's `ifVersion`, assigns version head + 1,
   * applies `write`/`activate` ops to the entries, wakes watchers. Throws SY_ERR_DATASET_CONFLICT
   * (see `conflictError`) when a condition fails; then nothing is written.
   */
  append(dataset: string, record: NewRecord): Promise<number>;
  readSince(dataset: string, afterVersion: number, limit: number): Promise<ReadResult>;
  /** A consistent copy of the entries at one version. */
  snapshot(dataset: string): Promise<Snapshot>;
  /**
   * Calls onWake after appends; returns an unsubscribe. A wake-up is a hint: it may be lost,
   * repeated or late. It may carry the record just committed, which a replica applies only when
   * it is exactly its next version (saving a read); otherwise it reads the log.
   */
  watch(dataset: string, onWake: (hint?: LogRecord) => void): Promise<() => Promise<void>>;
  heartbeat(dataset: string, report: ReplicaReport): Promise<void>;
  /** Removes a replica from membership (graceful close, or forgetting a long-dead one). */
  leave(dataset: string, replica: string): Promise<void>;
  membership(dataset: string): Promise<Membership>;
  /** Retention: deletes log records with version <= throughVersion (capped at head). Returns the new trim point. */
  trim(dataset: string, throughVersion: number): Promise<number>;
  close(): Promise<void>;
}
