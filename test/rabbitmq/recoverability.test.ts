/**
 * Recoverability on RabbitMQ: immediate retries (nack-requeue, counted by the quorum queue),
 * a delayed retry through the delay topology, the error queue with failure headers, and a
 * manual retry from it with `switchyard errors` (the CLI process, on RabbitMQ).
 */
import amqp from 'amqplib';
import { afterAll, expect, it } from 'vitest';
import { createEndpoint, defineCommand, handle, silentLogger } from '../../src/index.js';
import { rabbitmqTransport } from '../../src/rabbitmq/index.js';
import { ENVELOPE_CONTENT_TYPE } from '../../src/rabbitmq/wire.js';
import { failedMessages } from '../../src/recoverability/failed-messages.js';
import { waitFor } from '../../src/testing/wait.js';
import { deleteTopology, describeOnBroker, rabbit, uniquePrefix } from './fixtures/broker.js';
import { runCli } from '../recoverability/fixtures/bus.js';

describeOnBroker('RabbitMQ recoverability', () => {
  const prefix = uniquePrefix('recov');
  const [workerName, errorQueue, inboxName] = [`${prefix}Worker`, `${prefix}error`, `${prefix}Inbox`];
  afterAll(async () => {
    await deleteTopology({ queues: [workerName, errorQueue, inboxName] });
  });

  it('retries immediately, then after a delay, then moves to the error queue; a manual retry from there is handled', async () => {
    const Charge = defineCommand<{ amount: number }>(`${prefix.replaceAll('-', '_')}Billing.Charge`);
    const attempts: { deliveryCount: number; at: number }[] = [];
    let failing = true;
    const worker = createEndpoint({
      name: workerName,
      transport: rabbitmqTransport({ url: rabbit.url, logger: silentLogger }),
      logger: silentLogger,
      routes: { [Charge.typeName]: workerName },
      recoverability: { immediateRetries: 1, delayedRetries: { count: 1, incrementMs: 300 }, errorQueue },
      handlers: [
        handle(Charge, (_body, context) => {
          attempts.push({ deliveryCount: context.deliveryCount, at: Date.now() });
          if (failing) throw new Error('card declined');
        }),
      ],
    });
    await worker.start();
    const operator = rabbitmqTransport({ url: rabbit.url, logger: silentLogger, createTopology: false });
    try {
      await worker.send(Charge, { amount: 5 });
      const failed = failedMessages(operator, { errorQueue });
      await operator.open();
      const page = await waitFor(async () => {
        const listed = await failed.list();
        return listed.total === 1 && listed;
      }, { timeoutMs: 15_000, what: 'the message in the error queue' });

      // Two rounds of (first try + 1 immediate retry), the second round after the 300 ms delay.
      expect(attempts.map((a) => a.deliveryCount)).toEqual([1, 2, 1, 2]);
      expect(attempts[2]!.at - attempts[1]!.at).toBeGreaterThanOrEqual(300);
      const [summary] = page.messages;
      expect(summary).toMatchObject({ exceptionMessage: 'card declined', failedQueue: workerName, delayedRetries: 1 });

      // The operator's command line on RabbitMQ, as a process: list, then retry once the cause is fixed.
      const flags = ['--rabbitmq', rabbit.url, '--error-queue', errorQueue];
      const list = await runCli(['errors', 'list', '--json', ...flags]);
      expect(list.code).toBe(0);
      expect(list.stdout).toContain(summary!.id);
      expect(list.stderr).toContain('using rabbitmq');
      expect(list.stderr).not.toContain(`:${new URL(rabbit.url).password}@`); // no password in what it prints
      failing = false;
      const retry = await runCli(['errors', 'retry', summary!.id, ...flags]);
      expect(retry.code).toBe(0);
      await waitFor(() => attempts.length === 5, { what: 'the retried message to be handled' });
      await waitFor(async () => (await failed.list()).total === 0, { what: 'an empty error queue' });
    } finally {
      await worker.stop();
      await operator.close();
    }
  });

  it('puts what other publishers send wrong in the error queue with its body as it came, and handles what they send right', async () => {
    const Ship = defineCommand<{ orderId: string }>(`${prefix.replaceAll('-', '_')}Shipping.Ship`);
    const shipped: string[] = [];
    const inbox = createEndpoint({
      name: inboxName,
      transport: rabbitmqTransport({ url: rabbit.url, logger: silentLogger }),
      logger: silentLogger,
      recoverability: { immediateRetries: 0, delayedRetries: { count: 0 }, errorQueue },
      handlers: [handle(Ship, (body) => void shipped.push(body.orderId))],
    });
    await inbox.start();
    const operator = rabbitmqTransport({ url: rabbit.url, logger: silentLogger, createTopology: false });
    const connection = await amqp.connect(rabbit.url);
    try {
      const channel = await connection.createConfirmChannel();
      const bad = [
        { id: 'broken-envelope', content: '{"headers":[1],"body":{"orderId":"o-9"}}', contentType: ENVELOPE_CONTENT_TYPE, type: Ship.typeName, reason: 'has no sy1-enclosed-types header' },
        { id: 'not-json', content: 'orderId=o-1', contentType: 'application/json', type: Ship.typeName, reason: 'not valid JSON' },
        { id: 'unknown-type', content: '{"orderId":"o-1"}', contentType: 'application/json', type: 'Nobody.Knows', reason: 'is not registered' },
      ];
      const good = { id: 'plain-json', content: '{"orderId":"o-2"}', contentType: 'application/json', type: Ship.typeName };
      for (const m of [...bad, good]) {
        channel.sendToQueue(inboxName, Buffer.from(m.content), { persistent: true, messageId: m.id, contentType: m.contentType, type: m.type });
      }
      await channel.waitForConfirms();
      const failed = failedMessages(operator, { errorQueue });
      await operator.open();
      await waitFor(async () => (await failed.list()).total === bad.length, { timeoutMs: 15_000, what: 'the three bad messages in the error queue' });
      await waitFor(() => shipped.length === 1, { what: 'the good message to be handled' });
      expect(shipped).toEqual(['o-2']);
      for (const m of bad) {
        const message = await failed.show(m.id);
        expect(message?.body, m.id).toBe(m.content);
        expect(message?.exceptionMessage, m.id).toContain(m.reason);
      }
    } finally {
      await connection.close();
      await inbox.stop();
      await operator.close();
    }
  });
});
