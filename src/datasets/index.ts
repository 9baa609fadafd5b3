/** Data distribution: versioned datasets replicated to every instance (DESIGN.md section 8). */
export { openDataset } from './dataset.js';
export type { Dataset, DatasetOp, DatasetOptions, DatasetStatus, WriteOptions } from './dataset.js';
export type { DatasetChange, Entry, KeyChange, StageValidator } from './replica.js';
export type { Convergence, ReplicaStatus } from './convergence.js';
export { openReplicas } from './observers.js';
export type { ObservedReplica } from './observers.js';
export type { ReplicaLag } from './replica-lag.js';
export type { StageOptions, StageOutcome, StagedChange } from './stage.js';
export type {
  AppendOptions,
  Appended,
  DatasetStore,
  EntryOp,
  JsonValue,
  LogRecord,
  Membership,
  NewRecord,
  ReadResult,
  ReplicaFailure,
  ReplicaReport,
  Snapshot,
  SnapshotEntry,
  StageVote,
} from './store.js';
/** Helpers for people writing a DatasetStore adapter. */
export {
  appliedOps, checkDatasetName, conditionsOf, conflictError, decodeHint, decodeRecord, encodeRecord, hintHeader, isDelete, newGeneration,
} from './records.js';
