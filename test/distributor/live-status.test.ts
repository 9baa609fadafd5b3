/**
 * What the distributor reports about its work (status().perWorker, shown live by the demo):
 * messages forwarded to each worker and the ready messages each sent back, one per message it
 * finished. Memory transport, one process.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createEndpoint, handle, silentLogger } from '../../src/index.js';
import { MemoryBroker, memoryTransport } from '../../src/memory/index.js';
import { startDistributor } from '../../src/scaleout/distributor.js';
import { memoryDistributorStore } from '../../src/scaleout/distributor-store.js';
import { distributorWorker } from '../../src/scaleout/worker.js';
import { waitFor } from '../../src/testing/wait.js';
import { Work } from './fixtures/messages.js';

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

describe('distributor status per worker', () => {
  it('counts forwards and readies per worker, and they agree with what each worker handled', async () => {
    const broker = new MemoryBroker();
    const distributor = await startDistributor({ endpoint: 'Sales', transport: memoryTransport({ broker }), store: memoryDistributorStore(), logger: silentLogger });
    stops.push(() => distributor.stop());
    const handledBy: Record<string, number> = {};
    for (const discriminator of ['a', 'b']) {
      const worker = createEndpoint({
        name: 'Sales',
        transport: memoryTransport({ broker }),
        queues: { shared: false, instance: true },
        instance: { discriminator },
        concurrency: 1,
        logger: silentLogger,
        features: [distributorWorker({ distributor: 'Sales', capacity: 1 })],
        handlers: [handle(Work, () => void (handledBy[`Sales@${discriminator}`] = (handledBy[`Sales@${discriminator}`] ?? 0) + 1))],
      });
      await worker.start();
      stops.push(() => worker.stop());
    }
    await waitFor(() => distributor.status().freeSlots === 2, { what: 'both workers announced' });
    expect(distributor.status().perWorker).toEqual({});

    const client = createEndpoint({ name: 'Client', transport: memoryTransport({ broker }), sendOnly: true, routes: { 'Test.*': 'Sales' }, logger: silentLogger });
    await client.start();
    stops.push(() => client.stop());
    for (let n = 1; n <= 20; n++) await client.send(Work, { n });

    await waitFor(() => {
      const { perWorker, freeSlots } = distributor.status();
      return freeSlots === 2 && Object.values(perWorker).reduce((sum, w) => sum + w.readies, 0) === 20;
    }, { what: 'every message handled and its ready back' });
    const { perWorker, forwarded } = distributor.status();
    expect(forwarded).toBe(20);
    expect(Object.fromEntries(Object.entries(perWorker).map(([worker, n]) => [worker, n.forwarded]))).toEqual(handledBy);
    for (const n of Object.values(perWorker)) expect(n.readies).toBe(n.forwarded);
  });
});
