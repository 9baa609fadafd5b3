/**
 * The outgoing pipeline: every send, sendLocal, publish and reply passes through
 *   route      the messaging rules (commands are sent, events published, replies go to the
 *              incoming reply-to) and where the message goes
 *   headers    ids, correlation, conversation, trace context (a new span id per hop)
 *   serialize  the definition's schema, JSON, the body size limit
 *   dispatch   hand the batch on: inside a handler into the unit of work (it leaves with the
 *              commit), outside one to the transport now
 * with the endpoint's outgoing behaviours placed among them (src/core/pipeline.ts).
 */
import type { Clock } from '../core/clock.js';
import type { PublishOptions, SendOptions } from '../core/context.js';
import { checkBodySize, stampHeaders, type MessageLimits } from '../core/envelope.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { EndpointFeature } from '../core/feature.js';
import { Headers, type HeaderMap, type MessageIntent } from '../core/headers.js';
import { checkAddress, checkName, sharedAddress, type Address, type EndpointName, type InstanceIdentity } from '../core/identity.js';
import { enclosedTypes, type MessageDefinition, type MessageRegistry } from '../core/messages.js';
import type { OutgoingContext, PipelineStep } from '../core/pipeline.js';
import type { Router } from '../core/routing.js';
import type { Outgoing, Transport, TransportMessage } from '../core/transport.js';
import { validateBody } from '../core/validation.js';

export interface OutgoingDeps {
  identity: InstanceIdentity;
  transport: Transport;
  registry: MessageRegistry;
  router: Router;
  features: readonly EndpointFeature[];
  limits: MessageLimits;
  /** What deferred sends and the time-sent header read (src/core/clock.ts). */
  clock: Clock;
  publicAddress(): Address;
  /** The outgoing pipeline, composed once per endpoint (`outgoingPipeline`). */
  outgoing: (context: OutgoingMessage) => Promise<void>;
}

function wrongIntent(definition: MessageDefinition, attempted: string, instead: string): SwitchyardError {
  return new SwitchyardError(
    ErrorCodes.WRONG_INTENT,
    `Cannot ${attempted} ${definition.typeName}: it is ${definition.kind === 'event' ? 'an event' : `a ${definition.kind}`}.`,
    { fix: instead },
  );
}

function deliverAtOf(options: SendOptions | undefined, { transport, clock }: OutgoingDeps): number | undefined {
  if (!options) return undefined;
  const at =
    options.deliverAt !== undefined
      ? typeof options.deliverAt === 'number'
        ? options.deliverAt
        : options.deliverAt.getTime()
      : options.delayMs !== undefined
        ? clock.now() + options.delayMs
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

type Operation = 'send' | 'sendLocal' | 'publish' | 'reply';

/** The context of one outgoing message (see OutgoingContext for what behaviours may touch). */
export class OutgoingMessage implements OutgoingContext {
  readonly headers: HeaderMap;
  destinations: ({ destination: Address } | { topic: string })[] = [];
  message: TransportMessage | undefined;
  deliverAt: number | undefined;

  constructor(
    readonly deps: OutgoingDeps,
    readonly operation: Operation,
    readonly definition: MessageDefinition,
    readonly body: unknown,
    readonly options: SendOptions | undefined,
    readonly incoming: TransportMessage | undefined,
    readonly deliver: (batch: Outgoing[]) => Promise<void>,
  ) {
    this.headers = { ...options?.headers };
  }

  get intent(): MessageIntent {
    return this.operation === 'sendLocal' ? 'send' : this.operation;
  }
}

function addressOf(deps: OutgoingDeps, endpoint: EndpointName): Address {
  for (const feature of deps.features) {
    const address = feature.resolveAddress?.(endpoint);
    if (address !== undefined) return address;
  }
  return sharedAddress(endpoint);
}

async function publishDestinations(deps: OutgoingDeps, definition: MessageDefinition): Promise<{ destination: Address }[] | { topic: string }[]> {
  if (deps.transport.capabilities.nativePubSub) return [{ topic: definition.typeName }];
  const routers = deps.features.filter((f) => f.publishDestinations);
  if (routers.length === 0) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `Cannot publish ${definition.typeName}: the ${deps.transport.name} transport has no native publish/subscribe and no subscription store is configured.`, {
      fix: "Add features: [subscriptions({ store })] to this endpoint's options (see docs/publish-subscribe.md).",
    });
  }
  const types = enclosedTypes(definition);
  const addresses = new Set<Address>();
  for (const router of routers) for (const address of await router.publishDestinations!(types)) addresses.add(address);
  // Every copy carries the same message id: subscribers deduplicate on (endpoint, message id).
  return [...addresses].map((destination) => ({ destination }));
}

function replyAddress(ctx: OutgoingMessage): Address {
  const { definition } = ctx;
  if (definition.kind !== 'message') {
    throw wrongIntent(definition, 'reply with', 'Reply with a message defined by defineMessage(); send commands and publish events.');
  }
  const replyTo = ctx.incoming?.headers[Headers.ReplyTo];
  if (replyTo === undefined) {
    throw new SwitchyardError(ErrorCodes.NO_REPLY_ADDRESS, `Cannot reply with ${definition.typeName}: the incoming message has no reply-to address.`, {
      fix: 'Reply only to messages sent by Switchyard endpoints (they stamp reply-to), or send() the answer to a routed endpoint.',
    });
  }
  return checkAddress('Reply-to address', replyTo);
}

