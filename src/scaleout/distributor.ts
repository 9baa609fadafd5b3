/**
 * The distributor: owns a logical endpoint's public address (the data queue, `Sales`) and its
 * control queue (`Sales.distributor`), and forwards each data message to the next ready worker.
 * It uses only the Transport port, so it runs on any transport; it runs as its own process
 * (`switchyard distributor`) or inside an endpoint process (`hostedDistributor` feature).
 *
 * Its lifecycle (startDistributor): settings -> transport and queues -> store -> ownership lease
 * -> stored state -> housekeeping timers -> the control backlog -> the two loops; stop() ends the
 * loops, waits for work in flight, saves the last takes and releases the lease. Three activities:
 * - control input (distributor-control.ts): ready messages -> state changes -> one fenced save;
 * - dispatch (distributor-dispatch.ts): while slots are free, data messages to their workers.
 *   Where the store shares the transport's database (SQLite) the takes commit with the forward;
 *   elsewhere they are saved after it, batched with the next control save or a timer (see
 *   distributor-state.ts for why losing the last ones on a crash only over-reports briefly);
 * - housekeeping (distributor-housekeeping.ts), on timers set for when work falls due: pending
 *   takes, silent workers declared dead (their queued messages go back to the data queue where
 *   the transport has admin.moveAll), the ownership lease renewed.
 */
import { asError, ErrorCodes, SwitchyardError } from '../core/errors.js';
import { randomId } from '../core/ids.js';
import { checkName, makeIdentity, sharedAddress, type Address, type EndpointName } from '../core/identity.js';
import { sleep } from '../core/leases.js';
import { consoleLogger, type Logger } from '../core/logger.js';
import type { Transport } from '../core/transport.js';
import { hostname } from 'node:os';
import { systemClock, type Clock } from '../core/clock.js';
import { applyControlBacklog, receiveControl } from './distributor-control.js';
import { dispatchRound } from './distributor-dispatch.js';
import { Housekeeping } from './distributor-housekeeping.js';
import { Ownership } from './distributor-ownership.js';
import { controlAddress } from './distributor-protocol.js';
import { DistributorRuntime, type DistributorSettings } from './distributor-runtime.js';
import type { WorkerView } from './distributor-state.js';
import type { DistributorStore } from './distributor-store.js';

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
  /** Where worker timeouts read time and set their timers (default: the system clock; the test kit's virtual clock fires them on advance). The ownership lease is on the store's clock. */
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

/** The distributor's part of a health report: each worker's capacity, messages in flight and when it was last heard from. */
export interface DistributorHealth {
  readonly ownership: 'held' | 'lost';
  readonly freeSlots: number;
  readonly forwarded: number;
  readonly workers: ReadonlyArray<{ readonly name: Address; readonly status: WorkerView['status']; readonly capacity: number; readonly inFlight: number; readonly lastSeen: string }>;
}

export function distributorHealth(status: DistributorStatus): DistributorHealth {
  const workers = status.workers.map((w) => ({ name: w.address, status: w.status, capacity: w.capacity, inFlight: w.taken, lastSeen: new Date(w.lastSeen).toISOString() }));
  return { ownership: status.ownership, freeSlots: status.freeSlots, forwarded: status.forwarded, workers };
}

export interface DistributorHandle {
  readonly dataAddress: Address;
  readonly controlAddress: Address;
  status(): DistributorStatus;
  /** Stops receiving, waits for forwards in flight, releases the ownership lease. Leaves the transport and store open (the caller's). */
  stop(): Promise<void>;
}

