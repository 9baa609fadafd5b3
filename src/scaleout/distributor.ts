/**
 * The distributor: owns a logical endpoint's public address (the data queue, `Sales`) and its
 * control queue (`Sales.distributor`), and forwards each data message to the next ready worker.
 * It uses only the Transport port, so it runs on any transport; it runs as its own process
 * (`switchyard distributor`) or inside an endpoint process (`hostedDistributor` feature).
 *
 * Three activities, one process:
 * - control loop: ready messages -> state changes -> one store save -> complete the messages
 *   (invalid ones: logged with the reason and completed into the error queue);
 * - dispatch loop: only while free slots exist, take up to that many data messages and move each,
 *   with a slot, to its worker: in one transaction where the transport has `forward` (the message
 *   is in exactly one of the two queues, and never leased), otherwise by receiving it and
 *   completing it with its forwarded copy.
 *   Takes are saved after the forward committed, batched with the next control save or a timer
 *   (see distributor-state.ts for why losing the last ones on a crash only over-reports briefly);
 * - a timer: declare silent workers dead (their queued messages go back to the data queue where
 *   the transport has admin.moveAll) and renew the ownership lease.
 */
import { asError, ErrorCodes, isSwitchyardError, SwitchyardError } from '../core/errors.js';
import { randomId } from '../core/ids.js';
import { checkName, makeIdentity, sharedAddress, type Address, type EndpointName } from '../core/identity.js';
import { sleep } from '../core/leases.js';
import { consoleLogger, type Logger } from '../core/logger.js';
import type { QueueOutgoing, Receipt, Transport, TransportMessage } from '../core/transport.js';
import { errorQueueHeaders } from '../recoverability/failure-headers.js';
import { hostname } from 'node:os';
import { systemClock, type Clock } from '../core/clock.js';
import { controlAddress, parseReady, stampForward } from './distributor-protocol.js';
import { DistributorState, type ReadyOutcome, type SlotRecord, type SlotTake, type StateChange, type WorkerView } from './distributor-state.js';
import type { DistributorStore } from './distributor-store.js';
import { Ownership } from './distributor-ownership.js';

export interface DistributorOptions {
  /** The logical endpoint it stands in front of; its address is the data queue. */
  endpoint: EndpointName;
  transport: Transport;
  store: DistributorStore;
  logger?: Logger;
  /** A worker with no control message for this long is declared dead (default 30000; keep it > 3 x the workers' heartbeatMs). */
  workerTimeoutMs?: number;
  /** Where invalid control messages go (default `error`). */
  errorQueue?: string;
  /** Most data messages forwarded per receive (default 64). */
  batchSize?: number;
  /** The ownership lease: another distributor for this endpoint may take over this long after a crash (default 10000). */
  ownershipLeaseMs?: number;
  /** Where worker timeouts read time (default: the system clock). The ownership lease is on the store's clock. */
  clock?: Clock;
}

export interface DistributorStatus {
  readonly endpoint: EndpointName;
  readonly dataAddress: Address;
  readonly controlAddress: Address;
  readonly workers: WorkerView[];
  readonly freeSlots: number;
  /** Messages forwarded since this distributor started. */
  readonly forwarded: number;
  /** Since this distributor started, per worker address: messages forwarded to it, and `ready` messages (one per message it finished) taken from it. */
  readonly perWorker: Readonly<Record<Address, { readonly forwarded: number; readonly readies: number }>>;
  /** `lost` once another distributor took the endpoint over (this one then dispatches nothing). */
  readonly ownership: 'held' | 'lost';
  /** The ownership epoch this distributor holds or held. */
  readonly epoch: number;
}

export interface DistributorHandle {
  readonly dataAddress: Address;
  readonly controlAddress: Address;
  status(): DistributorStatus;
  /** Stops receiving, waits for forwards in flight, releases the ownership lease. Leaves the transport and store open (the caller's). */
  stop(): Promise<void>;
}

const RECEIVE_WAIT_MS = 1000;

