/**
 * `openDataset(name, { store })`: this instance's replica of a versioned key/value dataset.
 * Reads are local memory reads; writes go to the store, which assigns the version, and resolve
 * once this replica has applied them (read-your-writes).
 */
import { systemClock, type Clock } from '../core/clock.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { InstanceIdentity } from '../core/identity.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { convergenceOf, describeReplicas, pollUntil, type Convergence, type ReplicaStatus } from './convergence.js';
import { registerReplica } from './observers.js';
import { checkDatasetName, checkRecord } from './records.js';
import { createReplica, type DatasetChange, type Entry, type Replica, type StageValidator } from './replica.js';
import { createStager, type StageOptions, type StageOutcome, type StagedChange } from './stage.js';
import type { DatasetStore, EntryOp, JsonValue, Membership, ReplicaFailure, ReplicaReport, Snapshot } from './store.js';

/** A key change in a write; values must be JSON-serialisable. `ifVersion` 0 = "key must not exist". */
export type DatasetOp<V> =
  | { readonly key: string; readonly value: V; readonly ifVersion?: number }
  | { readonly key: string; readonly delete: true; readonly ifVersion?: number };

export interface WriteOptions {
  /** Compare-and-set: the key's current version (from getEntry), or 0 if it must not exist. */
  ifVersion?: number;
}

export interface DatasetOptions<V> {
  store: DatasetStore;
  /** Names this replica in status and convergence reports (default: a random id). */
  identity?: InstanceIdentity;
  logger?: Logger;
  clock?: Clock;
  /** Membership lease: a replica silent for this long leaves the live set (default 5000 ms). */
  leaseMs?: number;
  /** A replica that cannot confirm it is current for this long is stale (default 10000 ms). */
  stalenessMs?: number;
  /** What reads do when stale: serve the last data (default) or throw SY_ERR_DATASET_STALE. */
  onStale?: 'serve' | 'refuse';
  /** Periodic catch-up read that backs up the store's wake-ups (default 1000 ms). */
  catchUpMs?: number;
  /**
   * A new applied version is written to membership at most once per this many ms (default 500):
   * store writes per second stay bounded however fast changes arrive; under a stream of changes
   * waitForVersion may see a version up to this much later than the replica applied it (a change
   * after a quiet window is reported at once). 50 ms made 100 replicas write 2,000 reports/s.
   */
  reportMs?: number;
  /** status() removes replicas departed longer than this from membership (default 1 hour). */
  forgetAfterMs?: number;
  /** Votes on staged changes; return a reason to reject. Default: accept. */
  validate?: StageValidator<V>;
  /**
   * State saved by an earlier run with exportState(): the replica resumes through the change log
   * ("restarted: continuing from N") or, when the log was trimmed past it, from a snapshot.
   */
  resumeFrom?: Snapshot;
}

export interface DatasetStatus {
  readonly dataset: string;
  readonly backend: string;
  readonly instance: string;
  /** This replica's applied version. */
  readonly version: number;
  /** The store's current version. */
  readonly head: number;
  readonly stale: boolean;
  readonly mode: 'starting' | 'live' | 'disconnected' | 'closed';
  /** The store generation this replica's version belongs to. */
  readonly generation: string;
  /** Set while one of this replica's onChange listeners keeps throwing: `version` is held below `failing.version`. */
  readonly failing?: ReplicaFailure;
  readonly replicas: readonly ReplicaStatus[];
}

