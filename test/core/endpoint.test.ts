import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import {
  createEndpoint,
  defineCommand,
  defineEvent,
  defineMessage,
  ErrorCodes,
  FailureHeaders,
  handle,
  Headers,
  isSwitchyardError,
  silentLogger,
  UnrecoverableError,
  type Endpoint,
  type EndpointOptions,
  type StandardSchemaV1,
} from '../../src/index.js';
import { MemoryBroker, memoryTransport } from '../../src/memory/index.js';
import type { TransportMessage } from '../../src/core/transport.js';
import { waitFor } from '../../src/testing/wait.js';

const PlaceOrder = defineCommand<{ orderId: string; amount: number }>('Sales.PlaceOrder');
const OrderAccepted = defineMessage<{ orderId: string }>('Sales.OrderAccepted');
const OrderPlaced = defineEvent<{ orderId: string }>('Sales.OrderPlaced');
const ChargeCard = defineCommand<{ orderId: string }>('Billing.ChargeCard');

let broker: MemoryBroker;
const started: Endpoint[] = [];

async function endpoint(options: Omit<EndpointOptions, 'transport' | 'logger'>): Promise<Endpoint> {
  const e = createEndpoint({ transport: memoryTransport({ broker }), logger: silentLogger, ...options });
  await e.start();
  started.push(e);
  return e;
}

async function errorQueue(): Promise<TransportMessage[]> {
  return [...(broker.queues.get('error') ?? [])].map((m) => m.message);
}

function rawMessage(headers: Record<string, string>, body: string): TransportMessage {
  const id = `raw-${Math.random()}`;
  return { id, headers: { [Headers.MessageId]: id, ...headers }, body };
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((e) => e.stop()));
});

