/**
 * Convergence tracking: who has applied what. Liveness comes from membership leases, so a
 * replica that stops heartbeating leaves the live set after its lease and shows up as
 * `departed` instead of blocking a wait forever.
 */
import { clearTimer, setTimer, type Clock } from '../core/clock.js';
import type { Membership, ReplicaFailure, ReplicaReport } from './store.js';

export interface ReplicaStatus {
  readonly instance: string;
  readonly applied: number;
  /** head - applied, at the time of the read. */
  readonly lag: number;
  /** Heartbeat within its lease. */
  readonly live: boolean;
  /** The replica said it could not confirm it is current within its staleness bound. */
  readonly stale: boolean;
  /** Its applied version belongs to an earlier store generation (the store lost data; it is resyncing). */
  readonly staleGeneration: boolean;
  /** An onChange listener keeps throwing at this version: the replica is held below it and retries. */
  readonly failing?: ReplicaFailure;
  readonly lastHeartbeatAt: number;
}

export type Convergence =
  | {
      readonly converged: true;
      readonly version: number;
      /** Live replicas, all at or past `version`. */
      readonly replicas: readonly ReplicaStatus[];
      /** Replicas whose lease ran out before they applied `version`. */
      readonly departed: readonly ReplicaStatus[];
    }
  | {
      readonly converged: false;
      readonly version: number;
      /** Live replicas still behind `version`. */
      readonly lagging: readonly ReplicaStatus[];
      readonly departed: readonly ReplicaStatus[];
    };

export function describeReplicas(membership: Membership, now: number): ReplicaStatus[] {
  return membership.replicas.map((r: ReplicaReport) => ({
    instance: r.replica,
    applied: r.applied,
    lag: Math.max(0, membership.head - r.applied),
    live: r.reportedAt + r.leaseMs > now,
    stale: r.stale,
    staleGeneration: !!r.generation && !!membership.generation && r.generation !== membership.generation,
    ...(r.failing ? { failing: r.failing } : {}),
    lastHeartbeatAt: r.reportedAt,
  }));
}

/** Has the replica applied `version` of the store's current history? */
const reached = (r: ReplicaStatus, version: number) => r.applied >= version && !r.staleGeneration;

export function convergenceOf(version: number, replicas: readonly ReplicaStatus[]): Convergence {
  const live = replicas.filter((r) => r.live);
  const departed = replicas.filter((r) => !r.live && !reached(r, version));
  const lagging = live.filter((r) => !reached(r, version));
  return lagging.length === 0
    ? { converged: true, version, replicas: live, departed }
    : { converged: false, version, lagging, departed };
}

/**
 * Polls until `done` returns a value or the deadline passes; the last evaluation is returned either way.
 * The polls are paced in real time (what they wait for, other replicas' reports, arrives by I/O);
 * the deadline is on `clock`, and a timer set there evaluates once more the moment it passes, so
 * on a virtual clock the timeout falls when the test moves time past it, in due order.
 */
export async function pollUntil<T>(
  clock: Clock,
  timeoutMs: number,
  intervalMs: number,
  evaluate: () => Promise<{ done: boolean; value: T }>,
): Promise<T> {
  const deadline = clock.now() + timeoutMs;
  let passed: () => void = () => undefined;
  const deadlineTimer = setTimer(clock, () => passed(), timeoutMs);
  try {
    for (;;) {
      const { done, value } = await evaluate();
      if (done || clock.now() >= deadline) return value;
      await new Promise<void>((resolve) => {
        const poll = setTimeout(resolve, intervalMs);
        passed = () => {
          clearTimeout(poll);
          resolve();
        };
      });
    }
  } finally {
    clearTimer(clock, deadlineTimer);
  }
}