export interface Dataset<V> extends AsyncDisposable {
  readonly name: string;
  readonly instance: string;
  /** The version this replica has applied. */
  readonly version: number;
  get(key: string): V | undefined;
  getEntry(key: string): Entry<V> | undefined;
  has(key: string): boolean;
  entries(): IterableIterator<[string, V]>;
  readonly size: number;
  isStale(): boolean;
  set(key: string, value: V, options?: WriteOptions): Promise<number>;
  delete(key: string, options?: WriteOptions): Promise<number>;
  /** Several key changes as one version: all or nothing. */
  batch(ops: readonly DatasetOp<V>[]): Promise<number>;
  /** Called once per version that changed entries, in version order; returns an unsubscribe. */
  onChange(listener: (change: DatasetChange<V>) => void): () => void;
  waitForVersion(version: number, options?: { timeoutMs?: number }): Promise<Convergence>;
  status(): Promise<DatasetStatus>;
  stage(ops: readonly DatasetOp<V>[], options?: StageOptions): Promise<StageOutcome>;
  activate(stage: StagedChange): Promise<number>;
  abort(stage: StagedChange, reason: string): Promise<number>;
  /** This replica's data and version, to pass as `resumeFrom` on the next start. */
  exportState(): Snapshot;
  /** Retention: drops change-log records older than the newest `keepLast`; lagging replicas resync from a snapshot. */
  trimLog(options: { keepLast: number }): Promise<number>;
  close(): Promise<void>;
}

function toEntryOps<V>(dataset: string, ops: readonly DatasetOp<V>[]): EntryOp[] {
  return ops.map((op) => {
    if ('delete' in op && op.delete === true) return op;
    const { key, value, ifVersion } = op as { key: string; value: V; ifVersion?: number };
    if (value === undefined || typeof value === 'function' || typeof value === 'symbol') {
      throw new SwitchyardError(ErrorCodes.CONFIG, `Dataset "${dataset}": the value for key "${key}" is not JSON.`, {
        fix: 'Store JSON-serialisable values (use delete() to remove a key).',
      });
    }
    // Round-trip once so the writer's replica holds exactly what every other replica will.
    const json = JSON.parse(JSON.stringify(value)) as JsonValue;
    return ifVersion === undefined ? { key, value: json } : { key, value: json, ifVersion };
  });
}

/** The options with their defaults, checked: a bad timing option is a coded error that says which. */
function resolveOptions<V>(dataset: string, options: DatasetOptions<V>) {
  const { store } = options;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger;
  const instance = options.identity?.id ?? `replica-${crypto.randomUUID().slice(0, 13)}`;
  const leaseMs = options.leaseMs ?? 5000;
  const stalenessMs = options.stalenessMs ?? 10_000;
  const catchUpMs = options.catchUpMs ?? Math.min(1000, Math.max(20, Math.floor(stalenessMs / 4)));
  const reportMs = options.reportMs ?? 500;
  const refuse = options.onStale === 'refuse';
  for (const [option, value] of [['leaseMs', leaseMs], ['stalenessMs', stalenessMs], ['catchUpMs', catchUpMs], ['reportMs', reportMs]] as const) {
    if (!(Number.isFinite(value) && value > 0)) {
      throw new SwitchyardError(ErrorCodes.CONFIG, `Dataset "${dataset}": ${option} ${value} is not a positive number of milliseconds.`, {
        fix: `Pass a positive ${option}, or leave it out for the default.`,
      });
    }
  }
  if (catchUpMs >= stalenessMs) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `Dataset "${dataset}": catchUpMs ${catchUpMs} is not below stalenessMs ${stalenessMs}, so a healthy replica would report itself stale.`, {
      fix: 'Make catchUpMs a fraction of stalenessMs (the default is a quarter, at most 1000 ms).',
    });
  }
  return { store, clock, logger, instance, leaseMs, stalenessMs, catchUpMs, reportMs, refuse };
}

type Settings = ReturnType<typeof resolveOptions> & { readonly dataset: string };

/** What the handle's methods share: the settings, the replica and the two checks every call makes. */
interface HandleParts<V> {
  readonly settings: Settings;
  readonly options: DatasetOptions<V>;
  readonly replica: Replica<V>;
  /** Throws SY_ERR_DATASET_CLOSED after close(). */
  readonly open: () => void;
  /** Throws SY_ERR_DATASET_STALE when reads refuse and the replica is stale. */
  readonly readable: () => void;
}

