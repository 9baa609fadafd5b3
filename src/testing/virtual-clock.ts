/**
 * Virtual time for the test bus: the endpoints, the transport's visibility and leases read this
 * clock, and only the test moves it (`bus.advance('10m')`), so a 30 s delayed retry or a message
 * deferred by an hour is delivered in milliseconds of wall time.
 */
import { systemClock, type Clock } from '../core/clock.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';

export class VirtualClock implements Clock {
  #now: number;

  /** Starts at `start` (default: the real time now, so `new Date()` in a test is close to it). */
  constructor(start: number = systemClock.now()) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Moves to `at`; time never goes back. */
  moveTo(at: number): void {
    if (at > this.#now) this.#now = at;
  }
}

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `250`, `'250ms'`, `'30s'`, `'10m'`, `'1h30m'`, `'2d'` to milliseconds. */
export function parseDuration(duration: number | string): number {
  if (typeof duration === 'number') {
    if (Number.isFinite(duration) && duration >= 0) return duration;
  } else if (typeof duration === 'string' && /^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(duration.trim())) {
    let ms = 0;
    for (const [, amount, unit] of duration.trim().matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) ms += Number(amount) * UNITS[unit!]!;
    return ms;
  }
  throw new SwitchyardError(ErrorCodes.CONFIG, `The duration ${JSON.stringify(duration)} is not a number of milliseconds or a text like '30s', '10m', '1h30m'.`, {
    fix: "Pass milliseconds (0 or more) or a number with a unit: ms, s, m, h, d (e.g. bus.advance('10m')).",
  });
}
