/**
 * Publish/subscribe demo roles, each one process (`switchyard demo-role pubsub <role> <json>`):
 * a publisher instance of `Sales` and a subscriber instance of any logical endpoint, in either
 * scale-out mode: `shared` (competing consumers on the endpoint's queue) or `mapped`
 * (sender-side distribution: instance queues listed in an instance-mapping file).
 * Roles report to the parent with JSON lines (processes.ts). Reusable by other scenarios.
 */
import { existsSync } from 'node:fs';
import { createEndpoint, defineEvent, handle, lineLogger, type Endpoint, type EndpointFeature, type EndpointOptions, type Logger } from '../../index.js';
import { subscriptions } from '../../pubsub/subscriptions.js';
import { instanceMapping } from '../../scaleout/instance-mapping.js';
import { sqliteSubscriptionStore } from '../../sqlite/subscription-store.js';
import { sqliteTransport } from '../../sqlite/index.js';
import { onShutdown } from '../signals.js';
import { report } from './processes.js';

export type ScaleOutMode = 'shared' | 'mapped';

export const PUBLISHER = 'Sales';
export const OrderPlaced = defineEvent<{ id: number; publisher: string }>('Sales.OrderPlaced');

export interface PublisherConfig {
  db: string;
  mode: ScaleOutMode;
  discriminator: string;
  /** The instance-mapping file (mapped mode). */
  mappingFile?: string;
  /** Publishes ids first .. first + count - 1. */
  first: number;
  count: number;
  /** Publishing waits until the store holds this many subscriptions to OrderPlaced... */
  expectSubscriptions: number;
  /** ...and until this file exists (the parent creates it once every role is running). */
  goFile: string;
}

export interface SubscriberConfig {
  db: string;
  mode: ScaleOutMode;
  endpoint: string;
  discriminator: string;
  mappingFile?: string;
  /** Simulated work per event, so competing consumers share the load visibly. */
  workMs: number;
}

/** Problems go to stderr (the parent shows them); stdout carries reports only. */
const roleLogger = (name: string): Logger => lineLogger((level, line) => void (level !== 'info' && process.stderr.write(`[${name}] ${line}\n`)));

/** The queues, identity and features an instance needs in each scale-out mode. */
function scaleOut(mode: ScaleOutMode, discriminator: string, mappingFile: string | undefined, pubsub: (mapping?: ReturnType<typeof instanceMapping>) => EndpointFeature) {
  const instance = { discriminator };
  if (mode === 'shared') return { instance, features: [pubsub()] } satisfies Partial<EndpointOptions>;
  if (!mappingFile) throw new Error('mapped mode needs the instance-mapping file');
  const mapping = instanceMapping({ path: mappingFile, pollMs: 250 });
  return { instance, queues: { shared: false, instance: true }, features: [mapping, pubsub(mapping)] } satisfies Partial<EndpointOptions>;
}

function runUntilSignalled(endpoint: Endpoint): void {
  onShutdown((force) => endpoint.stop({ signal: force }));
}

export async function publisherRole(config: PublisherConfig): Promise<void> {
  const store = sqliteSubscriptionStore({ path: config.db });
  const name = `${PUBLISHER}@${config.discriminator}`;
  const endpoint = createEndpoint({
    name: PUBLISHER,
    transport: sqliteTransport({ path: config.db }),
    logger: roleLogger(name),
    ...scaleOut(config.mode, config.discriminator, config.mappingFile, (mapping) =>
      subscriptions({ store, publishes: [OrderPlaced], instanceMapping: mapping, cacheMs: 1000 }),
    ),
  });
  await endpoint.start();
  runUntilSignalled(endpoint);
  report({ ready: name });
  // The store is the truth every publisher instance shares; wait for the subscribers in it.
  while (!existsSync(config.goFile) || (await store.subscribersOf([OrderPlaced.typeName])).length < config.expectSubscriptions) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  for (let id = config.first; id < config.first + config.count; id++) {
    await endpoint.publish(OrderPlaced, { id, publisher: name });
  }
  report({ published: config.count, by: name });
}

export async function subscriberRole(config: SubscriberConfig): Promise<void> {
  const instance = `${config.endpoint}@${config.discriminator}`;
  const endpoint = createEndpoint({
    name: config.endpoint,
    transport: sqliteTransport({ path: config.db }),
    logger: roleLogger(instance),
    routes: { 'Sales.*': PUBLISHER },
    // One at a time: a visible share of the work for every instance (competing consumers are not fair by design).
    concurrency: 1,
    handlers: [
      handle(OrderPlaced, async (event) => {
        if (config.workMs > 0) await new Promise((resolve) => setTimeout(resolve, config.workMs));
        report({ handled: event.id, endpoint: config.endpoint, instance });
      }),
    ],
    ...scaleOut(config.mode, config.discriminator, config.mappingFile, (mapping) => subscriptions({ instanceMapping: mapping })),
  });
  await endpoint.start();
  runUntilSignalled(endpoint);
  report({ ready: instance });
}

/** A role that fails exits, so the parent sees it at once instead of waiting on a live process. */
async function exitOnFailure(role: () => Promise<void>): Promise<void> {
  try {
    await role();
  } catch (error) {
    process.stderr.write(`role failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  }
}

/** `roles` entries take the one JSON argument the scenario passes. */
export const pubsubRoles = {
  publisher: ([json]: string[]) => exitOnFailure(() => publisherRole(JSON.parse(json!) as PublisherConfig)),
  subscriber: ([json]: string[]) => exitOnFailure(() => subscriberRole(JSON.parse(json!) as SubscriberConfig)),
};
