/**
 * The receive loop. One pump serves all of an endpoint's queues under one concurrency limit.
 *
 * Modes: IDLE (created) -> RUNNING (a loop per queue: wait for a free slot, ask the transport
 * for up to that many receipts, start each one without awaiting it) -> DRAINING (stop asked:
 * no new receives; in-flight handlers finish, or get their signal aborted when the stop is
 * forced and are abandoned when they still run `graceMs` after that) -> STOPPED. Transport errors back off exponentially (50 ms to 5 s) and are logged
 * once per streak, so a database or broker outage never kills the loop.
 *
 * A slot is taken by a message from its receive until its handlers are done (`release`), not
 * until its settlement is durable: settling (a commit, a broker confirm) overlaps the next
 * message's handler. At most `concurrency` handlers run at once, and at most `concurrency`
 * more messages wait for their settlement, so a slow store holds back receiving.
 *
 * With `prefetch`, up to that many more messages are received ahead of free slots and held here
 * (their leases renewed like any other): a handler that finishes starts the next message at once
 * instead of waiting for a receive, which on SQLite is a turn at the write lock. Held messages go
 * back to their queue (abandoned) when the pump stops.
 */
import { systemClock } from './clock.js';
import type { Address } from './identity.js';
import { sleep } from './leases.js';
import type { Logger } from './logger.js';
import type { Receipt, Transport } from './transport.js';
import { safeText } from './wire-headers.js';

export interface PumpOptions {
  transport: Transport;
  addresses: readonly Address[];
  concurrency: number;
  logger: Logger;
  /**
   * Processes one receipt; must settle it and must not throw. Calls `release` once its handlers
   * are done and only the settlement is left (or never: the slot is then freed when it resolves).
   */
  process(receipt: Receipt, stopSignal: AbortSignal, release: () => void): Promise<void>;
  /** Longest a receive waits for a message before asking again. */
  receiveWaitMs?: number;
  /** Messages received ahead of free slots and held here (default 0; see the file header). */
  prefetch?: number;
  /** After a forced stop, how long handlers that ignore their signal may still run (default 10 s). */
  graceMs?: number;
}

/** What the pump knows about its own health (endpoint.health() reports it). */
export interface PumpHealth {
  /** Receive loops are running (started, not stopping). */
  readonly receiving: boolean;
  /** Epoch ms of the last receive call that succeeded (with or without messages). */
  readonly lastReceiveAt: number | undefined;
  /** Epoch ms of the last receive that returned a message. */
  readonly lastMessageAt: number | undefined;
  /** The error of the current streak of failed receives, and since when (undefined: receiving works). */
  readonly receiveError: { readonly message: string; readonly since: number } | undefined;
  readonly handlersRunning: number;
  /** Received ahead of free slots and held (prefetch). */
  readonly held: number;
}

export class Pump {
  private readonly receiving = new AbortController();
  private readonly forced = new AbortController();
  /** Every message received and not yet settled, with its receipt (to name what a forced stop abandons). */
  private readonly inFlight = new Map<Promise<void>, Receipt>();
  /** Of those, the ones whose handlers still run (not released). */
  private running = 0;
  /** Received ahead of free slots (prefetch), oldest first. */
  private readonly held: Receipt[] = [];
  /** Loops waiting for a free slot; every queue's loop may wait at once. */
  private readonly slotWaiters = new Set<() => void>();
  private loops: Promise<void>[] = [];
  private stoppedReceiving: Promise<void> | undefined;
  private lastReceiveAt: number | undefined;
  private lastMessageAt: number | undefined;
  private receiveError: { message: string; since: number } | undefined;

  constructor(private readonly options: PumpOptions) {}

  /** Aborts when the stop is forced: handlers see it through their context signal. */
  get stopSignal(): AbortSignal {
    return this.forced.signal;
  }

  get active(): number {
    return this.inFlight.size;
  }

  health(): PumpHealth {
    return {
      receiving: this.loops.length > 0 && !this.receiving.signal.aborted,
      lastReceiveAt: this.lastReceiveAt,
      lastMessageAt: this.lastMessageAt,
      receiveError: this.receiveError,
      handlersRunning: this.running,
      held: this.held.length,
    };
  }

  start(): void {
    this.loops = this.options.addresses.map((address) => this.loop(address));
  }

