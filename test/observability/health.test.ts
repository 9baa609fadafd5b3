/** endpoint.health(), the probe server and heartbeats, on SQLite and on a transport that fails. */
import { afterEach, describe, expect, it } from 'vitest';
import {
  createEndpoint,
  defineCommand,
  distributorWorker,
  handle,
  healthServer,
  heartbeats,
  hostedDistributor,
  readHeartbeats,
  silentLogger,
  type Endpoint,
  type EndpointOptions,
  type Transport,
} from '../../src/index.js';
import { MemoryBroker, memoryTransport } from '../../src/memory/index.js';
import { sqliteDistributorStore, sqliteTransport } from '../../src/sqlite/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { tempDb } from './fixtures/otel.js';

const Work = defineCommand<{ n: number }>('Test.Work');

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function endpointOn(options: EndpointOptions): Endpoint {
  const endpoint = createEndpoint({ logger: silentLogger, ...options });
  cleanups.push(() => endpoint.stop().catch(() => undefined));
  return endpoint;
}

/** A transport whose receives fail while `down` is set: a database or broker outage. */
function flaky(inner: Transport) {
  let down = false;
  const transport: Transport = { ...inner, receive: (address, options) => (down ? Promise.reject(new Error('connection refused')) : inner.receive(address, options)) };
  for (const key of ['open', 'createQueue', 'queueExists', 'dispatch', 'close'] as const) (transport as unknown as Record<string, unknown>)[key] = inner[key].bind(inner);
  return { transport, setDown: (value: boolean) => void (down = value) };
}

describe('endpoint.health()', () => {
  it('reports running, receiving and in-flight handlers, and not ready while receives fail', async () => {
    const db = tempDb();
    cleanups.push(() => db.cleanup());
    const { transport, setDown } = flaky(sqliteTransport({ path: db.file }));
    let release = () => {};
    const blocked = new Promise<void>((resolve) => (release = resolve));
    const endpoint = endpointOn({ name: 'Sales', transport, handlers: [handle(Work, () => blocked)] });
    expect(endpoint.health()).toMatchObject({ status: 'created', live: true, ready: false, receiving: false });
    await endpoint.start();
    expect(endpoint.health()).toMatchObject({ endpoint: 'Sales', instance: endpoint.identity.id, status: 'running', live: true, ready: true, receiving: true, transport: { name: 'sqlite', connected: true } });

    await endpoint.sendLocal(Work, { n: 1 });
    await waitFor(() => endpoint.health().handlersInFlight === 1, { what: 'one handler in flight' });
    expect(Date.parse(endpoint.health().lastMessageAt!)).toBeGreaterThan(Date.now() - 10_000);
    release();
    await waitFor(() => endpoint.health().handlersInFlight === 0, { what: 'the handler done' });

    setDown(true);
    await waitFor(() => endpoint.health().transport.connected === false, { what: 'the failing receive noticed' });
    expect(endpoint.health()).toMatchObject({ ready: false, live: true, transport: { connected: false, error: 'connection refused' } });
    expect(endpoint.health().transport.failingSince).toMatch(/^\d{4}-/);
    setDown(false);
    await waitFor(() => endpoint.health().ready, { what: 'ready again after the outage' });

    await endpoint.stop();
    expect(endpoint.health()).toMatchObject({ status: 'stopped', live: false, ready: false, receiving: false });
  });
});

describe('healthServer', () => {
  it('answers /health/live and /health/ready for probes, with the distributor workers, and 503 once stopped', async () => {
    const db = tempDb();
    cleanups.push(() => db.cleanup());
    const distributor = hostedDistributor({ store: sqliteDistributorStore({ path: db.file }), logger: silentLogger });
    const endpoint = endpointOn({
      name: 'Sales',
      transport: sqliteTransport({ path: db.file }),
      queues: { shared: false, instance: true },
      features: [distributor, distributorWorker({ distributor: 'Sales' })],
      handlers: [handle(Work, () => undefined)],
    });
    const server = await healthServer(endpoint, { port: 0, host: '127.0.0.1', distributor });
    cleanups.push(() => server.close());
    const get = async (path: string) => {
      const response = await fetch(`http://127.0.0.1:${server.port}${path}`);
      return { code: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    expect((await get('/health/live')).code).toBe(200);
    expect((await get('/health/ready')).code, 'not started yet').toBe(503);
    await endpoint.start();
    await waitFor(() => (distributor.handle?.status().workers.length ?? 0) === 1, { what: 'the worker registered' });
    const ready = await get('/health/ready');
    expect(ready.code).toBe(200);
    expect(ready.body).toMatchObject({ endpoint: 'Sales', status: 'running', ready: true, distributor: { workers: [{ address: endpoint.identity.address }] } });
    expect((await get('/nope')).code).toBe(404);
    expect((await fetch(`http://127.0.0.1:${server.port}/health/live`, { method: 'POST' })).status).toBe(405);
    await endpoint.stop();
    expect((await get('/health/live')).code).toBe(503);
    expect((await get('/health/ready')).code).toBe(503);
  });

  it('refuses a port in use with a coded error', async () => {
    const endpoint = endpointOn({ name: 'Sales', transport: memoryTransport({ broker: new MemoryBroker() }) });
    const first = await healthServer(endpoint, { port: 0, host: '127.0.0.1' });
    cleanups.push(() => first.close());
    await expect(healthServer(endpoint, { port: first.port, host: '127.0.0.1' })).rejects.toMatchObject({ code: 'SY_ERR_CONFIG', message: expect.stringMatching(/EADDRINUSE.*Fix: Choose a free port/) });
  });
});

describe('heartbeats', () => {
  it('keeps one record per live instance with version and host, and removes it on a graceful stop', async () => {
    const db = tempDb();
    cleanups.push(() => db.cleanup());
    const start = async (discriminator: string) => {
      const endpoint = endpointOn({
        name: 'Sales',
        transport: sqliteTransport({ path: db.file }),
        instance: { discriminator, host: `host-${discriminator}` },
        features: [heartbeats({ intervalMs: 200, version: '1.4.2' })],
      });
      await endpoint.start();
      return endpoint;
    };
    const a = await start('a');
    const b = await start('b');
    const reader = sqliteTransport({ path: db.file });
    await reader.open();
    cleanups.push(() => reader.close());
    const sentAt = (await readHeartbeats(reader)).instances.map((i) => i.sentAt);
    await waitFor(async () => {
      const { instances } = await readHeartbeats(reader);
      return instances.length === 2 && instances.every((i, n) => i.sentAt > sentAt[n]!);
    }, { what: 'both instances beat again' });
    const { instances, unreadable } = await readHeartbeats(reader);
    expect(unreadable).toBe(0);
    expect(instances).toMatchObject([
      { endpoint: 'Sales', instance: a.identity.id, host: 'host-a', pid: process.pid, version: '1.4.2', status: 'running', alive: true },
      { endpoint: 'Sales', instance: b.identity.id, host: 'host-b', version: '1.4.2', alive: true },
    ]);
    expect(await reader.admin!.depth('switchyard.heartbeats'), 'each beat replaced the previous one').toBe(2);
    expect((await readHeartbeats(reader, { now: Date.now() + 60_000 })).instances.every((i) => !i.alive), 'expired records are not alive').toBe(true);

    await b.stop();
    expect((await readHeartbeats(reader)).instances.map((i) => i.instance)).toEqual([a.identity.id]);
  });

  it('refuses a bad interval with a coded error', () => {
    expect(() => heartbeats({ intervalMs: 0 })).toThrow(/SY_ERR_CONFIG|intervalMs/);
  });
});
