/**
 * The dataset store contract (the port). SQLite, PostgreSQL and Redis implement it; NATS KV and
 * etcd can too (a revisioned log, a snapshot, a watch and a small membership table).
 *
 * The store is the truth: it assigns each appended record the next version of its dataset, in
 * the same transaction that changes the entries, so versions are gapless and committed in
 * version order. Everything a replica needs for correctness comes from `readSince` and
 * `snapshot`; `watch` is only a hint that something may have changed.
 *
 * Generations: each dataset in a store carries a *generation*, an id the store writes when it
 * creates the dataset's version counter (like etcd's cluster id). A store that lost data (Redis
 * restarted without persistence, a database restored from an older backup) either has a new
 * generation or a head below a version some replica applied; `advance` then moves the counter
 * past every version anyone has seen, under a new generation, so no version is handed out twice.
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

export type LogRecord = NewRecord & {
  readonly version: number;
  /** Set on wake-up hints: the generation the record was appended in (a hint without one is not applied). */
  readonly generation?: string;
};

export interface SnapshotEntry {
  readonly key: string;
  readonly value: JsonValue;
  /** The version that last wrote this key (what `ifVersion` compares with). */
  readonly version: number;
}

export interface Snapshot {
  readonly version: number;
  readonly entries: readonly SnapshotEntry[];
  /** The store generation this copy belongs to ('' when the store has none yet; absent in state saved by older versions). */
  readonly generation?: string;
}

/**
 * `records` are in version order starting at afterVersion + 1; `gap` means the log was trimmed past
 * afterVersion. `head` and `generation` are read in the same transaction as the records.
 */
export type ReadResult =
  | { readonly kind: 'records'; readonly records: readonly LogRecord[]; readonly head: number; readonly generation: string }
  | { readonly kind: 'gap'; readonly trimmedThrough: number; readonly head: number; readonly generation: string };

/** What `append` assigned: the version and the generation it belongs to. */
export interface Appended {
  readonly version: number;
  readonly generation: string;
}

export interface AppendOptions {
  /**
   * The highest version the writer has seen. When the store's head is below it, the store lost
   * data: it advances first (see `advance`), so the new version is above every version the writer saw.
   */
  readonly above?: number;
}

export interface StageVote {
  readonly stageId: string;
  readonly accepted: boolean;
  readonly reason?: string;
}

/** What a replica writes on each heartbeat: its applied version and its membership lease. */
export interface ReplicaReport {
  readonly replica: string;
  readonly applied: number;
  /** The store generation the applied version belongs to. */
  readonly generation?: string;
  /** Set while an onChange listener keeps throwing: the replica is held below `version`. */
  readonly failing?: ReplicaFailure;
  /** Reporter's clock, ms since epoch. Live while reportedAt + leaseMs > now. */
  readonly reportedAt: number;
  readonly leaseMs: number;
  readonly stale: boolean;
  /** Votes on recent stages, newest last. */
  readonly votes: readonly StageVote[];
}

export interface ReplicaFailure {
  /** The version the replica cannot finish applying. */
  readonly version: number;
  readonly error: string;
  /** Reporter's clock, ms since epoch, of the first failure. */
  readonly since: number;
  readonly attempts: number;
}

export interface Membership {
  /** The dataset's current version in the store. */
  readonly head: number;
  /** The store's generation for the dataset ('' before the first write). */
  readonly generation: string;
  readonly replicas: readonly ReplicaReport[];
}

export interface DatasetStore {
  /** Backend name for logs and status: `sqlite`, `postgres`, `redis`. */
  readonly backend: string;
  /**
   * Appends one record atomically: checks every op's `ifVersion`, assigns version head + 1,
   * applies `write`/`activate` ops to the entries, wakes watchers. Throws SY_ERR_DATASET_CONFLICT
   * (see `conflictError`) when a condition fails; then nothing is written. Creates the
   * dataset's generation with its counter; with `above`, never assigns a version <= above.
   */
  append(dataset: string, record: NewRecord, options?: AppendOptions): Promise<Appended>;
  readSince(dataset: string, afterVersion: number, limit: number): Promise<ReadResult>;
  /** A consistent copy of the entries at one version, with its generation. */
  snapshot(dataset: string): Promise<Snapshot>;
  /**
   * Called by a replica that found the store's head below a version it applied (the store lost
   * data). Atomically: when head < floor, starts a new generation, sets head and trim point to
   * floor (so versions <= floor are never handed out again and older cursors get a gap) and wakes
   * watchers; else changes nothing (but creates the generation if there is none). Returns the result.
   */
  advance(dataset: string, floor: number): Promise<{ readonly head: number; readonly generation: string }>;
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
