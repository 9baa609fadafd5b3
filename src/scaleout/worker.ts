/**
 * `distributorWorker({ distributor })`: the worker side of the distributor protocol, as an
 * endpoint feature. Use it on an endpoint that receives only from its own instance queue:
 *
 *   createEndpoint({ name: 'Sales', queues: { shared: false, instance: true },
 *                    features: [distributorWorker({ distributor: 'Sales' })], ... })
 *
 * - setup: the endpoint's public address becomes the distributor's data queue, so replies,
 *   subscriptions, deferred messages and delayed retries come back through the distributor;
 * - start: a new session id; ready `start` with capacity = the endpoint's concurrency;
 *   heartbeats on a timer of the endpoint's clock (virtual in a test bus);
 * - each settled message that the distributor forwarded under the CURRENT session returns its
 *   slot. Nothing else does: not an immediate retry (the endpoint does not settle those), not a
 *   direct send, not a message of an earlier session still in the queue — so capacity is
 *   returned exactly once per forward. Returns are coalesced: freed slots wait up to
 *   `announceDelayMs` and go out in one ready (capacity = their count), sent atomically with the
 *   completion that finds the oldest one due, or by a timer when no completion comes;
 * - stopping: withdraw (free slots dropped; queued messages handed back where the transport can).
 */
import { clearTimer, setTimer, type ClockTimer } from '../core/clock.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { EndpointFeature, FeatureHost, SettleOutcome } from '../core/feature.js';
import { randomId } from '../core/ids.js';
import { checkName, sharedAddress, type Address, type EndpointName } from '../core/identity.js';
import type { Outgoing, TransportMessage } from '../core/transport.js';
import { controlAddress, DistributorHeaders, readyBody, type ReadyKind } from './distributor-protocol.js';

export interface DistributorWorkerOptions {
  /** The logical endpoint whose distributor feeds this worker (usually this endpoint's own name). */
  distributor: EndpointName;
  /** Slots announced on start (default: the endpoint's concurrency). */
  capacity?: number;
  /** How often to tell the distributor this worker is alive (default 5000; keep it < 1/3 of the distributor's workerTimeoutMs). */
  heartbeatMs?: number;
  /**
   * Longest a freed slot waits to be announced, so that one ready returns the slots of several
   * completions (default 5 ms; 0: one ready per settled message, in its completion's transaction).
   */
  announceDelayMs?: number;
}

export function distributorWorker(options: DistributorWorkerOptions): EndpointFeature {
  const { distributor, heartbeatMs, announceDelayMs } = readOptions(options);
  const data = sharedAddress(distributor);
  const control = controlAddress(distributor);
  let host: FeatureHost | undefined;
  let worker: Address = '';
  let session = '';
  let capacity = 0;
  let stopBeating: (() => void) | undefined;

  const ready = (kind: ReadyKind, extra: { capacity: number }): Outgoing => ({
    destination: control,
    message: host!.controlMessage('ready', {}, { kind, worker, session, ...extra }),
  });
  const returned = (slots: readonly string[]): Outgoing => ({ destination: control, message: host!.controlMessage('ready', {}, readyBody(worker, session, slots)) });
  const unannounced = new UnannouncedSlots(announceDelayMs, () => Math.ceil(capacity / 2), () => {
    const due = unannounced.take();
    if (due.length === 0 || !host) return;
    host.dispatch([returned(due)]).catch((error: unknown) => host?.logger.warn(`returning ${due.length} slot(s) to ${control} failed: ${(error as Error).message}`));
  });

  const stopHeartbeat = () => {
    stopBeating?.();
    stopBeating = undefined;
  };

  return {
    name: 'distributor-worker',
    // A worker's events come through the distributor, forwarded from the logical endpoint's
    // address: the endpoint subscribes once (a worker with subscriptions()), not every worker.
    deliversEvents: true,
    async setup(h) {
      if (h.publicAddress !== h.identity.address) {
        throw new SwitchyardError(ErrorCodes.CONFIG, `distributorWorker needs an endpoint that receives only from its instance queue, but ${h.identity.endpoint} receives from ${h.publicAddress}.`, {
          fix: "Pass queues: { shared: false, instance: true } to createEndpoint: the distributor owns the shared address.",
        });
      }
      host = h;
      worker = h.identity.address;
      capacity = options.capacity ?? h.concurrency;
      // Capacity above concurrency is prefetch: the extra messages wait in this instance's own
      // queue, and receiving them ahead means a finished handler starts the next one at once.
      if (capacity > h.concurrency) h.prefetch = Math.max(h.prefetch, capacity - h.concurrency);
      // Sends to the distributor must not fail because it has not started yet.
      await h.transport.createQueue(data);
      await h.transport.createQueue(control);
      h.publicAddress = data;
    },
    async start(h) {
      session = randomId(8);
      await h.dispatch([ready('start', { capacity })]);
      stopBeating = heartbeats(h, heartbeatMs, () =>
        h.dispatch([ready('heartbeat', { capacity })]).catch((error: unknown) => h.logger.warn(`heartbeat to ${control} failed: ${(error as Error).message}`)),
      );
      h.logger.info(`worker ${worker} ready for ${data} with capacity ${capacity} (session ${session})`);
    },
    async stopping(h) {
      stopHeartbeat();
      const due = unannounced.take();
      if (due.length > 0) await h.dispatch([returned(due)]);
      if (session) await h.dispatch([ready('withdraw', { capacity: 0 })]);
    },
    async stop() {
      stopHeartbeat();
      unannounced.take();
    },
    onSettled(message: TransportMessage, outcome: SettleOutcome): readonly Outgoing[] {
      // An immediate retry keeps the message in this worker (a re-sent copy to its own queue
      // carries the same slot): its capacity comes back when that copy is settled, once.
      if (outcome === 'immediate-retry') return [];
      const slot = message.headers[DistributorHeaders.Slot];
      if (!host || session === '' || slot === undefined || message.headers[DistributorHeaders.Session] !== session) return [];
      const due = unannounced.add(slot, host.clock.now());
      return due.length > 0 ? [returned(due)] : [];
    },
  };
}

