import { describe, expect, it } from 'vitest';
import { createUuidV7, randomId, traceParent, uuidv7 } from '../../src/core/ids.js';

const timestampOf = (id: string) => parseInt(id.slice(0, 8) + id.slice(9, 13), 16);

describe('ids', () => {
  it('makes RFC 9562 version 7 UUIDs that start with their millisecond timestamp and sort by it', () => {
    const next = createUuidV7();
    const at = Date.UTC(2026, 10, 23, 12, 0, 0, 5);
    const id = next(at);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(timestampOf(id)).toBe(at);
    expect(next(at + 1) > id).toBe(true);
  });

  it('makes ids in creation order within one millisecond, and when the clock steps back', () => {
    const next = createUuidV7();
    const at = Date.UTC(2026, 10, 23, 12, 0, 0, 5);
    const ids = [...Array.from({ length: 5000 }, () => next(at)), next(at - 1000), next(at - 1)];
    for (let i = 1; i < ids.length; i += 1) expect(ids[i]! > ids[i - 1]!, `id ${i} sorts after id ${i - 1}`).toBe(true);
    // 5000 ids in one millisecond overflow the 12-bit counter: the timestamp borrows at most a millisecond or two.
    expect(timestampOf(ids.at(-1)!) - at).toBeLessThanOrEqual(2);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('does not repeat across many ids (the random pool refills)', () => {
    const ids = new Set(Array.from({ length: 5000 }, () => uuidv7()));
    expect(ids.size).toBe(5000);
  });

  it('makes W3C traceparents: a new trace, or the incoming trace with a new parent span id', () => {
    const root = traceParent();
    expect(root).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const child = traceParent(root);
    expect(child.slice(0, 35)).toBe(root.slice(0, 35)); // version and trace id
    expect(child.slice(36, 52)).not.toBe(root.slice(36, 52)); // a new span id
    expect(traceParent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00').endsWith('-00')).toBe(true); // flags kept
    for (const invalid of ['garbage', '00-00000000000000000000000000000000-b7ad6b7169203331-01', 'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01']) {
      const fresh = traceParent(invalid);
      expect(fresh).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      expect(fresh.slice(3, 35)).not.toBe(invalid.slice(3, 35));
    }
    expect(randomId(4)).toMatch(/^[0-9a-f]{8}$/);
  });
});
