/**
 * The distributor's dispatch: only while free slots exist, take up to that many data messages
 * and move each, with a slot, to its worker: in one transaction where the transport has
 * `forward` (the message is in exactly one of the two queues, and never leased), otherwise by
 * receiving it and completing it with its forwarded copy. Nothing is forwarded while the
 * ownership lease is not surely held (distributor-ownership.ts).
 */
import { asError, ErrorCodes, isSwitchyardError } from '../core/errors.js';
import type { QueueOutgoing, Receipt, StorageSession, Transport, TransportMessage } from '../core/transport.js';
import { stampForward } from './distributor-protocol.js';
import type { DistributorRuntime } from './distributor-runtime.js';
import type { SlotRecord, SlotTake, StateChange } from './distributor-state.js';

const RECEIVE_WAIT_MS = 1000;

/** One dispatch round: waits for a free slot, or forwards up to `min(free, batchSize)` messages. */
export async function dispatchRound(rt: DistributorRuntime): Promise<void> {
  const { transport, ownership } = rt.ports;
  // Past the local lease (after a pause): nothing is forwarded until the store confirms ownership.
  if (!ownership.held() && !(await ownership.renew())) return;
  const free = rt.state.freeCount();
  if (free === 0) return rt.slotsFreed();
  const max = Math.min(free, rt.settings.batchSize);
  if (transport.forward) {
    await rt.track(rt.forwards, forwardMoving(rt, transport.forward.bind(transport), max));
    return;
  }
  const receipts = await transport.receive(rt.settings.data, { max, waitMs: RECEIVE_WAIT_MS, signal: rt.signal });
  if (receipts.length > 0) forwardReceived(rt, receipts);
}

/** The copy of a data message that goes to the worker holding `slot`. */
function copyFor(message: TransportMessage, slot: SlotRecord): QueueOutgoing {
  return { destination: slot.worker, message: stampForward(message, slot.session, slot.id) };
}

/** Takes the slot for a message, unless ownership is in doubt or no slot is free. */
function takeSlot(rt: DistributorRuntime, messageId: string): SlotTake | undefined {
  return rt.ports.ownership.held() ? rt.state.take(messageId) : undefined;
}

/**
 * Takes a slot for each message and moves it to that worker in one step (Transport.forward).
 * Where the store shares the transport's database, the takes (and any pending changes) are saved
 * in the forward's own transaction, fenced: a stored taken slot is then exactly a forwarded
 * message, and a distributor that lost ownership moves nothing. Elsewhere they are saved after.
 */
async function forwardMoving(rt: DistributorRuntime, move: NonNullable<Transport['forward']>, max: number): Promise<void> {
  const taken: SlotTake[] = [];
  let saved: StateChange[] | undefined;
  const alongside = rt.savesAlongside ? (session: StorageSession) => (saved = saveAlongside(rt, session, taken)) : undefined;
  try {
    rt.forwarded += await move(rt.settings.data, { max, waitMs: RECEIVE_WAIT_MS, signal: rt.signal, alongside }, (message) => {
      // Checked per message, inside the forward: a pause may have happened since the receive began.
      const take = takeSlot(rt, message.id);
      if (!take) return undefined;
      taken.push(take);
      return copyFor(message, take.slot);
    });
    for (const take of taken) {
      if (!saved) rt.pending.push(...take.changes);
      rt.countFor(take.slot.worker).forwarded += 1;
    }
    if (!saved) rt.onChange();
  } catch (error) {
    // Nothing moved: the slots are free again, the messages still in the data queue.
    if (saved) rt.pending.unshift(...saved);
    for (const take of taken) rt.pending.push(...rt.state.release(take.slot));
    if (isSwitchyardError(error, ErrorCodes.DISTRIBUTOR_FENCED)) rt.ports.ownership.markLost(undefined);
    rt.wakeDispatch();
    throw error;
  }
}

/** In the forward's transaction: the pending changes and these takes, saved by the store there; undefined when it cannot. */
function saveAlongside(rt: DistributorRuntime, session: StorageSession, taken: readonly SlotTake[]): StateChange[] | undefined {
  const { store, ownership } = rt.ports;
  // Saved after, behind that save on the store's connection, in order.
  if (rt.savesInFlight > 0) return undefined;
  const changes = [...rt.pending, ...taken.flatMap((take) => take.changes)];
  if (!store.saveAlongside?.(session, rt.settings.endpoint, ownership.fence, changes)) {
    rt.savesAlongside = false;
    return undefined;
  }
  // Written with the forward; given back to pending if the forward fails after all.
  const included = rt.pending;
  rt.pending = [];
  return included;
}

/** Transports without `forward`: each received message is completed with its forwarded copy. */
function forwardReceived(rt: DistributorRuntime, receipts: Receipt[]): void {
  for (const receipt of receipts) {
    const taken = takeSlot(rt, receipt.message.id);
    if (!taken) {
      // A worker withdrew or died while we received: the message goes back, untouched.
      void receipt.abandon().catch(() => undefined);
      continue;
    }
    void rt.track(rt.forwards, forwardOne(rt, receipt, taken.slot, taken.changes));
  }
}

async function forwardOne(rt: DistributorRuntime, receipt: Receipt, slot: SlotRecord, changes: StateChange[]): Promise<void> {
  try {
    await receipt.complete([copyFor(receipt.message, slot)]);
    rt.forwarded += 1;
    rt.countFor(slot.worker).forwarded += 1;
    rt.pending.push(...changes);
  } catch (error) {
    // Not forwarded (fenced), or unknown: the slot is free again; if the forward did commit
    // after all, the worker is over by one until that message's ready returns the slot.
    rt.pending.push(...rt.state.release(slot));
    rt.wakeDispatch();
    if (!isSwitchyardError(error, ErrorCodes.LEASE_LOST)) {
      rt.ports.logger.warn(`forwarding ${receipt.message.id} to ${slot.worker} failed (${asError(error).message}); it will be forwarded again`);
      await receipt.abandon(100).catch(() => undefined);
    }
  }
}
