/**
 * Two-phase change: stage, collect votes from every live replica, then activate or abort.
 *
 *   1. append a `stage` record (the ops, an expiry); each replica that applies it runs its
 *      validator and votes (accept, or reject with a reason) on its next heartbeat;
 *   2. the stager polls membership until every live replica voted, one rejected, or time ran out;
 *   3. all accepted -> the caller may `activate` (an `activate` record carrying the same ops,
 *      applied by every replica at one version); otherwise an `abort` record is appended at
 *      once and nobody switches.
 * The activate record carries the ops itself, so a replica that resynced from a snapshot after
 * the stage still applies it correctly. A stage that is neither activated nor aborted before
 * `expiresAt` can no longer be activated: it expires by itself and holds nothing.
 * A replica reported as failing (an onChange listener keeps throwing) counts as a rejection.
 */
import type { Clock } from '../core/clock.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import { describeReplicas, pollUntil } from './convergence.js';
import type { DatasetStore, EntryOp, NewRecord } from './store.js';

export interface StagedChange {
  readonly stageId: string;
  /** The version of the stage record. */
  readonly version: number;
  readonly expiresAt: number;
  readonly ops: readonly EntryOp[];
}

export type StageOutcome =
  | { readonly accepted: true; readonly stage: StagedChange; readonly voters: readonly string[] }
  | {
      readonly accepted: false;
      readonly stage: StagedChange;
      /** Version of the abort record that was appended. */
      readonly abortVersion: number;
      readonly rejected: readonly { readonly instance: string; readonly reason: string }[];
      /** Live replicas that did not vote in time. */
      readonly missing: readonly string[];
    };

export interface StageOptions {
  /** How long to wait for every live replica's vote (default 5000 ms). */
  timeoutMs?: number;
  /** After this long the stage can no longer be activated (default timeoutMs + 30 s). */
  expiresInMs?: number;
}

type StageState = 'voting' | 'accepted' | 'activated' | 'aborted';

/** `seen`: the highest version this instance has seen (its appends never get a version at or below it). */
export function createStager(dataset: string, store: DatasetStore, clock: Clock, instance: string, seen: () => number) {
  const states = new Map<string, StageState>();
  const append = async (record: NewRecord) => (await store.append(dataset, record, { above: seen() })).version;

  const stageError = (stage: StagedChange, why: string) =>
    new SwitchyardError(ErrorCodes.DATASET_STAGE, `Dataset "${dataset}": stage ${stage.stageId} (version ${stage.version}) ${why}.`, {
      fix: 'Stage the change again; check the outcome of stage() before calling activate().',
    });

  const abort = async (stage: StagedChange, reason: string): Promise<number> => {
    const state = states.get(stage.stageId);
    if (state === 'activated') throw stageError(stage, 'is already activated');
    states.set(stage.stageId, 'aborted');
    return append({ kind: 'abort', at: clock.now(), stageId: stage.stageId, reason });
  };

  return {
    async stage(ops: readonly EntryOp[], options: StageOptions = {}): Promise<StageOutcome> {
      const timeoutMs = options.timeoutMs ?? 5000;
      const expiresAt = clock.now() + (options.expiresInMs ?? timeoutMs + 30_000);
      const stageId = crypto.randomUUID();
      states.set(stageId, 'voting');
      const version = await append({ kind: 'stage', at: clock.now(), stageId, ops, expiresAt, by: instance });
      const stage: StagedChange = { stageId, version, expiresAt, ops };
      const tally = await pollUntil(clock, timeoutMs, 10, async () => {
        const membership = await store.membership(dataset);
        const replicas = describeReplicas(membership, clock.now()).filter((r) => r.live);
        const reports = new Map(membership.replicas.map((r) => [r.replica, r]));
        const voters: string[] = [];
        const missing: string[] = [];
        const rejected: { instance: string; reason: string }[] = [];
        for (const r of replicas) {
          const v = reports.get(r.instance)?.votes.find((x) => x.stageId === stageId);
          // A replica whose listener keeps failing is not ready, whatever it voted.
          if (r.failing) rejected.push({ instance: r.instance, reason: `its onChange listener is failing at version ${r.failing.version}: ${r.failing.error}` });
          else if (!v) missing.push(r.instance);
          else if (v.accepted) voters.push(r.instance);
          else rejected.push({ instance: r.instance, reason: v.reason ?? 'rejected' });
        }
        return { done: rejected.length > 0 || missing.length === 0, value: { voters, missing, rejected } };
      });
      if (tally.rejected.length === 0 && tally.missing.length === 0) {
        states.set(stageId, 'accepted');
        return { accepted: true, stage, voters: tally.voters };
      }
      const why = tally.rejected.length > 0
        ? `rejected by ${tally.rejected.map((r) => `${r.instance} (${r.reason})`).join(', ')}`
        : `no vote within ${timeoutMs} ms from ${tally.missing.join(', ')}`;
      const abortVersion = await abort(stage, why);
      return { accepted: false, stage, abortVersion, rejected: tally.rejected, missing: tally.missing };
    },

    async activate(stage: StagedChange): Promise<number> {
      const state = states.get(stage.stageId);
      if (state !== 'accepted') {
        throw stageError(stage, state === undefined ? 'was not staged by this dataset handle' : `is ${state}, not accepted`);
      }
      if (clock.now() >= stage.expiresAt) {
        states.set(stage.stageId, 'aborted');
        await append({ kind: 'abort', at: clock.now(), stageId: stage.stageId, reason: 'expired' }).catch(() => undefined);
        throw stageError(stage, 'expired before activation');
      }
      const version = await append({ kind: 'activate', at: clock.now(), stageId: stage.stageId, ops: stage.ops });
      states.set(stage.stageId, 'activated');
      return version;
    },

    abort,
  };
}
