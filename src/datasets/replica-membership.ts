/**
 * The replica's membership: heartbeats that report its applied version (and generation, votes,
 * failure) with a lease, coalesced under load, one in flight at a time.
 */
import type { ReplicaContext } from './replica.js';
import type { ReplicaFailure, ReplicaReport, StageVote } from './store.js';

const MAX_VOTES = 16;
/** Applied versions are reported at most this often under load (membership writes are not free). */
const REPORT_DELAY_MS = 5;

export function createMembership(ctx: ReplicaContext, state: { isStale(): boolean; failure(): ReplicaFailure | undefined }) {
  const { dataset, store } = ctx;
  let votes: StageVote[] = [];
  let beating: Promise<void> | undefined;
  let reportTimer: ReturnType<typeof setTimeout> | undefined;
  let beatTimer: ReturnType<typeof setInterval> | undefined;

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
    const run = (beating ?? Promise.resolve()).then(() =>
      ctx.mode === 'closed'
        ? undefined // never re-join after leave()
        : store.heartbeat(dataset, report()).catch((error: unknown) => {
            ctx.logger.debug?.(`dataset "${dataset}": heartbeat failed: ${String(error)}`);
          }),
    );
    beating = run;
    return run;
  };

  return {
    heartbeat,
    /** Coalesces the applied-version reports of a burst of changes into one heartbeat. */
    reportSoon() {
      if (reportTimer || ctx.mode === 'closed') return;
      reportTimer = setTimeout(() => {
        reportTimer = undefined;
        void heartbeat();
      }, REPORT_DELAY_MS);
      reportTimer.unref?.();
    },
    vote(stageId: string, reason: string | undefined) {
      votes = [...votes, reason === undefined ? { stageId, accepted: true } : { stageId, accepted: false, reason }].slice(-MAX_VOTES);
      void heartbeat();
    },
    startBeating() {
      beatTimer = setInterval(() => void heartbeat(), Math.max(50, Math.floor(ctx.leaseMs / 3)));
      beatTimer.unref?.();
    },
    /** Stops the timers and waits for the heartbeat in flight (the caller leaves membership). */
    async stop() {
      clearInterval(beatTimer);
      clearTimeout(reportTimer);
      await beating?.catch(() => undefined);
    },
  };
}

export type ReplicaMembership = ReturnType<typeof createMembership>;