function guards<V>(settings: Settings, replica: Replica<V>): Pick<HandleParts<V>, 'open' | 'readable'> {
  const { dataset, instance, clock, stalenessMs, store, refuse } = settings;
  return {
    open() {
      if (replica.mode === 'closed') {
        throw new SwitchyardError(ErrorCodes.DATASET_CLOSED, `Dataset "${dataset}" (${instance}) is closed.`, {
          fix: 'Open the dataset again with openDataset().',
        });
      }
    },
    readable() {
      if (refuse && replica.isStale()) {
        throw new SwitchyardError(
          ErrorCodes.DATASET_STALE,
          `Dataset "${dataset}" (${instance}) is stale: version ${replica.applied} was last confirmed current ${clock.now() - replica.lastConfirmedAt} ms ago (bound ${stalenessMs} ms), so reads are refused.`,
          { fix: `Check the connection to the ${store.backend} store; or open the dataset with onStale: 'serve' to serve the last known data.` },
        );
      }
    },
  };
}

/** The first snapshot (or the resume); a store that cannot be reached is a coded error that says which. */
async function startReplica<V>({ dataset, instance, store, logger }: Settings, replica: Replica<V>, resumeFrom: Snapshot | undefined) {
  try {
    await replica.start(resumeFrom);
  } catch (error) {
    await replica.stop();
    throw new SwitchyardError(ErrorCodes.TRANSPORT, `Dataset "${dataset}" (${instance}) could not open on the ${store.backend} store: ${String(error)}`, {
      fix: `Check that the ${store.backend} store is running and reachable from this instance, then open the dataset again.`,
      cause: error,
    });
  }
  logger.debug?.(`dataset "${dataset}" (${instance}) open on ${store.backend} at version ${replica.applied}`);
}

/** Local memory reads; the hot path `get` is one Map lookup, plus the staleness check only when reads may refuse. */
function readMethods<V>({ settings, replica, readable }: HandleParts<V>) {
  const values = replica.values;
  return {
    get: settings.refuse
      ? (key: string) => {
          readable();
          return values.get(key);
        }
      : (key: string) => values.get(key),
    getEntry(key: string) {
      readable();
      return replica.entries.get(key);
    },
    has(key: string) {
      readable();
      return replica.entries.has(key);
    },
    *entries(): IterableIterator<[string, V]> {
      readable();
      for (const [key, entry] of replica.entries) yield [key, entry.value];
    },
    isStale: () => replica.isStale(),
    onChange(listener: (change: DatasetChange<V>) => void) {
      replica.listeners.add(listener);
      return () => void replica.listeners.delete(listener);
    },
    exportState(): Snapshot {
      const list = [...replica.entries].map(([key, e]) => ({ key, value: e.value as JsonValue, version: e.version }));
      return { version: replica.applied, generation: replica.generation, entries: list };
    },
  };
}

/** Writes go to the store, which assigns the version; each resolves once this replica applied it. */
function writeMethods<V>({ settings, replica, open }: HandleParts<V>) {
  const { dataset, store, clock, instance } = settings;
  const stager = createStager(dataset, store, clock, instance, () => replica.applied);
  const write = async (ops: EntryOp[]): Promise<number> => {
    open();
    checkRecord(dataset, { kind: 'write', at: 0, ops });
    const record = { kind: 'write', at: clock.now(), ops } as const;
    // `above`: never take a version this replica saw, even from a store that lost data.
    const { version, generation } = await store.append(dataset, record, { above: replica.applied });
    replica.offer({ ...record, version }, generation); // read-your-writes without a round trip when possible
    await replica.waitApplied(version);
    return version;
  };
  const appended = async (version: Promise<number>) => {
    const v = await version;
    await replica.waitApplied(v);
    return v;
  };
  return {
    set: (key: string, value: V, opts: WriteOptions = {}) =>
      write(toEntryOps(dataset, [opts.ifVersion === undefined ? { key, value } : { key, value, ifVersion: opts.ifVersion }])),
    delete: (key: string, opts: WriteOptions = {}) =>
      write([opts.ifVersion === undefined ? { key, delete: true } : { key, delete: true, ifVersion: opts.ifVersion }]),
    batch: (ops: readonly DatasetOp<V>[]) => write(toEntryOps(dataset, ops)),
    async stage(ops: readonly DatasetOp<V>[], opts?: StageOptions) {
      open();
      const entryOps = toEntryOps(dataset, ops);
      checkRecord(dataset, { kind: 'write', at: 0, ops: entryOps });
      return stager.stage(entryOps, opts);
    },
    async activate(stage: StagedChange) {
      open();
      return appended(stager.activate(stage));
    },
    async abort(stage: StagedChange, reason: string) {
      open();
      return appended(stager.abort(stage, reason));
    },
    async trimLog({ keepLast }: { keepLast: number }) {
      open();
      const head = (await store.membership(dataset)).head;
      return store.trim(dataset, Math.max(0, head - Math.max(0, keepLast)));
    },
  };
}

