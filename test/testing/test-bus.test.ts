/**
 * The test kit (switchyard/testing) on virtual time: delayed retries and deferred messages are
 * delivered by advance(), in due order, on the memory broker and on a real SQLite file alike.
 */
import { describe, expect, it } from 'vitest';
import { defineCommand, defineEvent, ErrorCodes, handle, Headers, memorySubscriptionStore, subscriptions } from '../../src/index.js';
import { testBus, type TestBusOptions, type TestEndpointOptions } from '../../src/testing/index.js';

const PlaceOrder = defineCommand<{ orderId: string; amount: number }>('Sales.PlaceOrder');
const ChargeCard = defineCommand<{ orderId: string; amount: number }>('Billing.ChargeCard');
const CardCharged = defineCommand<{ orderId: string; chargedAt: string }>('Sales.CardCharged');
const CancelIfUnpaid = defineCommand<{ orderId: string }>('Sales.CancelIfUnpaid');

const OrderPlaced = defineEvent<{ orderId: string }>('Sales.OrderPlaced');

const HOUR = 3_600_000;

describe.each<TestBusOptions['transport']>(['memory', 'sqlite'])('test bus on %s', (transport) => {
  it('drives a message that always fails through the default retries (5 immediate, 10/20/30 s delayed) into the error queue in under a second of wall time', async () => {
    const bus = testBus([{ name: 'Billing', handlers: [handle(ChargeCard, () => Promise.reject(new Error('card declined')))] }], { transport, allowErrors: true });
    await bus.start();
    const wallStart = performance.now();

    const sent = await bus.track(() => bus.send(ChargeCard, { orderId: 'o-1', amount: 3 }));
    // Settled now: six attempts, then the first delayed retry, reported and not waited for.
    expect(sent.retried().map((m) => m.retry)).toEqual(['immediate', 'immediate', 'immediate', 'immediate', 'immediate', 'delayed']);
    expect(sent.scheduled.map((s) => [s.type, s.queue, s.dueInMs])).toEqual([['Billing.ChargeCard', 'Billing', 10_000]]);
    expect(await bus.failed()).toEqual([]);

    const rest = await bus.track(() => bus.advance('1m'));
    const wallMs = performance.now() - wallStart;
    const delayed = [...sent.retried(), ...rest.retried()].filter((m) => m.retry === 'delayed');
    expect(delayed.map((m) => m.deliverAt! - m.at)).toEqual([10_000, 20_000, 30_000]);
    expect(rest.retried().filter((m) => m.retry === 'immediate')).toHaveLength(15);
    expect(rest.failed(ChargeCard).map((m) => [m.endpoint, m.body.orderId, m.error])).toEqual([['Billing', 'o-1', 'Error: card declined']]);
    expect((await bus.failed()).map((m) => m.headers['sy1-failure-exception-message'])).toEqual(['card declined']);
    expect(rest.scheduled).toEqual([]);
    expect(wallMs).toBeLessThan(1000);
    await bus.stop();
  });

  it('delivers a message deferred by an hour at advance(1h) and not before', async () => {
    const handledAt: number[] = [];
    const bus = testBus([{ name: 'Sales', handlers: [handle(PlaceOrder, () => void handledAt.push(bus.clock.now()))] }], { transport });
    await bus.start();
    const sentAt = bus.clock.now();
    await bus.send(PlaceOrder, { orderId: 'o-2', amount: 1 }, { delayMs: HOUR });

    const early = await bus.advance('59m59s');
    expect(handledAt).toEqual([]);
    expect(early.scheduled.map((s) => [s.type, s.dueInMs])).toEqual([['Sales.PlaceOrder', 1000]]);
    const due = await bus.track(() => bus.advance('1s'));
    expect(handledAt).toEqual([sentAt + HOUR]);
    expect(due.handled(PlaceOrder).map((m) => m.body)).toEqual([{ orderId: 'o-2', amount: 1 }]);
    await bus.stop();
  });

  it('delivers what falls due during advance in due order, each at its due time, with the cascade it causes', async () => {
    const seen: [string, number][] = [];
    const sales: TestEndpointOptions = {
      name: 'Sales',
      handlers: [
        handle(PlaceOrder, async (order, ctx) => {
          seen.push([order.orderId, bus.clock.now()]);
          await ctx.sendLocal(CancelIfUnpaid, { orderId: order.orderId }, { delayMs: 15 * 60_000 });
        }),
        handle(CancelIfUnpaid, (c) => void seen.push([`cancel ${c.orderId}`, bus.clock.now()])),
      ],
    };
    const bus = testBus([sales], { transport });
    await bus.start();
    const t0 = bus.clock.now();
    await bus.send(PlaceOrder, { orderId: 'late', amount: 1 }, { delayMs: 30 * 60_000 });
    await bus.send(PlaceOrder, { orderId: 'early', amount: 1 }, { deliverAt: new Date(t0 + 10 * 60_000) });
    const report = await bus.advance('40m');
    expect(seen).toEqual([
      ['early', t0 + 10 * 60_000],
      ['cancel early', t0 + 25 * 60_000],
      ['late', t0 + 30 * 60_000],
    ]);
    expect(report.scheduled.map((s) => [s.type, s.dueAt - t0])).toEqual([['Sales.CancelIfUnpaid', 45 * 60_000]]);
    expect(bus.clock.now()).toBe(t0 + 40 * 60_000);
    await bus.stop();
  });

  it('tracks a cascade across endpoints: what was sent, which endpoint handled it, with typed bodies', async () => {
    const bus = testBus(
      [
        { name: 'Sales', routes: { 'Billing.*': 'Billing' }, handlers: [handle(PlaceOrder, (o, ctx) => ctx.send(ChargeCard, { orderId: o.orderId, amount: o.amount })), handle(CardCharged, () => undefined)] },
        { name: 'Billing', routes: { 'Sales.*': 'Sales' }, handlers: [handle(ChargeCard, (c, ctx) => ctx.send(CardCharged, { orderId: c.orderId, chargedAt: new Date(bus.clock.now()).toISOString() }))] },
      ],
      { transport },
    );
    await bus.start();
    await bus.advance('2h');
    const session = await bus.track(() => bus.send(PlaceOrder, { orderId: 'o-3', amount: 7 }));

    const charged = session.handled(ChargeCard);
    const amount: number = charged[0]!.body.amount; // typed by the definition
    expect(amount).toBe(7);
    expect(session.handled().map((m) => [m.type, m.endpoint])).toEqual([
      ['Sales.PlaceOrder', 'Sales'],
      ['Billing.ChargeCard', 'Billing'],
      ['Sales.CardCharged', 'Sales'],
    ]);
    expect(session.sent().map((m) => [m.type, m.endpoint, m.queue])).toEqual([
      ['Sales.PlaceOrder', 'TestBus', 'Sales'],
      ['Billing.ChargeCard', 'Sales', 'Billing'],
      ['Sales.CardCharged', 'Billing', 'Sales'],
    ]);
    // The endpoints read the virtual clock: the time-sent header is two virtual hours on.
    expect(session.handled(CardCharged)[0]!.body.chargedAt).toBe(new Date(bus.clock.now()).toISOString());
    expect(session.sent(CardCharged)[0]!.headers[Headers.TimeSent]).toBe(new Date(bus.clock.now()).toISOString());
    expect([session.retried(), session.failed(), session.scheduled]).toEqual([[], [], []]);
    await bus.stop();
  });

  it('records a published event with each subscriber it went to and the endpoint that handled it', async () => {
    const bus = testBus(
      [
        { name: 'Sales', features: [subscriptions({ store: memorySubscriptionStore(), publishes: [OrderPlaced] })], handlers: [handle(PlaceOrder, (o, ctx) => ctx.publish(OrderPlaced, { orderId: o.orderId }))] },
        { name: 'Billing', routes: { 'Sales.*': 'Sales' }, features: [subscriptions()], handlers: [handle(OrderPlaced, () => undefined)] },
        { name: 'Shipping', routes: { 'Sales.*': 'Sales' }, features: [subscriptions()], handlers: [handle(OrderPlaced, () => undefined)] },
      ],
      { transport },
    );
    await bus.start();
    const session = await bus.track(() => bus.send(PlaceOrder, { orderId: 'o-5', amount: 2 }));
    expect(session.published(OrderPlaced).map((m) => [m.endpoint, m.queue, m.body.orderId]).sort()).toEqual([
      ['Sales', 'Billing', 'o-5'],
      ['Sales', 'Shipping', 'o-5'],
    ]);
    expect(session.handled(OrderPlaced).map((m) => m.endpoint).sort()).toEqual(['Billing', 'Shipping']);
    // Subscribe messages are the bus's own: not in the session, not in sent().
    expect(session.sent().map((m) => m.type)).toEqual(['Sales.PlaceOrder']);
    await bus.stop();
  });

  it('fails runUntilIdle naming the message still in flight when a handler never finishes', async () => {
    let release!: () => void;
    const stuck = new Promise<void>((resolve) => (release = resolve));
    const bus = testBus([{ name: 'Sales', handlers: [handle(PlaceOrder, () => stuck)] }], { transport, idleTimeoutMs: 200 });
    await bus.start();
    await bus.send(PlaceOrder, { orderId: 'o-4', amount: 1 });
    const error = await bus.runUntilIdle().then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCodes.TEST_BUS_NOT_IDLE });
    expect((error as Error).message).toMatch(/did not settle within 200 ms: Sales\.PlaceOrder \S+ held by Sales from Sales for \d+ ms/);
    release();
    await bus.runUntilIdle();
    await bus.stop();
  });
});

describe('test bus input', () => {
  it('refuses a duration it cannot read, with a coded error', async () => {
    const bus = testBus([{ name: 'Sales', handlers: [handle(PlaceOrder, () => undefined)] }]);
    await bus.start();
    await expect(bus.advance('10 minutes')).rejects.toMatchObject({ code: ErrorCodes.CONFIG, message: expect.stringContaining("'30s', '10m', '1h30m'") });
    await expect(bus.advance(-1)).rejects.toMatchObject({ code: ErrorCodes.CONFIG });
    expect(() => bus.endpoint('Shipping')).toThrow(/No endpoint named Shipping in this test bus; it has Sales, TestBus/);
    await bus.stop();
    expect(() => testBus([{ name: 'TestBus' }])).toThrow(expect.objectContaining({ code: ErrorCodes.CONFIG }));
  });
});
