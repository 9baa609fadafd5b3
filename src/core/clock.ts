/** Time source; tests inject a virtual clock. */
export interface Clock {
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };

/**
 * Wall-clock milliseconds with sub-millisecond precision, comparable across processes on one
 * machine: for latencies timed from a send in one process to its handling in another.
 */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}
