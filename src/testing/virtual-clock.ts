/**
 * Virtual time for the test bus: the endpoints, the transport's visibility and leases read this
 * clock, and only the test moves it (`bus.advance('10m')`), so a 30 s delayed retry or a message
 * deferred by an hour is delivered in milliseconds of wall time. Timers set on it (datasets'
 * heartbeats and catch-up reads) fire as it moves, in due order.
 */
import { systemClock, type Clock, type TimerHandle } from '../core/clock.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';

interface VirtualTimer {
  readonly dueAt: number;
  /** Creation order: timers due at the same time fire in the order they were set. */
  readonly seq: number;
  readonly fn: () => void;
}

export class VirtualClock implements Clock {
  #now: number;
  readonly #timers = new Set<VirtualTimer>();
  #seq = 0;

  /** Starts at `start` (default: the real time now, so `new Date()` in a test is close to it). */
  constructor(start: number = systemClock.now()) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** A timer on virtual time: it fires when moveTo (bus.advance) passes its due time, never by itself. */
  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer: VirtualTimer = { dueAt: this.#now + Math.max(1, Number.isFinite(ms) ? ms : 1), seq: this.#seq++, fn };
    this.#timers.add(timer);
    return timer;
  }

  clearTimer(handle: TimerHandle): void {
    this.#timers.delete(handle as VirtualTimer);
  }

  /** When the earliest pending timer is due, if any. */
  nextTimerAt(): number | undefined {
    return this.#earliest()?.dueAt;
  }

  /** Moves to `at`, firing the timers due by then in due order, each at its own due time; time never goes back. */
  moveTo(at: number): void {
    for (let timer = this.#earliest(); timer && timer.dueAt <= at; timer = this.#earliest()) {
      this.#timers.delete(timer);
      if (timer.dueAt > this.#now) this.#now = timer.dueAt;
      timer.fn();
    }
    if (at > this.#now) this.#now = at;
  }

  #earliest(): VirtualTimer | undefined {
    let first: VirtualTimer | undefined;
    for (const t of this.#timers) if (!first || t.dueAt < first.dueAt || (t.dueAt === first.dueAt && t.seq < first.seq)) first = t;
    return first;
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
