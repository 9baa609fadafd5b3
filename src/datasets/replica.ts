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
 * `applied` advances only after the record's ops are in memory and every onChange listener
 * returned. A record that is not applied + 1 (a trim raced the read) triggers a snapshot resync
 * rather than a skip; a store that lost data (new generation, or head below applied) too.
 *
 * The pieces: replica-apply.ts (memory and listeners), replica-read.ts (reading the log),
 * replica-sync.ts (scheduling reads, retries, staleness),
 * replica-membership.ts (heartbeats and votes), replica-context.ts (what they share); this file
 * wires them and owns start and stop.
 */
import { setRepeatingTimer } from '../core/clock.js';
import { createApplier, type Applier } from './replica-apply.js';
import { replicaLag, sawVersion } from './replica-lag.js';
import { createMembership, type ReplicaMembership } from './replica-membership.js';
import { createSyncLoop, type ReplicaSync } from './replica-sync.js';
import { replicaName, toKeyChanges, type DatasetChange, type Entry, type KeyChange, type ReplicaContext, type ReplicaMode, type ReplicaOptions, type StageValidator } from './replica-context.js';
import type { JsonValue, LogRecord, Snapshot } from './store.js';

export type { DatasetChange, Entry, KeyChange, ReplicaMode, StageValidator } from './replica-context.js';

/** Writes waiting for a version to be in memory (a held version is in memory; its listener is retried). */
function createWaiters(ctx: ReplicaContext, held: () => number | undefined) {
  const waiters: { version: number; resolve: () => void }[] = [];
  const reached = () => Math.max(ctx.applied, held() ?? 0);
  return {
    settle() {
      for (let i = waiters.length - 1; i >= 0; i--) {
        const w = waiters[i]!;
        if (w.version <= reached() || ctx.mode === 'closed') {
          waiters.splice(i, 1);
          w.resolve();
        }
      }
    },
    /** Resolves once `version` is in memory (or closed); undefined when it already is. */
    wait(version: number): Promise<void> | undefined {
      if (reached() >= version || ctx.mode === 'closed') return undefined;
      return new Promise<void>((resolve) => waiters.push({ version, resolve }));
    },
  };
}

/** Validation runs beside the apply loop: a slow validator delays only its vote. */
function voteOnStage<V>(validate: StageValidator<V> | undefined, record: Extract<LogRecord, { kind: 'stage' }>, membership: ReplicaMembership) {
  if (!validate) return membership.vote(record.stageId, undefined);
  Promise.resolve()
    .then(() => validate(toKeyChanges<V>(record.ops)))
    .then(
      (reason) => membership.vote(record.stageId, reason),
      (error: unknown) => membership.vote(record.stageId, `validator threw: ${String(error)}`),
    );
}

/** The start's first step: resume from saved state through the log, or read a snapshot. */
async function loadFirstCopy<V>(ctx: ReplicaContext, applier: Applier<V>, sync: { catchUp(): Promise<void> }, from: Snapshot | undefined) {
  if (from) {
    applier.install(from, false);
    await sync.catchUp(); // logs "restarted: continuing from N" or "gap: resync from snapshot S"
    return;
  }
  const snap = await ctx.store.snapshot(ctx.dataset);
  ctx.logger.info(`${replicaName(ctx)}: starting from snapshot ${snap.version}`);
  applier.install(snap, false);
}

/**
 * The start's second step: watch the store (a wake-up hint is applied directly when it is the next
 * version, else it asks for a read), read what was written before the watch, join the membership,
 * and start the catch-up read and the heartbeats.
 */
async function goLive(ctx: ReplicaContext, sync: ReplicaSync, membership: ReplicaMembership) {
  ctx.lastConfirmedAt = ctx.clock.now();
  ctx.mode = 'live';
  const unwatch = await ctx.store.watch(ctx.dataset, (hint) => {
    if (hint && hint.generation === ctx.generation && hint.version <= ctx.applied) return; // already have it
    if (hint) sawVersion(ctx, hint.version, hint.at);
    if (!hint || !sync.offer(hint, hint.generation)) void sync.requestSync();
  });
  await sync.requestSync(); // anything written between the first read and the watch
  await membership.heartbeat();
  // The catch-up read and the heartbeats run on the dataset's clock: a virtual clock drives them.
  const stopCatchUp = setRepeatingTimer(ctx.clock, sync.tick, ctx.catchUpMs);
  membership.startBeating();
  return { unwatch, stopCatchUp };
}

