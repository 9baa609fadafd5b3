/**
 * UUID v7 (RFC 9562): 48-bit millisecond timestamp then random bits, so ids sort by creation
 * time, which keeps database indexes on message ids append-mostly. Ids of one generator are
 * strictly increasing (RFC 9562 section 6.2, method 1): within one millisecond, or when the clock
 * steps back, the 12-bit rand_a field counts up from a random start; when it runs out, the
 * timestamp moves one millisecond ahead of the clock until the clock catches up.
 */
import { systemClock } from './clock.js';
// Random bytes come from a pool refilled 4 KiB at a time, read in place: one getRandomValues
// call and one small array per id were a measurable share of the send path.
const pool = Buffer.alloc(4096);
let poolOffset = pool.length;
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

/** Reserves `n` random bytes of the pool; returns where they start. */
function draw(n: number): number {
  if (poolOffset + n > pool.length) {
    crypto.getRandomValues(pool);
    poolOffset = 0;
  }
  const at = poolOffset;
  poolOffset += n;
  return at;
}

/** One native call and one flat string, instead of a string built up two characters at a time. */
function hex(at: number, n: number): string {
  return pool.toString('hex', at, at + n);
}

/** A UUID v7 generator with its own ordering state; `uuidv7` is the process's one. */
export function createUuidV7(): (now?: number) => string {
  let lastMs = -1;
  let counter = 0;
  return (now = systemClock.now()) => {
    const r = draw(10);
    if (now > lastMs) {
      lastMs = now;
      // A random start with the top bit clear leaves at least 2048 steps in this millisecond.
      counter = ((pool[r]! << 8) | pool[r + 1]!) & 0x7ff;
    } else if (++counter > 0xfff) {
      lastMs += 1;
      counter = 0;
    }
    const time = lastMs.toString(16).padStart(12, '0').slice(-12);
    const version = `7${counter.toString(16).padStart(3, '0')}`;
    const variant = `${HEX[(pool[r + 2]! & 0x3f) | 0x80]}${HEX[pool[r + 3]!]}`;
    return `${time.slice(0, 8)}-${time.slice(8)}-${version}-${variant}-${hex(r + 4, 6)}`;
  };
}

export const uuidv7 = createUuidV7();

const TRACE_PARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$/;

/**
 * The W3C traceparent of a message: a new trace, or, when caused by a message that carries a
 * valid traceparent, the same trace id and flags with a new parent span id (each hop is its own
 * span). An invalid incoming header is data, not trusted: it starts a new trace.
 */
export function traceParent(incoming?: string): string {
  const r = draw(24);
  const match = incoming === undefined ? null : TRACE_PARENT.exec(incoming);
  if (!match || match[1] === 'ff' || /^0+$/.test(match[2]!)) return `00-${hex(r, 16)}-${hex(r + 16, 8)}-01`;
  return `00-${match[2]}-${hex(r + 16, 8)}-${match[3]}`;
}

/** The trace id of a valid W3C traceparent header; undefined for a missing or invalid one. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  const match = traceparent === undefined ? null : TRACE_PARENT.exec(traceparent);
  return match && match[1] !== 'ff' && !/^0+$/.test(match[2]!) ? match[2] : undefined;
}

/** A random id for sessions and discriminators. */
export function randomId(bytes = 6): string {
  return hex(draw(bytes), bytes);
}
