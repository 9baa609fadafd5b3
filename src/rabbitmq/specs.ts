/**
 * Topology as plain descriptions (queues, exchanges, bindings), and declaring one on a channel.
 * topology.ts (endpoint queues, event exchanges) and delay.ts (the delay topology) both build them.
 */
import type { Channel } from 'amqplib';

export type QueueType = 'quorum' | 'classic';

export interface QueueSpec {
  readonly kind: 'queue';
  readonly name: string;
  readonly arguments: Readonly<Record<string, string | number>>;
}
export interface ExchangeSpec {
  readonly kind: 'exchange';
  readonly name: string;
  readonly type: 'fanout' | 'topic';
}
export interface BindingSpec {
  readonly kind: 'binding';
  readonly source: string;
  readonly destination: string;
  readonly destinationType: 'queue' | 'exchange';
  readonly routingKey: string;
}
export type TopologySpec = QueueSpec | ExchangeSpec | BindingSpec;

/** Declares one description on `channel` (idempotent on the broker; a conflict closes the channel). */
export async function declare(channel: Channel, spec: TopologySpec): Promise<void> {
  switch (spec.kind) {
    case 'queue':
      await channel.assertQueue(spec.name, { durable: true, arguments: spec.arguments });
      return;
    case 'exchange':
      await channel.assertExchange(spec.name, spec.type, { durable: true });
      return;
    case 'binding':
      if (spec.destinationType === 'queue') await channel.bindQueue(spec.destination, spec.source, spec.routingKey);
      else await channel.bindExchange(spec.destination, spec.source, spec.routingKey);
  }
}

export function specKey(spec: TopologySpec): string {
  return spec.kind === 'binding' ? `b:${spec.source}>${spec.destinationType}:${spec.destination}:${spec.routingKey}` : `${spec.kind[0]}:${spec.name}`;
}
