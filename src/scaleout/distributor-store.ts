/**
 * Where a distributor keeps its ready-slot state so that it survives a restart, and the lease
 * that makes it the only distributor of its logical endpoint. `save` applies a list of changes
 * in one transaction. Implementations: memoryDistributorStore (tests, in-process) and
 * sqliteDistributorStore (src/sqlite/distributor-store.ts).
 */
import { systemClock } from '../core/clock.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { EndpointName } from '../core/identity.js';
import type { StorageSession } from '../core/transport.js';
import type { SlotRecord, StateChange, WorkerRecord } from './distributor-state.js';

export interface StoredDistributorState {
  readonly workers: WorkerRecord[];
  readonly slots: SlotRecord[];
}

export interface OwnershipClaim {
  readonly acquired: boolean;
  /** When acquired: the fence every later write of this owner carries. */
  readonly fence?: OwnershipFence;
  /** Who holds it when not acquired, and until when (epoch ms). */
  readonly holder?: string;
  readonly until?: number;
}

/**
 * Who may write an endpoint's distributor state: the owner and the epoch its claim got. The
 * epoch grows by one each time ownership changes hands and is never reused (a release keeps it),
 * so a distributor that was paused past its lease cannot write once another one has claimed.
 */
export interface OwnershipFence {
  readonly owner: string;
  readonly epoch: number;
}

/**
 * Where a distributor keeps its workers, slots and ownership lease. Every method is one
 * transaction. The contract a store for another database must keep (test/distributor/store-contract.test.ts):
 * - `claimOwnership` takes the lease when it is free or expired, with an epoch above every earlier one;
 * - `renewOwnership` and `save` succeed only while the row still names this fence (owner and epoch):
 *   `save` then applies every change in order, otherwise it writes nothing and throws
 *   SY_ERR_DISTRIBUTOR_FENCED; `renewOwnership` answers false;
 * - the lease is kept on the store's clock (its database server's, or the system clock for files).
 */
export interface DistributorStore {
  open(): Promise<void>;
  load(endpoint: EndpointName): Promise<StoredDistributorState>;
  /** Applies every change, in order, in one transaction, if `fence` still owns the endpoint; otherwise throws SY_ERR_DISTRIBUTOR_FENCED. */
  save(endpoint: EndpointName, fence: OwnershipFence, changes: readonly StateChange[]): Promise<void>;
  /** Takes the endpoint's distributor lease for `owner` when it is free or expired, with a new epoch. */
  claimOwnership(endpoint: EndpointName, owner: string, leaseMs: number): Promise<OwnershipClaim>;
  /** Extends the lease if `fence` still owns the endpoint (even past its expiry, if nobody claimed since); false when it does not. */
  renewOwnership(endpoint: EndpointName, fence: OwnershipFence, leaseMs: number): Promise<boolean>;
  /** Gives the lease up (keeping the epoch) if `fence` still owns it. */
  releaseOwnership(endpoint: EndpointName, fence: OwnershipFence): Promise<void>;
  /**
   * Where the store lives in the transport's database (SQLite): a fenced save on the session of a
   * transaction of that database (a forward's `alongside`), so the slot takes commit with the
   * forward. Checks the fence at once and throws SY_ERR_DISTRIBUTOR_FENCED (the forward then moves
   * nothing); the changes are written with the transaction. False, nothing done, when the session
   * is not on this store's database. Stores without it are saved with `save` after the forward.
   */
  saveAlongside?(session: StorageSession, endpoint: EndpointName, fence: OwnershipFence, changes: readonly StateChange[]): boolean;
  close(): Promise<void>;
}

/** The error a store throws when a write's fence no longer owns the endpoint. */
export function fencedError(endpoint: EndpointName, fence: OwnershipFence, holder: string | undefined): SwitchyardError {
  return new SwitchyardError(
    ErrorCodes.DISTRIBUTOR_FENCED,
    `The distributor ${fence.owner} (epoch ${fence.epoch}) no longer owns ${endpoint}${holder ? `: ${holder} does` : ''}; its write was refused.`,
    { fix: 'Stop this distributor; the new owner serves the endpoint. If it was not paused, raise ownershipLeaseMs.' },
  );
}

interface EndpointMemory {
  workers: Map<string, WorkerRecord>;
  slots: Map<string, SlotRecord>;
  owner?: { owner: string; epoch: number; until: number };
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
    async save(endpoint, fence, changes) {
      const e = of(endpoint);
      if (!owns(e, fence)) throw fencedError(endpoint, fence, e.owner?.owner);
      for (const change of changes) applyChange(e, change);
    },
    async claimOwnership(endpoint, owner, leaseMs) {
      const e = of(endpoint);
      const now = systemClock.now();
      if (e.owner && e.owner.until > now) return { acquired: false, holder: e.owner.owner, until: e.owner.until };
      const epoch = (e.owner?.epoch ?? 0) + 1;
      e.owner = { owner, epoch, until: now + leaseMs };
      return { acquired: true, fence: { owner, epoch } };
    },
    async renewOwnership(endpoint, fence, leaseMs) {
      const e = of(endpoint);
      if (!e.owner || !owns(e, fence)) return false;
      e.owner.until = systemClock.now() + leaseMs;
      return true;
    },
    async releaseOwnership(endpoint, fence) {
      const e = of(endpoint);
      if (e.owner && owns(e, fence)) e.owner.until = 0;
    },
    async close() {},
  };
}

function owns(e: EndpointMemory, fence: OwnershipFence): boolean {
  return e.owner?.owner === fence.owner && e.owner.epoch === fence.epoch;
}

function applyChange(e: EndpointMemory, change: StateChange): void {
  switch (change.kind) {
    case 'put-worker':
      e.workers.set(change.worker.address, change.worker);
      return;
    case 'drop-slots':
      for (const [id, slot] of e.slots) if (slot.worker === change.worker) e.slots.delete(id);
      return;
    case 'put-slot':
      e.slots.set(change.slot.id, change.slot);
      return;
    case 'delete-slot':
      e.slots.delete(change.slot);
      return;
  }
}
