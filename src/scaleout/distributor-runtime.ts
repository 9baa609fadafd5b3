/**
 * What one running distributor's activities share (distributor.ts starts them): its settings,
 * the slot state and the takes not saved yet, the ownership fence every store write carries,
 * the work in flight that stop() and hand-backs wait for, and the wake-up of the dispatch loop.
 * Takes are pending (saved later) only where the store cannot save them inside the forward.
 */
import { asError, ErrorCodes, isSwitchyardError } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import type { Address, EndpointName, InstanceIdentity } from '../core/identity.js';
import type { Logger } from '../core/logger.js';
import type { Transport } from '../core/transport.js';
import { DistributorState, type StateChange } from './distributor-state.js';
import type { DistributorStore } from './distributor-store.js';
import type { Ownership } from './distributor-ownership.js';

export interface DistributorSettings {
  readonly endpoint: EndpointName;
  readonly data: Address;
  readonly control: Address;
  readonly errorQueue: string;
  readonly identity: InstanceIdentity;
  readonly workerTimeoutMs: number;
  readonly batchSize: number;
}

export interface DistributorPorts {
  readonly transport: Transport;
  readonly store: DistributorStore;
  readonly ownership: Ownership;
  readonly logger: Logger;
  /** Worker timeouts and error-queue times; the ownership lease is on the store's clock. */
  readonly clock: Clock;
}

export class DistributorRuntime {
  readonly state = new DistributorState();
  /** Takes of committed forwards, not yet saved (distributor-state.ts: losing them only over-reports briefly). */
  pending: StateChange[] = [];
  /** Forwards and control completions in flight: hand-backs and stop() wait for them. */
  readonly forwards = new Set<Promise<void>>();
  readonly completing = new Set<Promise<void>>();
  forwarded = 0;
  readonly perWorker: Record<Address, { forwarded: number; readies: number }> = {};
  readonly stopping = new AbortController();
  /** Whether takes are saved inside their forward's transaction (the store shares the transport's database); false once the store said it cannot. */
  savesAlongside: boolean;
  /**
   * Store saves begun and not yet committed (on the store's own connection). While there is one,
   * a forward saves nothing alongside: its take may be of a slot that save creates, and the two
   * connections' commits come in either order (the take first left a slot counted twice).
   */
  savesInFlight = 0;
  /** Told when the state or the pending takes changed (the housekeeping sets its timers). */
  onChange: () => void = () => undefined;
  private slotsChanged: (() => void) | undefined;
  private warnedNoAdmin = false;

  constructor(
    readonly settings: DistributorSettings,
    readonly ports: DistributorPorts,
  ) {
    this.savesAlongside = ports.store.saveAlongside !== undefined && ports.transport.forward !== undefined;
  }

  get signal(): AbortSignal {
    return this.stopping.signal;
  }

  countFor(worker: Address): { forwarded: number; readies: number } {
    return (this.perWorker[worker] ??= { forwarded: 0, readies: 0 });
  }

  /** Resolves at the next change of free slots (or stop): the dispatch loop's wait when none is free. */
  slotsFreed(): Promise<void> {
    return new Promise<void>((resolve) => (this.slotsChanged = resolve));
  }

  wakeDispatch(): void {
    const wake = this.slotsChanged;
    this.slotsChanged = undefined;
    wake?.();
  }

  /** Runs `work` as one of `set` until it settles. */
  track(set: Set<Promise<void>>, work: Promise<void>): Promise<void> {
    const tracked = work.finally(() => set.delete(tracked));
    set.add(tracked);
    return tracked;
  }

  /** (Re)reads workers and slots from the store: at start, and when memory ran ahead of a failed save. */
  async loadState(): Promise<void> {
    const stored = await this.ports.store.load(this.settings.endpoint);
    this.state.load(stored.workers, stored.slots, this.ports.clock.now());
  }

  /** Every store write carries the ownership fence; a refused one means another distributor took over. */
  async saveState(changes: StateChange[]): Promise<void> {
    this.savesInFlight++;
    try {
      await this.ports.store.save(this.settings.endpoint, this.ports.ownership.fence, changes);
    } catch (error) {
      if (isSwitchyardError(error, ErrorCodes.DISTRIBUTOR_FENCED)) this.ports.ownership.markLost(undefined);
      throw error;
    } finally {
      this.savesInFlight--;
    }
  }

  /** Saves the pending takes, alone or ahead of `changes` (a ready may return a slot whose take is still pending). */
  async savePending(changes: StateChange[] = []): Promise<void> {
    const batch = [...this.pending, ...changes];
    this.pending = [];
    if (batch.length > 0) await this.saveState(batch);
  }

  /** Hands a worker's queued messages back to the data queue (withdrawn or dead worker). */
  async handBack(worker: Address, includeLeased: boolean): Promise<void> {
    const { transport, logger } = this.ports;
    if (!transport.admin) {
      if (!this.warnedNoAdmin) logger.warn(`the ${transport.name} transport cannot move messages between queues: messages queued for ${worker} wait for it to return`);
      this.warnedNoAdmin = true;
      return;
    }
    // Forwards already under way to this worker land first, then are moved too.
    await Promise.allSettled([...this.forwards]);
    const moved = await transport.admin.moveAll(worker, this.settings.data, { includeLeased });
    if (moved > 0) logger.info(`handed ${moved} message(s) queued for ${worker} back to ${this.settings.data}`);
  }

  logFailure(what: string): (error: unknown) => void {
    return (error) => this.ports.logger.error(`${what} failed: ${asError(error).message}`);
  }
}
