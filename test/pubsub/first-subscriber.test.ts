/**
 * What a new user meets with publish/subscribe on a transport without native pub/sub: an
 * endpoint with event handlers that forgot subscriptions() refuses to start (it would receive
 * nothing, silently), and a publish that reaches no subscriber says so once per event type.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createEndpoint, defineEvent, ErrorCodes, handle, silentLogger, type Endpoint, type Logger } from '../../src/index.js';
import { lineLogger } from '../../src/core/logger.js';
import { MemoryBroker, memoryTransport } from '../../src/memory/index.js';
import { memorySubscriptionStore } from '../../src/pubsub/memory-store.js';
import { subscriptions } from '../../src/pubsub/subscriptions.js';
import { waitFor } from '../../src/testing/wait.js';

const OrderPlaced = defineEvent<{ orderId: number }>('Sales.OrderPlaced');
const OrderCancelled = defineEvent<{ orderId: number }>('Sales.OrderCancelled');

const started: Endpoint[] = [];
afterEach(async () => {
  for (const endpoint of started.splice(0).reverse()) await endpoint.stop();
});

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const lines = lineLogger((level, line) => void (level === 'warn' && warnings.push(line)));
  return { ...silentLogger, warn: lines.warn, warnings };
}

describe('the first subscriber', () => {
  it('refuses to start an endpoint that handles events but has nothing subscribing it, naming the fix', async () => {
    const broker = new MemoryBroker();
    const billing = createEndpoint({
      name: 'Billing',
      transport: memoryTransport({ broker }),
      logger: silentLogger,
      routes: { 'Sales.*': 'Sales' },
      handlers: [handle(OrderPlaced, () => undefined)],
    });
    const failure = await billing.start().then(
      () => undefined,
      (error: unknown) => error as { code?: string; message: string },
    );
    expect(failure?.code).toBe(ErrorCodes.NOT_SUBSCRIBED);
    expect(failure?.message).toContain('Sales.OrderPlaced');
    expect(failure?.message).toContain('subscriptions()');
    expect(billing.status).toBe('stopped');
    // Nothing was left running: the endpoint's queue was never created.
    expect(broker.queues.has('Billing')).toBe(false);
  });

  it('starts with subscriptions({ autoSubscribe: false }): the application subscribes itself', async () => {
    const billing = createEndpoint({
      name: 'Billing',
      transport: memoryTransport({ broker: new MemoryBroker() }),
      logger: silentLogger,
      handlers: [handle(OrderPlaced, () => undefined)],
      features: [subscriptions({ autoSubscribe: false })],
    });
    await billing.start();
    started.push(billing);
    expect(billing.status).toBe('running');
  });

  it('warns once per event type when a publish reaches no subscriber, and not once one subscribes', async () => {
    const broker = new MemoryBroker();
    const logger = recordingLogger();
    const store = memorySubscriptionStore();
    const sales = createEndpoint({ name: 'Sales', transport: memoryTransport({ broker }), logger, features: [subscriptions({ store, publishes: [OrderPlaced, OrderCancelled], cacheMs: 0 })] });
    await sales.start();
    started.push(sales);

    await sales.publish(OrderPlaced, { orderId: 1 });
    await sales.publish(OrderPlaced, { orderId: 2 });
    await sales.publish(OrderCancelled, { orderId: 3 });
    const unheard = logger.warnings.filter((line) => line.includes('no endpoint subscribes'));
    expect(unheard).toHaveLength(2);
    expect(unheard[0]).toContain('Sales.OrderPlaced');
    expect(unheard[1]).toContain('Sales.OrderCancelled');

    const seen: number[] = [];
    const billing = createEndpoint({
      name: 'Billing',
      transport: memoryTransport({ broker }),
      logger: silentLogger,
      routes: { 'Sales.*': 'Sales' },
      handlers: [handle(OrderPlaced, ({ orderId }) => void seen.push(orderId))],
      features: [subscriptions()],
    });
    await billing.start();
    started.push(billing);
    await waitFor(async () => (await store.subscribersOf([OrderPlaced.typeName])).length === 1, { what: 'Billing subscribed' });
    await sales.publish(OrderPlaced, { orderId: 4 });
    await waitFor(() => seen.length === 1, { what: 'Billing to handle the event published after it subscribed' });
    expect(seen).toEqual([4]);
    expect(logger.warnings.filter((line) => line.includes('no endpoint subscribes'))).toHaveLength(2);
  });
});