export async function startDistributor(options: DistributorOptions): Promise<DistributorHandle> {
  const settings = readSettings(options);
  const { transport, store } = options;
  const logger = options.logger ?? consoleLogger(`${settings.endpoint} distributor`);
  const leaseMs = positive('ownershipLeaseMs', options.ownershipLeaseMs ?? 10_000);

  await transport.open();
  for (const address of [settings.data, settings.control, settings.errorQueue]) await transport.createQueue(address);
  await store.open();
  const ownership = await Ownership.acquire(store, settings.endpoint, `${hostname()}:${process.pid}:${randomId(4)}`, leaseMs, logger);
  const rt = new DistributorRuntime(settings, { transport, store, ownership, logger, clock: options.clock ?? systemClock });
  await rt.loadState();
  logger.info(
    `distributing ${settings.data} (control ${settings.control}) on ${transport.name}: ${rt.state.view().filter((w) => w.status === 'live').length} live worker(s), ` +
      `${rt.state.freeCount()} free slot(s)`,
  );
  const timer = new Housekeeping(rt, leaseMs);
  rt.onChange = () => timer.arm();
  timer.start();
  await applyControlBacklog(rt);
  // Lost ownership stops dispatching at once; stop() still waits for what is in flight.
  ownership.onLost(() => endActivities(rt, timer));
  const loops = [runLoop(rt, `receiving from ${settings.control}`, () => receiveControl(rt)), runLoop(rt, `forwarding from ${settings.data}`, () => dispatchRound(rt))];

  let stopped: Promise<void> | undefined;
  return {
    dataAddress: settings.data,
    controlAddress: settings.control,
    status: () => statusOf(rt),
    stop: () => (stopped ??= stopDistributor(rt, timer, loops)),
  };
}

function readSettings(options: DistributorOptions): DistributorSettings {
  const endpoint = checkName('Distributor endpoint (option `endpoint`)', options.endpoint);
  return {
    endpoint,
    data: sharedAddress(endpoint),
    control: controlAddress(endpoint),
    errorQueue: checkName('Error queue (option `errorQueue`)', options.errorQueue ?? 'error'),
    identity: makeIdentity(endpoint, hostname(), process.pid, 'distributor'),
    workerTimeoutMs: positive('workerTimeoutMs', options.workerTimeoutMs ?? 30_000),
    batchSize: positive('batchSize', options.batchSize ?? 64),
  };
}

/** Repeats one activity until stopped; a failure is logged once and retried with backoff. */
async function runLoop(rt: DistributorRuntime, name: string, round: () => Promise<void>): Promise<void> {
  let backoffMs = 0;
  while (!rt.signal.aborted) {
    try {
      await round();
      backoffMs = 0;
    } catch (error) {
      if (rt.signal.aborted) break;
      if (backoffMs === 0) rt.ports.logger.error(`${name} failed, retrying with backoff: ${asError(error).message}`);
      backoffMs = Math.min(5000, Math.max(50, backoffMs * 2));
      await sleep(backoffMs, rt.signal);
    }
  }
}

function endActivities(rt: DistributorRuntime, timer: Housekeeping): void {
  timer.stop();
  rt.stopping.abort();
  rt.wakeDispatch();
}

async function stopDistributor(rt: DistributorRuntime, timer: Housekeeping, loops: Promise<void>[]): Promise<void> {
  const { logger, ownership } = rt.ports;
  endActivities(rt, timer);
  await Promise.all(loops);
  while (rt.forwards.size > 0 || rt.completing.size > 0) await Promise.allSettled([...rt.forwards, ...rt.completing]);
  if (!ownership.isLost()) await rt.savePending().catch((error: unknown) => logger.warn(`saving the last taken slots failed: ${asError(error).message}`));
  await ownership.release().catch(() => undefined);
  logger.info(`stopped after forwarding ${rt.forwarded} message(s)`);
}

function statusOf(rt: DistributorRuntime): DistributorStatus {
  const { endpoint, data, control } = rt.settings;
  const { ownership } = rt.ports;
  return {
    endpoint,
    dataAddress: data,
    controlAddress: control,
    workers: rt.state.view(),
    freeSlots: rt.state.freeCount(),
    forwarded: rt.forwarded,
    perWorker: structuredClone(rt.perWorker),
    ownership: ownership.isLost() ? 'lost' : 'held',
    epoch: ownership.fence.epoch,
  };
}

function positive(option: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `Distributor option \`${option}\` is ${String(value)}.`, { fix: 'Use a positive number (milliseconds or a count).' });
  }
  return value;
}
