/**
 * The seed's whole system on PostgreSQL alone: a publisher whose subscriptions live in a
 * PostgreSQL subscription store, a single-instance subscriber, and a subscriber scaled out behind
 * a distributor whose ready slots live in a PostgreSQL distributor store, with two workers. Each
 * event reaches exactly one instance of each logical subscriber, and both workers take part.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createEndpoint, defineEvent, handle, silentLogger, subscriptions, type Endpoint } from '../../src/index.js';
import { postgresDistributorStore, postgresSubscriptionStore, postgresTransport } from '../../src/postgres/index.js';
import { startDistributor } from '../../src/scaleout/distributor.js';
import { distributorWorker } from '../../src/scaleout/worker.js';
import { waitFor } from '../../src/testing/wait.js';
import { service } from '../support/services.js';

const postgres = await service('postgres');
const OrderPlaced = defineEvent<{ n: number }>('Seed.OrderPlaced');
const EVENTS = 60;

(postgres.skipReason ? describe.skip : describe)('the seed on PostgreSQL alone', () => {
  const schema = `sy_seed_${randomBytes(4).toString('hex')}`;
  const stops: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const stop of stops.reverse()) await stop();
    const pool = new pg.Pool({ connectionString: postgres.url });
    await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await pool.end();
  });

  const transport = () => postgresTransport({ connectionString: postgres.url, schema, pollMs: 100, maxConnections: 4 });
  const start = async (endpoint: Endpoint) => {
    await endpoint.start();
    stops.push(() => endpoint.stop());
    return endpoint;
  };

  it('delivers each event to exactly one instance of each logical subscriber, through a distributor with ready workers', async () => {
    const billed: number[] = [];
    const shipped = new Map<string, number[]>();
    const sales = await start(createEndpoint({
      name: 'Sales', transport: transport(), logger: silentLogger,
      features: [subscriptions({ store: postgresSubscriptionStore({ connectionString: postgres.url, schema }), publishes: [OrderPlaced], cacheMs: 0 })],
    }));
    await start(createEndpoint({
      name: 'Billing', transport: transport(), logger: silentLogger, routes: { 'Seed.*': 'Sales' },
      features: [subscriptions()],
      handlers: [handle(OrderPlaced, ({ n }) => void billed.push(n))],
    }));
    const distributorTransport = transport();
    await distributorTransport.open();
    const store = postgresDistributorStore({ connectionString: postgres.url, schema });
    const distributor = await startDistributor({ endpoint: 'Shipping', transport: distributorTransport, store, logger: silentLogger });
    stops.push(async () => {
      await distributor.stop();
      await store.close();
      await distributorTransport.close();
    });
    for (const w of ['w1', 'w2']) {
      shipped.set(w, []);
      await start(createEndpoint({
        name: 'Shipping', transport: transport(), logger: silentLogger, routes: { 'Seed.*': 'Sales' },
        queues: { shared: false, instance: true }, instance: { discriminator: w }, concurrency: 2,
        features: [distributorWorker({ distributor: 'Shipping' }), subscriptions()],
        handlers: [handle(OrderPlaced, async ({ n }) => {
          await new Promise((resolve) => setTimeout(resolve, 5)); // a little work, so both workers get some
          shipped.get(w)!.push(n);
        })],
      }));
    }
    // Both subscriptions are recorded before the first publish (a publish with none reaches no one).
    const subscriptionsSeen = postgresSubscriptionStore({ connectionString: postgres.url, schema });
    stops.push(() => subscriptionsSeen.close());
    await waitFor(async () => (await subscriptionsSeen.subscribersOf(['Seed.OrderPlaced'])).length === 2, { timeoutMs: 10_000, what: 'both subscriptions' });
    for (let n = 0; n < EVENTS; n++) await sales.publish(OrderPlaced, { n });
    const all = () => [...shipped.values()].flat();
    await waitFor(() => billed.length >= EVENTS && all().length >= EVENTS, { timeoutMs: 30_000, what: 'every event at both subscribers' });
    const sorted = (list: number[]) => [...list].sort((a, b) => a - b);
    const expected = Array.from({ length: EVENTS }, (_, n) => n);
    expect(sorted(billed)).toEqual(expected);
    expect(sorted(all())).toEqual(expected);
    for (const [w, list] of shipped) expect(list.length, `worker ${w} took part`).toBeGreaterThan(0);
  });
});
