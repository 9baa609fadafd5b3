/**
 * Virtual time for the test bus: the endpoints, the transport's visibility and leases read this
 * clock, and only the test moves it (`bus.advance('10m')`), so a 30 s delayed retry or a message
 * deferred by an hour is delivered in milliseconds of wall time. Timers set through the clock
 * seam (src/core/clock.ts: setTimer, e.g. the distributor's worker timeout, a worker's heartbeat,
 * a dataset replica's lease renewal and catch-up read) fire when the test advances past them, in
 * due order, ties in the order they were set.
 */
import { systemClock, type Clock, type ClockTimer } from '../core/clock.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';

export class VirtualClock implements Clock {
  #now: number;
  /** Timers set through the clock seam, by id (ids grow: equal due times fire in the order set). */
  readonly #timers = new Map<number, { readonly dueAt: number; readonly fn: () => unknown }>();
  #nextId = 0;
  /** Promises returned by fired timers, until they settle. */
  readonly #running = new Set<Promise<unknown>>();

  /** Starts at `start` (default: the real time now, so `new Date()` in a test is close to it). */
  constructor(start: number = systemClock.now()) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Moves to `at`, firing every timer due by then in due order, each at its own time; time never goes back. */
  moveTo(at: number): void {
    for (let next = this.#due(at); next; next = this.#due(at)) {
      this.#timers.delete(next.id);
      if (next.dueAt > this.#now) this.#now = next.dueAt;
      this.#run(next.fn);
    }
    if (at > this.#now) this.#now = at;
  }

  /** At least 1 ms ahead: a timer that re-arms itself for 0 ms from its own run would keep moveTo firing forever. */
  setTimer(fn: () => unknown, delayMs: number): ClockTimer & { readonly id: number } {
    const timer = { id: ++this.#nextId, dueAt: this.#now + Math.max(1, Number.isFinite(delayMs) ? delayMs : 1) };
    this.#timers.set(timer.id, { dueAt: timer.dueAt, fn });
    return timer;
  }

  clearTimer(timer: ClockTimer): void {
    this.#timers.delete((timer as { id?: number }).id ?? -1);
  }

  /** When the next timer fires (undefined: none set): the test bus advances to it like to a due message. */
  nextTimerAt(): number | undefined {
    let next: number | undefined;
    for (const t of this.#timers.values()) if (next === undefined || t.dueAt < next) next = t.dueAt;
    return next;
  }

  /** Resolves once the work of the timers fired so far (the promises they returned) has settled. */
  async timersSettled(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  #due(at: number): { id: number; dueAt: number; fn: () => unknown } | undefined {
    let first: { id: number; dueAt: number; fn: () => unknown } | undefined;
    for (const [id, t] of this.#timers) if (t.dueAt <= at && (!first || t.dueAt < first.dueAt)) first = { id, ...t };
    return first;
  }

  #run(fn: () => unknown): void {
    const result = fn();
    if (!(result instanceof Promise)) return;
    const running: Promise<unknown> = result.catch(() => undefined).finally(() => this.#running.delete(running));
    this.#running.add(running);
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
