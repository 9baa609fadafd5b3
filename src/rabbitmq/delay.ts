/**
 * Delayed delivery without a broker plugin: a fixed chain of TTL queues that dead-letter onward,
 * the delay decomposed into powers of two (the scheme NServiceBus uses on RabbitMQ, in
 * milliseconds here).
 *
 * A delayed message is published to exchange L{top} with routing key
 *   "<bit top>.<bit top-1>. ... .<bit 0>.<target>"
 * Each level k has a topic exchange and a queue `sy.delay.<type>.L<k>` whose TTL is 2^k ms:
 *   exchange L{k} --[bit k = 1]--> queue L{k} --(expires after 2^k ms, dead-letters)--> exchange L{k-1}
 *   exchange L{k} --[bit k = 0]--> exchange L{k-1}                 (no wait)
 *   level 0 leads to the topic exchange `sy.delay.<type>.deliver`, where `#.<target>` is bound to
 *   the destination queue (or an event exchange).
 * Every queue of a level holds messages with the same TTL, so its head always expires first:
 * no head-of-line blocking. The queues are durable and the messages persistent, so delays survive
 * a broker restart (time spent down counts: a TTL that ran out while down expires at once).
 * Quorum level queues dead-letter at-least-once; classic ones at-most-once (broker limitation).
 * Precision: never early; late by the broker's expiry work per set bit (a few ms each).
 */
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { BindingSpec, ExchangeSpec, QueueType, TopologySpec } from './specs.js';

/** 2^36 ms is about 795 days. */
export const DELAY_LEVELS = 36;
export const MAX_DELAY_MS = 2 ** DELAY_LEVELS - 1;

const prefix = (type: QueueType) => `sy.delay.${type}`;
const levelName = (type: QueueType, level: number) => `${prefix(type)}.L${String(level).padStart(2, '0')}`;
const deliverName = (type: QueueType) => `${prefix(type)}.deliver`;

/** The last routing-key word naming where a delayed message goes. Names never contain '~' or '!'. */
export function targetWord(target: { queue: string } | { exchange: string }): string {
  return 'queue' in target ? target.queue.replaceAll('.', '~') : `!${target.exchange.replaceAll('.', '~')}`;
}

export interface DelayTopology {
  /** Everything but the marker, in declaration order. */
  readonly specs: readonly TopologySpec[];
  /**
   * Declared after everything else, so its existence says the whole delay topology exists: a
   * process checks it with one call instead of re-declaring some 150 objects.
   */
  readonly marker: ExchangeSpec;
  /** Where the first publish of a delayed message goes. */
  readonly entryExchange: string;
  /** The binding that lets delayed messages reach a queue or an event exchange. */
  deliveryBinding(target: { queue: string } | { exchange: string }): BindingSpec;
  /** Routing key for a delay of `delayMs` to `target`. */
  routingKey(delayMs: number, target: { queue: string } | { exchange: string }): string;
}

export function delayTopology(type: QueueType): DelayTopology {
  const specs: TopologySpec[] = [{ kind: 'exchange', name: deliverName(type), type: 'topic' }];
  for (let level = 0; level < DELAY_LEVELS; level++) {
    const name = levelName(type, level);
    const next = level === 0 ? deliverName(type) : levelName(type, level - 1);
    const position = '*.'.repeat(DELAY_LEVELS - 1 - level);
    const args: Record<string, string | number> = { 'x-message-ttl': 2 ** level, 'x-dead-letter-exchange': next };
    if (type === 'quorum') Object.assign(args, { 'x-queue-type': 'quorum', 'x-dead-letter-strategy': 'at-least-once', 'x-overflow': 'reject-publish' });
    specs.push(
      { kind: 'exchange', name, type: 'topic' },
      { kind: 'queue', name, arguments: args },
      { kind: 'binding', source: name, destination: name, destinationType: 'queue', routingKey: `${position}1.#` },
      { kind: 'binding', source: name, destination: next, destinationType: 'exchange', routingKey: `${position}0.#` },
    );
  }
  // Exchanges are declared before the bindings that name them: next levels come later in the list.
  specs.sort((a, b) => rank(a) - rank(b));
  return {
    specs,
    marker: { kind: 'exchange', name: `${prefix(type)}.v1-complete`, type: 'fanout' },
    entryExchange: levelName(type, DELAY_LEVELS - 1),
    deliveryBinding: (target) => ({
      kind: 'binding',
      source: deliverName(type),
      destination: 'queue' in target ? target.queue : target.exchange,
      destinationType: 'queue' in target ? 'queue' : 'exchange',
      routingKey: `#.${targetWord(target)}`,
    }),
    routingKey(delayMs, target) {
      const ms = Math.max(0, Math.ceil(delayMs));
      if (ms > MAX_DELAY_MS) {
        throw new SwitchyardError(ErrorCodes.CONFIG, `A delay of ${ms} ms is longer than the RabbitMQ delay topology allows (${MAX_DELAY_MS} ms, about 795 days).`, {
          fix: 'Schedule far-future work in a store (a saga timeout or a database row) and send it when it is nearer.',
        });
      }
      const bits: string[] = [];
      for (let level = DELAY_LEVELS - 1; level >= 0; level--) bits.push(Math.floor(ms / 2 ** level) % 2 === 1 ? '1' : '0');
      return `${bits.join('.')}.${targetWord(target)}`;
    },
  };
}

function rank(spec: TopologySpec): number {
  return spec.kind === 'exchange' ? 0 : spec.kind === 'queue' ? 1 : 2;
}
