/** The timer seam (src/core/clock.ts) on the VirtualClock: timers fire as time is moved, in due order, never by themselves. */
import { describe, expect, it } from 'vitest';
import { clearTimer, setRepeatingTimer, setTimer, systemClock } from '../../src/core/clock.js';
import { VirtualClock } from '../../src/testing/index.js';

describe('timers on the virtual clock', () => {
  it('fire when moveTo passes their due time, in due order (ties in the order set), each seeing its own due time', () => {
    const clock = new VirtualClock(1000);
    const fired: [string, number][] = [];
    setTimer(clock, () => fired.push(['late', clock.now()]), 300);
    setTimer(clock, () => fired.push(['early', clock.now()]), 100);
    setTimer(clock, () => fired.push(['early-too', clock.now()]), 100);
    const cleared = setTimer(clock, () => fired.push(['cleared', clock.now()]), 50);
    clearTimer(clock, cleared);

    clock.moveTo(1099);
    expect(fired).toEqual([]);
    expect(clock.nextTimerAt()).toBe(1100);
    clock.moveTo(2000);
    expect(fired).toEqual([['early', 1100], ['early-too', 1100], ['late', 1300]]);
    expect(clock.now()).toBe(2000);
    expect(clock.nextTimerAt()).toBeUndefined();
  });

  it('repeat on virtual time until stopped, a timer set while firing included', () => {
    const clock = new VirtualClock(0);
    const ticks: number[] = [];
    const stop = setRepeatingTimer(clock, () => ticks.push(clock.now()), 250);
    clock.moveTo(1000);
    expect(ticks).toEqual([250, 500, 750, 1000]);
    stop();
    clock.moveTo(5000);
    expect(ticks).toHaveLength(4);
  });

  it('fall back to real timers for a clock without its own', async () => {
    const plain = { now: () => systemClock.now() };
    await new Promise<void>((resolve) => setTimer(plain, resolve, 5));
  });
  it('lets the test wait for the work a fired timer started', async () => {
    const clock = new VirtualClock(0);
    let done = false;
    setTimer(clock, async () => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      done = true;
    }, 10);
    clock.moveTo(10);
    expect(done).toBe(false);
    await clock.timersSettled();
    expect(done).toBe(true);
  });
});
