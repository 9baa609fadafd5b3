/**
 * Pieces every polling transport shares: renewing the leases of held receipts on one timer, and
 * waiting for a wake-up with a deadline (and its plain form, a backoff sleep that a stop cuts
 * short, used by the pump and the distributor).
 */
import { ErrorCodes, SwitchyardError } from './errors.js';
import type { Address } from './identity.js';

export interface HeldLease {
  /** Aborts when a renewal finds the lease gone, or the keeper closes. */
  readonly signal: AbortSignal;
  release(): void;
}

/**
 * Renews every held lease each `intervalMs`. A renewal returns false when the lease was lost
 * (taken by another consumer after expiry): the receipt's signal then aborts, telling the
 * handler to give up, and its completion will be fenced off by the transport.
 */
export class LeaseKeeper {
  private readonly held = new Set<HeldEntry>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs: number) {}

  hold(renew: () => boolean | Promise<boolean>): HeldLease {
    const entry: HeldEntry = { renew, controller: undefined, lost: undefined };
    this.held.add(entry);
    this.timer ??= setInterval(() => void this.renewAll(), this.intervalMs).unref();
    return {
      // Made on first use: most handlers never look at their signal, and one AbortController
      // per message was a measurable share of the receive path.
      get signal() {
        entry.controller ??= new AbortController();
        if (entry.lost && !entry.controller.signal.aborted) entry.controller.abort(entry.lost);
        return entry.controller.signal;
      },
      release: () => {
        this.held.delete(entry);
        if (this.held.size === 0 && this.timer) {
          clearInterval(this.timer);
          this.timer = undefined;
        }
      },
    };
  }

  private static lose(entry: HeldEntry, reason: SwitchyardError): void {
    entry.lost = reason;
    entry.controller?.abort(reason);
  }

  private async renewAll(): Promise<void> {
    for (const entry of [...this.held]) {
      let kept = false;
      try {
        kept = await entry.renew();
      } catch {
        kept = false;
      }
      if (!kept && this.held.delete(entry)) LeaseKeeper.lose(entry, new SwitchyardError(ErrorCodes.LEASE_LOST, 'The message lease was lost.'));
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const entry of this.held) LeaseKeeper.lose(entry, new SwitchyardError(ErrorCodes.NOT_RUNNING, 'The transport closed.'));
    this.held.clear();
  }
}

interface HeldEntry {
  readonly renew: () => boolean | Promise<boolean>;
  controller: AbortController | undefined;
  /** Why the lease is gone, once it is. */
  lost: SwitchyardError | undefined;
}

/** Resolves after `ms`, or at once when `signal` aborts (backoff that a stop cuts short). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return waitForWake(() => () => undefined, ms, signal);
}

/** Resolves on the first wake-up, after `timeoutMs`, or when `signal` aborts, whichever is first. */
export function waitForWake(subscribe: (wake: () => void) => () => void, timeoutMs: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || timeoutMs <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      unsubscribe();
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    const unsubscribe = subscribe(done);
    signal.addEventListener('abort', done, { once: true });
  });
}

export function leaseLost(address: Address, messageId: string): SwitchyardError {
  return new SwitchyardError(
    ErrorCodes.LEASE_LOST,
    `The lease on message ${messageId} in ${address} was lost before it was settled; another consumer may be processing it, so nothing was sent.`,
    { fix: 'Make handlers finish well within the lease time, or raise leaseMs on the transport.' },
  );
}

/** A TopicOutgoing reached a transport without native pub/sub: the caller skipped the capability check. */
export function topicsUnsupported(transport: string): SwitchyardError {
  return new SwitchyardError(ErrorCodes.TRANSPORT, `The ${transport} transport has no native publish/subscribe.`, {
    fix: 'This is a bug in the caller: check transport.capabilities.nativePubSub before dispatching to a topic.',
  });
}

export function queueNotFound(transport: string, address: Address): SwitchyardError {
  return new SwitchyardError(ErrorCodes.QUEUE_NOT_FOUND, `Queue ${address} does not exist on the ${transport} transport.`, {
    fix: 'Start the endpoint that owns the queue first (it creates its queues), or create it with transport.createQueue().',
  });
}