/** The replica's stop: every step runs; failures are logged together. */
async function stopParts(ctx: ReplicaContext, parts: { sync: { stop(): Promise<void> }; membership: ReplicaMembership; unwatch?: () => Promise<void> }) {
  const errors: unknown[] = [];
  await parts.sync.stop();
  await parts.membership.stop();
  if (parts.unwatch) await parts.unwatch().catch((e: unknown) => errors.push(e));
  await ctx.store.leave(ctx.dataset, ctx.instance).catch((e: unknown) => errors.push(e));
  if (errors.length > 0) ctx.logger.warn(`${replicaName(ctx)}: close: ${errors.map(String).join('; ')}`);
}

/**
 * The pieces and how they call each other: the applier (memory, listeners), the membership
 * (heartbeats, votes) and the sync loop (reads), and the writes waiting for a version.
 */
function wireParts<V>(ctx: ReplicaContext, validate: StageValidator<V> | undefined) {
  const isStale = () => ctx.clock.now() - ctx.lastConfirmedAt > ctx.stalenessMs;
  const waiters = createWaiters(ctx, () => applier.held);
  const applier = createApplier<V>(ctx, {
    stage: (record) => voteOnStage(validate, record, membership),
    failing: () => void membership.heartbeat(),
    released: () => {
      waiters.settle();
      membership.reportSoon();
      void sync.requestSync();
    },
  });
  const membership = createMembership(ctx, { isStale, failure: () => applier.failure });
  const sync = createSyncLoop<V>(ctx, applier, {
    isStale,
    progressed: (changed) => {
      waiters.settle();
      if (changed) membership.reportSoon();
    },
  });
  return { isStale, waiters, applier, membership, sync };
}

export function createReplica<V>(opts: ReplicaOptions<V>) {
  const ctx: ReplicaContext = {
    ...opts, mode: 'starting', applied: 0, generation: '', lastConfirmedAt: opts.clock.now(), knownHead: 0, behindSince: undefined,
  };
  const { isStale, waiters, applier, membership, sync } = wireParts<V>(ctx, opts.validate);
  let stopCatchUp: (() => void) | undefined;
  let unwatch: (() => Promise<void>) | undefined;

  return {
    get mode(): ReplicaMode {
      return ctx.mode;
    },
    get applied() {
      return ctx.applied;
    },
    get generation() {
      return ctx.generation;
    },
    get lastConfirmedAt() {
      return ctx.lastConfirmedAt;
    },
    /** Set while an onChange listener keeps throwing. */
    get failure() {
      return applier.failure;
    },
    entries: applier.entries,
    values: applier.values,
    listeners: applier.listeners,
    isStale,
    lag: () => replicaLag(ctx),
    offer: sync.offer,

    /** `from`: state saved by an earlier run (exportState); resume through the log when it still reaches back. */
    async start(from?: Snapshot): Promise<void> {
      await loadFirstCopy(ctx, applier, sync, from);
      ({ unwatch, stopCatchUp } = await goLive(ctx, sync, membership));
    },

    /** Resolves once this replica holds `version` in memory (or closed). */
    waitApplied(version: number): Promise<void> {
      const p = waiters.wait(version);
      if (!p) return Promise.resolve();
      void sync.requestSync();
      return p;
    },

    async stop(): Promise<void> {
      if (ctx.mode === 'closed') return;
      ctx.mode = 'closed';
      stopCatchUp?.();
      applier.stop();
      waiters.settle();
      await stopParts(ctx, { sync, membership, ...(unwatch ? { unwatch } : {}) });
    },
  };
}

export type Replica<V> = ReturnType<typeof createReplica<V>>;
export type { JsonValue };
