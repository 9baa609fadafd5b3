/**
 * A broker restart in the middle of a run (rabbitmqctl stop_app / start_app, as an operator
 * would): a sender and a worker process keep going, and every message is handled, including a
 * deferred one that waited in the delay topology across the restart.
 * It holds the broker to itself (fixtures/broker-lock.ts), so other RabbitMQ test files wait.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEndpoint, defineCommand, silentLogger } from '../../src/index.js';
import { rabbitmqTransport } from '../../src/rabbitmq/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { rabbit } from './fixtures/broker.js';
import { BROKER_LOCK_WAIT_MS, lockBrokerExclusive } from './fixtures/broker-lock.js';
import { handledBy, roleRun } from './fixtures/processes.js';

const run = promisify(execFile);
const suite = rabbit.skipReason ? describe.skip : describe;

suite(`RabbitMQ broker restart${rabbit.skipReason ? ` (skipped: ${rabbit.skipReason})` : ''}`, () => {
  const roles = roleRun(rabbit.url);
  const { start } = roles;
  let release: () => void = () => undefined;
  beforeAll(async () => void (release = await lockBrokerExclusive()), BROKER_LOCK_WAIT_MS);
  afterAll(async () => {
    await roles.cleanup();
    release();
  });

  it('loses nothing when the broker restarts in the middle of a run (rabbitmqctl stop_app / start_app)', { timeout: 400_000 }, async () => {
    const { ns, endpoint } = roles.names();
    const workerName = endpoint('Worker');
    const worker = start({ role: 'worker', ns, endpoint: workerName });
    await worker.until((x) => x.ready === true, 'ready');
    const total = 400;
    const sender = start({ role: 'sender', ns, endpoint: endpoint('Sender'), to: workerName, count: total, intervalMs: 10 });

    await waitFor(() => handledBy([worker]).length >= 80, { timeoutMs: 30_000, what: 'the worker to handle 80 messages' });
    // A deferred message waits in the delay topology across the restart.
    const Work = defineCommand<{ n: number }>(`${ns}.Work`);
    const deferring = createEndpoint({ name: endpoint('Deferrer'), sendOnly: true, transport: rabbitmqTransport({ url: rabbit.url, logger: silentLogger }), logger: silentLogger, routes: { [Work.typeName]: workerName } });
    await deferring.start();
    const deferredAt = Date.now();
    // 2^15 ms is one level (one TTL queue): it waits there across the restart and expires well
    // after the broker is back (a restart here takes 2-6 s). A message that expires while the
    // broker is still starting can be parked until the dead-letter confirm timeout, 180 s by
    // default (docs/rabbitmq.md): late, not lost, and this test allows for it.
    const delayMs = 2 ** 15;
    await deferring.send(Work, { n: total }, { delayMs });
    await deferring.stop();
    await run('rabbitmqctl', ['stop_app'], { timeout: 60_000 });
    try {
      await worker.until((x) => x.state === 'reconnecting', 'a reconnecting state change');
    } finally {
      await run('rabbitmqctl', ['start_app'], { timeout: 60_000 });
    }
    await worker.until((x) => x.state === 'connected', 'a connected state change after the restart', 60_000);
    await sender.until((x) => x.sent === total, 'all sends done', 90_000);
    // On a time-out the assertion below names the missing messages.
    await waitFor(() => new Set(handledBy([worker]).map((r) => r.handled)).size >= total, { timeoutMs: 30_000, what: `all ${total} messages handled` }).catch(() => undefined);

    const handled = new Set(handledBy([worker]).map((r) => r.n));
    expect([...Array(total).keys()].filter((n) => !handled.has(n))).toEqual([]);

    // Usually ~33 s; up to the broker's 180 s dead-letter confirm timeout more if the restart
    // caught it moving between levels. Late is allowed, lost is not.
    const deferred = await waitFor(() => worker.reports.find((r) => r.n === total && r.handled !== undefined), { timeoutMs: delayMs + 200_000, what: 'the deferred message after the restart' });
    expect(deferred).toBeDefined();
    expect(Date.now() - deferredAt).toBeGreaterThanOrEqual(delayMs);
  });
});
