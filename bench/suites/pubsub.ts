/**
 * sqlite.publish-fanout: publish N events to 4 logical subscribers on the embedded SQLite
 * transport; msgsPerSec counts deliveries (4 per event) from the first publish to the last
 * handled copy. Baseline: the same number of deliveries made by plain sends (4 per round, one
 * to each endpoint) in the same run and process. Rounds alternate and medians are kept, so a
 * noisy neighbour hits both sides alike.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createEndpoint, defineCommand, defineEvent, handle, silentLogger, type Endpoint } from '../../src/index.js';
import { subscriptions } from '../../src/pubsub/subscriptions.js';
import { sqliteTransport } from '../../src/sqlite/index.js';
import { sqliteSubscriptionStore } from '../../src/sqlite/subscription-store.js';
import { waitFor } from '../../src/testing/wait.js';
import type { BenchResult, BenchSuite } from '../types.js';
import { median } from '../stats.js';

const EVENTS = 2000;
const SUBSCRIBERS = ['Billing', 'Shipping', 'Audit', 'Loyalty'];
const BATCH = 100;
const ROUNDS = 3;
const SYNCHRONOUS = 'full';
const BODY = 'x'.repeat(200);

const OrderPlaced = defineEvent<{ n: number; payload: string }>('Sales.OrderPlaced');
const Notify = defineCommand<{ n: number; payload: string }>('Bench.Notify');

interface System {
  sales: Endpoint;
  handled(): number;
  stop(): Promise<void>;
}

async function startSystem(): Promise<System> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-bench-pubsub-'));
  const file = path.join(dir, 'bus.db');
  const transport = () => sqliteTransport({ path: file, synchronous: SYNCHRONOUS });
  let handled = 0;
  const count = () => void (handled += 1);
  const sales = createEndpoint({
    name: 'Sales',
    transport: transport(),
    logger: silentLogger,
    features: [subscriptions({ store: sqliteSubscriptionStore({ path: file, synchronous: SYNCHRONOUS }), publishes: [OrderPlaced] })],
  });
  await sales.start();
  const subscribers = SUBSCRIBERS.map((name) =>
    createEndpoint({
      name,
      transport: transport(),
      logger: silentLogger,
      routes: { 'Sales.*': 'Sales' },
      concurrency: 64,
      handlers: [handle(OrderPlaced, count), handle(Notify, count)],
      features: [subscriptions()],
    }),
  );
  for (const s of subscribers) await s.start();
  const store = sqliteSubscriptionStore({ path: file });
  await waitFor(async () => (await store.subscribersOf([OrderPlaced.typeName])).length === SUBSCRIBERS.length, { what: 'the subscriptions' });
  await store.close();
  return {
    sales,
    handled: () => handled,
    async stop() {
      for (const e of [...subscribers, sales]) await e.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Deliveries per second for `events` rounds of one publish (or 4 sends), BATCH rounds in flight at a time. */
async function measure(system: System, events: number, how: 'publish' | 'send'): Promise<number> {
  const target = system.handled() + events * SUBSCRIBERS.length;
  const started = performance.now();
  const round = (n: number) =>
    how === 'publish'
      ? system.sales.publish(OrderPlaced, { n, payload: BODY })
      : Promise.all(SUBSCRIBERS.map((to) => system.sales.send(Notify, { n, payload: BODY }, { to })));
  for (let n = 0; n < events; n += BATCH) await Promise.all(Array.from({ length: Math.min(BATCH, events - n) }, (_, i) => round(n + i)));
  await waitFor(() => system.handled() >= target, { timeoutMs: 120_000, intervalMs: 2, what: 'every delivery to be handled' });
  return ((events * SUBSCRIBERS.length) / (performance.now() - started)) * 1000;
}

const suite: BenchSuite = {
  names: ['sqlite.publish-fanout'],
  async run({ log }) {
    const system = await startSystem();
    try {
      log(`warming up (synchronous=${SYNCHRONOUS}, WAL, ${SUBSCRIBERS.length} logical subscribers, one process)`);
      await measure(system, 300, 'send');
      await measure(system, 300, 'publish');
      const publishes: number[] = [];
      const sends: number[] = [];
      for (let r = 1; r <= ROUNDS; r++) {
        sends.push(await measure(system, EVENTS, 'send'));
        publishes.push(await measure(system, EVENTS, 'publish'));
        log(`round ${r}: plain sends ${sends.at(-1)!.toFixed(0)} deliveries/s, publish fan-out ${publishes.at(-1)!.toFixed(0)} deliveries/s`);
      }
      const msgsPerSec = median(publishes);
      const baselineMsgsPerSec = median(sends);
      return [
        {
          name: 'sqlite.publish-fanout',
          transport: 'sqlite',
          messages: EVENTS * SUBSCRIBERS.length,
          msgsPerSec,
          p50Ms: null,
          p99Ms: null,
          baseline: `plain sends, same deliveries (${EVENTS} x ${SUBSCRIBERS.length} endpoints)`,
          baselineMsgsPerSec,
          ratio: msgsPerSec / baselineMsgsPerSec,
          settings: {
            synchronous: SYNCHRONOUS,
            journal: 'WAL',
            events: EVENTS,
            logicalSubscribers: SUBSCRIBERS.length,
            subscriptionCacheMs: 5000,
            bodyBytes: BODY.length + 20,
            inFlight: BATCH,
            subscriberConcurrency: 64,
            rounds: ROUNDS,
          },
        } satisfies BenchResult,
      ];
    } finally {
      await system.stop();
    }
  },
};

export default suite;
