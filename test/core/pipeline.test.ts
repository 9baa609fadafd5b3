import { afterEach, describe, expect, it } from 'vitest';
import { createEndpoint, defineCommand, defineEvent, handle, HANDLER_STEPS, INCOMING_STEPS, memorySubscriptionStore, OUTGOING_STEPS, silentLogger, subscriptions, type Behaviour, type Endpoint } from '../../src/index.js';
import { MemoryBroker, memoryTransport } from '../../src/memory/index.js';
import { waitFor } from '../../src/testing/wait.js';

const PlaceOrder = defineCommand<{ orderId: string }>('Sales.PlaceOrder');
const OrderPlaced = defineEvent<{ orderId: string }>('Sales.OrderPlaced');

const started: Endpoint[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((e) => e.stop()));
});

async function start(broker: MemoryBroker, options: Omit<Parameters<typeof createEndpoint>[0], 'transport' | 'logger'>) {
  const endpoint = createEndpoint({ transport: memoryTransport({ broker }), logger: silentLogger, ...options });
  await endpoint.start();
  started.push(endpoint);
  return endpoint;
}

describe('pipeline behaviours', () => {
  it('runs a behaviour placed before invoke around the handlers, and sees the decoded message', async () => {
    const broker = new MemoryBroker();
    const log: string[] = [];
    const timing: Behaviour = {
      pipeline: 'incoming',
      name: 'timing',
      before: 'invoke',
      async run(ctx, next) {
        log.push(`before ${ctx.definition?.typeName} attempt ${ctx.attempts}`);
        await next();
        log.push(`after, ${ctx.outgoing.length} to send`);
      },
    };
    await start(broker, { name: 'Sales', behaviours: [timing], handlers: [handle(PlaceOrder, () => void log.push('handler'))] });
    const client = await start(broker, { name: 'Client', routes: { 'Sales.*': 'Sales' }, sendOnly: true });
    await client.send(PlaceOrder, { orderId: 'o-1' });
    await waitFor(() => log.length === 3, { what: 'the behaviour and the handler to run' });
    expect(log).toEqual(['before Sales.PlaceOrder attempt 1', 'handler', 'after, 0 to send']);
  });

  it('copies a tenant header from the incoming message to everything a handler sends and publishes', async () => {
    const broker = new MemoryBroker();
    const tenant: Behaviour = {
      pipeline: 'outgoing',
      name: 'tenant',
      before: 'headers',
      async run(ctx, next) {
        const incoming = ctx.incoming?.headers['x-tenant'];
        if (incoming !== undefined && ctx.headers['x-tenant'] === undefined) ctx.headers['x-tenant'] = incoming;
        await next();
      },
    };
    const seen: (string | undefined)[] = [];
    const store = memorySubscriptionStore();
    await start(broker, {
      name: 'Sales',
      routes: { 'Sales.*': 'Sales' },
      behaviours: [tenant],
      features: [subscriptions({ store, publishes: [OrderPlaced] })],
      handlers: [handle(PlaceOrder, (order, ctx) => ctx.publish(OrderPlaced, { orderId: order.orderId }))],
    });
    await start(broker, { name: 'Billing', routes: { 'Sales.*': 'Sales' }, features: [subscriptions()], handlers: [handle(OrderPlaced, (_e, ctx) => void seen.push(ctx.headers['x-tenant']))] });
    const client = await start(broker, { name: 'Client', routes: { 'Sales.*': 'Sales' }, sendOnly: true });
    await waitFor(async () => (await store.subscribersOf([OrderPlaced.typeName])).length === 1, { what: 'the subscription to be stored' });
    await client.send(PlaceOrder, { orderId: 'o-1' }, { headers: { 'x-tenant': 'acme' } });
    await waitFor(() => seen.length === 1, { what: 'the event to reach Billing' });
    expect(seen).toEqual(['acme']);
  });

  it('refuses a behaviour placed at a step that does not exist, naming the steps', () => {
    const broker = new MemoryBroker();
    const misplaced = { pipeline: 'incoming', name: 'x', before: 'handlers', run: async () => undefined } as unknown as Behaviour;
    expect(() => createEndpoint({ name: 'Sales', transport: memoryTransport({ broker }), logger: silentLogger, behaviours: [misplaced] })).toThrow(
      /not a step of the incoming pipeline.*settle, decode, control, validate, unit-of-work, invoke/,
    );
  });

  it('wraps each handler call in a handler behaviour, and tells a behaviour before settle how the message ended', async () => {
    const broker = new MemoryBroker();
    const log: string[] = [];
    const perHandler: Behaviour = {
      pipeline: 'handler',
      name: 'per-handler',
      before: 'handler',
      async run(invocation, next) {
        log.push(`call ${invocation.messageType} for ${invocation.context.messageId === invocation.incoming.message.id ? 'this message' : '?'}`);
        await next();
      },
    };
    const outcome: Behaviour = {
      pipeline: 'incoming',
      name: 'outcome',
      before: 'settle',
      async run(ctx, next) {
        await next();
        log.push(`${ctx.settlement?.outcome}${ctx.settlement?.error ? `: ${ctx.settlement.error.message}` : ''}`);
      },
    };
    await start(broker, {
      name: 'Sales',
      behaviours: [perHandler, outcome],
      recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } },
      handlers: [
        handle(PlaceOrder, () => void log.push('first')),
        handle(PlaceOrder, ({ orderId }) => {
          log.push('second');
          if (orderId === 'bad') throw new Error('refused');
        }),
      ],
    });
    const client = await start(broker, { name: 'Client', routes: { 'Sales.*': 'Sales' }, sendOnly: true });
    await client.send(PlaceOrder, { orderId: 'o-1' });
    await waitFor(() => log.length === 5, { what: 'the first message handled' });
    await client.send(PlaceOrder, { orderId: 'bad' });
    await waitFor(() => log.length === 10, { what: 'the second message moved to the error queue' });
    expect(log).toEqual([
      'call Sales.PlaceOrder for this message', 'first', 'call Sales.PlaceOrder for this message', 'second', 'handled',
      'call Sales.PlaceOrder for this message', 'first', 'call Sales.PlaceOrder for this message', 'second', 'error-queue: refused',
    ]);
  });

  it('lists the built-in steps in the documented order', () => {
    expect(INCOMING_STEPS).toEqual(['settle', 'decode', 'control', 'validate', 'unit-of-work', 'invoke']);
    expect(OUTGOING_STEPS).toEqual(['route', 'headers', 'serialize', 'dispatch']);
    expect(HANDLER_STEPS).toEqual(['handler']);
  });
});
