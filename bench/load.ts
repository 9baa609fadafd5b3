/** Load shapes shared by the benchmarks. */
import { handle, type CommandDefinition, type Handler, type MessageSender } from '../src/index.js';

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Throughput load: `count` sends, `batch` at a time, each batch awaited (group commit gets whole batches). */
export async function sendInBatches(count: number, batch: number, send: () => Promise<void>): Promise<void> {
  for (let sent = 0; sent < count; sent += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, count - sent) }, send));
  }
}

/**
 * Latency load: message i is due at start + i / rate, whether or not earlier ones are done (no
 * coordinated omission); `send` receives the scheduled time to stamp on the message.
 */
export async function offerAtFixedRate(count: number, ratePerSec: number, send: (scheduledAt: number) => void, startAt = wallNow()): Promise<void> {
  for (let i = 0; i < count; i++) {
    const scheduledAt = startAt + (i * 1000) / ratePerSec;
    const wait = scheduledAt - wallNow();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    send(scheduledAt);
  }
}

/** The 1 KB command every transport benchmark sends; `scheduledAt` 0 means "not timed". */
export interface PingBody {
  payload: string;
  scheduledAt: number;
}
export const PING_PAYLOAD = 'x'.repeat(1000);

/**
 * Counts handled pings and records the latency of scheduled ones; `finished` resolves when
 * `expected` have been handled. Use `handler` in the endpoint's handlers.
 */
export function pingCounter(ping: CommandDefinition<PingBody>, expected: number): { handler: Handler; latencies: number[]; finished: Promise<void> } {
  const latencies: number[] = [];
  let handled = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const handler = handle(ping, (msg) => {
    if (msg.scheduledAt > 0) latencies.push(wallNow() - msg.scheduledAt);
    if (++handled === expected) finish();
  });
  return { handler, latencies, finished };
}

/** Throughput (no rate: batches of `batch`) or latency (a fixed offered rate) load of pings. */
export function sendPings(sender: MessageSender, ping: CommandDefinition<PingBody>, messages: number, options: { batch: number; ratePerSec?: number | undefined }): Promise<void> {
  return options.ratePerSec === undefined
    ? sendInBatches(messages, options.batch, () => sender.send(ping, { payload: PING_PAYLOAD, scheduledAt: 0 }))
    : offerAtFixedRate(messages, options.ratePerSec, (scheduledAt) => void sender.send(ping, { payload: PING_PAYLOAD, scheduledAt }));
}
