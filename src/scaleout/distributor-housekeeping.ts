/**
 * The distributor's housekeeping, on timers set for when something falls due rather than a poll:
 * - the worker timeout, on the distributor's clock (the test kit's virtual clock included): a
 *   timer at the earliest moment a live worker can be silent for `workerTimeoutMs`; it declares
 *   the silent ones dead, saves that, hands their queued messages back and sets the next one;
 * - takes not saved with their forward (stores that do not share the transport's database),
 *   saved within SAVE_DELAY_MS unless a control save takes them first;
 * - the ownership lease, renewed every third of it on the system clock (the store's time).
 * An idle distributor with live workers thus wakes for their timeouts and the lease only.
 */
import { clearTimer, setTimer, systemClock, type ClockTimer } from '../core/clock.js';
import type { DistributorRuntime } from './distributor-runtime.js';

const SAVE_DELAY_MS = 200;

export class Housekeeping {
  private timer: ClockTimer | undefined;
  private renewal: ClockTimer | undefined;
  private running = false;
  private stopped = false;

  constructor(
    private readonly rt: DistributorRuntime,
    private readonly leaseMs: number,
  ) {}

  start(): void {
    this.renewLater();
    this.arm();
  }

  /** Sets the timer for the next work due, unless one is set for earlier; call when the state or the pending takes change. */
  arm(): void {
    if (this.stopped || this.running) return;
    const { clock } = this.rt.ports;
    const due = this.nextDue();
    if (due === undefined || (this.timer && this.timer.dueAt <= due)) return;
    clearTimer(clock, this.timer);
    this.timer = setTimer(clock, () => this.tick(), due - clock.now());
  }

  stop(): void {
    this.stopped = true;
    clearTimer(this.rt.ports.clock, this.timer);
    clearTimer(systemClock, this.renewal);
    this.timer = this.renewal = undefined;
  }

  private nextDue(): number | undefined {
    const timeoutAt = this.rt.state.nextTimeoutAt(this.rt.settings.workerTimeoutMs);
    const saveAt = this.rt.pending.length > 0 ? this.rt.ports.clock.now() + SAVE_DELAY_MS : undefined;
    if (timeoutAt === undefined) return saveAt;
    return saveAt === undefined ? timeoutAt : Math.min(timeoutAt, saveAt);
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    this.running = true;
    try {
      await this.work();
    } catch (error) {
      this.rt.logFailure('distributor housekeeping')(error);
    } finally {
      this.running = false;
      this.arm();
    }
  }

  private async work(): Promise<void> {
    const { rt } = this;
    const { ownership, clock, logger } = rt.ports;
    // After a pause nothing is written or handed back until the store confirms ownership.
    if (!ownership.held() && !(await ownership.renew())) return;
    await rt.savePending();
    const timeoutMs = rt.settings.workerTimeoutMs;
    const expired = rt.state.expire(clock.now(), timeoutMs);
    if (expired.dead.length === 0) return;
    await rt.saveState(expired.changes);
    for (const worker of expired.dead) {
      logger.warn(`worker ${worker} sent nothing for ${timeoutMs} ms: declared dead, its slots dropped`);
      // Its leases are stale: if it was only paused, its completions are fenced off.
      await rt.handBack(worker, true);
    }
  }

  private renewLater(): void {
    if (this.stopped) return;
    this.renewal = setTimer(systemClock, () => {
      void this.rt.ports.ownership
        .keep()
        .catch(this.rt.logFailure('renewing the ownership lease'))
        .finally(() => this.renewLater());
    }, Math.max(10, Math.floor(this.leaseMs / 3)));
  }
}
