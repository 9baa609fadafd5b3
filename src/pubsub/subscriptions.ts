/**
 * `subscriptions(options)`: message-driven publish/subscribe as an endpoint feature.
 *
 * Subscriber side: at start (feature.start, after receiving began) the endpoint subscribes to
 * every event it handles: it sends a subscribe message to the publisher, found by the endpoint's
 * routes (events are routed to the endpoint that publishes them, like commands to their owner),
 * naming its public address. With sender-side distribution each instance subscribes with its
 * own queue, to every mapped instance of the publisher. Transports with native pub/sub bind
 * the queue instead and send nothing.
 *
 * Publisher side: subscribe / unsubscribe messages are validated (the event type must be known
 * and published here: listed in `publishes`, or, without that list, routed to this endpoint) and
 * written to the shared store; anything wrong throws, so the message goes to the error queue
 * with the reason. `publishDestinations` gives one address per logical subscriber (fanout.ts).
 */
import { systemClock, type Clock } from '../core/clock.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { EndpointFeature, FeatureHost } from '../core/feature.js';
import { sharedAddress } from '../core/identity.js';
import { enclosedTypes, type EventDefinition } from '../core/messages.js';
import type { InstanceMapping } from '../scaleout/instance-mapping.js';
import { PublishFanout } from './fanout.js';
import { readSubscriptionRequest, subscriptionRequestHeaders, type SubscriptionIntent } from './protocol.js';
import type { SubscriptionStore } from './store.js';

export interface SubscriptionsOptions {
  /** Where a publisher keeps its subscribers; every instance of the publisher uses the same store. Publishers only. */
  store?: SubscriptionStore;
  /** The events this endpoint publishes (and their parents). Without it, the events its routes send to itself. */
  publishes?: readonly EventDefinition[];
  /** Subscribe at start to every event the endpoint handles (default true). */
  autoSubscribe?: boolean;
  /** How long a publisher reuses what it read from the store (default 5000 ms; 0 reads on every publish). */
  cacheMs?: number;
  /** Sender-side distribution: the same instanceMapping() feature passed in `features`. */
  instanceMapping?: InstanceMapping;
  /** Time source for the cache (tests). */
  clock?: Clock;
}

export interface Subscriptions extends EndpointFeature {
  /** Subscribes this endpoint to `event` now (it needs a handler for it to do anything useful). */
  subscribe(event: EventDefinition): Promise<void>;
  /** Withdraws this endpoint's (this instance's, with sender-side distribution) subscription to `event`. */
  unsubscribe(event: EventDefinition): Promise<void>;
}

function optionError(problem: string, fix: string): SwitchyardError {
  return new SwitchyardError(ErrorCodes.CONFIG, `subscriptions(): ${problem}.`, { fix });
}

/**
 * Subscriber side: binds the public address where the broker routes events, or sends a
 * subscribe/unsubscribe message to every instance of the event's publisher.
 */
async function sendSubscriptionRequest(h: FeatureHost, intent: SubscriptionIntent, event: EventDefinition, instanceMapping: InstanceMapping | undefined): Promise<void> {
  if (event?.kind !== 'event') throw new SwitchyardError(ErrorCodes.WRONG_INTENT, `Cannot ${intent} to ${String(event?.typeName)}: only events are published.`, { fix: 'Subscribe to events defined with defineEvent().' });
  if (h.transport.capabilities.nativePubSub) {
    if (intent === 'subscribe') await h.transport.subscribe?.(h.publicAddress, event.typeName);
    else await h.transport.unsubscribe?.(h.publicAddress, event.typeName);
    return;
  }
  const publisher = h.routeOf(event.typeName);
  if (publisher === undefined) {
    throw new SwitchyardError(ErrorCodes.NO_ROUTE, `Endpoint ${h.identity.endpoint} cannot ${intent} to ${event.typeName}: no route names the endpoint that publishes it.`, {
      fix: `Add routes: { '${event.typeName}': '<Publisher>' } (or '${event.typeName.split('.')[0]}.*') to ${h.identity.endpoint}'s options, or turn off autoSubscribe and subscribe explicitly.`,
    });
  }
  const message = h.controlMessage(intent, subscriptionRequestHeaders(event.typeName, h.identity, h.publicAddress));
  // Every mapped publisher instance hears it (each then clears its own cache); the store makes repeats harmless.
  const destinations = instanceMapping?.addressesOf(publisher) ?? [sharedAddress(publisher)];
  // The publisher may not have started yet: its queue then holds the request until it does.
  for (const destination of destinations) await h.transport.createQueue(destination);
  await h.dispatch(destinations.map((destination) => ({ destination, message })));
}

/**
 * Publisher side: a subscribe or unsubscribe is refused (to the error queue, with the reason)
 * unless this endpoint has a store and publishes the event: listed in `publishes`, or, without
 * that list, routed here, and known as an event.
 */
