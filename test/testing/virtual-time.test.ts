/**
 * Core parts outside the endpoint read the clock they are given: the distributor's worker
 * timeout runs on a virtual clock (with the system clock this test would wait 30 s of real time
 * for the worker to be declared dead, and time out).
 */
import { describe, expect, it } from 'vitest';
import { Headers, silentLogger } from '../../src/index.js';
import { MemoryBroker, memoryTransport } from '../../src/memory/index.js';
import { startDistributor } from '../../src/scaleout/distributor.js';
import { memoryDistributorStore } from '../../src/scaleout/distributor-store.js';
import { VirtualClock, waitFor } from '../../src/testing/index.js';

describe('virtual time outside the test bus', () => {
  it("declares a silent worker dead when the distributor's virtual clock passes its timeout", async () => {
    const clock = new VirtualClock();
    const broker = new MemoryBroker(clock);
    const transport = memoryTransport({ broker });
    await transport.createQueue('Sales@w1');
    const distributor = await startDistributor({ endpoint: 'Sales', transport, store: memoryDistributorStore(), logger: silentLogger, clock, workerTimeoutMs: 30_000 });
    try {
      const start = { kind: 'start', worker: 'Sales@w1', session: 's1', capacity: 2 };
      await transport.dispatch([{ destination: 'Sales.distributor', message: { id: 'ready-1', headers: { [Headers.MessageId]: 'ready-1', [Headers.Intent]: 'ready' }, body: JSON.stringify(start) } }]);
      await waitFor(() => distributor.status().freeSlots === 2, { what: 'the worker to register two slots' });

      clock.moveTo(clock.now() + 31_000);
      const live = () => distributor.status().workers.filter((w) => w.status === 'live');
      await waitFor(() => live().length === 0, { what: 'the worker declared dead', timeoutMs: 2000 });
      expect(distributor.status().workers.map((w) => [w.address, w.status])).toEqual([['Sales@w1', 'dead']]);
      expect(distributor.status().freeSlots).toBe(0);
    } finally {
      await distributor.stop();
      await transport.close();
    }
  });
});
