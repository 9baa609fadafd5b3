/** Coalesced readiness (issue 22): one ready returns several slots; old one-slot readies still work. */
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/core/errors.js';
import { Headers } from '../../src/core/headers.js';
import { parseReady, readyBody } from '../../src/scaleout/distributor-protocol.js';
import { DistributorState } from '../../src/scaleout/distributor-state.js';

const wire = (body: unknown) => ({ id: 'r1', headers: { [Headers.Intent]: 'ready' }, body: JSON.stringify(body) });

describe('the coalesced ready message', () => {
  it('returns every slot it lists, once, and ignores the ones already returned', () => {
    const state = new DistributorState();
    state.apply({ kind: 'start', worker: 'S@a', session: 's1', capacity: 3 }, 0);
    const taken = ['m1', 'm2', 'm3'].map((id) => state.take(id)!.slot.id);
    const ready = parseReady(wire(readyBody('S@a', 's1', taken.slice(0, 2))), 'S');
    expect(ready).toMatchObject({ kind: 'ready', capacity: 2, slots: taken.slice(0, 2) });
    state.apply(ready, 1);
    expect(state.view()[0]).toMatchObject({ free: 2, taken: 1 });
    // A redelivered coalesced ready plus the third slot: only the third comes back.
    const again = parseReady(wire(readyBody('S@a', 's1', taken)), 'S');
    expect(state.apply(again, 2).ignored).toBeUndefined();
    expect(state.view()[0]).toMatchObject({ free: 3, taken: 0 });
    expect(state.apply(again, 3).ignored).toMatch(/already returned/);
    expect(state.view()[0]).toMatchObject({ free: 3, taken: 0 });
  });

  it('still understands a pre-coalescing worker: capacity 1 with `slot`, and sends that form for one slot', () => {
    expect(readyBody('S@a', 's1', ['x1'])).toEqual({ kind: 'ready', worker: 'S@a', session: 's1', capacity: 1, slot: 'x1' });
    expect(parseReady(wire({ kind: 'ready', worker: 'S@a', session: 's1', capacity: 1, slot: 'x1' }), 'S').slots).toEqual(['x1']);
  });

  it.each([
    [{ capacity: 3, slots: ['a', 'b'] }, /not the number of slots/],
    [{ capacity: 2, slots: ['a', 'a'] }, /listed twice/],
    [{ capacity: 0, slots: [] }, /1 to 10000/],
    [{ capacity: 2, slot: 'a' }, /one-slot ready/],
    [{ capacity: 1, slots: ['bad id!'] }, /is invalid/],
  ])('refuses %j with a coded reason', (extra, reason) => {
    const attempt = () => parseReady(wire({ kind: 'ready', worker: 'S@a', session: 's1', ...extra }), 'S');
    expect(attempt).toThrow(reason);
    expect(attempt).toThrow(expect.objectContaining({ code: ErrorCodes.READY_INVALID }));
  });
});
