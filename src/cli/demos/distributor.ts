/**
 * The distributor demo (the seed's scenario): Sales publishes OrderPlaced events; Shipping runs
 * behind a distributor with three worker processes, Billing runs as one instance. Shipping's
 * workers subscribe with the distributor's address, so the publisher sends one copy to
 * `Shipping` and the distributor hands each to the next ready worker. Every process is real;
 * the transport and the stores are one SQLite file in a temporary folder.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createEndpoint, handle, lineLogger, type Logger } from '../../index.js';
import { subscriptions } from '../../pubsub/subscriptions.js';
import { startDistributor } from '../../scaleout/distributor.js';
import { distributorWorker } from '../../scaleout/worker.js';
import { sqliteDistributorStore } from '../../sqlite/distributor-store.js';
import { sqliteTransport } from '../../sqlite/index.js';
import { waitFor } from '../../testing/wait.js';
import { onShutdown } from '../signals.js';
import { inDemoFolder, report, type DemoFolder, type Report, type RoleProcess } from './processes.js';
import { OrderPlaced, PUBLISHER, pubsubRoles, type PublisherConfig, type SubscriberConfig } from './pubsub-roles.js';
import type { PubSubSummary } from './pubsub-scenario.js';
import type { DemoOptions } from './scenario.js';

const SCALED = 'Shipping';
const SINGLE = 'Billing';
const WORKERS = ['w1', 'w2', 'w3'];
const EVENTS = 45;
/** How often the distributor process reports what it did (when it changed). */
const LIVE_STATUS_MS = 100;

interface LiveStatus {
  forwarded: number;
  freeSlots: number;
  live: number;
  perWorker: Record<string, { forwarded: number; readies: number }>;
}

/** `distributor: forwarded 12, 1 free slot | Shipping@w1 got 6, ready 5 | ...`, workers in order. */
export function liveStatusLine(status: LiveStatus): string {
  const workers = Object.entries(status.perWorker)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([worker, n]) => `${worker} got ${n.forwarded}, ready ${n.readies}`);
  return [`distributor: forwarded ${status.forwarded}, ${status.freeSlots} free slot${status.freeSlots === 1 ? '' : 's'}`, ...workers].join(' | ');
}

interface WorkerConfig {
  db: string;
  discriminator: string;
  workMs: number;
}

const roleLogger = (name: string): Logger => lineLogger((level, line) => void (level !== 'info' && process.stderr.write(`[${name}] ${line}\n`)));

export const roles = {
  ...pubsubRoles,
  async distributor([db]: string[]) {
    const transport = sqliteTransport({ path: db! });
    const store = sqliteDistributorStore({ path: db! });
    const handle = await startDistributor({ endpoint: SCALED, transport, store, workerTimeoutMs: 5000, logger: roleLogger(`${SCALED} distributor`) });
    // What the distributor is doing, for the demo to show while it runs: a report when it changed.
    let last = '';
    const live = setInterval(() => {
      const { forwarded, perWorker, freeSlots, workers } = handle.status();
      const line = JSON.stringify({ forwarded, perWorker, freeSlots, live: workers.filter((w) => w.status === 'live').length });
      if (line !== last) report({ distributorStatus: JSON.parse(line) as unknown });
      last = line;
    }, LIVE_STATUS_MS);
    onShutdown(async () => {
      clearInterval(live);
      await handle.stop();
      await store.close();
      await transport.close();
    });
    report({ ready: `${SCALED} distributor` });
  },
  async worker([json]: string[]) {
    const config = JSON.parse(json!) as WorkerConfig;
    const instance = `${SCALED}@${config.discriminator}`;
    const endpoint = createEndpoint({
      name: SCALED,
      transport: sqliteTransport({ path: config.db }),
      queues: { shared: false, instance: true },
      instance: { discriminator: config.discriminator },
      concurrency: 1,
      routes: { 'Sales.*': PUBLISHER },
      logger: roleLogger(instance),
      features: [distributorWorker({ distributor: SCALED, heartbeatMs: 1000 }), subscriptions()],
      handlers: [
        handle(OrderPlaced, async (event) => {
          await new Promise((resolve) => setTimeout(resolve, config.workMs));
          report({ handled: event.id, endpoint: SCALED, instance });
        }),
      ],
    });
    await endpoint.start();
    onShutdown((force) => endpoint.stop({ signal: force }));
    report({ ready: instance });
  },
};

export async function run(options: DemoOptions): Promise<void> {
  await inDemoFolder((folder) => runIn(folder, options));
}

