/** The ready-slot state machine: the MSMQ distributor's accounting bugs, as assertions. */
import { describe, expect, it } from 'vitest';
import { DistributorState } from '../../src/scaleout/distributor-state.js';
import type { ReadyMessage } from '../../src/scaleout/distributor-protocol.js';

const start = (worker: string, session: string, capacity: number): ReadyMessage => ({ kind: 'start', worker, session, capacity });
const ready = (worker: string, session: string, slot: string): ReadyMessage => ({ kind: 'ready', worker, session, capacity: 1, slots: [slot] });

function freeOf(state: DistributorState, worker: string) {
  const view = state.view().find((w) => w.address === worker)!;
  return { free: view.free, taken: view.taken };
}

describe('DistributorState', () => {
  it('returns a slot exactly once: a duplicate ready changes nothing', () => {
    const state = new DistributorState();
    state.apply(start('S@a', 's1', 2), 0);
    const { slot } = state.take('m1')!;
    expect(freeOf(state, 'S@a')).toEqual({ free: 1, taken: 1 });
    state.apply(ready('S@a', 's1', slot.id), 1);
    expect(freeOf(state, 'S@a')).toEqual({ free: 2, taken: 0 });
    const again = state.apply(ready('S@a', 's1', slot.id), 2);
    expect(again.ignored).toMatch(/already returned/);
    expect(freeOf(state, 'S@a')).toEqual({ free: 2, taken: 0 });
  });

  it('replaces a worker on a new start and ignores ready messages of its older session', () => {
    const state = new DistributorState();
    state.apply(start('S@a', 'old', 2), 0);
    const { slot } = state.take('m1')!;
    state.apply(start('S@a', 'new', 3), 1);
    expect(freeOf(state, 'S@a')).toEqual({ free: 3, taken: 0 });
    expect(state.apply(ready('S@a', 'old', slot.id), 2).ignored).toMatch(/not the worker's current session/);
    expect(freeOf(state, 'S@a')).toEqual({ free: 3, taken: 0 });
    // The same start delivered twice (a redelivered control message) does not reset the slots.
    state.take('m2');
    expect(state.apply(start('S@a', 'new', 3), 3).ignored).toMatch(/repeated start/);
    expect(freeOf(state, 'S@a')).toEqual({ free: 2, taken: 1 });
  });

  it('hands out the next slot round-robin across idle workers, and more to the worker with more free slots', () => {
    const state = new DistributorState();
    state.apply(start('S@a', 'a', 2), 0);
    state.apply(start('S@b', 'b', 2), 0);
    const order = ['m1', 'm2', 'm3', 'm4'].map((m) => state.take(m)!.slot.worker);
    expect(order).toEqual(['S@a', 'S@b', 'S@a', 'S@b']);
    expect(state.take('m5')).toBeUndefined();
  });

  it('drops a withdrawn worker\'s free slots and gives no new slot for its late ready', () => {
    const state = new DistributorState();
    state.apply(start('S@a', 'a', 2), 0);
    const { slot } = state.take('m1')!;
    const withdrawn = state.apply({ kind: 'withdraw', worker: 'S@a', session: 'a', capacity: 0 }, 1);
    expect(withdrawn.handBack).toBe('S@a');
    expect(state.freeCount()).toBe(0);
    state.apply(ready('S@a', 'a', slot.id), 2);
    expect(freeOf(state, 'S@a')).toEqual({ free: 0, taken: 0 });
  });

  it('declares a silent worker dead, and a heartbeat of its session revives it with full capacity', () => {
    const state = new DistributorState();
    state.apply(start('S@a', 'a', 2), 0);
    state.take('m1');
    expect(state.expire(5_000, 10_000).dead).toEqual([]);
    expect(state.expire(20_000, 10_000).dead).toEqual(['S@a']);
    expect(state.freeCount()).toBe(0);
    state.apply({ kind: 'heartbeat', worker: 'S@a', session: 'a', capacity: 2 }, 21_000);
    expect(freeOf(state, 'S@a')).toEqual({ free: 2, taken: 0 });
  });

  it('heals after a restart that lost the record of a take: the worker is over by one only until that ready arrives', () => {
    const before = new DistributorState();
    before.apply(start('S@a', 'a', 1), 0);
    const [slotBefore] = before.view().length ? [before.take('m1')!.slot] : [];
    // The restarted distributor loaded the slot as free (its take was never saved).
    const after = new DistributorState();
    after.load(before.view().map(({ free: _f, taken: _t, ...w }) => w), [{ ...slotBefore!, messageId: null }], 1);
    const again = after.take('m2')!.slot;
    expect(again.id).toBe(slotBefore!.id);
    expect(after.take('m3')).toBeUndefined();
    // m1's ready returns the slot early; m2's later ready for the same slot changes nothing.
    after.apply(ready('S@a', 'a', slotBefore!.id), 2);
    expect(freeOf(after, 'S@a')).toEqual({ free: 1, taken: 0 });
    after.apply(ready('S@a', 'a', slotBefore!.id), 3);
    expect(freeOf(after, 'S@a')).toEqual({ free: 1, taken: 0 });
  });

  it('refuses a ready from a worker it never saw start', () => {
    const state = new DistributorState();
    expect(() => state.apply(ready('S@x', 'x', 'slot1'), 0)).toThrow(/unknown to this distributor/);
  });
});
