import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { silentLogger } from '../../src/core/logger.js';
import { rabbitmqTransport } from '../../src/rabbitmq/index.js';
import { transportConformance } from '../../src/testing/conformance.js';
import { deleteTopology, describeOnBroker, rabbit, uniquePrefix } from './fixtures/broker.js';

// restart.test.ts stops the broker: not while this file runs.
describeOnBroker('RabbitMQ', () => {
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
});
