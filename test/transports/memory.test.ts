import { MemoryBroker, memoryTransport } from '../../src/memory/index.js';
import { transportConformance } from '../../src/testing/conformance.js';

transportConformance('memory', async () => {
  const broker = new MemoryBroker();
  return {
    create: (options) => memoryTransport({ broker, ...options }),
    queue: (name) => name,
    cleanup: async () => undefined,
  };
});