export async function startDistributor(options: DistributorOptions): Promise<DistributorHandle> {
  const endpoint = checkName('Distributor endpoint (option `endpoint`)', options.endpoint);
  const { transport, store } = options;
  const logger = options.logger ?? consoleLogger(`${endpoint} distributor`);
  const clock = options.clock ?? systemClock;
  const timeoutMs = positive('workerTimeoutMs', options.workerTimeoutMs ?? 30_000);
  const leaseMs = positive('ownershipLeaseMs', options.ownershipLeaseMs ?? 10_000);
  const batchSize = positive('batchSize', options.batchSize ?? 64);
  const errorQueue = checkName('Error queue (option `errorQueue`)', options.errorQueue ?? 'error');
  const data = sharedAddress(endpoint);
  const control = controlAddress(endpoint);
  const owner = `${hostname()}:${process.pid}:${randomId(4)}`;
  const identity = makeIdentity(endpoint, hostname(), process.pid, 'distributor');

  await transport.open();
  for (const address of [data, control, errorQueue]) await transport.createQueue(address);
  await store.open();
  const ownership = await Ownership.acquire(store, endpoint, owner, leaseMs, logger);

  const state = new DistributorState();
  const stored = await store.load(endpoint);
  state.load(stored.workers, stored.slots, clock.now());
  logger.info(
    `distributing ${data} (control ${control}) on ${transport.name}: ${stored.workers.filter((w) => w.status === 'live').length} live worker(s), ` +
      `${state.freeCount()} free slot(s)`,
  );
  /** Takes of committed forwards, not yet saved. */
  let pending: StateChange[] = [];
  /** Every store write carries the ownership fence; a refused one means another distributor took over. */
  const saveState = async (changes: StateChange[]) => {
    try {
      await store.save(endpoint, ownership.fence, changes);
    } catch (error) {
      if (isSwitchyardError(error, ErrorCodes.DISTRIBUTOR_FENCED)) ownership.markLost(undefined);
      throw error;
    }
  };
  const savePending = async () => {
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    await saveState(batch);
  };

  const stopping = new AbortController();
  const signal = stopping.signal;
  const forwards = new Set<Promise<void>>();
  const completing = new Set<Promise<void>>();
  let forwarded = 0;
  const perWorker: Record<Address, { forwarded: number; readies: number }> = {};
  const countFor = (worker: Address) => (perWorker[worker] ??= { forwarded: 0, readies: 0 });
  let slotsChanged: (() => void) | undefined;
  const wakeDispatch = () => {
    const wake = slotsChanged;
    slotsChanged = undefined;
    wake?.();
  };
  let warnedNoAdmin = false;

  /** Hands a worker's queued messages back to the data queue (withdrawn or dead worker). */
  const handBack = async (worker: Address, includeLeased: boolean) => {
    if (!transport.admin) {
      if (!warnedNoAdmin) logger.warn(`the ${transport.name} transport cannot move messages between queues: messages queued for ${worker} wait for it to return`);
      warnedNoAdmin = true;
      return;
    }
    // Forwards already under way to this worker land first, then are moved too.
    await Promise.allSettled([...forwards]);
    const moved = await transport.admin.moveAll(worker, data, { includeLeased });
    if (moved > 0) logger.info(`handed ${moved} message(s) queued for ${worker} back to ${data}`);
  };

  const toErrorQueue = (receipt: Receipt, error: Error) => {
    logger.error(`control message ${receipt.message.id} moved to ${errorQueue}: ${error.message}`);
    const headers = errorQueueHeaders(receipt.message.headers, {
      error,
      reason: 'invalid distributor control message',
      failedQueue: receipt.address,
      identity,
      attempts: receipt.deliveryCount,
      now: new Date(clock.now()),
    });
    return receipt.complete([{ destination: errorQueue, message: { id: receipt.message.id, headers, body: receipt.message.body } }]);
  };

  const handleControl = async (receipts: Receipt[]) => {
    const changes: StateChange[] = [];
    const invalid = new Map<Receipt, Error>();
    const handBacks: Address[] = [];
    const now = clock.now();
    for (const receipt of receipts) {
      let outcome: ReadyOutcome;
      try {
        const ready = parseReady(receipt.message, endpoint);
        outcome = state.apply(ready, now);
        if (ready.kind === 'ready' && !outcome.ignored) countFor(ready.worker).readies += 1;
      } catch (error) {
        invalid.set(receipt, asError(error));
        continue;
      }
      changes.push(...outcome.changes);
      if (outcome.ignored) logger.debug?.(`ready ${receipt.message.id} ignored: ${outcome.ignored}`);
      if (outcome.handBack) handBacks.push(outcome.handBack);
    }
    // Dispatch may use the returned slots before they are saved: if the save is lost, the
    // control messages come again and the takes made meanwhile only over-report briefly
    // (distributor-state.ts). Completing before the save could leak slots, so that waits.
    wakeDispatch();
    try {
      // Pending takes first: a ready may return a slot whose take is still pending.
      const batch = [...pending, ...changes];
      pending = [];
      await saveState(batch);
    } catch (error) {
      // Another distributor owns the endpoint now: its control messages, untouched.
      if (ownership.isLost()) {
        await Promise.allSettled(receipts.map((r) => r.abandon()));
        return;
      }
      // Memory ran ahead of the store: go back to what is stored; the messages come again.
      logger.error(`saving distributor state failed (${asError(error).message}); reloading it, the control messages will be processed again`);
      const again = await store.load(endpoint);
      state.load(again.workers, again.slots, clock.now());
      await Promise.allSettled(receipts.map((r) => r.abandon(100)));
      return;
    }
    wakeDispatch();
    // Not awaited: the next receive then commits together with these completions.
    const settled = (async () => {
      await Promise.allSettled(
        receipts.map((r) => {
          const error = invalid.get(r);
          return (error ? toErrorQueue(r, error) : r.complete()).catch((e: unknown) => logger.warn(`completing control message ${r.message.id} failed: ${asError(e).message}`));
        }),
      );
      for (const worker of handBacks) await handBack(worker, false).catch((e: unknown) => logger.error(`handing back ${worker}'s messages failed: ${asError(e).message}`));
    })();
    const tracked = settled.finally(() => completing.delete(tracked));
    completing.add(tracked);
  };

  /** The copy of a data message that goes to the worker holding `slot`. */
  const copyFor = (message: TransportMessage, slot: SlotRecord): QueueOutgoing => ({ destination: slot.worker, message: stampForward(message, slot.session, slot.id) });

  const forward = async (receipt: Receipt, slot: SlotRecord, changes: StateChange[]) => {
    try {
      await receipt.complete([copyFor(receipt.message, slot)]);
      forwarded += 1;
      countFor(slot.worker).forwarded += 1;
      pending.push(...changes);
    } catch (error) {
      // Not forwarded (fenced), or unknown: the slot is free again; if the forward did commit
      // after all, the worker is over by one until that message's ready returns the slot.
      pending.push(...state.release(slot));
      wakeDispatch();
      if (!isSwitchyardError(error, ErrorCodes.LEASE_LOST)) {
        logger.warn(`forwarding ${receipt.message.id} to ${slot.worker} failed (${asError(error).message}); it will be forwarded again`);
        await receipt.abandon(100).catch(() => undefined);
      }
    }
  };

  const dispatchBatch = (receipts: Receipt[]) => {
    for (const receipt of receipts) {
      const taken = ownership.held() ? state.take(receipt.message.id) : undefined;
      if (!taken) {
        // A worker withdrew or died while we received: the message goes back, untouched.
        void receipt.abandon().catch(() => undefined);
        continue;
      }
      const work = forward(receipt, taken.slot, taken.changes).finally(() => forwards.delete(work));
      forwards.add(work);
    }
  };

  const loop = async (name: string, step: () => Promise<void>) => {
    let backoffMs = 0;
    while (!signal.aborted) {
      try {
        await step();
        backoffMs = 0;
      } catch (error) {
        if (signal.aborted) break;
        if (backoffMs === 0) logger.error(`${name} failed, retrying with backoff: ${asError(error).message}`);
        backoffMs = Math.min(5000, Math.max(50, backoffMs * 2));
        await sleep(backoffMs, signal);
      }
    }
  };

  const controlStep = async () => {
    const receipts = await transport.receive(control, { max: 256, waitMs: RECEIVE_WAIT_MS, signal });
    if (receipts.length > 0) await handleControl(receipts);
  };

  /** Takes a slot for each message and moves it to that worker in one step (Transport.forward). */
  const forwardMoving = async (move: NonNullable<Transport['forward']>, max: number) => {
    const taken: SlotTake[] = [];
    try {
      forwarded += await move(data, { max, waitMs: RECEIVE_WAIT_MS, signal }, (message) => {
        // Checked per message, inside the forward: a pause may have happened since the receive began.
        const take = ownership.held() ? state.take(message.id) : undefined;
        if (!take) return undefined;
        taken.push(take);
        return copyFor(message, take.slot);
      });
      for (const take of taken) {
        pending.push(...take.changes);
        countFor(take.slot.worker).forwarded += 1;
      }
    } catch (error) {
      // Nothing moved: the slots are free again, the messages still in the data queue.
      for (const take of taken) pending.push(...state.release(take.slot));
      wakeDispatch();
      throw error;
    }
  };

  const dispatchStep = async () => {
    // Past the local lease (after a pause): nothing is forwarded until the store confirms ownership.
    if (!ownership.held() && !(await ownership.renew())) return;
    const free = state.freeCount();
    if (free === 0) {
      await new Promise<void>((resolve) => (slotsChanged = resolve));
      return;
    }
    const max = Math.min(free, batchSize);
    if (transport.forward) {
      const work = forwardMoving(transport.forward.bind(transport), max).finally(() => forwards.delete(work));
      forwards.add(work);
      await work;
      return;
    }
    const receipts = await transport.receive(data, { max, waitMs: RECEIVE_WAIT_MS, signal });
    if (receipts.length > 0) dispatchBatch(receipts);
  };

  const tick = async () => {
    if (!(await ownership.keep())) return;
    await savePending();
    const expired = state.expire(clock.now(), timeoutMs);
    if (expired.dead.length > 0) {
      await saveState(expired.changes);
      for (const worker of expired.dead) {
        logger.warn(`worker ${worker} sent nothing for ${timeoutMs} ms: declared dead, its slots dropped`);
        // Its leases are stale: if it was only paused, its completions are fenced off.
        await handBack(worker, true);
      }
    }
  };
  const timer = setInterval(() => {
    tick().catch((error: unknown) => logger.error(`distributor housekeeping failed: ${asError(error).message}`));
  }, Math.max(50, Math.min(200, Math.floor(Math.min(timeoutMs, leaseMs) / 4))));

  // Ready messages queued while the distributor was down are applied before any dispatch.
  for (let n = 0; n < 100; n++) {
    const backlog = await transport.receive(control, { max: 256, waitMs: 0, signal });
    if (backlog.length === 0) break;
    await handleControl(backlog);
  }
  await Promise.allSettled([...completing]);
  // Lost ownership stops dispatching at once; stop() still waits for what is in flight.
  ownership.onLost(() => {
    clearInterval(timer);
    stopping.abort();
    wakeDispatch();
  });
  const loops = [loop(`receiving from ${control}`, controlStep), loop(`forwarding from ${data}`, dispatchStep)];

  let stopped: Promise<void> | undefined;
  return {
    dataAddress: data,
    controlAddress: control,
    status: () => ({ endpoint, dataAddress: data, controlAddress: control, workers: state.view(), freeSlots: state.freeCount(), forwarded, perWorker: structuredClone(perWorker), ownership: ownership.isLost() ? 'lost' : 'held', epoch: ownership.fence.epoch }),
    stop() {
      stopped ??= (async () => {
        clearInterval(timer);
        stopping.abort();
        wakeDispatch();
        await Promise.all(loops);
        while (forwards.size > 0 || completing.size > 0) await Promise.allSettled([...forwards, ...completing]);
        await savePending().catch((error: unknown) => logger.warn(`saving the last taken slots failed: ${asError(error).message}`));
        await ownership.release().catch(() => undefined);
        logger.info(`stopped after forwarding ${forwarded} message(s)`);
      })();
      return stopped;
    },
  };
}

function positive(option: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `Distributor option \`${option}\` is ${String(value)}.`, { fix: 'Use a positive number (milliseconds or a count).' });
  }
  return value;
}
