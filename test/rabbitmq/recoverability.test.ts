/**
 * Recoverability on RabbitMQ: immediate retries (nack-requeue, counted by the quorum queue),
 * a delayed retry through the delay topology, the error queue with failure headers, and a
 * manual retry from it with `switchyard errors` (the CLI process, on RabbitMQ).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEndpoint, defineCommand, handle, silentLogger } from '../../src/index.js';
import { rabbitmqTransport } from '../../src/rabbitmq/index.js';
import { failedMessages } from '../../src/recoverability/failed-messages.js';
import { waitFor } from '../../src/testing/wait.js';
import { deleteTopology, rabbit, uniquePrefix } from './fixtures/broker.js';
import { BROKER_LOCK_WAIT_MS, lockBrokerShared } from './fixtures/broker-lock.js';
import { runCli } from '../recoverability/fixtures/bus.js';

const suite = rabbit.skipReason ? describe.skip : describe;

suite(`RabbitMQ recoverability${rabbit.skipReason ? ` (skipped: ${rabbit.skipReason})` : ''}`, () => {
  const prefix = uniquePrefix('recov');
  const [workerName, errorQueue] = [`${prefix}Worker`, `${prefix}error`];
  let release: () => void = () => undefined;
  beforeAll(async () => void (release = await lockBrokerShared()), BROKER_LOCK_WAIT_MS); // restart.test.ts stops the broker
  afterAll(async () => {
    await deleteTopology({ queues: [workerName, errorQueue] });
    release();
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
});
