import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { silentLogger } from '../../src/core/logger.js';
import { rabbitmqTransport } from '../../src/rabbitmq/index.js';
import type { QueueType } from '../../src/rabbitmq/specs.js';
import { recoverabilityConformance, transportConformance, type TransportFixture } from '../../src/testing/conformance.js';
import { deleteTopology, describeOnBroker, rabbit, uniquePrefix } from './fixtures/broker.js';

const fixture = (queueType: QueueType) => async (): Promise<TransportFixture> => {
  const prefix = uniquePrefix(`conf-${queueType}`);
  const queues = new Set<string>();
  return {
    // Leases are the channel on RabbitMQ: leaseMs has no meaning here.
    create: () => rabbitmqTransport({ url: rabbit.url, queueType, logger: silentLogger }),
    // A paused child must lose its "lease" quickly: the broker drops it after missed heartbeats.
    childSpec: () => ({
      module: pathToFileURL(path.resolve('src/rabbitmq/index.ts')).href,
      factory: 'rabbitmqTransport',
      options: { url: rabbit.url, queueType, heartbeatSeconds: 1 },
    }),
    queue: (name) => {
      const queue = `${prefix}${name}`;
      queues.add(queue);
      return queue;
    },
    cleanup: () => deleteTopology({ queues }),
  };
};

// restart.test.ts stops the broker: not while this file runs.
describeOnBroker('RabbitMQ', () => {
  transportConformance('rabbitmq', fixture('quorum'));
  recoverabilityConformance('rabbitmq quorum', fixture('quorum'));
  // Classic queues only flag a redelivery: retries end because the core counts them.
  recoverabilityConformance('rabbitmq classic', fixture('classic'));
});
