/**
 * The replica's sync loop: schedules the read step (replica-read.ts) one read at a time (requests
 * during a read coalesce into one more), retries with jittered backoff when the store is
 * unreachable, applies records handed over without a read, and warns when the replica is stale.
 */
import { createBackoff } from '../core/backoff.js';
import type { Applier } from './replica-apply.js';
import { sawVersion } from './replica-lag.js';
import { replicaName, type ReplicaContext } from './replica-context.js';
import { createLogReader } from './replica-read.js';
import type { LogRecord } from './store.js';

export interface SyncHooks {
  isStale(): boolean;
  /** After a sync pass or an offered record: settle waiters, report a new applied version. */
  progressed(changed: boolean): void;
}

/** Logs "stale: ..." once when the replica cannot confirm it is current, and "current again" once it is. */
function createStalenessReport(ctx: ReplicaContext, isStale: () => boolean) {
  let reported = false;
  return {
    check() {
      if (isStale() && !reported && ctx.mode !== 'closed') {
        reported = true;
        ctx.logger.warn(`${replicaName(ctx)}: stale: could not confirm version ${ctx.applied} is current for ${ctx.clock.now() - ctx.lastConfirmedAt} ms (bound ${ctx.stalenessMs} ms)`);
      }
    },
    confirmed() {
      if (!reported) return;
      reported = false;
      ctx.logger.info(`${replicaName(ctx)}: current again at version ${ctx.applied}`);
    },
  };
}

export function createSyncLoop<V>(ctx: ReplicaContext, applier: Applier<V>, hooks: SyncHooks) {
  const { store, logger, clock } = ctx;
  const name = replicaName(ctx);
  const reader = createLogReader(ctx, applier);
  const staleness = createStalenessReport(ctx, hooks.isStale);
  // A failed read is tried again 50 ms doubling to 2 s later (jittered: replicas do not reconnect in step).
  const retry = createBackoff(() => void requestSync(), 50, 2000);
  let syncing: Promise<void> | undefined;
  let again = false;

  /** One read: confirms the replica current, or marks it disconnected and schedules a retry; false when it closed meanwhile. */
  const readOnce = async (): Promise<boolean> => {
    try {
      await reader.catchUp();
      ctx.lastConfirmedAt = clock.now();
      retry.succeeded();
      if (ctx.mode === 'disconnected') ctx.mode = 'live';
      staleness.confirmed();
    } catch (error) {
      if (ctx.mode === 'closed') return false;
      if (ctx.mode !== 'disconnected') {
        logger.warn(`${name}: lost contact with the ${store.backend} store at version ${ctx.applied}: ${String(error)}; retrying`);
        ctx.mode = 'disconnected';
      }
      retry.failed();
    }
    return true;
  };

  const runSync = async () => {
    do {
      again = false;
      const before = `${ctx.applied}@${ctx.generation}`;
      if (!(await readOnce())) return;
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
    catchUp: reader.catchUp,
    requestSync,
    /**
     * Applies a record handed over by a wake-up or by our own write, without reading the log, when
     * it is exactly the next version of our generation and no read or resync is in flight; else
     * returns false and the caller falls back to a log read.
     */
    offer(record: LogRecord, generation: string | undefined): boolean {
      sawVersion(ctx, record.version, record.at);
      if (ctx.mode !== 'live' || syncing || applier.held !== undefined || record.version !== ctx.applied + 1) return false;
      if (reader.resumeReason()) return false; // after a pause: read, so the resume is logged
      if (generation === undefined || (generation !== ctx.generation && !(ctx.generation === '' && ctx.applied === 0))) return false;
      ctx.generation = generation;
      applier.apply(record);
      hooks.progressed(true);
      return true;
    },
    /** The periodic catch-up read, and the staleness warning. */
    tick() {
      staleness.check();
      void requestSync();
    },
    async stop() {
      retry.stop();
      await syncing?.catch(() => undefined);
    },
  };
}

export type ReplicaSync = ReturnType<typeof createSyncLoop>;
