/**
 * The replica: keeps one instance's in-memory copy of a dataset in step with the store.
 *
 * Modes:
 *   starting      reading the first snapshot (openDataset awaits this)
 *   live          applying the change log; woken by the store's watch and by a periodic catch-up
 *                 read (the watch is only a hint: NOTIFY and pub/sub lose messages)
 *   disconnected  a read failed; retrying with jittered backoff. On the first successful read it
 *                 logs exactly one of "continuing from N" or "gap: resync from snapshot S"
 *   closed        timers stopped, membership left
 *
 * Invariants: records are applied strictly in version order (applied + 1, never backwards), and
 * `applied` advances only after the record's ops are in memory. A record that is not
 * applied + 1 (a trim raced the read) triggers a snapshot resync rather than a skip.
 */
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import { appliedOps, corruptError, isDelete } from './records.js';
import type { DatasetStore, EntryOp, JsonValue, LogRecord, ReplicaReport, Snapshot, StageVote } from './store.js';

export interface Entry<V> {
  readonly value: V;
  readonly version: number;
}

export interface KeyChange<V> {
  readonly key: string;
  /** Undefined when the key was deleted. */
  readonly value: V | undefined;
  readonly deleted: boolean;
}

/** What onChange listeners receive: one per version that changed entries, or one per resync. */
export interface DatasetChange<V> {
  readonly version: number;
  /** `write`: a set/delete/batch; `activate`: a staged change switched on; `resync`: a snapshot replaced the data (changes is the diff). */
  readonly kind: 'write' | 'activate' | 'resync';
  readonly changes: readonly KeyChange<V>[];
}

/** Decides whether this replica accepts a staged change; return a reason to reject. */
export type StageValidator<V> = (
  changes: readonly KeyChange<V>[],
) => string | undefined | Promise<string | undefined>;

export interface ReplicaOptions<V> {
  dataset: string;
  store: DatasetStore;
  instance: string;
  logger: Logger;
  clock: Clock;
  leaseMs: number;
  stalenessMs: number;
  catchUpMs: number;
  validate: StageValidator<V> | undefined;
}

const PAGE = 500;
const MAX_VOTES = 16;
/** Applied versions are reported at most this often under load (membership writes are not free). */
const REPORT_DELAY_MS = 5;

export type ReplicaMode = 'starting' | 'live' | 'disconnected' | 'closed';

export function toKeyChanges<V>(ops: readonly EntryOp[]): KeyChange<V>[] {
  return ops.map((op) =>
    isDelete(op)
      ? { key: op.key, value: undefined, deleted: true }
      : { key: op.key, value: op.value as V, deleted: false },
  );
}

