/**
 * Publish/subscribe behaviour in one process, on the memory transport: what a user relies on
 * when an endpoint subscribes, unsubscribes, moves, or sends a subscription to the wrong place.
 * (Scale-out across real processes: processes.test.ts.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createEndpoint, defineEvent, handle, silentLogger, type Endpoint, type EndpointFeature, type EndpointOptions } from '../../src/index.js';
import { MemoryBroker, memoryTransport } from '../../src/memory/index.js';
import { memorySubscriptionStore } from '../../src/pubsub/memory-store.js';
import { SubscriptionHeaders } from '../../src/pubsub/protocol.js';
import { subscriptions } from '../../src/pubsub/subscriptions.js';
import { FailureHeaders } from '../../src/recoverability/failure-headers.js';
import { waitFor } from '../../src/testing/wait.js';

const OrderEvent = defineEvent<{ orderId: number }>('Sales.OrderEvent');
const OrderPlaced = defineEvent<{ orderId: number }>('Sales.OrderPlaced', { parents: [OrderEvent] });
const OrderCancelled = defineEvent<{ orderId: number }>('Sales.OrderCancelled');

let broker: MemoryBroker;
let started: Endpoint[] = [];
afterEach(async () => {
  for (const endpoint of started.reverse()) await endpoint.stop();
  started = [];
});

async function start(options: Omit<EndpointOptions, 'transport' | 'logger'>): Promise<Endpoint> {
  const endpoint = createEndpoint({ transport: memoryTransport({ broker }), logger: silentLogger, ...options });
  await endpoint.start();
  started.push(endpoint);
  return endpoint;
}

function recorder() {
  const seen: Array<{ type: string; orderId: number }> = [];
  const on = (event: typeof OrderEvent | typeof OrderPlaced | typeof OrderCancelled) =>
    handle(event, (body) => void seen.push({ type: event.typeName, orderId: body.orderId }));
  return { seen, on };
}

const depth = (address: string) => broker.queues.get(address)?.length ?? 0;

function setup(cacheMs = 0) {
  broker = new MemoryBroker();
  const store = memorySubscriptionStore();
  const publisher = () => start({ name: 'Sales', features: [subscriptions({ store, publishes: [OrderPlaced, OrderCancelled], cacheMs })] });
  const subscribed = (n: number) =>
    waitFor(async () => (await store.subscribersOf([OrderEvent.typeName, OrderPlaced.typeName, OrderCancelled.typeName])).length >= n, {
      what: `${n} subscriptions in the store`,
    });
  return { store, publisher, subscribed };
}

const routes = { 'Sales.*': 'Sales' };

describe('publish/subscribe (memory transport)', () => {
  it('auto-subscribes handled events and delivers one copy to each logical subscriber', async () => {
    const { publisher, subscribed } = setup();
    const sales = await publisher();
    const billing = recorder();
    const shipping = recorder();
    await start({ name: 'Billing', routes, handlers: [billing.on(OrderPlaced)], features: [subscriptions()] });
    await start({ name: 'Shipping', routes, handlers: [shipping.on(OrderPlaced), shipping.on(OrderCancelled)], features: [subscriptions()] });
    await subscribed(3);
    await sales.publish(OrderPlaced, { orderId: 1 });
    await sales.publish(OrderCancelled, { orderId: 1 });
    await waitFor(() => billing.seen.length === 1 && shipping.seen.length === 2, { what: 'both subscribers to handle their events' });
    expect(billing.seen).toEqual([{ type: 'Sales.OrderPlaced', orderId: 1 }]);
    expect(shipping.seen).toEqual([
      { type: 'Sales.OrderPlaced', orderId: 1 },
      { type: 'Sales.OrderCancelled', orderId: 1 },
    ]);
  });

  it('delivers a child event once to a subscriber of its parent, and once to one subscribed to both', async () => {
    const { publisher, subscribed } = setup();
    const sales = await publisher();
    const audit = recorder();
    const billing = recorder();
    await start({ name: 'Audit', routes, handlers: [audit.on(OrderEvent)], features: [subscriptions()] });
    await start({ name: 'Billing', routes, handlers: [billing.on(OrderEvent), billing.on(OrderPlaced)], features: [subscriptions()] });
    await subscribed(3);
    await sales.publish(OrderPlaced, { orderId: 7 });
    // Handled and completed: nothing left in either queue, so no second copy is on its way.
    await waitFor(() => audit.seen.length === 1 && billing.seen.length === 2 && depth('Billing') + depth('Audit') === 0, { what: 'the child event to be handled' });
    expect(audit.seen).toEqual([{ type: 'Sales.OrderEvent', orderId: 7 }]);
    // One copy reached Billing: both of its handlers ran for it, once each.
    expect(billing.seen.map((s) => s.type).sort()).toEqual(['Sales.OrderEvent', 'Sales.OrderPlaced']);
  });

  it('stops delivering after unsubscribe', async () => {
    const { store, publisher, subscribed } = setup();
    const sales = await publisher();
    const billing = recorder();
    const feature = subscriptions();
    await start({ name: 'Billing', routes, handlers: [billing.on(OrderPlaced)], features: [feature] });
    await subscribed(1);
    await sales.publish(OrderPlaced, { orderId: 1 });
    await waitFor(() => billing.seen.length === 1, { what: 'the first event' });
    await feature.unsubscribe(OrderPlaced);
    await waitFor(async () => (await store.subscribersOf([OrderPlaced.typeName])).length === 0, { what: 'the unsubscribe to be stored' });
    await sales.publish(OrderPlaced, { orderId: 2 });
    expect(depth('Billing')).toBe(0);
    expect(billing.seen).toHaveLength(1);
  });

  it('replaces the old address when a subscriber re-subscribes from a new one', async () => {
    const { store, publisher, subscribed } = setup();
    const sales = await publisher();
    const first = await start({ name: 'Billing', routes, handlers: [recorder().on(OrderPlaced)], features: [subscriptions()] });
    await subscribed(1);
    await first.stop();
    // The same logical endpoint comes back at another public address (as behind a distributor).
    const moved: EndpointFeature = {
      name: 'moved',
      async setup(host) {
        await host.transport.createQueue('Billing.v2');
        host.publicAddress = 'Billing.v2';
      },
    };
    await start({ name: 'Billing', routes, handlers: [recorder().on(OrderPlaced)], features: [moved, subscriptions()] });
    await waitFor(async () => (await store.subscribersOf([OrderPlaced.typeName]))[0]?.address === 'Billing.v2', { what: 'the new address to be stored' });
    expect(await store.subscribersOf([OrderPlaced.typeName])).toHaveLength(1);
    await sales.publish(OrderPlaced, { orderId: 1 });
    expect(depth('Billing.v2')).toBe(1);
    expect(depth('Billing')).toBe(0);
  });

  it('sees a subscription made through another publisher instance once its cache expires', async () => {
    broker = new MemoryBroker();
    const store = memorySubscriptionStore();
    let now = 1_000_000;
    const clock = { now: () => now };
    const sales = await start({ name: 'Sales', features: [subscriptions({ store, publishes: [OrderPlaced], cacheMs: 5000, clock })] });
    await start({ name: 'Billing', routes, handlers: [recorder().on(OrderPlaced)], features: [subscriptions()] });
    await waitFor(async () => (await store.subscribersOf([OrderPlaced.typeName])).length === 1, { what: 'Billing to subscribe' });
    await sales.publish(OrderPlaced, { orderId: 1 }); // reads the store and caches [Billing]
    await broker.ensure('Shipping');
    // Another publisher instance stored Shipping's subscription: this instance's cache does not know yet.
    await store.subscribe({ messageType: OrderPlaced.typeName, endpoint: 'Shipping', instance: '', address: 'Shipping' });
    now += 4999;
    await sales.publish(OrderPlaced, { orderId: 2 });
    expect(depth('Shipping')).toBe(0);
    now += 1;
    await sales.publish(OrderPlaced, { orderId: 3 });
    expect(depth('Shipping')).toBe(1);
  });

  it('moves a subscribe sent to an endpoint that does not publish the type to the error queue, with the reason', async () => {
    broker = new MemoryBroker();
    await start({ name: 'Billing', features: [subscriptions({ store: memorySubscriptionStore(), publishes: [OrderCancelled] })] });
    // Shipping's routes wrongly name Billing as the publisher of Sales events.
    await start({ name: 'Shipping', routes: { 'Sales.*': 'Billing' }, handlers: [recorder().on(OrderPlaced)], features: [subscriptions()] });
    const failed = await waitFor(() => broker.queues.get('error')?.[0]?.message, { what: 'the subscribe message in the error queue' });
    expect(failed.headers['sy1-intent']).toBe('subscribe');
    expect(failed.headers[FailureHeaders.ExceptionCode]).toBe('SY_ERR_NOT_PUBLISHER');
    expect(failed.headers[FailureHeaders.ExceptionMessage]).toContain('Billing does not publish it');
    expect(failed.headers[FailureHeaders.FailedQueue]).toBe('Billing');
  });

  it('moves a subscribe naming an event type its publisher does not know to the error queue', async () => {
    broker = new MemoryBroker();
    const store = memorySubscriptionStore();
    // Sales owns the Sales namespace by its routes, and knows OrderPlaced only.
    await start({ name: 'Sales', routes, messages: [OrderPlaced], features: [subscriptions({ store })] });
    const feature = subscriptions({ autoSubscribe: false });
    await start({ name: 'Shipping', routes, features: [feature] });
    await feature.subscribe(defineEvent('Sales.NoSuchEvent'));
    const failed = await waitFor(() => broker.queues.get('error')?.[0]?.message, { what: 'the subscribe message in the error queue' });
    expect(failed.headers[SubscriptionHeaders.MessageType]).toBe('Sales.NoSuchEvent');
    expect(failed.headers[FailureHeaders.ExceptionCode]).toBe('SY_ERR_UNKNOWN_MESSAGE_TYPE');
    expect(failed.headers[FailureHeaders.ExceptionMessage]).toContain('Sales knows no event of that name');
    expect(await store.subscribersOf(['Sales.NoSuchEvent'])).toEqual([]);
  });

  it('refuses to start a subscriber whose handled event has no route to a publisher', async () => {
    broker = new MemoryBroker();
    const endpoint = createEndpoint({
      name: 'Billing',
      transport: memoryTransport({ broker }),
      logger: silentLogger,
      handlers: [recorder().on(OrderPlaced)],
      features: [subscriptions()],
    });
    await expect(endpoint.start()).rejects.toMatchObject({ code: 'SY_ERR_NO_ROUTE' });
  });

  it('refuses to publish without a store on a transport without native pub/sub', async () => {
    broker = new MemoryBroker();
    const sales = await start({ name: 'Sales', features: [subscriptions()] });
    await expect(sales.publish(OrderPlaced, { orderId: 1 })).rejects.toMatchObject({ code: 'SY_ERR_CONFIG' });
  });
});
