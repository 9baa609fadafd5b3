import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { silentLogger } from '../../src/core/logger.js';
import { rabbitmqTransport } from '../../src/rabbitmq/index.js';
import { transportConformance } from '../../src/testing/conformance.js';
import { deleteTopology, rabbit, uniquePrefix } from './fixtures/broker.js';
import { BROKER_LOCK_WAIT_MS, lockBrokerShared } from './fixtures/broker-lock.js';

if (rabbit.skipReason) {
  describe('transport conformance: rabbitmq', () => it.skip(rabbit.skipReason ?? '', () => undefined));
} else {
  // restart.test.ts stops the broker: not while this file runs.
  let release: () => void = () => undefined;
  beforeAll(async () => void (release = await lockBrokerShared()), BROKER_LOCK_WAIT_MS);
  afterAll(() => release());
  transportConformance('rabbitmq', async () => {
    const prefix = uniquePrefix('conf');
    const queues = new Set<string>();
    return {
      // Leases are the channel on RabbitMQ: leaseMs has no meaning here.
      create: () => rabbitmqTransport({ url: rabbit.url, logger: silentLogger }),
      // A paused child must lose its "lease" quickly: the broker drops it after missed heartbeats.
      childSpec: () => ({
        module: pathToFileURL(path.resolve('src/rabbitmq/index.ts')).href,
        factory: 'rabbitmqTransport',
        options: { url: rabbit.url, heartbeatSeconds: 1 },
      }),
      queue: (name) => {
        const queue = `${prefix}${name}`;
        queues.add(queue);
        return queue;
      },
      cleanup: () => deleteTopology({ queues }),
    };
  });
}
