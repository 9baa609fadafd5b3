/** The distributor in one process on the memory transport: bad control input, graceful stop. */
import { afterEach, describe, expect, it } from 'vitest';
import { createEndpoint, FailureHeaders, handle, Headers, silentLogger, type Endpoint } from '../../src/index.js';
import { MemoryBroker, memoryTransport } from '../../src/memory/index.js';
import { startDistributor } from '../../src/scaleout/distributor.js';
import { memoryDistributorStore } from '../../src/scaleout/distributor-store.js';
import { hostedDistributor } from '../../src/scaleout/distributor-feature.js';
import { distributorWorker } from '../../src/scaleout/worker.js';
import { waitFor } from '../../src/testing/wait.js';
import { Work } from './fixtures/messages.js';

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

async function setup() {
  const broker = new MemoryBroker();
  const transport = memoryTransport({ broker });
  const store = memoryDistributorStore();
  const distributor = await startDistributor({ endpoint: 'Sales', transport, store, logger: silentLogger });
  stops.push(() => distributor.stop());
  return { broker, transport, store, distributor };
}

async function worker(broker: MemoryBroker, discriminator: string, handled: number[]): Promise<Endpoint> {
  const endpoint = createEndpoint({
    name: 'Sales',
    transport: memoryTransport({ broker }),
    queues: { shared: false, instance: true },
    instance: { discriminator },
    concurrency: 2,
    logger: silentLogger,
    features: [distributorWorker({ distributor: 'Sales' })],
    handlers: [handle(Work, ({ n }) => void handled.push(n))],
  });
  await endpoint.start();
  stops.push(() => endpoint.stop());
  return endpoint;
}

const readyMessage = (id: string, body: string) => ({
  destination: 'Sales.distributor',
  message: { id, headers: { [Headers.MessageId]: id, [Headers.Intent]: 'ready' }, body },
});

describe('distributor control input', () => {
  it('moves malformed ready messages to the error queue with the reason and keeps forwarding', async () => {
    const { broker, transport, distributor } = await setup();
    await transport.dispatch([
      readyMessage('negative', JSON.stringify({ kind: 'start', worker: 'Sales@x', session: 's1', capacity: -1 })),
      readyMessage('missing', JSON.stringify({ kind: 'start', worker: 'Sales@x', session: 's1' })),
      readyMessage('unknown', JSON.stringify({ kind: 'ready', worker: 'Sales@nobody', session: 's1', capacity: 1, slot: 'abc' })),
      readyMessage('not-json', '{nope'),
      readyMessage('foreign', JSON.stringify({ kind: 'start', worker: 'Billing@x', session: 's1', capacity: 1 })),
    ]);
    await waitFor(async () => (await transport.admin!.depth('error')) === 5, { what: 'five messages in the error queue' });
    const failed = await transport.admin!.peek('error', { offset: 0, limit: 10 });
    const reasons = Object.fromEntries(failed.map((m) => [m.id, m.headers[FailureHeaders.ExceptionMessage] ?? '']));
    expect(reasons.negative).toMatch(/capacity -1 is missing, negative/);
    expect(reasons.missing).toMatch(/capacity null is missing/);
    expect(reasons.unknown).toMatch(/unknown to this distributor/);
    expect(reasons['not-json']).toMatch(/not JSON/);
    expect(reasons.foreign).toMatch(/not an instance address of Sales/);
    expect(distributor.status().workers).toEqual([]);

    const handled: number[] = [];
    await worker(broker, 'a', handled);
    const client = createEndpoint({ name: 'Client', transport: memoryTransport({ broker }), sendOnly: true, routes: { 'Test.*': 'Sales' }, logger: silentLogger });
    await client.start();
    stops.push(() => client.stop());
    for (let n = 1; n <= 5; n++) await client.send(Work, { n });
    await waitFor(() => handled.length === 5, { what: 'five handled' });
  });

  it('withdraws a gracefully stopped worker: its slots go, new messages go to the other worker', async () => {
    const { broker, distributor } = await setup();
    const handledA: number[] = [];
    const handledB: number[] = [];
    const a = await worker(broker, 'a', handledA);
    await worker(broker, 'b', handledB);
    await waitFor(() => distributor.status().workers.length === 2 && distributor.status().freeSlots === 4, { what: 'two workers ready' });
    await a.stop();
    await waitFor(() => distributor.status().workers.find((w) => w.address === 'Sales@a')?.status === 'withdrawn', { what: 'a withdrawn' });
    expect(distributor.status().freeSlots).toBe(2);
    const client = createEndpoint({ name: 'Client', transport: memoryTransport({ broker }), sendOnly: true, routes: { 'Test.*': 'Sales' }, logger: silentLogger });
    await client.start();
    stops.push(() => client.stop());
    for (let n = 1; n <= 6; n++) await client.send(Work, { n });
    await waitFor(() => handledB.length === 6, { what: 'b handles all six' });
    expect(handledA).toEqual([]);
  });

  it('refuses to start a second distributor for the same endpoint on the same store', async () => {
    const { transport, store } = await setup();
    await expect(startDistributor({ endpoint: 'Sales', transport, store, logger: silentLogger, ownershipLeaseMs: 200 })).rejects.toThrow(/already runs/);
  });
});

describe('hostedDistributor', () => {
  it('runs the distributor inside a worker endpoint process, on its transport', async () => {
    const broker = new MemoryBroker();
    const handled: number[] = [];
    const hosted = hostedDistributor({ store: memoryDistributorStore(), logger: silentLogger });
    const endpoint = createEndpoint({
      name: 'Sales',
      transport: memoryTransport({ broker }),
      queues: { shared: false, instance: true },
      logger: silentLogger,
      features: [distributorWorker({ distributor: 'Sales' }), hosted],
      handlers: [handle(Work, ({ n }) => void handled.push(n))],
    });
    await endpoint.start();
    stops.push(() => endpoint.stop());
    expect(endpoint.publicAddress).toBe('Sales');
    const client = createEndpoint({ name: 'Client', transport: memoryTransport({ broker }), sendOnly: true, routes: { 'Test.*': 'Sales' }, logger: silentLogger });
    await client.start();
    stops.push(() => client.stop());
    for (let n = 1; n <= 20; n++) await client.send(Work, { n });
    await waitFor(() => handled.length === 20, { what: 'twenty handled' });
    expect(hosted.handle?.status().forwarded).toBe(20);
  });
});
