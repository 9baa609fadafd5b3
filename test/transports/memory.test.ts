import { MemoryBroker, memoryTransport } from '../../src/memory/index.js';
import { recoverabilityConformance, transportConformance, type TransportFixture } from '../../src/testing/conformance.js';

const fixture = async (): Promise<TransportFixture> => {
  const broker = new MemoryBroker();
  return {
    create: (options) => memoryTransport({ broker, ...options }),
    queue: (name) => name,
    cleanup: async () => undefined,
  };
};

transportConformance('memory', fixture);
recoverabilityConformance('memory', fixture);
