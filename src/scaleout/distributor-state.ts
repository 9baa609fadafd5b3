/**
 * The distributor's ready-slot state, as a pure state machine: every method changes memory and
 * returns the changes to persist (src/scaleout/distributor-store.ts), so the runtime can write
 * them in one store transaction before it acts on them.
 *
 * Invariants (asserted by test/distributor/state.test.ts):
 * - a live worker has exactly `capacity` slots, free or taken; a taken slot goes away only when
 *   the worker's ready returns it (a new free slot replaces it) or the worker's session ends;
 * - a slot id is never reused, so a duplicate or stale ready can never return a slot twice;
 * - a ready, heartbeat or withdraw from another session than the worker's current one changes
 *   nothing; a second start of the current session changes nothing (redelivered control message).
 * The runtime persists a take only after its forward committed (lazily, batched), so a stored
 * taken slot always stands for a forwarded message. A crash can lose the record of the last
 * takes: those slots come back free, the worker briefly gets more than its capacity, and the
 * accounting heals itself as their readies arrive (a ready for a free slot changes nothing; a
 * ready for a slot taken again returns it early, and the later ready for it is ignored).
 */
import { randomId } from '../core/ids.js';
import type { Address } from '../core/identity.js';
import { invalidReady, type ReadyMessage } from './distributor-protocol.js';

export type WorkerStatus = 'live' | 'withdrawn' | 'dead';

export interface WorkerRecord {
  readonly address: Address;
  readonly session: string;
  readonly capacity: number;
  readonly status: WorkerStatus;
  /** Epoch ms of the last control message from the worker. */
  readonly lastSeen: number;
}

export interface SlotRecord {
  readonly id: string;
  readonly worker: Address;
  readonly session: string;
  /** Orders slots: lower = ready earlier. */
  readonly seq: number;
  /** The data message it was taken for; null while free. */
  readonly messageId: string | null;
}

export type StateChange =
  | { readonly kind: 'put-worker'; readonly worker: WorkerRecord }
  | { readonly kind: 'drop-slots'; readonly worker: Address }
  | { readonly kind: 'put-slot'; readonly slot: SlotRecord }
  | { readonly kind: 'delete-slot'; readonly slot: string };

/** A slot taken for a data message, and the change to save once its forward committed. */
export interface SlotTake {
  readonly slot: SlotRecord;
  readonly changes: StateChange[];
}

export interface ReadyOutcome {
  readonly changes: StateChange[];
  /** Why nothing changed, for the log (old session, duplicate, ...). */
  readonly ignored?: string;
  /** A withdrawn worker whose queued messages go back to the data queue. */
  readonly handBack?: Address;
}

export interface WorkerView extends WorkerRecord {
  readonly free: number;
  readonly taken: number;
}

export class DistributorState {
  private readonly workers = new Map<Address, WorkerRecord>();
  private readonly slots = new Map<string, SlotRecord>();
  private seq = 0;

  /** Replaces memory with stored state (distributor start). Workers get a fresh heartbeat window. */
  load(workers: readonly WorkerRecord[], slots: readonly SlotRecord[], now: number): void {
    this.workers.clear();
    this.slots.clear();
    for (const w of workers) this.workers.set(w.address, { ...w, lastSeen: Math.max(w.lastSeen, now) });
    for (const s of slots) {
      this.slots.set(s.id, s);
      this.seq = Math.max(this.seq, s.seq);
    }
  }

  /** Each slot of a ready comes back once: taken, this worker's; a free slot replaces it while the worker is live. */
  private returnSlots(worker: WorkerRecord, ids: readonly string[], seen: StateChange): ReadyOutcome {
    const changes: StateChange[] = [seen];
    const stale: string[] = [];
    for (const id of ids) {
      const slot = this.slots.get(id);
      if (!slot || slot.messageId === null || slot.worker !== worker.address) {
        stale.push(id);
        continue;
      }
      changes.push(this.deleteSlot(slot));
      if (worker.status === 'live') changes.push(...this.addSlots(worker, 1));
    }
    if (stale.length === ids.length) return { changes, ignored: `slot ${stale.join(', ')} was already returned` };
    return { changes };
  }