/**
 * Convergence and status read membership from the store; this replica's own entry is brought up to
 * what it applied (its report of it may wait up to reportMs, and it knows better than the store).
 */
function membershipMethods<V>({ settings, options, replica, open }: HandleParts<V>) {
  const { dataset, store, clock, instance, logger } = settings;
  const membership = async (): Promise<Membership> => {
    const m = await store.membership(dataset);
    const own = (r: ReplicaReport) => r.replica === instance && r.generation === replica.generation && r.applied < replica.applied;
    return { ...m, replicas: m.replicas.map((r) => (own(r) ? { ...r, applied: replica.applied } : r)) };
  };
  return {
    async waitForVersion(version: number, opts: { timeoutMs?: number } = {}): Promise<Convergence> {
      open();
      return pollUntil(clock, opts.timeoutMs ?? 5000, 10, async () => {
        const result = convergenceOf(version, describeReplicas(await membership(), clock.now()));
        return { done: result.converged, value: result };
      });
    },
    async status(): Promise<DatasetStatus> {
      const m = await membership();
      // Crashed replicas never leave by themselves; forget them once they are long gone.
      const forgetBefore = clock.now() - (options.forgetAfterMs ?? 3_600_000);
      const forgotten = m.replicas.filter((r) => r.reportedAt + r.leaseMs < forgetBefore);
      for (const r of forgotten) await store.leave(dataset, r.replica);
      if (forgotten.length > 0) logger.info(`dataset "${dataset}": forgot departed replicas ${forgotten.map((r) => r.replica).join(', ')}`);
      return {
        dataset,
        backend: store.backend,
        instance,
        version: replica.applied,
        head: m.head,
        stale: replica.isStale(),
        mode: replica.mode,
        generation: replica.generation,
        ...(replica.failure ? { failing: replica.failure } : {}),
        replicas: describeReplicas({ ...m, replicas: m.replicas.filter((r) => !forgotten.includes(r)) }, clock.now()),
      };
    },
  };
}

export async function openDataset<V>(name: string, options: DatasetOptions<V>): Promise<Dataset<V>> {
  const dataset = checkDatasetName(name);
  const settings: Settings = { dataset, ...resolveOptions(dataset, options) };
  const { store, instance, logger, clock, leaseMs, stalenessMs, catchUpMs, reportMs } = settings;
  const replica = createReplica<V>({
    dataset, store, instance, logger, clock, leaseMs, stalenessMs, catchUpMs, reportMs, validate: options.validate,
  });
  const parts: HandleParts<V> = { settings, options, replica, ...guards(settings, replica) };
  await startReplica(settings, replica, options.resumeFrom);
  const unregister = registerReplica({ dataset, instance, backend: store.backend, lag: replica.lag });

  let closing: Promise<void> | undefined;
  const api: Dataset<V> = {
    name: dataset,
    instance,
    get version() {
      return replica.applied;
    },
    get size() {
      parts.readable();
      return replica.entries.size;
    },
    ...readMethods(parts),
    ...writeMethods(parts),
    ...membershipMethods(parts),
    close() {
      unregister();
      closing ??= replica.stop();
      return closing;
    },
    [Symbol.asyncDispose]() {
      return api.close();
    },
  };
  return api;
}