  private async loop(address: Address): Promise<void> {
    const { transport, concurrency, logger } = this.options;
    const signal = this.receiving.signal;
    let backoffMs = 0;
    const prefetch = this.options.prefetch ?? 0;
    while (!signal.aborted) {
      this.startHeld();
      // Room to receive: free slots, plus what prefetch may hold beyond them.
      const room = this.freeSlots() + prefetch - this.held.length;
      if (room <= 0) {
        await new Promise<void>((resolve) => this.slotWaiters.add(resolve));
        // Completions settle in groups: let the rest of the group free their slots, then
        // receive for all of them at once instead of one receive per freed slot.
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      let receipts: Receipt[];
      try {
        receipts = await transport.receive(address, { max: room, waitMs: this.options.receiveWaitMs ?? 1000, signal });
        if (backoffMs > 0) logger.info(`receiving from ${address} again after an error`);
        backoffMs = 0;
        this.lastReceiveAt = systemClock.now();
        if (receipts.length > 0) this.lastMessageAt = this.lastReceiveAt;
        this.receiveError = undefined;
      } catch (error) {
        if (signal.aborted) break;
        if (backoffMs === 0) logger.error({ err: error }, `receiving from ${address} failed, retrying with backoff: ${(error as Error).message}`);
        this.receiveError ??= { message: (error as Error).message, since: systemClock.now() };
        backoffMs = Math.min(5000, Math.max(50, backoffMs * 2));
        await sleep(backoffMs, signal);
        continue;
      }
      this.held.push(...receipts);
      this.startHeld();
    }
  }

  /** Slots for messages to start now: handlers not running, and room among the unsettled. */
  private freeSlots(): number {
    const { concurrency } = this.options;
    return Math.min(concurrency - this.running, 2 * concurrency - this.inFlight.size);
  }

  private startHeld(): void {
    if (this.receiving.signal.aborted) return; // stopping: held messages go back (stop)
    while (this.held.length > 0 && this.freeSlots() > 0) this.track(this.held.shift()!);
  }

  private track(receipt: Receipt): void {
    this.running += 1;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.running -= 1;
      this.startHeld();
      this.wakeSlotWaiters();
    };
    const tracked = this.processSafely(receipt, release).finally(() => {
      this.inFlight.delete(tracked);
      if (!released) {
        release();
        return;
      }
      // A settlement done is room for one more: start a held message now, not when the loop's
      // receive (which may be waiting on an empty queue) returns.
      this.startHeld();
      this.wakeSlotWaiters();
    });
    this.inFlight.set(tracked, receipt);
  }

  /**
   * process() must not throw; if it does anyway (a bug), the loop and the process stay up: the
   * error is logged and the message, left unsettled, comes back when its lease runs out.
   */
  private processSafely(receipt: Receipt, release: () => void): Promise<void> {
    const failed = (error: unknown) => {
      const text = safeText(error instanceof Error ? error.message : error);
      this.options.logger.error({ err: error }, `processing a message from ${receipt.address} failed unexpectedly (${text}); it will be delivered again after its lease`);
    };
    try {
      return this.options.process(receipt, this.forced.signal, release).catch(failed);
    } catch (error) {
      failed(error);
      return Promise.resolve();
    }
  }

  private wakeSlotWaiters(): void {
    if (this.slotWaiters.size === 0) return;
    const waiters = [...this.slotWaiters];
    this.slotWaiters.clear();
    for (const wake of waiters) wake();
  }

  /**
   * Starts no more messages: receive loops end, the transport stops delivering, and held
   * (prefetched) messages go back to their queues. Handlers already running go on.
   */
  stopReceiving(): Promise<void> {
    this.stoppedReceiving ??= (async () => {
      this.receiving.abort();
      this.wakeSlotWaiters();
      await Promise.all(this.loops);
      const { transport, addresses } = this.options;
      // First no more deliveries, then the held ones back: a push broker would hand them to us again.
      await Promise.allSettled(addresses.map((address) => transport.stopReceiving?.(address)));
      await Promise.allSettled(this.held.splice(0).map((receipt) => receipt.abandon()));
    })();
    return this.stoppedReceiving;
  }

  /**
   * Stops receiving and waits for in-flight work. `signal` aborting forces handlers to give up
   * (their context signal aborts); those still running `graceMs` later are abandoned: stop
   * returns, names them in the log, and their messages come back when their lease runs out.
   */
  async stop(signal?: AbortSignal): Promise<void> {
    const graceMs = this.options.graceMs ?? 10_000;
    let endGrace = () => {};
    const graceOver = new Promise<void>((resolve) => (endGrace = resolve));
    let timer: NodeJS.Timeout | undefined;
    const force = () => {
      this.forced.abort(new Error('The endpoint is stopping forcefully.'));
      timer = setTimeout(endGrace, graceMs);
    };
    if (signal?.aborted) force();
    else signal?.addEventListener('abort', force, { once: true });
    await this.stopReceiving();
    let graceEnded = false;
    void graceOver.then(() => (graceEnded = true));
    while (this.inFlight.size > 0 && !graceEnded) await Promise.race([Promise.allSettled([...this.inFlight.keys()]), graceOver]);
    clearTimeout(timer);
    signal?.removeEventListener('abort', force);
    if (this.inFlight.size === 0) return;
    const abandoned = [...this.inFlight.values()].map((r) => `${r.message.id} in ${r.address}`);
    this.options.logger.error(
      `stopped with ${abandoned.length} handler(s) still running ${graceMs} ms after the forced stop; ` +
        `their messages come back after their lease: ${abandoned.join(', ')}`,
    );
  }
}