  apply(ready: ReadyMessage, now: number): ReadyOutcome {
    const current = this.workers.get(ready.worker);
    if (ready.kind === 'start') {
      if (current?.session === ready.session && current.status === 'live') return { changes: [], ignored: 'a repeated start of the current session' };
      const worker: WorkerRecord = { address: ready.worker, session: ready.session, capacity: ready.capacity, status: 'live', lastSeen: now };
      return { changes: [...this.dropSlots(ready.worker), this.putWorker(worker), ...this.addSlots(worker, ready.capacity)] };
    }
    if (!current) throw invalidReady(`worker ${ready.worker} is unknown to this distributor (it sent no start)`);
    if (current.session !== ready.session) return { changes: [], ignored: `session ${ready.session} is not the worker's current session ${current.session}` };
    const seen = this.putWorker({ ...current, lastSeen: now });
    switch (ready.kind) {
      case 'ready':
        return this.returnSlots(current, ready.slots ?? [], seen);
      case 'heartbeat': {
        if (current.status !== 'dead') return { changes: [seen] };
        // Declared dead but alive after all (a long pause): it gets a full set of slots again;
        // its old slots were dropped and its queued messages handed back.
        const revived: WorkerRecord = { ...current, status: 'live', lastSeen: now };
        return { changes: [this.putWorker(revived), ...this.addSlots(revived, revived.capacity)] };
      }
      case 'withdraw': {
        const withdrawn = this.putWorker({ ...current, status: 'withdrawn', lastSeen: now });
        const free = [...this.slots.values()].filter((s) => s.worker === ready.worker && s.messageId === null);
        return { changes: [withdrawn, ...free.map((s) => this.deleteSlot(s))], handBack: ready.worker };
      }
      default:
        return { changes: [] };
    }
  }

  /**
   * The next ready slot for a data message: the worker with the most free slots; among equals,
   * the slot that has waited longest (round-robin across idle workers). The change it returns
   * is persisted once the forward committed.
   */
  take(messageId: string): SlotTake | undefined {
    const free = new Map<Address, { count: number; oldest: SlotRecord }>();
    for (const slot of this.slots.values()) {
      if (slot.messageId !== null) continue;
      const entry = free.get(slot.worker);
      if (!entry) free.set(slot.worker, { count: 1, oldest: slot });
      else {
        entry.count += 1;
        if (slot.seq < entry.oldest.seq) entry.oldest = slot;
      }
    }
    let best: { count: number; oldest: SlotRecord } | undefined;
    for (const entry of free.values()) {
      if (!best || entry.count > best.count || (entry.count === best.count && entry.oldest.seq < best.oldest.seq)) best = entry;
    }
    if (!best) return undefined;
    const taken = { ...best.oldest, messageId };
    this.slots.set(taken.id, taken);
    return { slot: taken, changes: [{ kind: 'put-slot', slot: taken }] };
  }

  /** The forward did not happen (its data message went back): the slot is free again. */
  release(slot: SlotRecord): StateChange[] {
    const current = this.slots.get(slot.id);
    if (!current || current.messageId === null) return [];
    const freed = { ...current, messageId: null };
    this.slots.set(freed.id, freed);
    return [{ kind: 'put-slot', slot: freed }];
  }

  /** Live workers silent for longer than `timeoutMs` are declared dead; their slots go. */
  expire(now: number, timeoutMs: number): { dead: Address[]; changes: StateChange[] } {
    const dead: Address[] = [];
    const changes: StateChange[] = [];
    for (const w of this.workers.values()) {
      if (w.status !== 'live' || now - w.lastSeen <= timeoutMs) continue;
      dead.push(w.address);
      changes.push(...this.dropSlots(w.address), this.putWorker({ ...w, status: 'dead' }));
    }
    return { dead, changes };
  }

  /** The first moment a live worker can be past `timeoutMs` of silence (expire declares it dead then); undefined without live workers. */
  nextTimeoutAt(timeoutMs: number): number | undefined {
    let first: number | undefined;
    for (const w of this.workers.values()) if (w.status === 'live' && (first === undefined || w.lastSeen < first)) first = w.lastSeen;
    return first === undefined ? undefined : first + timeoutMs + 1;
  }

  /** Free slots that can be handed out now. */
  freeCount(): number {
    let n = 0;
    for (const slot of this.slots.values()) if (slot.messageId === null) n += 1;
    return n;
  }

  view(): WorkerView[] {
    return [...this.workers.values()].map((w) => {
      const own = [...this.slots.values()].filter((s) => s.worker === w.address && s.session === w.session);
      const free = own.filter((s) => s.messageId === null).length;
      return { ...w, free, taken: own.length - free };
    });
  }

  private putWorker(worker: WorkerRecord): StateChange {
    this.workers.set(worker.address, worker);
    return { kind: 'put-worker', worker };
  }

  private dropSlots(worker: Address): StateChange[] {
    for (const slot of [...this.slots.values()]) if (slot.worker === worker) this.slots.delete(slot.id);
    return [{ kind: 'drop-slots', worker }];
  }

  private deleteSlot(slot: SlotRecord): StateChange {
    this.slots.delete(slot.id);
    return { kind: 'delete-slot', slot: slot.id };
  }

  private addSlots(worker: WorkerRecord, count: number): StateChange[] {
    const changes: StateChange[] = [];
    for (let i = 0; i < count; i++) {
      const slot: SlotRecord = { id: randomId(9), worker: worker.address, session: worker.session, seq: ++this.seq, messageId: null };
      this.slots.set(slot.id, slot);
      changes.push({ kind: 'put-slot', slot });
    }
    return changes;
  }
}