const route: PipelineStep<OutgoingMessage> = {
  name: 'route',
  run(ctx, next) {
    const { deps, definition, options } = ctx;
    switch (ctx.operation) {
      case 'send': {
        if (definition.kind === 'event') throw wrongIntent(definition, 'send', 'Publish events with publish(); send commands.');
        const endpoint = options?.to !== undefined ? checkName('Destination endpoint', options.to) : deps.router.require(definition.typeName);
        ctx.destinations = [{ destination: addressOf(deps, endpoint) }];
        break;
      }
      case 'sendLocal':
        if (definition.kind === 'event') throw wrongIntent(definition, 'sendLocal', 'Publish events with publish().');
        ctx.destinations = [{ destination: deps.publicAddress() }];
        break;
      case 'publish':
        if (definition.kind !== 'event') throw wrongIntent(definition, 'publish', 'Send commands and messages with send(); define events with defineEvent().');
        ctx.deliverAt = deliverAtOf(options, deps);
        return publishDestinations(deps, definition).then((destinations) => {
          ctx.destinations = destinations;
          return next();
        });
      case 'reply':
        ctx.destinations = [{ destination: replyAddress(ctx) }];
        break;
    }
    ctx.deliverAt = deliverAtOf(options, deps);
    return next();
  },
};

// Steps that need no await of their own return next() instead of awaiting it (see incoming.ts).
const headers: PipelineStep<OutgoingMessage> = {
  name: 'headers',
  run(ctx, next) {
    for (const key in ctx.headers) {
      if (key.startsWith('sy1-')) {
        throw new SwitchyardError(ErrorCodes.INVALID_HEADER, `Header ${key} is reserved for Switchyard.`, { fix: 'Choose a header name without the sy1- prefix.' });
      }
    }
    const { deps, options } = ctx;
    stampHeaders(ctx.headers, enclosedTypes(ctx.definition), {
      intent: ctx.intent,
      identity: deps.identity,
      replyTo: deps.publicAddress(),
      causedBy: ctx.incoming && { messageId: ctx.incoming.id, headers: ctx.incoming.headers },
      messageId: options?.messageId,
      correlationId: options?.correlationId,
      now: deps.clock.now(),
    });
    return next();
  },
};

const serialize: PipelineStep<OutgoingMessage> = {
  name: 'serialize',
  run(ctx, next) {
    const { definition } = ctx;
    if (!definition.schema) return toMessage(ctx, ctx.body, next);
    return validateBody(definition, ctx.body, 'send').then((body) => toMessage(ctx, body, next));
  },
};

function toMessage(ctx: OutgoingMessage, body: unknown, next: () => Promise<void>): Promise<void> {
  const { definition } = ctx;
  const text = JSON.stringify(body);
  if (text === undefined) {
    throw new SwitchyardError(ErrorCodes.VALIDATION_FAILED, `The body of ${definition.typeName} cannot be serialised to JSON.`, { fix: 'Pass a plain object of JSON values.' });
  }
  checkBodySize(text, ctx.deps.limits);
  ctx.message = { id: ctx.headers[Headers.MessageId]!, headers: ctx.headers, body: text };
  return next();
}

const dispatch: PipelineStep<OutgoingMessage> = {
  name: 'dispatch',
  run(ctx, next) {
    const message = ctx.message!;
    const { deliverAt } = ctx;
    return ctx.deliver(ctx.destinations.map((to) => ({ ...to, message, deliverAt }))).then(next);
  },
};

export const OUTGOING_PIPELINE: readonly PipelineStep<OutgoingMessage>[] = [route, headers, serialize, dispatch];

/** Sends for one scope: the endpoint itself (`incoming` undefined), or one handled message. */
export class OutgoingBuilder {
  constructor(
    private readonly deps: OutgoingDeps,
    private readonly incoming: TransportMessage | undefined,
    private readonly deliver: (batch: Outgoing[]) => Promise<void>,
  ) {}

  private run(operation: Operation, definition: MessageDefinition, body: unknown, options: SendOptions | undefined): Promise<void> {
    if (!this.deps.registry.has(definition)) this.deps.registry.add(definition);
    return this.deps.outgoing(new OutgoingMessage(this.deps, operation, definition, body, options, this.incoming, this.deliver));
  }

  send(definition: MessageDefinition, body: unknown, options?: SendOptions): Promise<void> {
    return this.run('send', definition, body, options);
  }

  sendLocal(definition: MessageDefinition, body: unknown, options?: SendOptions): Promise<void> {
    return this.run('sendLocal', definition, body, options);
  }

  publish(definition: MessageDefinition, body: unknown, options?: PublishOptions): Promise<void> {
    return this.run('publish', definition, body, options);
  }

  reply(definition: MessageDefinition, body: unknown, options?: PublishOptions): Promise<void> {
    return this.run('reply', definition, body, options);
  }
}
