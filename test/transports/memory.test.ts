import { describe, expect, it } from 'vitest';
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

describe('memory transport admin', () => {
  it('moveAll keeps the delivery count a message had, so a moved message does not get its retries back', async () => {
    const transport = memoryTransport();
    await transport.createQueue('from');
    await transport.createQueue('to');
    await transport.dispatch([{ destination: 'from', message: { id: 'm-1', headers: {}, body: '{}' } }]);
    const controller = new AbortController();
    const [first] = await transport.receive('from', { max: 1, waitMs: 0, signal: controller.signal });
    expect(first!.deliveryCount).toBe(1);
    await first!.abandon();

    expect(await transport.admin!.moveAll('from', 'to')).toBe(1);
    const [moved] = await transport.receive('to', { max: 1, waitMs: 0, signal: controller.signal });
    expect(moved!.message.id).toBe('m-1');
    expect(moved!.deliveryCount).toBe(2);
    await transport.close();
  });
});
