/**
 * The replica's memory: entries, values and onChange listeners, and applying records and
 * snapshots to them. A listener that throws holds the replica below that version: the data is in
 * memory, but `applied` stays at the version before, the listeners that threw are retried with
 * backoff (the others are not called twice), and nothing after it is applied until they succeed.
 */
import { backoffDelay } from '../core/backoff.js';
import { isDelete, appliedOps } from './records.js';
import { replicaName, toKeyChanges, type DatasetChange, type Entry, type KeyChange, type ReplicaContext } from './replica-context.js';
import type { LogRecord, ReplicaFailure, Snapshot } from './store.js';

type Listener<V> = (change: DatasetChange<V>) => void;

export interface ApplierHooks {
  /** A stage record was applied: validate and vote. */
  stage(record: Extract<LogRecord, { kind: 'stage' }>): void;
  /** A listener started failing (report it now). */
  failing(): void;
  /** The held version was applied at last: continue syncing. */
  released(): void;
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Calls `targets` with the change; returns the ones that threw and the first error. */
function callListeners<V>(targets: Iterable<Listener<V>>, change: DatasetChange<V>) {
  const failed = new Set<Listener<V>>();
  let error: unknown;
  for (const listener of targets) {
    try {
      listener(change);
    } catch (e) {
      if (failed.size === 0) error = e;
      failed.add(listener);
    }
  }
  return { failed, error };
}

/** What a snapshot changes against the entries in memory. */
function snapshotDiff<V>(entries: ReadonlyMap<string, Entry<V>>, next: ReadonlyMap<string, Entry<V>>, reborn: boolean): KeyChange<V>[] {
  const diff: KeyChange<V>[] = [];
  // Across generations a key's version says nothing (the store lost data): compare values.
  const changed = (old: Entry<V>, entry: Entry<V>) =>
    old.version !== entry.version || (reborn && JSON.stringify(old.value) !== JSON.stringify(entry.value));
  for (const [key, entry] of next) {
    const old = entries.get(key);
    if (!old || changed(old, entry)) diff.push({ key, value: entry.value, deleted: false });
  }
  for (const key of entries.keys()) if (!next.has(key)) diff.push({ key, value: undefined, deleted: true });
  return diff;
}

/**
 * The listeners and the hold: runs onChange listeners; when one throws, holds the replica below
 * that version and retries the ones that threw with backoff until they succeed.
 */
function createListenerHold<V>(ctx: ReplicaContext, hooks: Omit<ApplierHooks, 'stage'>) {
  const listeners = new Set<Listener<V>>();
  let held: { version: number; change: DatasetChange<V>; remaining: Set<Listener<V>>; failure: ReplicaFailure } | undefined;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  const name = replicaName(ctx);

  const scheduleRetry = () => {
    if (!held || ctx.mode === 'closed') return;
    retryTimer = setTimeout(retry, backoffDelay(held.failure.attempts - 1, 100, 5000));
    retryTimer.unref?.();
  };

  function retry() {
    retryTimer = undefined;
    if (!held || ctx.mode === 'closed') return;
    const { failed, error } = callListeners([...held.remaining].filter((l) => listeners.has(l)), held.change);
    if (failed.size === 0) {
      ctx.logger.info(`${name}: the onChange listener succeeded at version ${held.version} after ${held.failure.attempts + 1} attempts; applied ${held.version}`);
      ctx.applied = held.version;
      held = undefined;
      hooks.released();
      return;
    }
    held = { ...held, remaining: failed, failure: { ...held.failure, error: describe(error), attempts: held.failure.attempts + 1 } };
    ctx.logger.warn(`${name}: the onChange listener threw again at version ${held.version} (attempt ${held.failure.attempts}): ${held.failure.error}; still held at version ${ctx.applied}`);
    scheduleRetry();
  }

  /** Runs the listeners; true when they all succeeded, else the replica is held below `version`. */
  const notify = (change: DatasetChange<V>): boolean => {
    const { failed, error } = callListeners(listeners, change);
    if (failed.size === 0) return true;
    const failure = { version: change.version, error: describe(error), since: ctx.clock.now(), attempts: 1 };
    held = { version: change.version, change, remaining: failed, failure };
    ctx.logger.error(`${name}: an onChange listener threw at version ${change.version}: ${failure.error}; held at version ${ctx.applied} until it succeeds (retried with backoff)`);
    hooks.failing();
    scheduleRetry();
    return false;
  };

  return {
    listeners,
    notify,
    get held() {
      return held;
    },
    stop() {
      clearTimeout(retryTimer);
    },
  };
}

export function createApplier<V>(ctx: ReplicaContext, hooks: ApplierHooks) {
  const entries = new Map<string, Entry<V>>();
  // Values alone, for get(): the hot path is then exactly one Map lookup.
  const values = new Map<string, V>();
  const hold = createListenerHold<V>(ctx, hooks);
  const notify = hold.notify;

  const put = (key: string, entry: Entry<V>) => {
    entries.set(key, entry);
    values.set(key, entry.value);
  };

  return {
    entries,
    values,
    listeners: hold.listeners,
    get held(): number | undefined {
      return hold.held?.version;
    },
    get failure(): ReplicaFailure | undefined {
      return hold.held?.failure;
    },

    /** Applies the record (applied + 1); false when a listener threw and the replica is held. */
    apply(record: LogRecord): boolean {
      if (record.kind === 'stage') hooks.stage(record);
      const ops = appliedOps(record);
      for (const op of ops) {
        if (isDelete(op)) {
          entries.delete(op.key);
          values.delete(op.key);
        } else put(op.key, { value: op.value as V, version: record.version });
      }
      if (ops.length > 0 && (record.kind === 'write' || record.kind === 'activate')) {
        if (!notify({ version: record.version, kind: record.kind, changes: toKeyChanges<V>(ops) })) return false;
      }
      ctx.applied = record.version;
      return true;
    },

    /** Replaces memory with a snapshot; `announce` emits the diff as a 'resync' change. False when held. */
    install(snap: Snapshot, announce: boolean): boolean {
      const next = new Map(snap.entries.map((e) => [e.key, { value: e.value as V, version: e.version }]));
      const reborn = snap.generation !== undefined && ctx.generation !== '' && snap.generation !== ctx.generation;
      const diff = snapshotDiff(entries, next, reborn);
      entries.clear();
      values.clear();
      for (const [key, entry] of next) put(key, entry);
      ctx.generation = snap.generation ?? ctx.generation;
      if (announce && !notify({ version: snap.version, kind: 'resync', changes: diff })) return false;
      ctx.applied = snap.version;
      return true;
    },

    stop: hold.stop,
  };
}

export type Applier<V> = ReturnType<typeof createApplier<V>>;
