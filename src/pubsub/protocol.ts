/**
 * The subscribe / unsubscribe control messages (message-driven pub/sub). A subscriber sends one
 * to its publisher's address; its headers say what and who:
 *   sy1-intent               subscribe | unsubscribe
 *   sy1-subscription-type    the event type name
 *   sy1-subscriber-endpoint  the subscriber's logical endpoint
 *   sy1-subscriber-address   where copies go (the subscriber's public address)
 *   sy1-subscriber-instance  the subscribing instance's discriminator
 * Headers are untrusted: the publisher validates each before it touches the store.
 */
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import { Headers, type HeaderMap } from '../core/headers.js';
import { checkAddress, checkName, instanceAddress, type InstanceIdentity } from '../core/identity.js';
import { WHOLE_ENDPOINT, type Subscription } from './store.js';

export const SubscriptionHeaders = {
  MessageType: 'sy1-subscription-type',
  SubscriberEndpoint: 'sy1-subscriber-endpoint',
  SubscriberAddress: 'sy1-subscriber-address',
  SubscriberInstance: 'sy1-subscriber-instance',
} as const;

export type SubscriptionIntent = 'subscribe' | 'unsubscribe';

export function subscriptionRequestHeaders(messageType: string, identity: InstanceIdentity, address: string): HeaderMap {
  return {
    [SubscriptionHeaders.MessageType]: messageType,
    [SubscriptionHeaders.SubscriberEndpoint]: identity.endpoint,
    [SubscriptionHeaders.SubscriberAddress]: address,
    [SubscriptionHeaders.SubscriberInstance]: identity.discriminator,
  };
}

export interface SubscriptionRequest {
  readonly intent: SubscriptionIntent;
  readonly subscription: Subscription;
}

function header(headers: HeaderMap, name: string, what: string, check: (kind: string, value: unknown) => string = checkName): string {
  const value = headers[name];
  try {
    return check(what, value);
  } catch {
    throw new SwitchyardError(ErrorCodes.INVALID_HEADER, `The ${headers[Headers.Intent] ?? 'subscription'} message has ${value === undefined ? 'no' : `an invalid (${JSON.stringify(value.slice(0, 200))})`} ${name} header (${what}).`, {
      fix: 'Subscribe with a Switchyard endpoint (it sets these headers); find the sender from the originating-endpoint header.',
    });
  }
}

/**
 * Reads a subscribe / unsubscribe message. The subscription is per instance when the subscriber
 * gave its own instance queue as the address, otherwise for the endpoint as a whole (store.ts).
 */
export function readSubscriptionRequest(headers: HeaderMap): SubscriptionRequest {
  const intent = headers[Headers.Intent];
  if (intent !== 'subscribe' && intent !== 'unsubscribe') {
    throw new SwitchyardError(ErrorCodes.INVALID_HEADER, `Expected a subscribe or unsubscribe message, got intent ${JSON.stringify(intent)}.`, {
      fix: 'This is a bug in the endpoint wiring: only subscribe/unsubscribe messages belong to the subscriptions feature.',
    });
  }
  const messageType = headers[SubscriptionHeaders.MessageType];
  if (typeof messageType !== 'string' || messageType.length === 0 || messageType.length > 200) {
    throw new SwitchyardError(ErrorCodes.INVALID_HEADER, `The ${intent} message has no valid ${SubscriptionHeaders.MessageType} header.`, {
      fix: 'Subscribe with a Switchyard endpoint (it sets this header); find the sender from the originating-endpoint header.',
    });
  }
  const endpoint = header(headers, SubscriptionHeaders.SubscriberEndpoint, 'subscriber endpoint');
  const address = header(headers, SubscriptionHeaders.SubscriberAddress, 'subscriber address', checkAddress);
  const discriminator = header(headers, SubscriptionHeaders.SubscriberInstance, 'subscriber instance');
  const instance = address === instanceAddress(endpoint, discriminator) ? discriminator : WHOLE_ENDPOINT;
  return { intent, subscription: { messageType, endpoint, address, instance } };
}
