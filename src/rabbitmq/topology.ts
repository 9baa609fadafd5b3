/**
 * The RabbitMQ topology Switchyard uses, as plain descriptions (queues, exchanges, bindings).
 * The transport declares them at start-up; `rabbitmqTopology()` prints the same descriptions as
 * a RabbitMQ definitions document for operators who create the topology themselves
 * (`rabbitmqctl import_definitions topology.json`). One source, so the two cannot drift.
 *
 *   endpoint queue "Sales"         durable, quorum (or classic), competing consumers
 *   event exchange "Sales.OrderPlaced"  fanout, durable; subscriber queues are bound to it;
 *                                  a child type's exchange is bound to each ancestor's exchange
 *   delay topology "sy.delay.<type>.*"  see delay.ts
 */
import { delayTopology } from './delay.js';
import { specKey, type ExchangeSpec, type QueueSpec, type QueueType, type TopologySpec } from './specs.js';

export function queueSpec(name: string, type: QueueType): QueueSpec {
  return { kind: 'queue', name, arguments: type === 'quorum' ? { 'x-queue-type': 'quorum' } : {} };
}

export function eventExchange(eventType: string): ExchangeSpec {
  return { kind: 'exchange', name: eventType, type: 'fanout' };
}

/** A queue subscribed to an event type. */
export function subscriptionSpecs(queue: string, eventType: string): TopologySpec[] {
  return [eventExchange(eventType), { kind: 'binding', source: eventType, destination: queue, destinationType: 'queue', routingKey: '' }];
}

/**
 * An event type and its ancestors (the enclosed-types list, nearest first). The child's exchange
 * is bound to every ancestor's exchange directly; RabbitMQ delivers a message once per queue
 * however many paths reach it, so a subscriber to a parent and a child gets one copy.
 */
export function eventHierarchySpecs(enclosedTypes: readonly string[]): TopologySpec[] {
  const [type, ...ancestors] = enclosedTypes;
  if (type === undefined) return [];
  const specs: TopologySpec[] = [eventExchange(type)];
  for (const ancestor of ancestors) {
    specs.push(eventExchange(ancestor), { kind: 'binding', source: type, destination: ancestor, destinationType: 'exchange', routingKey: '' });
  }
  return specs;
}


export interface TopologyRequest {
  queueType?: QueueType;
  /** Endpoint, instance and error queues. */
  queues?: readonly string[];
  /** Event types with their ancestors, nearest first: `[['Sales.VipOrderPlaced', 'Sales.OrderPlaced']]`. */
  events?: readonly (readonly string[])[];
  /** Queue -> event type bindings. */
  subscriptions?: readonly { queue: string; eventType: string }[];
  /** Include the delay topology and bind these destinations (queues) for delayed delivery. */
  delayedDestinations?: readonly string[];
  vhost?: string;
}

/** RabbitMQ definitions document (the format of `rabbitmqctl export_definitions`). */
export interface RabbitMqDefinitions {
  queues: { name: string; vhost: string; durable: true; auto_delete: false; arguments: Record<string, string | number> }[];
  exchanges: { name: string; vhost: string; type: string; durable: true; auto_delete: false; internal: false; arguments: Record<string, never> }[];
  bindings: { source: string; vhost: string; destination: string; destination_type: 'queue' | 'exchange'; routing_key: string; arguments: Record<string, never> }[];
}

/** Every description a request needs, each once, in declaration order. */
export function topologySpecs(request: TopologyRequest): TopologySpec[] {
  const type = request.queueType ?? 'quorum';
  const specs: TopologySpec[] = [];
  for (const queue of request.queues ?? []) specs.push(queueSpec(queue, type));
  for (const types of request.events ?? []) specs.push(...eventHierarchySpecs(types));
  for (const { queue, eventType } of request.subscriptions ?? []) specs.push(...subscriptionSpecs(queue, eventType));
  if (request.delayedDestinations) {
    const delay = delayTopology(type);
    specs.push(...delay.specs);
    for (const destination of request.delayedDestinations) specs.push(delay.deliveryBinding({ queue: destination }));
    specs.push(delay.marker);
  }
  const seen = new Set<string>();
  return specs.filter((s) => !seen.has(specKey(s)) && seen.add(specKey(s)));
}

/** The topology as a definitions document to import with `rabbitmqctl import_definitions <file>`. */
export function rabbitmqTopology(request: TopologyRequest): RabbitMqDefinitions {
  const vhost = request.vhost ?? '/';
  const doc: RabbitMqDefinitions = { queues: [], exchanges: [], bindings: [] };
  for (const spec of topologySpecs(request)) {
    if (spec.kind === 'queue') doc.queues.push({ name: spec.name, vhost, durable: true, auto_delete: false, arguments: { ...spec.arguments } });
    else if (spec.kind === 'exchange') doc.exchanges.push({ name: spec.name, vhost, type: spec.type, durable: true, auto_delete: false, internal: false, arguments: {} });
    else doc.bindings.push({ source: spec.source, vhost, destination: spec.destination, destination_type: spec.destinationType, routing_key: spec.routingKey, arguments: {} });
  }
  return doc;
}