/** A heartbeat every `everyMs` on the endpoint's clock (in a test bus it keeps pace with the distributor's timeout as the test advances time); returns the stop. */
function heartbeats(host: FeatureHost, everyMs: number, beat: () => Promise<void>): () => void {
  let timer: ClockTimer | undefined;
  const next = () => {
    timer = setTimer(host.clock, () => {
      next();
      return beat();
    }, everyMs);
  };
  next();
  return () => clearTimer(host.clock, timer);
}

function readOptions(options: DistributorWorkerOptions) {
  const distributor = checkName('Distributor (option `distributor` of distributorWorker)', options.distributor);
  const heartbeatMs = options.heartbeatMs ?? 5000;
  if (!(heartbeatMs > 0)) throw configError('heartbeatMs', String(heartbeatMs), 'Use a positive number of milliseconds (default 5000).');
  if (options.capacity !== undefined && (!Number.isInteger(options.capacity) || options.capacity < 1 || options.capacity > 10_000)) {
    throw configError('capacity', String(options.capacity), 'Use a whole number from 1 to 10000, or leave it unset to use the endpoint concurrency.');
  }
  const announceDelayMs = options.announceDelayMs ?? 5;
  if (!(announceDelayMs >= 0)) throw configError('announceDelayMs', String(announceDelayMs), 'Use 0 or a positive number of milliseconds (default 5).');
  return { distributor, heartbeatMs, announceDelayMs };
}

function configError(option: string, value: string, fix: string): SwitchyardError {
  return new SwitchyardError(ErrorCodes.CONFIG, `distributorWorker option \`${option}\` is ${value}.`, { fix });
}

/**
 * Freed slots not announced yet. A slot is announced with the completion that finds the oldest
 * one `delayMs` old or half the capacity waiting (the ready then commits with that completion), or by the timer armed for it
 * when no further completion comes in time (an idle worker's last slots).
 */
class UnannouncedSlots {
  private slots: string[] = [];
  private oldestAt = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly delayMs: number,
    /** Slots held back at most: half the capacity, so the distributor keeps the other half in circulation. */
    private readonly most: () => number,
    private readonly onDue: () => void,
  ) {}

  /** Adds a freed slot; returns the slots to announce now (empty: they wait). */
  add(slot: string, now: number): string[] {
    if (this.slots.length === 0) this.oldestAt = now;
    this.slots.push(slot);
    if (now - this.oldestAt >= this.delayMs || this.slots.length >= this.most()) return this.take();
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.onDue();
    }, this.delayMs - (now - this.oldestAt));
    return [];
  }

  take(): string[] {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const slots = this.slots;
    this.slots = [];
    return slots;
  }
}
