/** Load shapes shared by the benchmarks. */
import { wallNow } from '../src/core/clock.js';
import { handle, type CommandDefinition, type Handler, type MessageSender } from '../src/index.js';

/** Throughput load: `count` sends, `batch` at a time, each batch awaited (group commit gets whole batches). */
export async function sendInBatches(count: number, batch: number, send: () => Promise<void>): Promise<void> {
  for (let sent = 0; sent < count; sent += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, count - sent) }, send));
  }
}

/**
 * Latency load: message i is due at start + i / rate, whether or not earlier ones are done (no
 * coordinated omission); `send` receives the scheduled time to stamp on the message.
 *
 * Sent when due, not before: a timer counts whole milliseconds from the event loop's cached
 * clock, so `setTimeout(wait)` fired a median 0.4 ms early (up to 1.6 ms) at 500/s, and messages
 * sent early reported latencies shorter than the real ones (p50 0.03 ms through a broker). Timers
 * now cover whole milliseconds and setImmediate the rest: sends land within 0.1 ms of their time
 * (p99), at the cost of the sender spinning up to a millisecond before each send.
 */
export async function offerAtFixedRate(count: number, ratePerSec: number, send: (scheduledAt: number) => void, startAt = wallNow()): Promise<void> {
  for (let i = 0; i < count; i++) {
    const scheduledAt = startAt + (i * 1000) / ratePerSec;
    for (let wait = scheduledAt - wallNow(); wait > 0; wait = scheduledAt - wallNow()) {
      await new Promise((resolve) => (wait >= 1 ? setTimeout(resolve, Math.floor(wait)) : setImmediate(resolve)));
    }
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
