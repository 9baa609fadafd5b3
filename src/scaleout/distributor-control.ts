/**
 * The distributor's control input: ready messages -> state changes -> one fenced store save ->
 * the messages completed (invalid ones: logged with the reason and completed into the error
 * queue) -> withdrawn workers' queued messages handed back.
 */
import { asError } from '../core/errors.js';
import type { Address } from '../core/identity.js';
import type { Receipt } from '../core/transport.js';
import { errorQueueHeaders } from '../recoverability/failure-headers.js';
import { parseReady } from './distributor-protocol.js';
import type { DistributorRuntime } from './distributor-runtime.js';
import type { ReadyOutcome, StateChange } from './distributor-state.js';

const RECEIVE_WAIT_MS = 1000;
/** Backlog receives at start: enough for any queue of control messages left while the distributor was down. */
const BACKLOG_ROUNDS = 100;

/** One receive from the control queue, applied. */
export async function receiveControl(rt: DistributorRuntime): Promise<void> {
  const receipts = await rt.ports.transport.receive(rt.settings.control, { max: 256, waitMs: RECEIVE_WAIT_MS, signal: rt.signal });
  if (receipts.length > 0) await handleControl(rt, receipts);
}

/** Ready messages queued while the distributor was down, applied before any dispatch. */
export async function applyControlBacklog(rt: DistributorRuntime): Promise<void> {
  for (let n = 0; n < BACKLOG_ROUNDS; n++) {
    const backlog = await rt.ports.transport.receive(rt.settings.control, { max: 256, waitMs: 0, signal: rt.signal });
    if (backlog.length === 0) break;
    await handleControl(rt, backlog);
  }
  await Promise.allSettled([...rt.completing]);
}

interface AppliedControl {
  readonly changes: StateChange[];
  readonly invalid: Map<Receipt, Error>;
  readonly handBacks: Address[];
}

async function handleControl(rt: DistributorRuntime, receipts: Receipt[]): Promise<void> {
  const applied = applyReadies(rt, receipts);
  // Dispatch may use the returned slots before they are saved: if the save is lost, the
  // control messages come again and the takes made meanwhile only over-report briefly
  // (distributor-state.ts). Completing before the save could leak slots, so that waits.
  rt.wakeDispatch();
  if (!(await saveApplied(rt, receipts, applied.changes))) return;
  rt.wakeDispatch();
  rt.onChange();
  // Not awaited: the next receive then commits together with these completions.
  void rt.track(rt.completing, settleControl(rt, receipts, applied));
}

function applyReadies(rt: DistributorRuntime, receipts: Receipt[]): AppliedControl {
  const applied: AppliedControl = { changes: [], invalid: new Map(), handBacks: [] };
  const now = rt.ports.clock.now();
  for (const receipt of receipts) {
    let outcome: ReadyOutcome;
    try {
      const ready = parseReady(receipt.message, rt.settings.endpoint);
      outcome = rt.state.apply(ready, now);
      if (ready.kind === 'ready' && !outcome.ignored) rt.countFor(ready.worker).readies += 1;
    } catch (error) {
      applied.invalid.set(receipt, asError(error));
      continue;
    }
    applied.changes.push(...outcome.changes);
    if (outcome.ignored) rt.ports.logger.debug?.(`ready ${receipt.message.id} ignored: ${outcome.ignored}`);
    if (outcome.handBack) applied.handBacks.push(outcome.handBack);
  }
  return applied;
}

/** Saves the changes with the pending takes; false (the messages given back) when that failed. */
async function saveApplied(rt: DistributorRuntime, receipts: Receipt[], changes: StateChange[]): Promise<boolean> {
  try {
    await rt.savePending(changes);
    return true;
  } catch (error) {
    // Another distributor owns the endpoint now: its control messages, untouched.
    if (rt.ports.ownership.isLost()) {
      await Promise.allSettled(receipts.map((r) => r.abandon()));
      return false;
    }
    // Memory ran ahead of the store: go back to what is stored; the messages come again.
    rt.ports.logger.error(`saving distributor state failed (${asError(error).message}); reloading it, the control messages will be processed again`);
    await rt.loadState();
    await Promise.allSettled(receipts.map((r) => r.abandon(100)));
    return false;
  }
}

async function settleControl(rt: DistributorRuntime, receipts: Receipt[], applied: AppliedControl): Promise<void> {
  const { logger } = rt.ports;
  await Promise.allSettled(
    receipts.map((r) => {
      const error = applied.invalid.get(r);
      return (error ? toErrorQueue(rt, r, error) : r.complete()).catch((e: unknown) => logger.warn(`completing control message ${r.message.id} failed: ${asError(e).message}`));
    }),
  );
  for (const worker of applied.handBacks) await rt.handBack(worker, false).catch(rt.logFailure(`handing back ${worker}'s messages`));
}

function toErrorQueue(rt: DistributorRuntime, receipt: Receipt, error: Error): Promise<void> {
  const { errorQueue, identity } = rt.settings;
  rt.ports.logger.error(`control message ${receipt.message.id} moved to ${errorQueue}: ${error.message}`);
  const headers = errorQueueHeaders(receipt.message.headers, {
    error,
    reason: 'invalid distributor control message',
    failedQueue: receipt.address,
    identity,
    attempts: receipt.deliveryCount,
    now: new Date(rt.ports.clock.now()),
  });
  return receipt.complete([{ destination: errorQueue, message: { id: receipt.message.id, headers, body: receipt.message.body } }]);
}
