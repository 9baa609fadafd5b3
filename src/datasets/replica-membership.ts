/**
 * The replica's membership: heartbeats that report its applied version (and generation, votes,
 * failure) with a lease, one in flight at a time.
 *
 * Applied versions are coalesced: a new version is reported at once when the last such report
 * is older than `reportMs`, else with the next one `reportMs` after the last. So a replica writes
 * at most 1000 / reportMs version reports per second however fast changes arrive, plus one per
 * lease / 3 and one per stage vote; the store load formula in docs/data-distribution.md. (Lease
 * heartbeats and votes carry the applied version too but do not open a window: a write right
 * after a replica joined is reported at once.)
 */
import { setRepeatingTimer } from '../core/clock.js';
import type { ReplicaContext } from './replica-context.js';
import type { ReplicaFailure, ReplicaReport, StageVote } from './store.js';

const MAX_VOTES = 16;

export function createMembership(ctx: ReplicaContext, state: { isStale(): boolean; failure(): ReplicaFailure | undefined }) {
  const { dataset, store } = ctx;
  let votes: StageVote[] = [];
  let beating: Promise<void> | undefined;
  let reportTimer: ReturnType<typeof setTimeout> | undefined;
  let stopBeating: (() => void) | undefined;
  let lastReportAt = -Infinity;

  const report = (): ReplicaReport => {
    const failing = state.failure();
    return {
      replica: ctx.instance,
      applied: ctx.applied,
      generation: ctx.generation,
      reportedAt: ctx.clock.now(),
      leaseMs: ctx.leaseMs,
      stale: state.isStale(),
      votes,
      ...(failing ? { failing } : {}),
    };
  };

  const heartbeat = (): Promise<void> => {
    if (ctx.mode === 'closed') return Promise.resolve();
    // One heartbeat in flight at a time; a vote made meanwhile rides on the next one.
    const run = (beating ?? Promise.resolve()).then(() => {
      if (ctx.mode === 'closed') return undefined; // never re-join after leave()
      return store.heartbeat(dataset, report()).catch((error: unknown) => {
        ctx.logger.debug?.(`dataset "${dataset}": heartbeat failed: ${String(error)}`);
      });
    });
    beating = run;
    return run;
  };

  /** A heartbeat that opens the next reportMs window. */
  const reportVersion = () => {
    lastReportAt = ctx.clock.now();
    void heartbeat();
  };

  return {
    heartbeat,
    /** Reports a new applied version: now when the last report is older than reportMs, else once at the end of that window. */
    reportSoon() {
      if (reportTimer || ctx.mode === 'closed') return;
      const wait = lastReportAt + ctx.reportMs - ctx.clock.now();
      if (wait <= 0) return reportVersion();
      reportTimer = setTimeout(() => {
        reportTimer = undefined;
        reportVersion();
      }, wait);
      reportTimer.unref?.();
    },
    vote(stageId: string, reason: string | undefined) {
      votes = [...votes, reason === undefined ? { stageId, accepted: true } : { stageId, accepted: false, reason }].slice(-MAX_VOTES);
      void heartbeat();
    },
    /** Renews the lease every leaseMs / 3 on the dataset's clock (a virtual clock fires it as it moves). */
    startBeating() {
      stopBeating = setRepeatingTimer(ctx.clock, () => void heartbeat(), Math.max(50, Math.floor(ctx.leaseMs / 3)));
    },
    /** Stops the timers and waits for the heartbeat in flight (the caller leaves membership). */
    async stop() {
      stopBeating?.();
      clearTimeout(reportTimer);
      await beating?.catch(() => undefined);
    },
  };
}

export type ReplicaMembership = ReturnType<typeof createMembership>;
