/**
 * In-process subscription store: publisher instances in one process (tests, examples) share it
 * by sharing the object. `close()` keeps the data, like closing a connection to a database.
 */
import type { Subscription, SubscriptionKey, SubscriptionStore } from './store.js';
import { WHOLE_ENDPOINT } from './store.js';

const keyOf = (s: SubscriptionKey) => JSON.stringify([s.messageType, s.endpoint, s.instance]);

export function memorySubscriptionStore(): SubscriptionStore {
  const rows = new Map<string, Subscription>();
  return {
    async subscribe(subscription) {
      const { messageType, endpoint, instance, address } = subscription;
      const whole = instance === WHOLE_ENDPOINT;
      for (const [key, row] of rows) {
        const otherKind = whole ? row.instance !== WHOLE_ENDPOINT : row.instance === WHOLE_ENDPOINT;
        if (row.messageType === messageType && row.endpoint === endpoint && otherKind) rows.delete(key);
      }
      rows.set(keyOf(subscription), { messageType, endpoint, instance, address });
    },
    async unsubscribe(key) {
      rows.delete(keyOf(key));
    },
    async subscribersOf(messageTypes) {
      const wanted = new Set(messageTypes);
      return [...rows.values()].filter((row) => wanted.has(row.messageType));
    },
    async close() {},
  };
}