export function createReplica<V>(opts: ReplicaOptions<V>) {
  const { dataset, store, logger, clock } = opts;
  const entries = new Map<string, Entry<V>>();
  // Values alone, for get(): the hot path is then exactly one Map lookup.
  const values = new Map<string, V>();
  const listeners = new Set<(change: DatasetChange<V>) => void>();
  const waiters: { version: number; resolve: () => void }[] = [];
  let votes: StageVote[] = [];
  let mode: ReplicaMode = 'starting';
  let applied = 0;
  let lastConfirmedAt = clock.now();
  let syncing: Promise<void> | undefined;
  let again = false;
  let failures = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let pollTimer: ReturnType<typeof setInterval> | undefined;
  let beatTimer: ReturnType<typeof setInterval> | undefined;
  let unwatch: (() => Promise<void>) | undefined;
  let reportedStale = false;
  let beating: Promise<void> | undefined;
  let reportTimer: ReturnType<typeof setTimeout> | undefined;

  const emit = (change: DatasetChange<V>) => {
    for (const listener of listeners) {
      try {
        listener(change);
      } catch (error) {
        // A listener's bug must not stop replication or make the cursor lie.
        logger.error(`dataset "${dataset}": an onChange listener threw at version ${change.version}: ${String(error)}`);
      }
    }
  };

  const settleWaiters = () => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i]!;
      if (w.version <= applied || mode === 'closed') {
        waiters.splice(i, 1);
        w.resolve();
      }
    }
  };

  const isStale = () => clock.now() - lastConfirmedAt > opts.stalenessMs;

  const report = (): ReplicaReport => ({
    replica: opts.instance,
    applied,
    reportedAt: clock.now(),
    leaseMs: opts.leaseMs,
    stale: isStale(),
    votes,
  });

  const heartbeat = (): Promise<void> => {
    if (mode === 'closed') return Promise.resolve();
    // One heartbeat in flight at a time; a vote made meanwhile rides on the next one.
    const run = (beating ?? Promise.resolve()).then(() =>
      mode === 'closed'
        ? undefined // never re-join after leave()
        : store.heartbeat(dataset, report()).catch((error: unknown) => {
            logger.debug?.(`dataset "${dataset}": heartbeat failed: ${String(error)}`);
          }),
    );
    beating = run;
    return run;
  };

  /** Coalesces the applied-version reports of a burst of changes into one heartbeat. */
  const reportSoon = () => {
    if (reportTimer || mode === 'closed') return;
    reportTimer = setTimeout(() => {
      reportTimer = undefined;
      void heartbeat();
    }, REPORT_DELAY_MS);
    reportTimer.unref?.();
  };

  const vote = (stageId: string, reason: string | undefined) => {
    votes = [...votes, reason === undefined ? { stageId, accepted: true } : { stageId, accepted: false, reason }].slice(-MAX_VOTES);
    void heartbeat();
  };

  const applyRecord = (record: LogRecord) => {
    if (record.kind === 'stage') {
      // Validation runs beside the apply loop: a slow validator delays only its vote.
      const validate = opts.validate;
      const changes = toKeyChanges<V>(record.ops);
      if (!validate) vote(record.stageId, undefined);
      else {
        Promise.resolve()
          .then(() => validate(changes))
          .then(
            (reason) => vote(record.stageId, reason),
            (error: unknown) => vote(record.stageId, `validator threw: ${String(error)}`),
          );
      }
    }
    const ops = appliedOps(record);
    for (const op of ops) {
      if (isDelete(op)) {
        entries.delete(op.key);
        values.delete(op.key);
      } else {
        entries.set(op.key, { value: op.value as V, version: record.version });
        values.set(op.key, op.value as V);
      }
    }
    applied = record.version;
    if (ops.length > 0 && (record.kind === 'write' || record.kind === 'activate')) {
      emit({ version: record.version, kind: record.kind, changes: toKeyChanges<V>(ops) });
    }
  };

  const resync = async (why: 'gap' | 'start', trimmedThrough: number) => {
    const snap = await store.snapshot(dataset);
    if (why === 'gap') {
      logger.info(`dataset "${dataset}" (${opts.instance}): gap: resync from snapshot ${snap.version} (log trimmed through ${trimmedThrough}, applied was ${applied})`);
    } else {
      logger.info(`dataset "${dataset}" (${opts.instance}): starting from snapshot ${snap.version}`);
    }
    // Never go backwards: a snapshot older than what we hold adds nothing.
    if (snap.version < applied && why === 'gap') return;
    const next = new Map<string, Entry<V>>();
    for (const e of snap.entries) next.set(e.key, { value: e.value as V, version: e.version });
    const diff: KeyChange<V>[] = [];
    for (const [key, entry] of next) {
      const old = entries.get(key);
      if (!old || old.version !== entry.version) diff.push({ key, value: entry.value, deleted: false });
    }
    for (const key of entries.keys()) if (!next.has(key)) diff.push({ key, value: undefined, deleted: true });
    entries.clear();
    values.clear();
    for (const [key, entry] of next) {
      entries.set(key, entry);
      values.set(key, entry.value);
    }
    applied = snap.version;
    if (why === 'gap') emit({ version: applied, kind: 'resync', changes: diff });
  };

  /** Reads and applies until the log is exhausted; throws on store failure. */
  const catchUp = async () => {
    const resuming = mode === 'disconnected' ? 'reconnected' : mode === 'starting' ? 'restarted' : undefined;
    let first = true;
    let resyncs = 0;
    const resyncAgain = async (trimmedThrough: number) => {
      // A store that answers "gap" again right after a snapshot is broken; don't spin on it.
      if (++resyncs > 3) throw corruptError(dataset, `the change log (gap persists after ${resyncs - 1} snapshot resyncs at version ${applied})`);
      await resync('gap', trimmedThrough);
    };
    for (;;) {
      const result = await store.readSince(dataset, applied, PAGE);
      if (result.kind === 'gap') {
        await resyncAgain(result.trimmedThrough);
        first = false;
        continue;
      }
      if (first && resuming) logger.info(`dataset "${dataset}" (${opts.instance}): ${resuming}: continuing from ${applied}`);
      first = false;
      let broken = false;
      for (const record of result.records) {
        if (record.version <= applied) continue;
        if (record.version !== applied + 1) {
          broken = true;
          break;
        }
        applyRecord(record);
      }
      if (broken) {
        // The log moved under us (trimmed between reads): take the snapshot path.
        await resyncAgain(applied);
        continue;
      }
      if (result.records.length < PAGE) break;
    }
  };

  const scheduleRetry = () => {
    if (mode === 'closed' || retryTimer) return;
    // Jittered exponential backoff so many replicas don't reconnect in step.
    const base = Math.min(2000, 50 * 2 ** Math.min(failures, 6));
    const delay = base / 2 + Math.random() * base;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      requestSync();
    }, delay);
    retryTimer.unref?.();
  };

  const runSync = async () => {
    do {
      again = false;
      const before = applied;
      try {
        await catchUp();
        lastConfirmedAt = clock.now();
        failures = 0;
        if (mode === 'disconnected') mode = 'live';
        if (reportedStale) {
          reportedStale = false;
          logger.info(`dataset "${dataset}" (${opts.instance}): current again at version ${applied}`);
        }
      } catch (error) {
        if (mode === 'closed') return;
        failures++;
        if (mode !== 'disconnected') {
          logger.warn(`dataset "${dataset}" (${opts.instance}): lost contact with the ${store.backend} store at version ${applied}: ${String(error)}; retrying`);
          mode = 'disconnected';
        }
        scheduleRetry();
      }
      settleWaiters();
      if (applied !== before) reportSoon();
    } while (again && mode !== 'closed');
  };

  /**
   * Applies a record handed over by a wake-up or by our own write, without reading the log, when
   * it is exactly the next version and no read or resync is in flight; else returns false and the
   * caller falls back to a log read.
   */
  function offer(record: LogRecord): boolean {
    if (mode !== 'live' || syncing || record.version !== applied + 1) return false;
    applyRecord(record);
    settleWaiters();
    reportSoon();
    return true;
  }

  function requestSync(): Promise<void> {
    if (mode === 'closed') return Promise.resolve();
    if (syncing) {
      again = true;
      return syncing;
    }
    syncing = runSync().finally(() => {
      syncing = undefined;
    });
    return syncing;
  }

  const tick = () => {
    if (isStale() && !reportedStale && mode !== 'closed') {
      reportedStale = true;
      logger.warn(`dataset "${dataset}" (${opts.instance}): stale: could not confirm version ${applied} is current for ${clock.now() - lastConfirmedAt} ms (bound ${opts.stalenessMs} ms)`);
    }
    void requestSync();
  };

  return {
    get mode(): ReplicaMode {
      return mode;
    },
    get applied() {
      return applied;
    },
    get lastConfirmedAt() {
      return lastConfirmedAt;
    },
    entries,
    values,
    listeners,
    isStale,
    requestSync,
    offer,
    heartbeat,

    /** `from`: state saved by an earlier run (exportState); resume through the log when it still reaches back. */
    async start(from?: Snapshot): Promise<void> {
      if (from) {
        for (const e of from.entries) {
          entries.set(e.key, { value: e.value as V, version: e.version });
          values.set(e.key, e.value as V);
        }
        applied = from.version;
        await catchUp(); // logs "restarted: continuing from N" or "gap: resync from snapshot S"
      } else {
        await resync('start', 0);
      }
      lastConfirmedAt = clock.now();
      mode = 'live';
      unwatch = await store.watch(dataset, (hint) => {
        if (hint && hint.version <= applied) return; // already have it
        if (!hint || !offer(hint)) void requestSync();
      });
      await requestSync(); // anything written between the first read and the watch
      await heartbeat();
      pollTimer = setInterval(tick, opts.catchUpMs);
      pollTimer.unref?.();
      beatTimer = setInterval(() => void heartbeat(), Math.max(50, Math.floor(opts.leaseMs / 3)));
      beatTimer.unref?.();
    },

    /** Resolves once this replica has applied `version` (or closed). */
    waitApplied(version: number): Promise<void> {
      if (applied >= version || mode === 'closed') return Promise.resolve();
      const p = new Promise<void>((resolve) => waiters.push({ version, resolve }));
      void requestSync();
      return p;
    },

    async stop(): Promise<void> {
      if (mode === 'closed') return;
      mode = 'closed';
      clearInterval(pollTimer);
      clearInterval(beatTimer);
      clearTimeout(retryTimer);
      clearTimeout(reportTimer);
      settleWaiters();
      const errors: unknown[] = [];
      await syncing?.catch(() => undefined);
      await beating?.catch(() => undefined);
      if (unwatch) await unwatch().catch((e: unknown) => errors.push(e));
      await store.leave(dataset, opts.instance).catch((e: unknown) => errors.push(e));
      if (errors.length > 0) logger.warn(`dataset "${dataset}" (${opts.instance}): close: ${errors.map(String).join('; ')}`);
    },
  };
}

export type Replica<V> = ReturnType<typeof createReplica<V>>;
export type { JsonValue };
