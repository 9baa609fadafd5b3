/**
 * Where a distributor keeps its ready-slot state so that it survives a restart, and the lease
 * that makes it the only distributor of its logical endpoint. `save` applies a list of changes
 * in one transaction. Implementations: memoryDistributorStore (tests, in-process) and
 * sqliteDistributorStore (src/sqlite/distributor-store.ts).
 */
import { systemClock } from '../core/clock.js';
import type { EndpointName } from '../core/identity.js';
import type { SlotRecord, StateChange, WorkerRecord } from './distributor-state.js';

export interface StoredDistributorState {
  readonly workers: WorkerRecord[];
  readonly slots: SlotRecord[];
}

export interface OwnershipClaim {
  readonly acquired: boolean;
  /** Who holds it when not acquired, and until when (epoch ms). */
  readonly holder?: string;
  readonly until?: number;
}

export interface DistributorStore {
  open(): Promise<void>;
  load(endpoint: EndpointName): Promise<StoredDistributorState>;
  /** Applies every change, in order, in one transaction. */
  save(endpoint: EndpointName, changes: readonly StateChange[]): Promise<void>;
  /** Takes or renews the endpoint's distributor lease for `owner` when it is free, expired or already ours. */
  claimOwnership(endpoint: EndpointName, owner: string, leaseMs: number): Promise<OwnershipClaim>;
  releaseOwnership(endpoint: EndpointName, owner: string): Promise<void>;
  close(): Promise<void>;
}

interface EndpointMemory {
  workers: Map<string, WorkerRecord>;
  slots: Map<string, SlotRecord>;
  owner?: { owner: string; until: number };
}

/** Keeps state in this process: survives a distributor restart inside the process, nothing more. */
export function memoryDistributorStore(): DistributorStore {
  const endpoints = new Map<string, EndpointMemory>();
  const of = (endpoint: string) => {
    let e = endpoints.get(endpoint);
    if (!e) endpoints.set(endpoint, (e = { workers: new Map(), slots: new Map() }));
    return e;
  };
  return {
    async open() {},
    async load(endpoint) {
      const e = of(endpoint);
      return { workers: [...e.workers.values()], slots: [...e.slots.values()] };
    },
    async save(endpoint, changes) {
      const e = of(endpoint);
      for (const change of changes) {
        switch (change.kind) {
          case 'put-worker':
            e.workers.set(change.worker.address, change.worker);
            break;
          case 'drop-slots':
            for (const [id, slot] of e.slots) if (slot.worker === change.worker) e.slots.delete(id);
            break;
          case 'put-slot':
            e.slots.set(change.slot.id, change.slot);
            break;
          case 'delete-slot':
            e.slots.delete(change.slot);
            break;
        }
      }
    },
    async claimOwnership(endpoint, owner, leaseMs) {
      const e = of(endpoint);
      const now = systemClock.now();
      if (e.owner && e.owner.owner !== owner && e.owner.until > now) return { acquired: false, holder: e.owner.owner, until: e.owner.until };
      e.owner = { owner, until: now + leaseMs };
      return { acquired: true };
    },
    async releaseOwnership(endpoint, owner) {
      const e = of(endpoint);
      if (e.owner?.owner === owner) e.owner = undefined;
    },
    async close() {},
  };
}
