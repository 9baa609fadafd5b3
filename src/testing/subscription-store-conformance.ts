/**
 * The subscription store conformance suite: every store's test file is one call,
 *   subscriptionStoreConformance('sqlite', async () => ({ create: () => sqliteSubscriptionStore({ path }), cleanup }));
 * `create` returns a new store on the same storage each time, as separate publisher instances would.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Subscription, SubscriptionStore } from '../pubsub/store.js';
import { WHOLE_ENDPOINT } from '../pubsub/store.js';

export interface SubscriptionStoreFixture {
  /** A new store over the same storage as every other store of this fixture. */
  create(): SubscriptionStore;
  cleanup(): Promise<void>;
}

const whole = (messageType: string, endpoint: string, address = endpoint): Subscription => ({ messageType, endpoint, instance: WHOLE_ENDPOINT, address });
const perInstance = (messageType: string, endpoint: string, instance: string): Subscription => ({
  messageType,
  endpoint,
  instance,
  address: `${endpoint}@${instance}`,
});
const sorted = (rows: Subscription[]) =>
  rows.map(({ messageType, endpoint, instance, address }) => ({ messageType, endpoint, instance, address })).sort((a, b) =>
    `${a.messageType}|${a.endpoint}|${a.instance}`.localeCompare(`${b.messageType}|${b.endpoint}|${b.instance}`),
  );

export function subscriptionStoreConformance(name: string, makeFixture: () => Promise<SubscriptionStoreFixture>): void {
  describe(`subscription store conformance: ${name}`, () => {
    let fixture: SubscriptionStoreFixture;
    let stores: SubscriptionStore[];
    const open = () => {
      const store = fixture.create();
      stores.push(store);
      return store;
    };

    beforeEach(async () => {
      fixture = await makeFixture();
      stores = [];
    });
    afterEach(async () => {
      for (const store of stores) await store.close();
      await fixture.cleanup();
    });

    it('returns the subscribers of the requested types only', async () => {
      const store = open();
      await store.subscribe(whole('Sales.OrderPlaced', 'Billing'));
      await store.subscribe(whole('Sales.OrderPlaced', 'Shipping'));
      await store.subscribe(whole('Sales.OrderCancelled', 'Billing'));
      expect(sorted(await store.subscribersOf(['Sales.OrderPlaced']))).toEqual([whole('Sales.OrderPlaced', 'Billing'), whole('Sales.OrderPlaced', 'Shipping')]);
      expect(sorted(await store.subscribersOf(['Sales.Other']))).toEqual([]);
      expect(await store.subscribersOf([])).toEqual([]);
    });

    it('returns subscriptions to every enclosed type in one call (polymorphism)', async () => {
      const store = open();
      await store.subscribe(whole('Sales.OrderEvent', 'Audit'));
      await store.subscribe(whole('Sales.OrderPlaced', 'Billing'));
      const rows = sorted(await store.subscribersOf(['Sales.OrderPlaced', 'Sales.OrderEvent']));
      expect(rows.map((r) => r.endpoint)).toEqual(['Audit', 'Billing']);
    });

    it('stores a repeated subscribe once (idempotent)', async () => {
      const store = open();
      for (let i = 0; i < 3; i++) await store.subscribe(whole('Sales.OrderPlaced', 'Billing'));
      expect(await store.subscribersOf(['Sales.OrderPlaced'])).toHaveLength(1);
    });

    it('replaces the address when an endpoint re-subscribes as a whole with a new one', async () => {
      const store = open();
      await store.subscribe(whole('Sales.OrderPlaced', 'Billing', 'Billing'));
      await store.subscribe(whole('Sales.OrderPlaced', 'Billing', 'Billing.v2'));
      expect(sorted(await store.subscribersOf(['Sales.OrderPlaced']))).toEqual([whole('Sales.OrderPlaced', 'Billing', 'Billing.v2')]);
    });

    it('keeps one row per instance when instances subscribe with their own queues', async () => {
      const store = open();
      await store.subscribe(perInstance('Sales.OrderPlaced', 'Shipping', 's1'));
      await store.subscribe(perInstance('Sales.OrderPlaced', 'Shipping', 's2'));
      await store.subscribe(perInstance('Sales.OrderPlaced', 'Shipping', 's1'));
      expect(sorted(await store.subscribersOf(['Sales.OrderPlaced']))).toEqual([
        perInstance('Sales.OrderPlaced', 'Shipping', 's1'),
        perInstance('Sales.OrderPlaced', 'Shipping', 's2'),
      ]);
    });

    it('lets the latest kind win: a whole-endpoint subscribe removes per-instance rows and the reverse', async () => {
      const store = open();
      await store.subscribe(perInstance('Sales.OrderPlaced', 'Shipping', 's1'));
      await store.subscribe(perInstance('Sales.OrderPlaced', 'Shipping', 's2'));
      await store.subscribe(perInstance('Sales.OrderCancelled', 'Shipping', 's1'));
      await store.subscribe(whole('Sales.OrderPlaced', 'Shipping'));
      expect(sorted(await store.subscribersOf(['Sales.OrderPlaced']))).toEqual([whole('Sales.OrderPlaced', 'Shipping')]);
      expect(await store.subscribersOf(['Sales.OrderCancelled'])).toHaveLength(1);
      await store.subscribe(perInstance('Sales.OrderPlaced', 'Shipping', 's3'));
      expect(sorted(await store.subscribersOf(['Sales.OrderPlaced']))).toEqual([perInstance('Sales.OrderPlaced', 'Shipping', 's3')]);
    });

    it('unsubscribes one key and ignores unknown keys', async () => {
      const store = open();
      await store.subscribe(perInstance('Sales.OrderPlaced', 'Shipping', 's1'));
      await store.subscribe(perInstance('Sales.OrderPlaced', 'Shipping', 's2'));
      await store.subscribe(whole('Sales.OrderPlaced', 'Billing'));
      await store.unsubscribe({ messageType: 'Sales.OrderPlaced', endpoint: 'Shipping', instance: 's1' });
      await store.unsubscribe({ messageType: 'Sales.OrderPlaced', endpoint: 'Nobody', instance: WHOLE_ENDPOINT });
      await store.unsubscribe(whole('Sales.OrderPlaced', 'Billing'));
      expect(sorted(await store.subscribersOf(['Sales.OrderPlaced']))).toEqual([perInstance('Sales.OrderPlaced', 'Shipping', 's2')]);
    });

    it('shares subscriptions between store instances on the same storage (scaled-out publishers)', async () => {
      const a = open();
      const b = open();
      await a.subscribe(whole('Sales.OrderPlaced', 'Billing'));
      expect(await b.subscribersOf(['Sales.OrderPlaced'])).toHaveLength(1);
      await b.unsubscribe(whole('Sales.OrderPlaced', 'Billing'));
      expect(await a.subscribersOf(['Sales.OrderPlaced'])).toHaveLength(0);
    });

    it('closes twice without error', async () => {
      const store = open();
      await store.subscribe(whole('Sales.OrderPlaced', 'Billing'));
      await store.close();
      await store.close();
    });
  });
}
