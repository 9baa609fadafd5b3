/**
 * How the test bus settles: it looks at every queue (error queues excepted) through the
 * transport's admin and at the receipts its handlers hold. Settled means: nothing in flight and
 * nothing due, twice in a row a turn of the event loop apart (a handler's last send is seen).
 * Advancing moves the virtual clock to the next due message or clock timer, settles, and repeats up to the target.
 */
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import { Headers } from '../core/headers.js';
import type { QueueAdmin } from '../core/transport.js';
import type { Recorder } from './recorder.js';
import type { IdleReport, ScheduledDelivery } from './session.js';
import type { VirtualClock } from './virtual-clock.js';

export interface BusView {
  readonly admin: QueueAdmin;
  readonly clock: VirtualClock;
  readonly recorder: Recorder;
  /** Tells the receivers of these queues to look again (the clock moved). */
  readonly wake: (queues: readonly string[]) => void;
  /** Wall-clock ms to wait for the bus to settle. */
  readonly timeoutMs: number;
}

interface Snapshot {
  readonly queues: readonly string[];
  readonly due: readonly ScheduledDelivery[];
  readonly scheduled: readonly ScheduledDelivery[];
}

async function snapshot({ admin, clock, recorder }: BusView): Promise<Snapshot> {
  const now = clock.now();
  const held = new Set([...recorder.inFlight].map((f) => `${f.queue}\n${f.messageId}`));
  const queues = (await admin.queues()).filter((q) => !recorder.errorQueues.has(q));
  const due: ScheduledDelivery[] = [];
  const scheduled: ScheduledDelivery[] = [];
  for (const queue of queues) {
    for (const { message, visibleAt } of await admin.schedule!(queue)) {
      if (held.has(`${queue}\n${message.id}`)) continue;
      const type = message.headers[Headers.EnclosedTypes]?.split(',')[0] ?? message.headers[Headers.Intent] ?? 'unknown type';
      (visibleAt <= now ? due : scheduled).push({ type, messageId: message.id, queue, dueAt: visibleAt, dueInMs: visibleAt - now });
    }
  }
  scheduled.sort((a, b) => a.dueAt - b.dueAt);
  return { queues, due, scheduled };
}

function notIdle(view: BusView, due: readonly ScheduledDelivery[]): SwitchyardError {
  const wall = Date.now();
  const held = [...view.recorder.inFlight].map((f) => `${f.type} ${f.messageId} held by ${f.endpoint} from ${f.queue} for ${wall - f.since} ms`);
  const waiting = due.map((d) => `${d.type} ${d.messageId} due in ${d.queue} and not received`);
  return new SwitchyardError(ErrorCodes.TEST_BUS_NOT_IDLE, `The test bus did not settle within ${view.timeoutMs} ms: ${[...held, ...waiting].join('; ')}.`, {
    fix: 'A handler that never finishes waits for something outside the bus (a promise nobody resolves, a real timer); a due message nobody receives is in a queue no endpoint of the bus reads. Fix that, or raise idleTimeoutMs.',
  });
}

async function settleNow(view: BusView): Promise<IdleReport> {
  const deadline = Date.now() + view.timeoutMs;
  let quietBefore = false;
  let woken = false;
  for (;;) {
    const snap = await snapshot(view);
    if (!woken) view.wake(snap.queues);
    woken = true;
    const quiet = snap.due.length === 0 && view.recorder.inFlight.size === 0;
    if (quiet && quietBefore) return { now: view.clock.now(), scheduled: snap.scheduled };
    quietBefore = quiet;
    if (Date.now() > deadline) throw notIdle(view, snap.due);
    await new Promise((resolve) => (quiet ? setImmediate(resolve) : setTimeout(resolve, 1)));
  }
}

/** The next due time on the way: a scheduled message, or a timer set on the virtual clock (a heartbeat, a worker timeout), whichever is first. */
function nextDue(view: BusView, report: IdleReport): number | undefined {
  const message = report.scheduled[0]?.dueAt;
  const timer = view.clock.nextTimerAt();
  return message === undefined ? timer : timer === undefined ? message : Math.min(message, timer);
}

/** Settles what is due now; with `until`, moves the clock there, delivering what falls due on the way, in due order. */
export async function settleBus(view: BusView, until?: number): Promise<IdleReport> {
  let report = await settleNow(view);
  if (until === undefined) return report;
  for (let next = nextDue(view, report); next !== undefined && next <= until; next = nextDue(view, report)) {
    view.clock.moveTo(next);
    await view.clock.timersSettled();
    report = await settleNow(view);
  }
  view.clock.moveTo(until);
  await view.clock.timersSettled();
  return settleNow(view);
}
