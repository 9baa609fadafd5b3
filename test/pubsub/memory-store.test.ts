import { memorySubscriptionStore } from '../../src/pubsub/memory-store.js';
import { subscriptionStoreConformance } from '../../src/testing/subscription-store-conformance.js';

subscriptionStoreConformance('memory', async () => {
  const store = memorySubscriptionStore();
  // Store objects over one storage: in memory, the storage is the object itself.
  return { create: () => store, cleanup: async () => undefined };
});
