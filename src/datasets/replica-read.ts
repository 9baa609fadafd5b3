/**
 * The replica's read step: reads the change log from its applied version and applies it, page by
 * page, until the log is exhausted. It decides what a read means: a resume (logged as exactly one
 * of "continuing from N" or "gap: resync from snapshot S"), a trimmed log (resync from a
 * snapshot), or a store that lost data (its generation changed or its head is below the version
 * applied here: the store is advanced past that version first, so no version this replica saw
 * is handed out again). Store failures are thrown to the sync loop, which retries.
 */
import { corruptError } from './records.js';
import { readHead } from './replica-lag.js';
import type { Applier } from './replica-apply.js';
import { replicaName, type ReplicaContext } from './replica-context.js';
import type { LogRecord, ReadResult } from './store.js';

const PAGE = 500;


/** The store lost data when its generation changed or its head is below what we applied. */
function lossOf(ctx: ReplicaContext, r: ReadResult): string | undefined {
  if (r.head < ctx.applied) return `its head ${r.head} is below version ${ctx.applied} applied here`;
  if (ctx.generation !== '' && r.generation !== '' && r.generation !== ctx.generation) {
    return `its generation changed from ${ctx.generation} to ${r.generation}`;
  }
  return undefined;
}

async function recoverLostStore<V>(ctx: ReplicaContext, applier: Applier<V>, why: string): Promise<void> {
  const floor = ctx.applied;
  await ctx.store.advance(ctx.dataset, floor); // never hand out a version this replica saw again
  const snap = await ctx.store.snapshot(ctx.dataset);
  ctx.logger.error(`${replicaName(ctx)}: the ${ctx.store.backend} store lost data (${why}): gap: resync from snapshot ${snap.version} (generation ${snap.generation}); versions up to ${floor} will not be reused`);
  applier.install(snap, true);
}

async function resyncFromSnapshot<V>(ctx: ReplicaContext, applier: Applier<V>, trimmedThrough: number): Promise<void> {
  const snap = await ctx.store.snapshot(ctx.dataset);
  ctx.logger.info(`${replicaName(ctx)}: gap: resync from snapshot ${snap.version} (log trimmed through ${trimmedThrough}, applied was ${ctx.applied})`);
  // Never go backwards: an older snapshot (or another generation's) is for the next read to judge.
  if (snap.version < ctx.applied || (snap.generation && ctx.generation && snap.generation !== ctx.generation)) return;
  applier.install(snap, true);
}

function applyAll<V>(ctx: ReplicaContext, applier: Applier<V>, records: readonly LogRecord[]): 'done' | 'broken' | 'held' {
  for (const record of records) {
    if (record.version <= ctx.applied) continue;
    if (record.version !== ctx.applied + 1) return 'broken'; // the log moved under us (trimmed between reads)
    if (!applier.apply(record)) return 'held';
  }
  return 'done';
}

export function createLogReader<V>(ctx: ReplicaContext, applier: Applier<V>) {
  const { clock } = ctx;
  // Longer than the catch-up interval (plus a tenth for timer jitter): this process did not run.
  const pauseMs = ctx.catchUpMs * 1.1 + 5;
  let lastReadAt = clock.now();
  /**
   * Set when a read took longer than a pause and found nothing new: the process was likely paused
   * while the read was in flight, so what was written meanwhile comes with the next read, which
   * reports the resume.
   */
  let pausedInRead: number | undefined;

  /** Why this read is a resume, and whether to log it even when there is nothing new. */
  const resumeReason = (): { what: string; always: boolean } | undefined => {
    if (ctx.mode === 'disconnected') return { what: 'reconnected', always: true };
    if (ctx.mode === 'starting') return { what: 'restarted', always: true };
    const silence = clock.now() - lastReadAt;
    if (silence > pauseMs) return { what: `resumed after ${silence} ms without a read`, always: false };
    return pausedInRead === undefined ? undefined : { what: `resumed after ${pausedInRead} ms without a read`, always: false };
  };

  /** Reads and applies until the log is exhausted; throws on store failure. */
  const catchUp = async () => {
    const resuming = resumeReason();
    let first = true;
    let resyncs = 0;
    const bound = () => {
      // A store that answers "gap" again right after a snapshot is broken; don't spin on it.
      if (++resyncs > 3) throw corruptError(ctx.dataset, `the change log (gap persists after ${resyncs - 1} snapshot resyncs at version ${ctx.applied})`);
    };
    while (ctx.mode !== 'closed') {
      if (applier.held !== undefined) return void (lastReadAt = clock.now()); // held by a listener: no reads
      const [startedAt, previousReadAt] = [clock.now(), lastReadAt];
      const result = await ctx.store.readSince(ctx.dataset, ctx.applied, PAGE);
      lastReadAt = clock.now();
      const loss = lossOf(ctx, result);
      if (loss || result.kind === 'gap') {
        bound();
        await (loss ? recoverLostStore(ctx, applier, loss) : resyncFromSnapshot(ctx, applier, result.kind === 'gap' ? result.trimmedThrough : ctx.applied));
        first = false;
        continue;
      }
      if (ctx.generation === '') ctx.generation = result.generation;
      readHead(ctx, result.head, result.records.find((r) => r.version === ctx.applied + 1)?.at);
      const fresh = result.records.some((r) => r.version > ctx.applied);
      if (first && resuming && (resuming.always || fresh)) {
        ctx.logger.info(`${replicaName(ctx)}: ${resuming.what}: continuing from ${ctx.applied}`);
      }
      if (first) pausedInRead = !resuming && !fresh && lastReadAt - startedAt > pauseMs ? lastReadAt - previousReadAt : undefined;
      first = false;
      const outcome = applyAll(ctx, applier, result.records);
      if (outcome === 'broken') {
        bound();
        await resyncFromSnapshot(ctx, applier, ctx.applied);
      } else if (outcome === 'held' || result.records.length < PAGE) return;
    }
  };

  return { catchUp, resumeReason };
}
