import { describe, expect, it } from 'vitest';
import { newTraceParent, randomId, uuidv7 } from '../../src/core/ids.js';

describe('ids', () => {
  it('makes RFC 9562 version 7 UUIDs that start with their millisecond timestamp and sort by it', () => {
    const at = Date.UTC(2026, 10, 23, 12, 0, 0, 5);
    const id = uuidv7(at);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(at);
    expect(uuidv7(at + 1) > uuidv7(at)).toBe(true);
  });

  it('does not repeat across many ids (the random pool refills)', () => {
    const ids = new Set(Array.from({ length: 5000 }, () => uuidv7(0)));
    expect(ids.size).toBe(5000);
  });

  it('makes W3C traceparents and hex random ids', () => {
    expect(newTraceParent()).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(randomId(4)).toMatch(/^[0-9a-f]{8}$/);
  });
});
