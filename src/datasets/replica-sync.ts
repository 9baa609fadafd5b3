/**
 * The replica's sync loop: reads the change log from its applied version and applies it, one
 * read at a time (requests during a read coalesce into one more), retrying with jittered backoff
 * when the store is unreachable.
 *
 * Every resume is logged as exactly one of "continuing from N" (after a lost connection, a restart,
 * or a silence longer than the catch-up interval: SIGSTOP, a long GC) or "gap: resync from
 * snapshot S" (the log was trimmed, or the store lost data: its generation changed or its head is
 * below the version applied here; the store is then advanced past that version first, so no
 * version this replica saw is handed out again).
 */
import { corruptError } from './records.js';
import type { Applier } from './replica-apply.js';
import type { ReplicaContext } from './replica.js';
import type { LogRecord, ReadResult } from './store.js';

const PAGE = 500;

export interface SyncHooks {
  isStale(): boolean;
  /** After a sync pass or an offered record: settle waiters, report a new applied version. */
  progressed(changed: boolean): void;
}

export function createSyncLoop<V>(ctx: ReplicaContext, applier: Applier<V>, hooks: SyncHooks) {
  const { dataset, store, logger, clock } = ctx;
  const name = `dataset "${dataset}" (${ctx.instance})`;
  let syncing: Promise<void> | undefined;
  let again = false;
  let failures = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let reportedStale = false;
  let lastReadAt = clock.now();

  /** Why this read is a resume, and whether to log it even when there is nothing new. */
  const resumeReason = (): { what: string; always: boolean } | undefined => {
    if (ctx.mode === 'disconnected') return { what: 'reconnected', always: true };
    if (ctx.mode === 'starting') return { what: 'restarted', always: true };
    // Longer than the catch-up interval (plus a tenth for timer jitter): this process did not run.
    const silence = clock.now() - lastReadAt;
    return silence > ctx.catchUpMs * 1.1 + 5 ? { what: `resumed after ${silence} ms without a read`, always: false } : undefined;
  };

  /** The store lost data when its generation changed or its head is below what we applied. */
  const lossOf = (r: ReadResult): string | undefined => {
    if (r.head < ctx.applied) return `its head ${r.head} is below version ${ctx.applied} applied here`;
    if (ctx.generation !== '' && r.generation !== '' && r.generation !== ctx.generation) {
      return `its generation changed from ${ctx.generation} to ${r.generation}`;
    }
    return undefined;
  };

  const recover = async (why: string) => {
    const floor = ctx.applied;
    await store.advance(dataset, floor); // never hand out a version this replica saw again
    const snap = await store.snapshot(dataset);
    logger.error(`${name}: the ${store.backend} store lost data (${why}): gap: resync from snapshot ${snap.version} (generation ${snap.generation}); versions up to ${floor} will not be reused`);
    applier.install(snap, true);
  };

  const resync = async (trimmedThrough: number) => {
    const snap = await store.snapshot(dataset);
    logger.info(`${name}: gap: resync from snapshot ${snap.version} (log trimmed through ${trimmedThrough}, applied was ${ctx.applied})`);
    // Never go backwards: an older snapshot (or another generation's) is for the next read to judge.
    if (snap.version < ctx.applied || (snap.generation && ctx.generation && snap.generation !== ctx.generation)) return;
    applier.install(snap, true);
  };

  const applyAll = (records: readonly LogRecord[]): 'done' | 'broken' | 'held' => {
    for (const record of records) {
      if (record.version <= ctx.applied) continue;
      if (record.version !== ctx.applied + 1) return 'broken'; // the log moved under us (trimmed between reads)
      if (!applier.apply(record)) return 'held';
    }
    return 'done';
  };

  /** Reads and applies until the log is exhausted; throws on store failure. */
  const catchUp = async () => {
    const resuming = resumeReason();
    let first = true;
    let resyncs = 0;
    const bound = () => {
      // A store that answers "gap" again right after a snapshot is broken; don't spin on it.
      if (++resyncs > 3) throw corruptError(dataset, `the change log (gap persists after ${resyncs - 1} snapshot resyncs at version ${ctx.applied})`);
    };
    while (ctx.mode !== 'closed') {
      if (applier.held !== undefined) return void (lastReadAt = clock.now()); // held by a listener: no reads
      const result = await store.readSince(dataset, ctx.applied, PAGE);
      lastReadAt = clock.now();
      const loss = lossOf(result);
      if (loss || result.kind === 'gap') {
        bound();
        await (loss ? recover(loss) : resync(result.kind === 'gap' ? result.trimmedThrough : ctx.applied));
        first = false;
        continue;
      }
      if (ctx.generation === '') ctx.generation = result.generation;
      if (first && resuming && (resuming.always || result.records.some((r) => r.version > ctx.applied))) {
        logger.info(`${name}: ${resuming.what}: continuing from ${ctx.applied}`);
      }
      first = false;
      const outcome = applyAll(result.records);
      if (outcome === 'broken') {
        bound();
        await resync(ctx.applied);
      } else if (outcome === 'held' || result.records.length < PAGE) return;
    }
  };

  const scheduleRetry = () => {
    if (ctx.mode === 'closed' || retryTimer) return;
    // Jittered exponential backoff so many replicas don't reconnect in step.
    const base = Math.min(2000, 50 * 2 ** Math.min(failures, 6));
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void requestSync();
    }, base / 2 + Math.random() * base);
    retryTimer.unref?.();
  };

  const runSync = async () => {
    do {
      again = false;
      const before = `${ctx.applied}@${ctx.generation}`;
      try {
        await catchUp();
        ctx.lastConfirmedAt = clock.now();
        failures = 0;
        if (ctx.mode === 'disconnected') ctx.mode = 'live';
        if (reportedStale) {
          reportedStale = false;
          logger.info(`${name}: current again at version ${ctx.applied}`);
        }
      } catch (error) {
        if (ctx.mode === 'closed') return;
        failures++;
        if (ctx.mode !== 'disconnected') {
          logger.warn(`${name}: lost contact with the ${store.backend} store at version ${ctx.applied}: ${String(error)}; retrying`);
          ctx.mode = 'disconnected';
        }
        scheduleRetry();
      }
      hooks.progressed(before !== `${ctx.applied}@${ctx.generation}`);
    } while (again && ctx.mode !== 'closed');
  };

  function requestSync(): Promise<void> {
    if (ctx.mode === 'closed') return Promise.resolve();
    if (syncing) {
      again = true;
      return syncing;
    }
    syncing = runSync().finally(() => {
      syncing = undefined;
    });
    return syncing;
  }

  return {
    catchUp,
    requestSync,
    /**
     * Applies a record handed over by a wake-up or by our own write, without reading the log, when
     * it is exactly the next version of our generation and no read or resync is in flight; else
     * returns false and the caller falls back to a log read.
     */
    offer(record: LogRecord, generation: string | undefined): boolean {
      if (ctx.mode !== 'live' || syncing || applier.held !== undefined || record.version !== ctx.applied + 1) return false;
      if (resumeReason()) return false; // after a pause: read, so the resume is logged
      if (generation === undefined || (generation !== ctx.generation && !(ctx.generation === '' && ctx.applied === 0))) return false;
      ctx.generation = generation;
      applier.apply(record);
      hooks.progressed(true);
      return true;
    },
    /** The periodic catch-up read, and the staleness warning. */
    tick() {
      if (hooks.isStale() && !reportedStale && ctx.mode !== 'closed') {
        reportedStale = true;
        logger.warn(`${name}: stale: could not confirm version ${ctx.applied} is current for ${clock.now() - ctx.lastConfirmedAt} ms (bound ${ctx.stalenessMs} ms)`);
      }
      void requestSync();
    },
    async stop() {
      clearTimeout(retryTimer);
      await syncing?.catch(() => undefined);
    },
  };
}
