/**
 * How far this replica is behind, from what it already knows (no I/O): the store's head as its
 * last read, wake-up or own write told it, and since when it has been behind that head.
 *
 *   versions behind  head - applied
 *   ms behind        0 when current; else now - the time the oldest change it has not applied
 *                    was written (the writer's clock, as leases use), or, when it learned of that
 *                    change without the record, the time it learned of it. A replica that stays
 *                    behind counts from the first change it fell behind on.
 * A replica that cannot reach the store knows no newer head: it says 0 here and `stale` in status.
 */
import type { ReplicaContext } from './replica-context.js';

export interface ReplicaLag {
  readonly versions: number;
  readonly ms: number;
}

/** The store has at least `version` (a wake-up, an offered record): `at` is when it was written, if known. */
export function sawVersion(ctx: ReplicaContext, version: number, at?: number): void {
  noteHead(ctx, Math.max(ctx.knownHead, version), at);
}

/** A read gave the store's head (exact: it may go down after the store lost data); `next` is the record after `applied`, if read. */
export function readHead(ctx: ReplicaContext, head: number, nextAt?: number): void {
  noteHead(ctx, head, nextAt);
}

function noteHead(ctx: ReplicaContext, head: number, at: number | undefined): void {
  if (ctx.applied >= ctx.knownHead) ctx.behindSince = undefined; // caught up since the last note
  ctx.knownHead = head;
  if (head > ctx.applied && ctx.behindSince === undefined) ctx.behindSince = Math.min(at ?? Infinity, ctx.clock.now());
}

export function replicaLag(ctx: ReplicaContext): ReplicaLag {
  const versions = Math.max(0, ctx.knownHead - ctx.applied);
  if (versions === 0) return { versions: 0, ms: 0 };
  return { versions, ms: Math.max(0, ctx.clock.now() - (ctx.behindSince ?? ctx.clock.now())) };
}
