/**
 * Operator views of RabbitMQ queues over AMQP alone (no management plugin needed):
 * - depth: the broker's count of *ready* messages (AMQP cannot count unacked ones);
 * - queues: the queues this transport declared or checked (AMQP cannot list queues);
 * - peek: basic.get without ack on a channel of its own, then closing it returns the messages.
 *   Caveat: while peeked they are invisible to consumers, and quorum queues count the return
 *   as a delivery. Fine for an error queue (no consumer); avoid on busy queues.
 * - take / moveAll: get, publish replacements with confirms, then ack; messages not taken are
 *   returned when the channel closes. A crash in between duplicates, never loses.
 * Leased messages (held unacked by a consumer) are invisible to basic.get: `includeLeased` is not
 * possible here; they come back to the queue when their consumer's channel closes.
 */
import type { Channel, GetMessage } from 'amqplib';
import type { Address } from '../core/identity.js';
import type { Outgoing, QueueAdmin, TransportMessage } from '../core/transport.js';
import type { BrokerConnection } from './connection.js';
import type { Declarations } from './declarations.js';
import { brokerError } from './errors.js';
import { fromAmqp } from './wire.js';

/** Most messages one scan reads, so a huge queue cannot exhaust memory. */
const SCAN_LIMIT = 100_000;

export function rabbitmqAdmin(
  connection: BrokerConnection,
  declarations: Declarations,
  publish: (batch: readonly Outgoing[]) => Promise<void>,
  settings: { url: string; timeoutMs: number },
): QueueAdmin {
  /** Runs `fn` on a channel of its own; closing it returns every message got and not acked. */
  const scanning = async <T>(address: Address, fn: (channel: Channel, next: () => Promise<GetMessage | false>) => Promise<T>): Promise<T> => {
    await declarations.requireQueue(address);
    const channel = await connection.channel(settings.timeoutMs);
    try {
      return await fn(channel, () => channel.get(address, { noAck: false }));
    } catch (error) {
      throw brokerError(error, `reading queue ${address}`, settings.url);
    } finally {
      await channel.close().catch(() => undefined);
    }
  };

  return {
    async depth(address) {
      await declarations.requireQueue(address);
      const info = await connection.declaring(settings.timeoutMs, (channel) => channel.checkQueue(address));
      return info.messageCount;
    },
    async queues() {
      return declarations.queues();
    },
    async peek(address, { offset, limit }) {
      return scanning(address, async (_channel, next) => {
        const found: TransportMessage[] = [];
        for (let i = 0; i < Math.min(offset + limit, SCAN_LIMIT); i++) {
          const got = await next();
          if (!got) break;
          if (i >= offset) found.push(fromAmqp(got));
        }
        return found;
      });
    },
    async take(address, ids, replacements) {
      const wanted = new Set(ids);
      return scanning(address, async (channel, next) => {
        const taken: GetMessage[] = [];
        for (let i = 0; i < SCAN_LIMIT && taken.length < wanted.size; i++) {
          const got = await next();
          if (!got) break;
          if (wanted.has(fromAmqp(got).id)) taken.push(got);
        }
        if (replacements) await publish(taken.flatMap((m) => replacements(fromAmqp(m))));
        for (const m of taken) channel.ack(m);
        return taken.map((m) => fromAmqp(m).id);
      });
    },
    async moveAll(from, to) {
      await declarations.requireQueue(to);
      return scanning(from, async (channel, next) => {
        let moved = 0;
        for (;;) {
          const chunk: GetMessage[] = [];
          for (let got = await next(); got; got = chunk.length < 500 ? await next() : false) chunk.push(got);
          if (chunk.length === 0) return moved;
          await publish(chunk.map((m) => ({ destination: to, message: fromAmqp(m) })));
          for (const m of chunk) channel.ack(m);
          moved += chunk.length;
          if (moved >= SCAN_LIMIT) return moved;
        }
      });
    },
  };
}
