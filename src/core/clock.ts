/** A pending timer: what `setTimer` returned, to pass to `clearTimer`. */
export type TimerHandle = object;

/**
 * Time source; tests inject a virtual clock. A clock may also own timers (`setTimer` /
 * `clearTimer`): periods and deadlines set through them run on that clock's time, so the test
 * kit's VirtualClock fires them as `bus.advance()` moves time, in due order. A clock without them
 * (a plain `{ now }`) gets real timers; use the `setTimer`/`clearTimer` functions below, which fall back.
 */
export interface Clock {
  now(): number;
  /** Calls `fn` once, after `ms` (at least 1) on this clock; never keeps the process alive. */
  setTimer?(fn: () => void, ms: number): TimerHandle;
  clearTimer?(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref?.();
    return timer;
  },
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** Calls `fn` after `ms` on `clock`'s time (real time when the clock has no timers of its own). */
export function setTimer(clock: Clock, fn: () => void, ms: number): TimerHandle {
  return clock.setTimer ? clock.setTimer(fn, ms) : systemClock.setTimer!(fn, ms);
}

export function clearTimer(clock: Clock, handle: TimerHandle | undefined): void {
  if (handle === undefined) return;
  if (clock.clearTimer) clock.clearTimer(handle);
  else systemClock.clearTimer!(handle);
}

/** Calls `fn` every `ms` on `clock`'s time (each run re-arms the next) until the returned function is called. */
export function setRepeatingTimer(clock: Clock, fn: () => void, ms: number): () => void {
  let handle: TimerHandle | undefined;
  let stopped = false;
  const run = () => {
    if (stopped) return;
    handle = setTimer(clock, run, ms);
    fn();
  };
  handle = setTimer(clock, run, ms);
  return () => {
    stopped = true;
    clearTimer(clock, handle);
  };
}

/**
 * Wall-clock milliseconds with sub-millisecond precision, comparable across processes on one
 * machine: for latencies timed from a send in one process to its handling in another.
 */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}
