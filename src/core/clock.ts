/**
 * Time source; tests inject a virtual clock. A clock may also own timers (`setTimer` /
 * `clearTimer`): periods and deadlines set through them run on that clock's time, so the test
 * kit's VirtualClock fires them as `bus.advance()` moves time, in due order, and waits for a
 * promise a timer's function returns. Callers go through the `setTimer`/`clearTimer` functions
 * below, which use real timers for a clock without its own (a plain `{ now }`).
 */
export interface Clock {
  now(): number;
  /** Calls `fn` once `delayMs` of this clock's time have passed. */
  setTimer?(fn: () => unknown, delayMs: number): ClockTimer;
  clearTimer?(timer: ClockTimer): void;
}

/** A timer set on a clock; only its clock's clearTimer reads more of it than its due time. */
export interface ClockTimer {
  /** When it fires, on its clock. */
  readonly dueAt: number;
}

/** A real timer: never keeps the process alive by itself (the work it schedules is what does). */
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

/** Calls `fn` every `ms` on `clock`'s time (each run re-arms the next) until the returned function is called. */
export function setRepeatingTimer(clock: Clock, fn: () => void, ms: number): () => void {
  let timer: ClockTimer | undefined;
  let stopped = false;
  const run = () => {
    if (stopped) return;
    timer = setTimer(clock, run, ms);
    fn();
  };
  timer = setTimer(clock, run, ms);
  return () => {
    stopped = true;
    clearTimer(clock, timer);
  };
}

/**
 * Wall-clock milliseconds with sub-millisecond precision, comparable across processes on one
 * machine: for latencies timed from a send in one process to its handling in another.
 */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}
