/**
 * Switchyard on a real RabbitMQ with real processes: publish/subscribe scaled out on both sides,
 * a polymorphic subscription, and a consumer killed mid-handler. (The broker restart is in
 * restart.test.ts: it needs the broker to itself.)
 */
import { afterEach, expect, it } from 'vitest';
import { createEndpoint, defineCommand, silentLogger } from '../../src/index.js';
import { rabbitmqTransport } from '../../src/rabbitmq/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { describeOnBroker, rabbit } from './fixtures/broker.js';
import { handledBy, roleRun, type Report } from './fixtures/processes.js';

describeOnBroker('RabbitMQ with real processes', () => {
  const run = roleRun(rabbit.url);
  const { start } = run;
  const names = () => run.names();
  afterEach(() => run.cleanup());

  it('delivers each event once per logical subscriber, with subscribers and publishers scaled out, and a parent subscription gets child events once', async () => {
    const { ns, endpoint } = names();
    const [billing, shipping] = [endpoint('Billing'), endpoint('Shipping')];
    const billers = [0, 1].map(() => start({ role: 'subscriber', ns, endpoint: billing, handles: ['parent'] }));
    const shippers = [0, 1].map(() => start({ role: 'subscriber', ns, endpoint: shipping, handles: ['parent', 'child'] }));
    await Promise.all([...billers, ...shippers].map((r) => r.until((x) => x.ready === true, 'ready')));

    const perPublisher = 150;
    const childEvery = 5;
    start({ role: 'publisher', ns, endpoint: endpoint('PublisherA'), count: perPublisher, from: 0, childEvery });
    start({ role: 'publisher', ns, endpoint: endpoint('PublisherB'), count: perPublisher, from: perPublisher, childEvery });
    const total = 2 * perPublisher;
    const children = total / childEvery;

    const count = (reports: Report[], handler: string) => reports.filter((r) => r.handler === handler).length;
    await waitFor(() => count(handledBy(billers), 'parent') >= total && count(handledBy(shippers), 'parent') >= total && count(handledBy(shippers), 'child') >= children, {
      timeoutMs: 60_000,
      what: 'every event at both subscribers',
    });

    const billed = handledBy(billers);
    expect(billed).toHaveLength(total); // a duplicate would make it longer
    expect(new Set(billed.map((r) => r.handled)).size).toBe(total);
    // Competing consumers: both instances of the scaled-out subscriber took a share.
    for (const biller of billers) expect(handledBy([biller]).length).toBeGreaterThan(0);

    const shipped = handledBy(shippers);
    expect(count(shipped, 'parent')).toBe(total);
    expect(new Set(shipped.filter((r) => r.handler === 'parent').map((r) => r.handled)).size).toBe(total);
    // A child event reaches a queue bound to the parent and the child exchange once: one delivery, both handlers.
    const childReports = shipped.filter((r) => r.handler === 'child');
    expect(childReports).toHaveLength(children);
    expect(childReports.every((r) => (r.n as number) % childEvery === 0 && r.deliveryCount === 1)).toBe(true);
  });

  it('delivers the message again when a consumer process is killed (SIGKILL) mid-handler', async () => {
    const { ns, endpoint } = names();
    const workerName = endpoint('Crash');
    const hanging = start({ role: 'hanging-worker', ns, endpoint: workerName });
    await hanging.until((x) => x.ready === true, 'ready');

    const Work = defineCommand<{ n: number }>(`${ns}.Work`);
    const sender = createEndpoint({ name: endpoint('CrashSender'), sendOnly: true, transport: rabbitmqTransport({ url: rabbit.url, logger: silentLogger }), logger: silentLogger, routes: { [`${ns}.*`]: workerName } });
    await sender.start();
    try {
      await sender.send(Work, { n: 7 }, { messageId: `${ns}-crash` });
    } finally {
      await sender.stop();
    }
    await hanging.until((x) => x.started === `${ns}-crash`, 'the handler to start');
    hanging.child.kill('SIGKILL');
    await hanging.exited;

    const successor = start({ role: 'worker', ns, endpoint: workerName });
    const again = await successor.until((x) => x.handled === `${ns}-crash`, 'the redelivered message');
    expect(again.deliveryCount).toBe(2);
  });
});
