/**
 * UUID v7 (RFC 9562): 48-bit millisecond timestamp then random bits, so ids sort by creation
 * time, which keeps database indexes on message ids append-mostly.
 */
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

export function uuidv7(now = Date.now()): string {
  const time = now.toString(16).padStart(12, '0').slice(-12);
  const r = draw(10);
  const version = `7${HEX[pool[r]!]![1]}${HEX[pool[r + 1]!]}`;
  const variant = `${HEX[(pool[r + 2]! & 0x3f) | 0x80]}${HEX[pool[r + 3]!]}`;
  return `${time.slice(0, 8)}-${time.slice(8)}-${version}-${variant}-${hex(r + 4, 6)}`;
}

/** A W3C traceparent for a new trace, until OpenTelemetry is wired in through the pipeline hook. */
export function newTraceParent(): string {
  const r = draw(24);
  return `00-${hex(r, 16)}-${hex(r + 16, 8)}-01`;
}

/** A random id for sessions and discriminators. */
export function randomId(bytes = 6): string {
  return hex(draw(bytes), bytes);
}