function checkPublisher(h: FeatureHost, intent: SubscriptionIntent, messageType: string, endpoint: string, hasStore: boolean, published: ReadonlySet<string> | undefined): void {
  const here = h.identity.endpoint;
  const refuse = (code: typeof ErrorCodes.NOT_PUBLISHER | typeof ErrorCodes.UNKNOWN_MESSAGE_TYPE, problem: string, fix: string) =>
    new SwitchyardError(code, `${endpoint} asked ${here} to ${intent} to ${messageType}, but ${problem}.`, { fix });
  if (!hasStore) {
    throw refuse(ErrorCodes.NOT_PUBLISHER, `${here} has no subscription store, so it publishes nothing`, `Route ${messageType} to its publisher in ${endpoint}'s routes, or give ${here} subscriptions({ store }).`);
  }
  const publishesHere = published ? published.has(messageType) : h.routeOf(messageType) === here;
  if (!publishesHere) {
    const why = published ? `it is not in its \`publishes\` list (${[...published].join(', ')})` : `its routes send ${messageType} to ${h.routeOf(messageType) ?? 'no endpoint'}`;
    throw refuse(ErrorCodes.NOT_PUBLISHER, `${here} does not publish it: ${why}`, `Route ${messageType} to its publisher in ${endpoint}'s routes, or add it to ${here}'s subscriptions({ publishes }).`);
  }
  // Routed here by a namespace route, yet not an event this endpoint knows: a typo or a stale subscriber.
  if (h.registry.get(messageType)?.kind !== 'event') {
    throw refuse(ErrorCodes.UNKNOWN_MESSAGE_TYPE, `${here} knows no event of that name`, `List it in subscriptions({ publishes: [...] }) or \`messages\` on ${here}, or fix the type name in ${endpoint}.`);
  }
}

export function subscriptions(options: SubscriptionsOptions = {}): Subscriptions {
  const cacheMs = options.cacheMs ?? 5000;
  if (!Number.isInteger(cacheMs) || cacheMs < 0) throw optionError(`\`cacheMs\` is ${String(options.cacheMs)}`, 'Use a whole number of milliseconds, 0 or more (default 5000).');
  for (const event of options.publishes ?? []) {
    if (event?.kind !== 'event') throw optionError(`\`publishes\` lists ${String(event?.typeName)}, which is not an event`, 'List events defined with defineEvent().');
  }
  const { store } = options;
  const published = options.publishes ? new Set(options.publishes.flatMap((e) => enclosedTypes(e))) : undefined;
  const fanout = store
    ? new PublishFanout({ store, cacheMs, clock: options.clock ?? systemClock, addressesOf: options.instanceMapping?.addressesOf })
    : undefined;
  let host: FeatureHost | undefined;

  const requireHost = (action: string): FeatureHost => {
    if (!host) {
      throw new SwitchyardError(ErrorCodes.NOT_RUNNING, `Cannot ${action}: the endpoint using this subscriptions() feature has not started.`, {
        fix: 'Pass the feature in createEndpoint({ features }) and await endpoint.start() first.',
      });
    }
    return host;
  };

  const request = (intent: SubscriptionIntent, event: EventDefinition) => sendSubscriptionRequest(requireHost(`${intent} to ${event?.typeName}`), intent, event, options.instanceMapping);

  // An event nobody subscribed to is gone once published; say so once per type, not per publish.
  const unheard = new Set<string>();
  const warnNoSubscriber = (h: FeatureHost, typeName: string) => {
    if (unheard.has(typeName)) return;
    unheard.add(typeName);
    h.logger.warn(`published ${typeName} but no endpoint subscribes to it, so no one receives it (said once per type; subscribers that start later get later events)`);
  };

  return {
    name: 'subscriptions',
    controlKinds: ['subscribe', 'unsubscribe'],
    // Also with autoSubscribe: false: the application then subscribes with subscribe(event).
    deliversEvents: true,
    async setup(h) {
      host = h;
      for (const event of options.publishes ?? []) h.registry.add(event);
    },
    async start(h) {
      if (options.autoSubscribe === false) return;
      for (const event of h.handledEvents) await request('subscribe', event);
      if (h.handledEvents.length > 0) h.logger.info(`subscribed to ${h.handledEvents.map((e) => e.typeName).join(', ')} with address ${h.publicAddress}`);
    },
    async stop() {
      await store?.close();
    },
    async handleControl({ message }) {
      const h = requireHost('handle a subscription message');
      const { intent, subscription } = readSubscriptionRequest(message.headers);
      const { messageType, endpoint } = subscription;
      checkPublisher(h, intent, messageType, endpoint, store !== undefined, published);
      if (!store || !fanout) return []; // (checkPublisher refused already: narrows the types)
      if (intent === 'subscribe') await store.subscribe(subscription);
      else await store.unsubscribe(subscription);
      fanout.invalidate();
      h.logger.info(`${intent}d: ${endpoint}${subscription.instance ? ` instance ${subscription.instance}` : ''} at ${subscription.address} to ${messageType}`);
      return [];
    },
    async publishDestinations(types) {
      if (!fanout) {
        throw new SwitchyardError(ErrorCodes.CONFIG, `Cannot publish ${types[0] ?? 'an event'}: this endpoint's subscriptions() feature has no store.`, {
          fix: 'Give the publishing endpoint subscriptions({ store }); every instance of it must use the same store.',
        });
      }
      const destinations = await fanout.destinations(types);
      if (destinations.length === 0) warnNoSubscriber(requireHost('publish'), types[0]!);
      return destinations;
    },
    subscribe: (event) => request('subscribe', event),
    unsubscribe: (event) => request('unsubscribe', event),
  };
}
