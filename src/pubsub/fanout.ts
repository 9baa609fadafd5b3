/**
 * Where one published event goes: one address per logical subscriber endpoint.
 *
 * The store is read through a short cache (per set of enclosed types), so a scaled-out publisher
 * does not query it for every publish; a subscription change handled by this instance clears
 * the cache at once, one handled by another publisher instance is seen after `cacheMs`.
 * Subscriptions are grouped by logical endpoint (a subscription to a parent type and one to
 * the child type give that endpoint one copy). An endpoint listed in the instance mapping gets
 * its copy at one of its mapped instances, otherwise at one of the addresses it subscribed with;
 * either way round-robin, with counters of their own (sends keep separate ones).
 */
import type { Clock } from '../core/clock.js';
import type { Address, EndpointName } from '../core/identity.js';
import { RoundRobin } from '../scaleout/round-robin.js';
import type { Subscription, SubscriptionStore } from './store.js';

export interface FanoutOptions {
  readonly store: SubscriptionStore;
  readonly cacheMs: number;
  readonly clock: Clock;
  /** Instance queues of mapped endpoints (sender-side distribution). */
  readonly addressesOf?: (endpoint: EndpointName) => readonly Address[] | undefined;
}

export class PublishFanout {
  private readonly cache = new Map<string, { readAt: number; byEndpoint: Map<EndpointName, Address[]> }>();
  private readonly publishes = new RoundRobin();

  constructor(private readonly options: FanoutOptions) {}

  async destinations(enclosedTypes: readonly string[]): Promise<Address[]> {
    const byEndpoint = await this.subscribers(enclosedTypes);
    const destinations: Address[] = [];
    for (const [endpoint, subscribed] of byEndpoint) {
      const candidates = this.options.addressesOf?.(endpoint) ?? subscribed;
      const address = this.publishes.next(endpoint, candidates);
      if (address !== undefined) destinations.push(address);
    }
    return destinations;
  }

  invalidate(): void {
    this.cache.clear();
  }

  private async subscribers(types: readonly string[]): Promise<Map<EndpointName, Address[]>> {
    const key = types.join(',');
    const now = this.options.clock.now();
    const cached = this.cache.get(key);
    if (cached && now - cached.readAt < this.options.cacheMs) return cached.byEndpoint;
    const byEndpoint = groupByEndpoint(await this.options.store.subscribersOf(types));
    this.cache.set(key, { readAt: now, byEndpoint });
    return byEndpoint;
  }
}

/** Distinct addresses per endpoint, sorted so every publisher instance rotates in the same order. */
function groupByEndpoint(subscriptions: readonly Subscription[]): Map<EndpointName, Address[]> {
  const sets = new Map<EndpointName, Set<Address>>();
  for (const s of subscriptions) {
    let set = sets.get(s.endpoint);
    if (!set) sets.set(s.endpoint, (set = new Set()));
    set.add(s.address);
  }
  return new Map([...sets].map(([endpoint, set]) => [endpoint, [...set].sort()]));
}
