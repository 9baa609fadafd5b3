/** Time source; tests inject a virtual clock. */
export interface Clock {
  now(): number;
  /**
   * The timer seam (optional): calls `fn` once `delayMs` of this clock's time have passed. The
   * test kit's VirtualClock fires it, in due order, when the test advances time past it, and waits
   * for a promise `fn` returns. Callers go through `setTimer`/`clearTimer` below, which use real
   * timers for a clock without the seam.
   */
  setTimer?(fn: () => unknown, delayMs: number): ClockTimer;
  clearTimer?(timer: ClockTimer): void;
}

/** A timer set on a clock; only its clock's clearTimer reads it. */
export interface ClockTimer {
  /** When it fires, on its clock. */
  readonly dueAt: number;
}

/** A real timer: never keeps the process alive by itself (the work it schedules is not what does). */
interface RealTimer extends ClockTimer {
  readonly timeout: NodeJS.Timeout;
}

export const systemClock: Clock = { now: () => Date.now() };

/** Calls `fn` after `delayMs` on `clock`'s time: its own timers where it has them, real ones otherwise. */
export function setTimer(clock: Clock, fn: () => unknown, delayMs: number): ClockTimer {
  if (clock.setTimer) return clock.setTimer(fn, delayMs);
  const timer: RealTimer = { dueAt: clock.now() + delayMs, timeout: setTimeout(fn, Math.max(0, delayMs)) };
  timer.timeout.unref();
  return timer;
}

export function clearTimer(clock: Clock, timer: ClockTimer | undefined): void {
  if (!timer) return;
  if (clock.clearTimer) clock.clearTimer(timer);
  else clearTimeout((timer as RealTimer).timeout);
}

/**
 * Wall-clock milliseconds with sub-millisecond precision, comparable across processes on one
 * machine: for latencies timed from a send in one process to its handling in another.
 */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}
