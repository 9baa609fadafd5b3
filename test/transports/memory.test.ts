import { MemoryBroker, memoryTransport } from '../../src/memory/index.js';
import { recoverabilityConformance, transportConformance, type TransportFixture } from '../../src/testing/conformance.js';

const fixture = async (): Promise<TransportFixture> => {
  const broker = new MemoryBroker();
  return {
    create: (options) => memoryTransport({ broker, ...options }),
    queue: (name) => name,
    expireLeases: async (queue) => {
      const now = broker.clock.now();
      for (const stored of broker.queues.get(queue) ?? []) if (stored.visibleAt > now) stored.visibleAt = now;
    },
    injectRaw: async (queue, raw) => broker.injectRaw(queue, raw),
    cleanup: async () => undefined,
  };
};

transportConformance('memory', fixture);
recoverabilityConformance('memory', fixture);
