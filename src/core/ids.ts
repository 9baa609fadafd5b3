/**
 * UUID v7 (RFC 9562): 48-bit millisecond timestamp then random bits, so ids sort by creation
 * time, which keeps database indexes on message ids append-mostly.
 */
// Random bytes come from a pool refilled 4 KiB at a time: one getRandomValues call per
// message was a measurable share of the send path.
const pool = new Uint8Array(4096);
let poolOffset = pool.length;

function randomBytes(n: number): Uint8Array {
  if (poolOffset + n > pool.length) {
    crypto.getRandomValues(pool);
    poolOffset = 0;
  }
  const out = pool.slice(poolOffset, poolOffset + n);
  poolOffset += n;
  return out;
}

export function uuidv7(now = Date.now()): string {
  const bytes = randomBytes(16);
  bytes[0] = (now / 2 ** 40) & 0xff;
  bytes[1] = (now / 2 ** 32) & 0xff;
  bytes[2] = (now >>> 24) & 0xff;
  bytes[3] = (now >>> 16) & 0xff;
  bytes[4] = (now >>> 8) & 0xff;
  bytes[5] = now & 0xff;
  bytes[6] = (bytes[6]! & 0x0f) | 0x70;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = toHex(bytes);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A W3C traceparent for a new trace, until OpenTelemetry is wired in through the pipeline hook. */
export function newTraceParent(): string {
  return `00-${toHex(randomBytes(16))}-${toHex(randomBytes(8))}-01`;
}

/** A random id for sessions and discriminators. */
export function randomId(bytes = 6): string {
  return toHex(randomBytes(bytes));
}

function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}
