/**
 * The distributor's ownership of its endpoint: a lease in the store, and the fence (owner and
 * epoch) every store write carries. Two checks keep a distributor that lost it from acting:
 * - locally, before every dispatch: the lease counts as held only until `claimedAt + leaseMs` on
 *   this process's clock, so a process resumed after a pause (SIGSTOP, a long GC, a frozen VM)
 *   sees at once that it may have lost it and renews before forwarding anything;
 * - in the store: a save or a renewal whose fence is not the stored one is refused, so once
 *   another distributor has claimed, nothing the old one still had in memory gets written.
 * Lost ownership is final for this distributor: it stops dispatching and never claims again
 * (its memory of slots is stale); a new process starts from the store.
 */
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import { systemClock } from '../core/clock.js';
import type { EndpointName } from '../core/identity.js';
import type { Logger } from '../core/logger.js';
import type { DistributorStore, OwnershipFence } from './distributor-store.js';

export class Ownership {
  private lost = false;
  /** Local time the current lease was taken or renewed at (taken before the store call: conservative). */
  private claimedAt: number;
  private readonly lostListeners: Array<() => void> = [];
  private renewing: Promise<boolean> | undefined;

  private constructor(
    private readonly store: DistributorStore,
    private readonly endpoint: EndpointName,
    readonly fence: OwnershipFence,
    private readonly leaseMs: number,
    private readonly logger: Logger,
    claimedAt: number,
  ) {
    this.claimedAt = claimedAt;
  }

  /** Waits for a crashed predecessor's lease to run out (up to twice the lease), not for a live one. */
  static async acquire(store: DistributorStore, endpoint: EndpointName, owner: string, leaseMs: number, logger: Logger): Promise<Ownership> {
    // The lease is kept on the store's (system) clock, not on the distributor's injected clock.
    const clock = systemClock;
    const deadline = clock.now() + leaseMs * 2;
    let logged = false;
    for (;;) {
      const claimedAt = clock.now();
      const claim = await store.claimOwnership(endpoint, owner, leaseMs);
      if (claim.acquired && claim.fence) return new Ownership(store, endpoint, claim.fence, leaseMs, logger, claimedAt);
      if (clock.now() > deadline) {
        throw new SwitchyardError(ErrorCodes.DISTRIBUTOR_RUNNING, `A distributor for ${endpoint} already runs (${claim.holder ?? 'unknown'}).`, {
          fix: `Stop that distributor first; only one distributor may serve ${endpoint} on a store.`,
        });
      }
      if (!logged) logger.info(`waiting for the ownership lease of ${endpoint} held by ${claim.holder ?? 'another distributor'}`);
      logged = true;
      await new Promise((resolve) => setTimeout(resolve, Math.min(250, Math.max(10, (claim.until ?? 0) - clock.now() + 5))));
    }
  }

  /** True while the lease is surely ours: not lost, and not past its local expiry. */
  held(): boolean {
    return !this.lost && systemClock.now() < this.claimedAt + this.leaseMs;
  }

  isLost(): boolean {
    return this.lost;
  }

  /** Called once, when ownership is lost. */
  onLost(listener: () => void): void {
    this.lostListeners.push(listener);
  }

  /** Renews when a third of the lease has passed (or it expired locally); false once lost. */
  async keep(): Promise<boolean> {
    if (this.lost) return false;
    if (systemClock.now() - this.claimedAt < this.leaseMs / 3) return true;
    return this.renew();
  }

  /** Renews now (one renewal at a time); a refusal means another distributor owns the endpoint. */
  renew(): Promise<boolean> {
    if (this.lost) return Promise.resolve(false);
    this.renewing ??= (async () => {
      const startedAt = systemClock.now();
      try {
        const renewed = await this.store.renewOwnership(this.endpoint, this.fence, this.leaseMs);
        if (renewed) this.claimedAt = startedAt;
        else this.markLost(undefined);
        return renewed;
      } finally {
        this.renewing = undefined;
      }
    })();
    return this.renewing;
  }

  /** Records a refused write (SY_ERR_DISTRIBUTOR_FENCED) or renewal: stop at once, log it once. */
  markLost(holder: string | undefined): void {
    if (this.lost) return;
    this.lost = true;
    this.logger.error(
      `lost the ownership of ${this.endpoint} (epoch ${this.fence.epoch}) to ${holder ?? 'another distributor'}: stopped dispatching; ` +
        'stop this distributor, the new owner serves the endpoint',
    );
    for (const listener of this.lostListeners.splice(0)) listener();
  }

  /** Gives the lease up if it is still ours. */
  async release(): Promise<void> {
    if (!this.lost) await this.store.releaseOwnership(this.endpoint, this.fence);
  }
}
