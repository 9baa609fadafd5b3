/**
 * What the replica's pieces share (replica.ts wires them; replica-apply, -read, -sync, -lag and
 * -membership each take this context): the replica's options, its state, and the change types
 * listeners receive. Its own module so that no piece imports the file that imports it.
 */
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import { isDelete } from './records.js';
import type { DatasetStore, EntryOp } from './store.js';

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
  /** Applied versions are written to membership at most once per this many ms (see replica-membership.ts). */
  reportMs: number;
  validate: StageValidator<V> | undefined;
}

export type ReplicaMode = 'starting' | 'live' | 'disconnected' | 'closed';

/** The options plus the state the pieces share. */
export interface ReplicaContext extends Omit<ReplicaOptions<unknown>, 'validate'> {
  mode: ReplicaMode;
  applied: number;
  /** The store generation `applied` belongs to ('' until the store has one). */
  generation: string;
  lastConfirmedAt: number;
  /** The store's head as far as this replica knows, and since when it has been behind it (replica-lag.ts). */
  knownHead: number;
  behindSince: number | undefined;
}

export function toKeyChanges<V>(ops: readonly EntryOp[]): KeyChange<V>[] {
  return ops.map((op) =>
    isDelete(op)
      ? { key: op.key, value: undefined, deleted: true }
      : { key: op.key, value: op.value as V, deleted: false },
  );
}

/** How log lines name a replica: its dataset and instance. */
export const replicaName = (ctx: Pick<ReplicaContext, 'dataset' | 'instance'>) => `dataset "${ctx.dataset}" (${ctx.instance})`;