async function runIn(demo: DemoFolder, { json }: DemoOptions): Promise<void> {
  const folder = demo.path;
  const db = path.join(folder, 'switchyard.db');
  const say = (line: string) => (json ? undefined : console.log(line));
  say(`Switchyard demo: Sales publishes ${EVENTS} OrderPlaced events to ${SINGLE} (1 instance) and ${SCALED} (a distributor + ${WORKERS.length} worker processes).`);
  say(`The ${SCALED} workers subscribe with the distributor's address; it forwards each event to the next ready worker.`);
  say(`"got" counts the events the distributor forwarded to a worker, "ready" the ready messages it sent back (one per event it finished).`);
  say(`Embedded SQLite transport, subscription store and distributor state at ${db}\n`);

  const summary: PubSubSummary = { published: 0, subscribers: {} };
  const seen = new Map<string, Set<number>>();
  for (const endpoint of [SCALED, SINGLE]) {
    summary.subscribers[endpoint] = { handled: 0, duplicates: 0, missing: EVENTS, perInstance: {} };
    seen.set(endpoint, new Set());
  }
  const count = (r: Record<string, unknown>) => {
    if (typeof r.handled !== 'number' || typeof r.endpoint !== 'string') return;
    const s = summary.subscribers[r.endpoint];
    const ids = seen.get(r.endpoint);
    if (!s || !ids) return;
    if (ids.has(r.handled)) s.duplicates += 1;
    ids.add(r.handled);
    s.handled = ids.size;
    s.missing = EVENTS - ids.size;
    const instance = String(r.instance);
    s.perInstance[instance] = (s.perInstance[instance] ?? 0) + 1;
    say(`  event ${String(r.handled).padStart(2)} handled by ${r.endpoint.padEnd(8)} (${instance})`);
  };

  const processes: RoleProcess[] = [];
  const started = Date.now();
  const goFile = path.join(folder, 'publish.go');
  try {
    const distributor = demo.spawn('distributor', 'distributor', [db], `${SCALED} distributor`);
    processes.push(distributor);
    distributor.onReport((r: Report) => {
      if (r.distributorStatus) say(`  ${liveStatusLine(r.distributorStatus as LiveStatus)}`);
    });
    await distributor.waitFor((r) => r.ready !== undefined);
    const workers = WORKERS.map((d, i) => demo.spawn('distributor', 'worker', [JSON.stringify({ db, discriminator: d, workMs: [5, 30, 60][i] ?? 5 } satisfies WorkerConfig)], `${SCALED}@${d}`));
    const billing: SubscriberConfig = { db, mode: 'shared', endpoint: SINGLE, discriminator: 'b1', workMs: 5 };
    const single = demo.spawn('distributor', 'subscriber', [JSON.stringify(billing)], `${SINGLE}@b1`);
    const publisherConfig: PublisherConfig = { db, mode: 'shared', discriminator: 'p1', first: 1, count: EVENTS, expectSubscriptions: 2, goFile };
    const publisher = demo.spawn('distributor', 'publisher', [JSON.stringify(publisherConfig)], `${PUBLISHER}@p1`);
    for (const role of [...workers, single]) role.onReport(count);
    processes.push(...workers, single, publisher);
    await Promise.all([...workers, single, publisher].map((p) => p.waitFor((r) => r.ready !== undefined)));
    if (existsSync(goFile)) rmSync(goFile);
    writeFileSync(goFile, '');
    const published = await publisher.waitFor((r) => typeof r.published === 'number');
    summary.published = published.published as number;
    await waitFor(() => [...seen.values()].every((ids) => ids.size === EVENTS), { timeoutMs: 60_000, what: 'every subscriber to handle every event' });
  } finally {
    await Promise.all(processes.reverse().map((p) => p.stop()));
  }

  say(`\n${summary.published} events published; ${Date.now() - started} ms`);
  say(`\n  ${'instance'.padEnd(18)} events`);
  for (const [endpoint, s] of Object.entries(summary.subscribers)) {
    for (const [instance, n] of Object.entries(s.perInstance).sort()) say(`  ${instance.padEnd(18)} ${String(n).padStart(6)}`);
    say(`  ${`${endpoint} total`.padEnd(18)} ${String(s.handled).padStart(6)}   duplicates ${s.duplicates}, missing ${s.missing}`);
  }
  say(`\n${SCALED}'s workers differ in speed (5, 30, 60 ms per event): the faster ones report ready more often and get more.`);
  if (json) console.log(JSON.stringify(summary));
  const ok = Object.values(summary.subscribers).every((s) => s.duplicates === 0 && s.missing === 0);
  if (!ok || summary.published !== EVENTS) process.exitCode = 1;
}
