import { describe, expect, it } from 'vitest';
import { defineCommand, handle } from '../../src/index.js';
import { testBus } from '../../src/testing/index.js';

const PlaceOrder = defineCommand<{ orderId: string; amount: number }>('Sales.PlaceOrder');
const ChargeCard = defineCommand<{ orderId: string; amount: number }>('Billing.ChargeCard');

describe('test bus (switchyard/testing)', () => {
  const sales = {
    name: 'Sales',
    routes: { 'Billing.*': 'Billing' },
    handlers: [handle(PlaceOrder, (o, ctx) => ctx.send(ChargeCard, { orderId: o.orderId, amount: o.amount }))],
  };

  it('runs handlers over the real pipeline and records what they sent', async () => {
    const charged: string[] = [];
    const bus = testBus([sales, { name: 'Billing', handlers: [handle(ChargeCard, (c) => void charged.push(c.orderId))] }]);
    await bus.start();
    await bus.endpoint('Sales').sendLocal(PlaceOrder, { orderId: 'o-1', amount: 3 });
    await bus.runUntilIdle();
    expect(charged).toEqual(['o-1']);
    expect(bus.dispatched('Billing.ChargeCard').map((m) => [m.queue, m.body])).toEqual([['Billing', { orderId: 'o-1', amount: 3 }]]);
    await bus.stop();
  });

  it('fails the test at stop when a message reached the error queue, unless errors are allowed', async () => {
    const failing = {
      name: 'Billing',
      recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } },
      handlers: [handle(ChargeCard, () => Promise.reject(new Error('card declined')))],
    };
    const strict = testBus([sales, failing]);
    await strict.start();
    await strict.endpoint('Sales').sendLocal(PlaceOrder, { orderId: 'o-2', amount: 3 });
    await strict.runUntilIdle();
    await expect(strict.stop()).rejects.toThrow(/1 message\(s\) reached an error queue; the first: Error: card declined/);

    const lenient = testBus([sales, failing], { allowErrors: true });
    await lenient.start();
    await lenient.endpoint('Sales').sendLocal(PlaceOrder, { orderId: 'o-3', amount: 3 });
    await lenient.runUntilIdle();
    expect(await lenient.failed()).toHaveLength(1);
    await lenient.stop();
  });
});