describe('endpoint', () => {
  broker = new MemoryBroker();
  afterEach(() => {
    broker = new MemoryBroker();
  });

  it('infers the message type of a handler from its definition', () => {
    handle(PlaceOrder, (order) => {
      expectTypeOf(order).toEqualTypeOf<{ orderId: string; amount: number }>();
    });
    // @ts-expect-error publishing a command does not compile
    const publishCommand = (e: Endpoint) => e.publish(PlaceOrder, { orderId: 'x', amount: 1 });
    // @ts-expect-error sending an event does not compile
    const sendEvent = (e: Endpoint) => e.send(OrderPlaced, { orderId: 'x' });
    // @ts-expect-error the body must match the definition
    const wrongBody = (e: Endpoint) => e.send(PlaceOrder, { orderId: 1 });
    expect([publishCommand, sendEvent, wrongBody]).toHaveLength(3);
  });

  it('delivers a command to its routed endpoint and the reply to the sender, with ids flowing', async () => {
    const seen: Record<string, string>[] = [];
    let commandTrace = '';
    await endpoint({
      name: 'Sales',
      // Destructured, as handlers often take it: the context's methods work without `this`.
      handlers: [
        handle(PlaceOrder, (order, { reply, headers }) => {
          commandTrace = headers[Headers.TraceParent]!;
          return reply(OrderAccepted, { orderId: order.orderId });
        }),
      ],
    });
    const client = await endpoint({
      name: 'Client',
      routes: { 'Sales.*': 'Sales' },
      // Serialised, as a log line would: a context's JSON holds what its handler sees.
      handlers: [handle(OrderAccepted, (_reply, ctx) => void seen.push((JSON.parse(JSON.stringify(ctx)) as { headers: Record<string, string> }).headers))],
    });
    await client.send(PlaceOrder, { orderId: 'o-1', amount: 10 }, { correlationId: 'corr-1' });
    const [reply] = await waitFor(() => seen.length === 1 && seen);
    expect(reply![Headers.CorrelationId]).toBe('corr-1');
    expect(reply![Headers.Intent]).toBe('reply');
    expect(reply![Headers.OriginatingEndpoint]).toBe('Sales');
    expect(reply![Headers.RelatedTo]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(reply![Headers.ConversationId]).toBeTruthy();
    expect(reply![Headers.TraceParent]).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    // One trace, a new parent span per hop.
    expect(reply![Headers.TraceParent]!.split('-')[1]).toBe(commandTrace.split('-')[1]);
    expect(reply![Headers.TraceParent]!.split('-')[2]).not.toBe(commandTrace.split('-')[2]);
  });

  it('keeps the conversation id across a chain and correlates to the first message id', async () => {
    const headers: Record<string, string>[] = [];
    await endpoint({
      name: 'Sales',
      routes: { 'Billing.*': 'Billing' },
      handlers: [handle(PlaceOrder, (order, ctx) => ctx.send(ChargeCard, { orderId: order.orderId }))],
    });
    await endpoint({ name: 'Billing', handlers: [handle(ChargeCard, (_m, ctx) => void headers.push({ ...ctx.headers }))] });
    const client = await endpoint({ name: 'Client', sendOnly: true, routes: { 'Sales.*': 'Sales' } });
    await client.send(PlaceOrder, { orderId: 'o-2', amount: 1 }, { messageId: 'first-id' });
    const [charge] = await waitFor(() => headers.length === 1 && headers);
    expect(charge![Headers.CorrelationId]).toBe('first-id');
    expect(charge![Headers.RelatedTo]).toBe('first-id');
    // The first message started the conversation, so its id names it all along the chain.
    expect(charge![Headers.ConversationId]).toBe('first-id');
  });

  it('refuses to send without a route, to publish a command, or to send an event, saying what to do', async () => {
    const client = await endpoint({ name: 'Client', sendOnly: true });
    const noRoute = await client.send(PlaceOrder, { orderId: 'x', amount: 1 }).catch((e: unknown) => e);
    expect(isSwitchyardError(noRoute, ErrorCodes.NO_ROUTE)).toBe(true);
    expect((noRoute as Error).message).toContain("routes: { 'Sales.PlaceOrder'");
    const publishCommand = await (client.publish as (d: unknown, b: unknown) => Promise<void>)(PlaceOrder, {}).catch((e: unknown) => e);
    expect(isSwitchyardError(publishCommand, ErrorCodes.WRONG_INTENT)).toBe(true);
    const sendEvent = await (client.send as (d: unknown, b: unknown) => Promise<void>)(OrderPlaced, {}).catch((e: unknown) => e);
    expect(isSwitchyardError(sendEvent, ErrorCodes.WRONG_INTENT)).toBe(true);
  });

  it('sends nothing from a failing handler, retries it, and handles it once it succeeds', async () => {
    let attempts = 0;
    const charges: string[] = [];
    await endpoint({ name: 'Billing', handlers: [handle(ChargeCard, (m) => void charges.push(m.orderId))] });
    await endpoint({
      name: 'Sales',
      routes: { 'Billing.*': 'Billing' },
      handlers: [
        handle(PlaceOrder, async (order, ctx) => {
          attempts += 1;
          await ctx.send(ChargeCard, { orderId: `${order.orderId}-attempt-${attempts}` });
          if (attempts < 3) throw new Error('database timeout');
        }),
      ],
    });
    const client = await endpoint({ name: 'Client', sendOnly: true, routes: { 'Sales.*': 'Sales' } });
    await client.send(PlaceOrder, { orderId: 'o-3', amount: 1 });
    await waitFor(() => charges.length === 1);
    expect(charges).toEqual(['o-3-attempt-3']);
    expect(await errorQueue()).toEqual([]);
  });

  it('moves a message that keeps failing to the error queue with failure headers, body unchanged', async () => {
    await endpoint({
      name: 'Sales',
      recoverability: { immediateRetries: 2, delayedRetries: { count: 1, incrementMs: 20 } },
      handlers: [
        handle(PlaceOrder, () => {
          throw new TypeError('amount must be positive');
        }),
      ],
    });
    const client = await endpoint({ name: 'Client', sendOnly: true, routes: { 'Sales.*': 'Sales' } });
    await client.send(PlaceOrder, { orderId: 'o-4', amount: -1 });
    const [failed] = await waitFor(async () => {
      const q = await errorQueue();
      return q.length === 1 && q;
    });
    expect(JSON.parse(failed!.body)).toEqual({ orderId: 'o-4', amount: -1 });
    expect(failed!.headers).toMatchObject({
      [FailureHeaders.ExceptionType]: 'TypeError',
      [FailureHeaders.ExceptionMessage]: 'amount must be positive',
      [FailureHeaders.FailedQueue]: 'Sales',
      [FailureHeaders.ProcessingEndpoint]: 'Sales',
      [FailureHeaders.ImmediateAttempts]: '3',
      [FailureHeaders.DelayedRound]: '1',
    });
    expect(failed!.headers[FailureHeaders.ExceptionStack]).toContain('TypeError');
  });

  it('sends an UnrecoverableError straight to the error queue without retries', async () => {
    let attempts = 0;
    await endpoint({
      name: 'Sales',
      handlers: [
        handle(PlaceOrder, () => {
          attempts += 1;
          throw new UnrecoverableError('order is for a closed account');
        }),
      ],
    });
    const client = await endpoint({ name: 'Client', sendOnly: true, routes: { 'Sales.*': 'Sales' } });
    await client.send(PlaceOrder, { orderId: 'o-5', amount: 1 });
    await waitFor(async () => (await errorQueue()).length === 1);
    expect(attempts).toBe(1);
  });

  it('sends messages it can never process straight to the error queue with the reason, and keeps going', async () => {
    const handled: string[] = [];
    await endpoint({
      name: 'Sales',
      limits: { maxBodyBytes: 1000 },
      handlers: [handle(PlaceOrder, (m) => void handled.push(m.orderId))],
      messages: [OrderAccepted],
    });
    const types = { [Headers.EnclosedTypes]: 'Sales.PlaceOrder' };
    broker.enqueue([
      { destination: 'Sales', message: rawMessage(types, '{"orderId": "broken"') },
      { destination: 'Sales', message: rawMessage(types, JSON.stringify({ orderId: 'x'.repeat(2000), amount: 1 })) },
      { destination: 'Sales', message: rawMessage({ [Headers.EnclosedTypes]: 'Evil.Type' }, '{}') },
      { destination: 'Sales', message: rawMessage({ [Headers.EnclosedTypes]: 'Sales.OrderAccepted' }, '{"orderId":"r"}') },
      { destination: 'Sales', message: rawMessage({}, '{}') },
      { destination: 'Sales', message: rawMessage(types, '{"orderId":"fine","amount":1}') },
    ]);
    const failed = await waitFor(async () => {
      const q = await errorQueue();
      return q.length === 5 && q;
    });
    const codes = failed.map((m) => m.headers[FailureHeaders.ExceptionCode]).sort();
    expect(codes).toEqual(
      [ErrorCodes.MALFORMED_MESSAGE, ErrorCodes.MESSAGE_TOO_LARGE, ErrorCodes.UNKNOWN_MESSAGE_TYPE, ErrorCodes.NO_HANDLER, ErrorCodes.INVALID_HEADER].sort(),
    );
    for (const m of failed) expect(m.headers[FailureHeaders.ImmediateAttempts]).toBe('1');
    await waitFor(() => handled.includes('fine'));
  });

  it('keeps receiving from every queue when they all wait for the one free slot', async () => {
    const handled: string[] = [];
    await endpoint({
      name: 'Sales',
      instance: { discriminator: 'x' },
      queues: { shared: true, instance: true },
      concurrency: 1,
      handlers: [handle(PlaceOrder, async (m) => void handled.push(m.orderId))],
    });
    const types = { [Headers.EnclosedTypes]: 'Sales.PlaceOrder' };
    const batch = (queue: string) =>
      [1, 2, 3].map((n) => ({ destination: queue, message: rawMessage(types, JSON.stringify({ orderId: `${queue}-${n}`, amount: 1 })) }));
    broker.enqueue([...batch('Sales'), ...batch('Sales@x')]);
    await waitFor(() => handled.length === 6, { what: 'all six orders, from both queues' });
    expect(handled.filter((id) => id.startsWith('Sales@x'))).toHaveLength(3);
  });

  it('keeps constructor and prototype keys of bodies, and refuses a body that could poison prototypes to the error queue', async () => {
    const bodies: unknown[] = [];
    const Anything = defineCommand<Record<string, unknown>>('Sales.Anything');
    await endpoint({ name: 'Sales', handlers: [handle(Anything, (m) => void bodies.push(m))] });
    const types = { [Headers.EnclosedTypes]: 'Sales.Anything' };
    const poisoned = ['{"a":1,"__proto__":{"polluted":true}}', '{"nested":{"constructor":{"prototype":{"polluted":true}}}}', '{"x":{"__proto\\u005f_":{"polluted":true}}}'];
    broker.enqueue([
      ...poisoned.map((body) => ({ destination: 'Sales', message: rawMessage(types, body) })),
      { destination: 'Sales', message: rawMessage(types, '{"product":{"constructor":{"name":"Acme"}},"prototype":"kept"}') },
    ]);
    await waitFor(async () => bodies.length === 1 && (await errorQueue()).length === 3, { what: 'one body handled, three refused' });
    expect(bodies).toEqual([{ product: { constructor: { name: 'Acme' } }, prototype: 'kept' }]);
    const refused = await errorQueue();
    expect(refused.map((m) => m.body).sort()).toEqual([...poisoned].sort());
    for (const m of refused) expect(m.headers['sy1-failure-exception-code']).toBe('SY_ERR_MALFORMED_MESSAGE');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('validates bodies with a Standard Schema on send and on receive', async () => {
    const positive: StandardSchemaV1<unknown, { amount: number }> = {
      '~standard': {
        version: 1,
        vendor: 'test',
        validate: (value) =>
          typeof (value as { amount?: unknown }).amount === 'number' && (value as { amount: number }).amount > 0
            ? { value: value as { amount: number } }
            : { issues: [{ message: 'must be a positive number', path: ['amount'] }] },
      },
    };
    const Pay = defineCommand('Billing.Pay', { schema: positive });
    const paid: number[] = [];
    await endpoint({ name: 'Billing', handlers: [handle(Pay, (m) => void paid.push(m.amount))] });
    const client = await endpoint({ name: 'Client', sendOnly: true, routes: { 'Billing.*': 'Billing' } });
    const refused = await client.send(Pay, { amount: -5 }).catch((e: unknown) => e);
    expect(isSwitchyardError(refused, ErrorCodes.VALIDATION_FAILED)).toBe(true);
    expect((refused as Error).message).toContain('amount: must be a positive number');
    broker.enqueue([{ destination: 'Billing', message: rawMessage({ [Headers.EnclosedTypes]: 'Billing.Pay' }, '{"amount":-1}') }]);
    await client.send(Pay, { amount: 7 });
    await waitFor(() => paid.includes(7));
    const [failed] = await waitFor(async () => {
      const q = await errorQueue();
      return q.length === 1 && q;
    });
    expect(failed!.headers[FailureHeaders.ExceptionCode]).toBe(ErrorCodes.VALIDATION_FAILED);
  });

  it('delays a deferred message until it is due', async () => {
    const at: number[] = [];
    const e = await endpoint({ name: 'Sales', handlers: [handle(PlaceOrder, () => void at.push(Date.now()))] });
    const t0 = Date.now();
    await e.sendLocal(PlaceOrder, { orderId: 'later', amount: 1 }, { delayMs: 300 });
    await waitFor(() => at.length === 1);
    expect(at[0]! - t0).toBeGreaterThanOrEqual(295);
  });
});

describe('endpoint configuration is checked at start', () => {
  const transport = () => memoryTransport();

  it('names a missing transport and how to give one', () => {
    expect(() => createEndpoint({ name: 'Sales' } as EndpointOptions)).toThrow(/`transport` is missing.*sqliteTransport/);
  });

  it('names a bad concurrency or prefetch', () => {
    expect(() => createEndpoint({ name: 'Sales', transport: transport(), concurrency: 0 })).toThrow(/`concurrency` is 0/);
    expect(() => createEndpoint({ name: 'Sales', transport: transport(), prefetch: -1 })).toThrow(/`prefetch` is -1.*0 to 10000/);
  });

  it('refuses a handler for a command owned by another endpoint', async () => {
    const e = createEndpoint({
      name: 'Sales',
      transport: transport(),
      logger: silentLogger,
      routes: { 'Billing.*': 'Billing' },
      handlers: [handle(ChargeCard, () => undefined)],
    });
    await expect(e.start()).rejects.toThrow(/handler for the command Billing.ChargeCard, but routes send it to Billing/);
  });

  it('refuses an invalid endpoint name', () => {
    expect(() => createEndpoint({ name: 'Sales Orders', transport: transport() })).toThrow(/not a valid name/);
  });
});
