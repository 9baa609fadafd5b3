/**
 * The distributor on RabbitMQ (it only uses the Transport port): a distributor and two workers
 * on the real broker, each message handled exactly once, and dispatch that follows capacity (a
 * slow worker gets fewer); a worker that withdraws has its queued messages handed back through
 * the RabbitMQ admin (moveAll) and handled by the other.
 */
import { afterAll, afterEach, expect, it } from 'vitest';
import { createEndpoint, defineCommand, handle, silentLogger, type Endpoint } from '../../src/index.js';
import { rabbitmqTransport } from '../../src/rabbitmq/index.js';
import { startDistributor, type DistributorHandle } from '../../src/scaleout/distributor.js';
import { memoryDistributorStore } from '../../src/scaleout/distributor-store.js';
import { distributorWorker } from '../../src/scaleout/worker.js';
import { waitFor } from '../../src/testing/wait.js';
import { deleteTopology, describeOnBroker, rabbit, uniquePrefix } from './fixtures/broker.js';

describeOnBroker('distributor on RabbitMQ', () => {
  const prefix = uniquePrefix('dist');
  const sales = `${prefix}Sales`;
  const Work = defineCommand<{ n: number }>(`${prefix.replaceAll('-', '_')}Sales.Work`);
  const transport = () => rabbitmqTransport({ url: rabbit.url, logger: silentLogger });
  const queues = new Set<string>();
  const stops: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });
  afterAll(async () => {
    await deleteTopology({ queues: [...queues, sales, `${sales}.distributor`] });
  });

  async function distributor(): Promise<DistributorHandle> {
    const t = transport();
    const handle = await startDistributor({ endpoint: sales, transport: t, store: memoryDistributorStore(), logger: silentLogger, workerTimeoutMs: 30_000 });
    stops.push(async () => {
      await handle.stop();
      await t.close();
    });
    return handle;
  }

  async function worker(discriminator: string, handled: number[], delayMs: number, capacity = 2): Promise<Endpoint> {
    const endpoint = createEndpoint({
      name: sales,
      instance: { discriminator },
      queues: { shared: false, instance: true },
      transport: transport(),
      concurrency: 2,
      logger: silentLogger,
      features: [distributorWorker({ distributor: sales, capacity })],
      handlers: [
        handle(Work, async ({ n }) => {
          await new Promise((resolve) => setTimeout(resolve, delayMs));
          handled.push(n);
        }),
      ],
    });
    queues.add(`${sales}@${discriminator}`);
    await endpoint.start();
    stops.push(() => endpoint.stop());
    return endpoint;
  }

  async function client(): Promise<Endpoint> {
    const endpoint = createEndpoint({ name: `${prefix}Client`, sendOnly: true, transport: transport(), routes: { [Work.typeName]: sales }, logger: silentLogger });
    await endpoint.start();
    stops.push(() => endpoint.stop());
    return endpoint;
  }

  it('forwards each message to exactly one worker, more of them to the faster one', async () => {
    const handle = await distributor();
    const fast: number[] = [];
    const slow: number[] = [];
    await worker('fast', fast, 2);
    await worker('slow', slow, 60);
    await waitFor(() => handle.status().freeSlots === 4, { what: 'both workers ready (2 slots each)' });
    const sender = await client();
    const total = 60;
    await Promise.all(Array.from({ length: total }, (_, n) => sender.send(Work, { n })));
    await waitFor(() => fast.length + slow.length >= total, { timeoutMs: 20_000, what: `all ${total} handled` });
    const all = [...fast, ...slow].sort((a, b) => a - b);
    expect(all).toEqual([...Array(total).keys()]);
    expect(fast.length).toBeGreaterThan(slow.length * 2);
    expect(handle.status().forwarded).toBe(total);
  });

  it('hands a withdrawn worker’s queued messages back (RabbitMQ moveAll) to the other worker', async () => {
    const handle = await distributor();
    const a: number[] = [];
    const b: number[] = [];
    // Capacity 8 over concurrency 2: six messages wait in a's own queue while it handles two.
    const first = await worker('a', a, 100, 8);
    await waitFor(() => handle.status().freeSlots === 8, { what: 'worker a ready' });
    const sender = await client();
    await Promise.all(Array.from({ length: 10 }, (_, n) => sender.send(Work, { n })));
    await waitFor(() => handle.status().forwarded === 8, { what: 'eight forwarded to a' });
    await first.stop(); // withdraws: its free slots go, its queued messages go back to the data queue
    expect(a.length).toBeLessThan(8);
    await worker('b', b, 1);
    await waitFor(() => a.length + b.length >= 10, { timeoutMs: 20_000, what: 'all 10 handled by a or b' });
    expect([...a, ...b].sort((x, y) => x - y)).toEqual([...Array(10).keys()]);
  });
});
