/**
 * Turns send / sendLocal / publish / reply calls into Outgoing transport messages, enforcing
 * the messaging rules: commands are sent (never published), events are published (never sent),
 * replies go to the incoming reply-to address.
 */
import type { PublishOptions, SendOptions } from '../core/context.js';
import { buildMessage, type CausationSource, type MessageLimits } from '../core/envelope.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { EndpointFeature } from '../core/feature.js';
import { Headers, type HeaderMap, type Intent } from '../core/headers.js';
import { checkAddress, checkName, sharedAddress, type Address, type EndpointName, type InstanceIdentity } from '../core/identity.js';
import { enclosedTypes, type MessageDefinition, type MessageRegistry } from '../core/messages.js';
import type { Router } from '../core/routing.js';
import type { Outgoing, Transport } from '../core/transport.js';
import { validateBody } from '../core/validation.js';

export interface OutgoingDeps {
  identity: InstanceIdentity;
  transport: Transport;
  registry: MessageRegistry;
  router: Router;
  features: readonly EndpointFeature[];
  limits: MessageLimits;
  publicAddress(): Address;
}

function wrongIntent(definition: MessageDefinition, attempted: string, instead: string): SwitchyardError {
  return new SwitchyardError(
    ErrorCodes.WRONG_INTENT,
    `Cannot ${attempted} ${definition.typeName}: it is ${definition.kind === 'event' ? 'an event' : `a ${definition.kind}`}.`,
    { fix: instead },
  );
}

function deliverAtOf(options: SendOptions | undefined, transport: Transport): number | undefined {
  if (!options) return undefined;
  const at =
    options.deliverAt !== undefined
      ? typeof options.deliverAt === 'number'
        ? options.deliverAt
        : options.deliverAt.getTime()
      : options.delayMs !== undefined
        ? Date.now() + options.delayMs
        : undefined;
  if (at === undefined) return undefined;
  if (!Number.isFinite(at)) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `deliverAt/delayMs is not a valid time (${String(options.deliverAt ?? options.delayMs)}).`, {
      fix: 'Pass a Date, epoch milliseconds, or a number of milliseconds.',
    });
  }
  if (!transport.capabilities.delayedDelivery) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `The ${transport.name} transport cannot delay delivery, so deliverAt/delayMs cannot be used.`, {
      fix: 'Use a transport with delayed delivery (sqlite, memory, rabbitmq) or send without a delay.',
    });
  }
  return at;
}

function userHeaders(options: SendOptions | undefined): HeaderMap | undefined {
  if (!options?.headers) return undefined;
  for (const key of Object.keys(options.headers)) {
    if (key.startsWith('sy1-')) {
      throw new SwitchyardError(ErrorCodes.INVALID_HEADER, `Header ${key} is reserved for Switchyard.`, {
        fix: 'Choose a header name without the sy1- prefix.',
      });
    }
  }
  return options.headers;
}

/** Builds outgoing messages for one sending scope (the endpoint, or one handler invocation). */
export class OutgoingBuilder {
  constructor(
    private readonly deps: OutgoingDeps,
    private readonly causedBy: CausationSource | undefined,
  ) {}

  private registered(definition: MessageDefinition): void {
    if (!this.deps.registry.has(definition)) this.deps.registry.add(definition);
  }

  private async message(definition: MessageDefinition, body: unknown, intent: Intent, options: SendOptions | undefined) {
    this.registered(definition);
    const validated = await validateBody(definition, body, 'send');
    return buildMessage(
      definition,
      validated,
      {
        intent,
        identity: this.deps.identity,
        replyTo: this.deps.publicAddress(),
        causedBy: this.causedBy,
        messageId: options?.messageId,
        correlationId: options?.correlationId,
        headers: userHeaders(options),
      },
      this.deps.limits,
    );
  }

  addressOf(endpoint: EndpointName): Address {
    for (const feature of this.deps.features) {
      const address = feature.resolveAddress?.(endpoint);
      if (address !== undefined) return address;
    }
    return sharedAddress(endpoint);
  }

  async send(definition: MessageDefinition, body: unknown, options?: SendOptions): Promise<Outgoing[]> {
    if (definition.kind === 'event') throw wrongIntent(definition, 'send', 'Publish events with publish(); send commands.');
    const endpoint = options?.to !== undefined ? checkName('Destination endpoint', options.to) : this.deps.router.require(definition.typeName);
    const message = await this.message(definition, body, 'send', options);
    return [{ destination: this.addressOf(endpoint), message, deliverAt: deliverAtOf(options, this.deps.transport) }];
  }

  async sendLocal(definition: MessageDefinition, body: unknown, options?: SendOptions): Promise<Outgoing[]> {
    if (definition.kind === 'event') throw wrongIntent(definition, 'sendLocal', 'Publish events with publish().');
    const message = await this.message(definition, body, 'send', options);
    return [{ destination: this.deps.publicAddress(), message, deliverAt: deliverAtOf(options, this.deps.transport) }];
  }

  async publish(definition: MessageDefinition, body: unknown, options?: PublishOptions): Promise<Outgoing[]> {
    if (definition.kind !== 'event') throw wrongIntent(definition, 'publish', 'Send commands and messages with send(); define events with defineEvent().');
    const message = await this.message(definition, body, 'publish', options);
    const deliverAt = deliverAtOf(options, this.deps.transport);
    if (this.deps.transport.capabilities.nativePubSub) return [{ topic: definition.typeName, message, deliverAt }];
    const routers = this.deps.features.filter((f) => f.publishDestinations);
    if (routers.length === 0) {
      throw new SwitchyardError(ErrorCodes.CONFIG, `Cannot publish ${definition.typeName}: the ${this.deps.transport.name} transport has no native publish/subscribe and no subscription store is configured.`, {
        fix: "Add features: [subscriptions({ store })] to this endpoint's options (see docs/publish-subscribe.md).",
      });
    }
    const types = enclosedTypes(definition);
    const addresses = new Set<Address>();
    for (const router of routers) for (const address of await router.publishDestinations!(types)) addresses.add(address);
    // Every copy carries the same message id: subscribers deduplicate on (endpoint, message id).
    return [...addresses].map((destination) => ({ destination, message, deliverAt }));
  }

  async reply(definition: MessageDefinition, body: unknown, incomingHeaders: Readonly<HeaderMap>, options?: PublishOptions): Promise<Outgoing[]> {
    if (definition.kind !== 'message') {
      throw wrongIntent(definition, 'reply with', 'Reply with a message defined by defineMessage(); send commands and publish events.');
    }
    const replyTo = incomingHeaders[Headers.ReplyTo];
    if (replyTo === undefined) {
      throw new SwitchyardError(ErrorCodes.NO_REPLY_ADDRESS, `Cannot reply with ${definition.typeName}: the incoming message has no reply-to address.`, {
        fix: 'Reply only to messages sent by Switchyard endpoints (they stamp reply-to), or send() the answer to a routed endpoint.',
      });
    }
    checkAddress('Reply-to address', replyTo);
    const message = await this.message(definition, body, 'reply', options);
    return [{ destination: replyTo, message, deliverAt: deliverAtOf(options, this.deps.transport) }];
  }
}
