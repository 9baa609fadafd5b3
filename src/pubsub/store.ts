/**
 * The subscription store: which logical endpoints subscribe to which event types, and where
 * their copies go. Every instance of a publisher reads and writes the same store, so no instance
 * holds subscriptions the others cannot see.
 *
 * One row per (message type, subscriber endpoint, instance):
 * - `instance` is '' when the endpoint subscribes as a whole, with an address all its instances
 *   share (its shared queue with competing consumers, or a distributor). All its instances write
 *   the same row, so a re-subscribe with a new address replaces the old one.
 * - `instance` is the subscriber's discriminator when it subscribes with its own instance queue
 *   (sender-side distribution): every instance keeps its own row, and publishers send each event
 *   to one of them.
 * An endpoint is subscribed to a type either as a whole or per instance, never both: storing one
 * kind removes the other kind's rows for that (type, endpoint). The latest subscribe decides.
 */
import type { Address, EndpointName } from '../core/identity.js';

/** The endpoint as a whole (shared address), as opposed to one of its instances. */
export const WHOLE_ENDPOINT = '';

export interface SubscriptionKey {
  /** The event type subscribed to (a parent type matches its child events). */
  readonly messageType: string;
  /** The subscriber's logical endpoint. */
  readonly endpoint: EndpointName;
  /** `WHOLE_ENDPOINT` ('') or the discriminator of the instance that subscribed with its own queue. */
  readonly instance: string;
}

export interface Subscription extends SubscriptionKey {
  /** Where copies for this subscription go. */
  readonly address: Address;
}

export interface SubscriptionStore {
  /** Adds or replaces the subscription with this key (see the file header). Idempotent. */
  subscribe(subscription: Subscription): Promise<void>;
  /** Removes the subscription with this key; removing one that does not exist does nothing. */
  unsubscribe(key: SubscriptionKey): Promise<void>;
  /** Every subscription to any of `messageTypes`, in no particular order. */
  subscribersOf(messageTypes: readonly string[]): Promise<Subscription[]>;
  /** Releases connections. Idempotent. */
  close(): Promise<void>;
}
