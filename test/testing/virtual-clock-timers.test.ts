/** The clock seam's timers on the virtual clock: fired by moving time, in due order, each at its own time. */
import { describe, expect, it } from 'vitest';
import { clearTimer, setTimer } from '../../src/core/clock.js';
import { VirtualClock } from '../../src/testing/virtual-clock.js';

describe('VirtualClock timers', () => {
  it('fire in due order when time moves past them, each seeing its own due time, and not before', async () => {
    const clock = new VirtualClock(1000);
    const fired: Array<[string, number]> = [];
    setTimer(clock, () => fired.push(['b', clock.now()]), 200);
    setTimer(clock, () => fired.push(['a', clock.now()]), 100);
    const cancelled = setTimer(clock, () => fired.push(['x', clock.now()]), 150);
    clearTimer(clock, cancelled);
    expect(clock.nextTimerAt()).toBe(1100);
    clock.moveTo(1099);
    expect(fired).toEqual([]);
    clock.moveTo(5000);
    expect(fired).toEqual([['a', 1100], ['b', 1200]]);
    expect(clock.now()).toBe(5000);
    expect(clock.nextTimerAt()).toBeUndefined();
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
