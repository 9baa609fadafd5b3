/**
 * The replicas this process has open, for observers that read them (the OpenTelemetry lag
 * gauges in switchyard/opentelemetry read them on each collection). Reading is local, no I/O.
 */
import type { ReplicaLag } from './replica-lag.js';

export interface ObservedReplica {
  readonly dataset: string;
  /** The replica's instance id (as in status()). */
  readonly instance: string;
  readonly backend: string;
  /** Versions and ms behind the store's head, as far as this replica knows (see replica-lag.ts). */
  lag(): ReplicaLag;
}

const open = new Set<ObservedReplica>();

/** Every replica open in this process now (opened with openDataset, not closed yet). */
export function openReplicas(): Iterable<ObservedReplica> {
  return open.values();
}

/** Adds the replica to openReplicas() until the returned function is called. */
export function registerReplica(replica: ObservedReplica): () => void {
  open.add(replica);
  return () => void open.delete(replica);
}
