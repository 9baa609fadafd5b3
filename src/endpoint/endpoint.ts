/**
 * The composition root: `createEndpoint(options)` validates options, wires the transport, the
 * handlers, recoverability and features, and owns the lifecycle.
 *
 * The lifecycle is one list of steps, each with its undo (src/core/lifecycle.ts), in `lifecycle`:
 *   step                     start                                  undo (stop, in reverse)
 *   configuration            check handlers against routes          -
 *   transport                open                                   close
 *   queues                   create shared, instance, error queues  -
 *   feature <name> setup     feature.setup                          feature.stop
 *   bindings                 bind handled events (native pub/sub)   -
 *   handlers                 create the pump                        drain in-flight handlers
 *   feature <name> start     feature.start                          feature.stopping
 *   receiving                start the receive loops                stop receiving (held go back)
 * So stop runs: stop receiving -> features' stopping (a worker's withdraw then includes the
 * prefetched messages just returned) -> drain (an aborted `signal` aborts the handlers' signal;
 * after `stopGraceMs` more, the ones still running are abandoned) -> features' stop -> close.
 * A start that fails undoes what it started, in reverse, and leaves nothing running. Every undo
 * runs even when an earlier one failed; stop gathers their errors in an AggregateError.
 * start and stop are idempotent (a second call returns the first call's promise); an endpoint
 * starts once: start() after stop() fails with SY_ERR_NOT_RUNNING.
 */
import { hostname } from 'node:os';
import { systemClock } from '../core/clock.js';
import type { Handler, MessageSender } from '../core/context.js';
import { buildMessage, DEFAULT_LIMITS } from '../core/envelope.js';
import { asError, ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { EndpointFeature, FeatureHost } from '../core/feature.js';
import { MESSAGE_INTENTS, type Intent } from '../core/headers.js';
import { randomId } from '../core/ids.js';
import { checkAddress, checkName, makeIdentity, sharedAddress, type Address, type InstanceIdentity } from '../core/identity.js';
import { Lifecycle, type LifecycleStep } from '../core/lifecycle.js';
import { consoleLogger } from '../core/logger.js';
import { defineMessage, MessageRegistry, type EventDefinition, type MessageDefinition } from '../core/messages.js';
import { arrange, compose, type Behaviour, type HandlerInvocation, type IncomingContext, type OutgoingContext, type Step } from '../core/pipeline.js';
import { Pump } from '../core/pump.js';
import { Router } from '../core/routing.js';
import type { Outgoing, StorageSession, Transport } from '../core/transport.js';
import { dispatchRecords, DurabilityAgent } from '../outbox/dispatch.js';
import { checkRecoverability, recoverabilityConfig } from '../recoverability/policy.js';
import { describeHealth, type EndpointHealth, type EndpointStatus } from './health.js';
import { HANDLER_PIPELINE, INCOMING_PIPELINE, IncomingMessage, type IncomingDeps } from './incoming.js';
import { configError, validateOptions, type EndpointOptions } from './options.js';
import { OUTGOING_PIPELINE, OutgoingBuilder, type OutgoingMessage } from './outgoing.js';

export type { EndpointOptions } from './options.js';

export type { EndpointStatus } from './health.js';

export interface Endpoint extends MessageSender, AsyncDisposable {
  readonly name: string;
  readonly identity: InstanceIdentity;
  readonly status: EndpointStatus;
  /** The address replies and subscriptions point at. */
  readonly publicAddress: Address;
  start(): Promise<void>;
  stop(options?: { signal?: AbortSignal }): Promise<void>;
  /** Status, transport reachability, the receive loop, handlers in flight (see docs/observability.md). */
  health(): EndpointHealth;
  /**
   * Outside a handler, with the endpoint's `outbox`: `work`'s writes (through the storage's
   * accessor on `tx`, e.g. postgresClient(tx)) and its sends commit in one transaction of your
   * database; the sends are dispatched after the commit. Throws SY_ERR_CONFIG without an outbox.
   */
  transaction<T>(work: (tx: OutboxScope) => Promise<T>): Promise<T>;
}

/** What `endpoint.transaction` hands its work: sends that leave with the commit, and the storage session. */
export interface OutboxScope extends MessageSender {
  readonly unitOfWork: StorageSession;
}

export function createEndpoint(options: EndpointOptions): Endpoint {
  validateOptions(options);
  return new EndpointInstance(options);
}

/** Handlers by message type, each type registered with the endpoint's registry. */
function indexHandlers(registry: MessageRegistry, list: readonly Handler[]): Map<string, Handler[]> {
  const handlers = new Map<string, Handler[]>();
  for (const handler of list) {
    registry.add(handler.definition);
    handlers.set(handler.definition.typeName, [...(handlers.get(handler.definition.typeName) ?? []), handler]);
  }
  return handlers;
}

/** Which feature handles each control kind (subscribe, ready, ...): one each, never a message intent. */
function claimControlKinds(features: readonly EndpointFeature[]): Map<string, EndpointFeature> {
  const owners = new Map<string, EndpointFeature>();
  for (const feature of features) {
    for (const kind of feature.controlKinds ?? []) {
      if ((MESSAGE_INTENTS as readonly string[]).includes(kind)) throw configError('features', `has feature ${feature.name} claiming ${kind} messages as a control kind`, 'A control kind must not be a message intent (send, publish, reply).');
      if (owners.has(kind)) throw configError('features', `has two features handling ${kind} messages`, 'Remove one of them.');
      owners.set(kind, feature);
    }
  }
  return owners;
}

/** The built-in steps with the user's behaviours placed among them (src/core/pipeline.ts). */
function composePipelines(behaviours: readonly Behaviour[]) {
  const incoming = behaviours.filter((b) => b.pipeline === 'incoming') as { name: string; before?: string; after?: string; run: Step<IncomingContext> }[];
  const outgoing = behaviours.filter((b) => b.pipeline === 'outgoing') as { name: string; before?: string; after?: string; run: Step<OutgoingContext> }[];
  const handler = behaviours.filter((b) => b.pipeline === 'handler') as { name: string; before?: string; after?: string; run: Step<HandlerInvocation> }[];
  return {
    incoming: compose<IncomingMessage>(arrange(INCOMING_PIPELINE, incoming, 'incoming')),
    outgoing: compose<OutgoingMessage>(arrange(OUTGOING_PIPELINE, outgoing, 'outgoing')),
    // No handler behaviours: handlers are called directly, with no pipeline around each call.
    handler: handler.length > 0 ? compose<HandlerInvocation>(arrange(HANDLER_PIPELINE, handler, 'handler')) : undefined,
  };
}

/** A command has one owner: a handler for a command routed elsewhere is a configuration error. */
function checkCommandOwnership(handlers: ReadonlyMap<string, readonly Handler[]>, router: Router, endpoint: string): void {
  for (const [typeName, list] of handlers) {
    const owner = router.find(typeName);
    if (list[0]!.definition.kind === 'command' && owner !== undefined && owner !== endpoint) {
      throw configError(
        'handlers',
        `has a handler for the command ${typeName}, but routes send it to ${owner}`,
        `A command has one owner: move the handler to ${owner}, or route ${typeName} to ${endpoint}.`,
      );
    }
  }
}

/**
 * Without native pub/sub, events reach an endpoint only if it subscribes: an endpoint with event
 * handlers and no feature that subscribes would start, wait and receive nothing.
 */
function checkEventsCanArrive(endpoint: string, events: readonly EventDefinition[], transport: Transport, features: readonly EndpointFeature[]): void {
  if (events.length === 0 || transport.capabilities.nativePubSub || features.some((f) => f.deliversEvents)) return;
  const names = events.map((e) => e.typeName).join(', ');
  throw new SwitchyardError(
    ErrorCodes.NOT_SUBSCRIBED,
    `Endpoint ${endpoint} handles the event(s) ${names}, but the ${transport.name} transport has no native publish/subscribe and nothing subscribes ${endpoint} to them: it would never receive one.`,
    {
      fix: `Add features: [subscriptions()] (from 'switchyard') to ${endpoint}'s options and route each event to its publisher (routes: { '${events[0]!.typeName}': '<Publisher>' }); see docs/publish-subscribe.md.`,
    },
  );
}

class EndpointInstance implements Endpoint {
  readonly identity: InstanceIdentity;
  readonly #options: EndpointOptions;
  readonly #deps: IncomingDeps;
  readonly #host: FeatureHost;
  readonly #runIncoming: (message: IncomingMessage) => Promise<void>;
  /** Sends outside handlers leave at once. */
  readonly #sends: OutgoingBuilder;
  /** The queues this instance receives from (none when send-only). */
  readonly #addresses: Address[] = [];
  readonly #lifecycle: Lifecycle;
  #status: EndpointStatus = 'created';
  #publicAddress: Address;
  #prefetch: number;
  #pump: Pump | undefined;
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;

  constructor(options: EndpointOptions) {
    this.#options = options;
    const { transport } = options;
    const logger = options.logger ?? consoleLogger(options.name);
    const identity = makeIdentity(options.name, options.instance?.host ?? hostname(), process.pid, options.instance?.discriminator ?? randomId(4));
    this.identity = identity;
    const registry = new MessageRegistry(options.messages ?? []);
    const recoverability = recoverabilityConfig(options.recoverability);
    checkName('Error queue (option `recoverability.errorQueue`)', recoverability.errorQueue);
    checkRecoverability(recoverability, transport);
    const receiveShared = !options.sendOnly && options.queues?.shared !== false;
    if (receiveShared) this.#addresses.push(sharedAddress(identity.endpoint));
    if (!options.sendOnly && options.queues?.instance === true) this.#addresses.push(identity.address);
    this.#publicAddress = receiveShared || options.sendOnly ? sharedAddress(identity.endpoint) : identity.address;
    this.#prefetch = options.prefetch ?? 0;
    const pipelines = composePipelines(options.behaviours ?? []);
    this.#runIncoming = pipelines.incoming;
    this.#deps = {
      identity,
      transport,
      registry,
      router: new Router(options.routes),
      features: options.features ?? [],
      limits: { ...DEFAULT_LIMITS, ...options.limits },
      logger,
      handlers: indexHandlers(registry, options.handlers ?? []),
      recoverability,
      controlFeatures: claimControlKinds(options.features ?? []),
      invokeHandler: pipelines.handler,
      clock: options.clock ?? systemClock,
      outbox: options.outbox,
      publicAddress: () => this.#publicAddress,
      outgoing: pipelines.outgoing,
    };
    this.#host = this.#featureHost();
    this.#sends = new OutgoingBuilder(this.#deps, undefined, (batch) => transport.dispatch(batch));
    this.#lifecycle = new Lifecycle(this.#lifecycleSteps(), logger);
  }

  get name(): string {
    return this.identity.endpoint;
  }

  get status(): EndpointStatus {
    return this.#status;
  }

  get publicAddress(): Address {
    return this.#publicAddress;
  }

  start(): Promise<void> {
    if (this.#stopping) {
      return Promise.reject(
        new SwitchyardError(ErrorCodes.NOT_RUNNING, `Endpoint ${this.name} is ${this.#status}; an endpoint starts once.`, {
          fix: 'Create a new endpoint with createEndpoint(...) to start again: stop() closed its transport.',
        }),
      );
    }
    this.#starting ??= this.#start();
    return this.#starting;
  }

  stop(stopOptions: { signal?: AbortSignal } = {}): Promise<void> {
    this.#stopping ??= this.#stop(stopOptions.signal);
    return this.#stopping;
  }

  // Arrow properties, so `const { send } = endpoint` works as it did with a plain object.
  readonly send: MessageSender['send'] = async (definition, body, sendOptions) => {
    await this.#runningSends().send(definition, body, sendOptions);
  };

  readonly sendLocal: MessageSender['sendLocal'] = async (definition, body, sendOptions) => {
    await this.#runningSends().sendLocal(definition, body, sendOptions);
  };

  readonly publish: MessageSender['publish'] = async (definition, body, publishOptions) => {
    await this.#runningSends().publish(definition, body, publishOptions);
  };

  health(): EndpointHealth {
    const parts = Object.assign({}, ...this.#deps.features.map((f) => f.health?.() ?? {})) as Record<string, unknown>;
    return describeHealth(this.identity, this.#deps.transport.name, this.#status, this.#pump?.health(), parts);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /** The order and the undo of each step: see the file header. */
  #lifecycleSteps(): LifecycleStep[] {
    const { transport, features, handlers, router, recoverability } = this.#deps;
    const host = this.#host;
    return [
      {
        name: 'configuration',
        start: () => {
          checkEventsCanArrive(this.name, host.handledEvents, transport, features);
          checkCommandOwnership(handlers, router, this.name);
        },
      },
      { name: 'transport', start: () => transport.open(), undo: () => transport.close() },
      {
        name: 'queues',
        start: async () => {
          for (const address of [...this.#addresses, recoverability.errorQueue]) await transport.createQueue(address);
        },
      },
      ...features.map((feature) => ({ name: `feature ${feature.name} setup`, start: () => feature.setup?.(host), undo: () => feature.stop?.() })),
      ...this.#outboxSteps(),
      {
        name: 'bindings',
        start: async () => {
          // Native pub/sub: the broker routes events, so bind the public address to each handled event (idempotent).
          if (!transport.capabilities.nativePubSub || !transport.subscribe || this.#addresses.length === 0) return;
          for (const event of host.handledEvents) await transport.subscribe(this.#publicAddress, event.typeName);
        },
      },
      { name: 'handlers', start: () => this.#createPump(), undo: (signal) => this.#pump?.stop(signal) },
      ...features.map((feature) => ({ name: `feature ${feature.name} start`, start: () => feature.start?.(host), undo: () => feature.stopping?.(host) })),
      { name: 'receiving', start: () => this.#pump?.start(), undo: () => this.#pump?.stopReceiving() },
    ];
  }

  /** The outbox's store and its durability agent, when the endpoint has an outbox. */
  #outboxSteps(): LifecycleStep[] {
    const { outbox, transport, logger } = this.#deps;
    if (!outbox) return [];
    let agent: DurabilityAgent | undefined;
    return [
      { name: 'outbox store', start: () => outbox.store.open(), undo: () => outbox.store.close() },
      {
        name: 'outbox durability agent',
        start: () => {
          agent = new DurabilityAgent(outbox, transport, this.identity.id, logger);
          agent.start();
        },
        undo: () => agent?.stop(),
      },
    ];
  }

  async transaction<T>(work: (tx: OutboxScope) => Promise<T>): Promise<T> {
    const { outbox, logger } = this.#deps;
    if (!outbox) {
      throw new SwitchyardError(ErrorCodes.CONFIG, `Endpoint ${this.name} has no outbox, so endpoint.transaction() has no database to commit in.`, {
        fix: "Give the endpoint an outbox (outbox: postgresOutbox({ pool }) from 'switchyard/postgres'); see docs/outbox.md.",
      });
    }
    this.#runningSends();
    const collected: Outgoing[] = [];
    const sends = new OutgoingBuilder(this.#deps, undefined, async (batch) => void collected.push(...batch));
    const { value, records } = await outbox.store.transaction(this.identity.id, outbox.leaseMs, async (tx) => {
      const scope: OutboxScope = {
        unitOfWork: tx.session,
        send: (definition, body, options) => sends.send(definition, body, options),
        sendLocal: (definition, body, options) => sends.sendLocal(definition, body, options),
        publish: (definition, body, options) => sends.publish(definition, body, options),
      };
      const result = await work(scope);
      await tx.store(collected.splice(0));
      return result;
    });
    await dispatchRecords(outbox, this.#deps.transport, records, logger);
    return value;
  }

  #createPump(): void {
    if (this.#addresses.length === 0) return;
    const deps = this.#deps;
    this.#pump = new Pump({
      transport: deps.transport,
      addresses: this.#addresses,
      concurrency: this.#options.concurrency ?? 8,
      prefetch: this.#prefetch,
      graceMs: this.#options.stopGraceMs,
      logger: deps.logger,
      process: (receipt, stopSignal, release) => this.#runIncoming(new IncomingMessage(deps, receipt, stopSignal, release)),
    });
  }

  /** What features see of the endpoint (src/core/feature.ts). */
  #featureHost(): FeatureHost {
    const { identity, transport, registry, logger, router, handlers, limits, clock } = this.#deps;
    const endpoint = this;
    return {
      identity,
      transport,
      registry,
      logger,
      clock,
      concurrency: this.#options.concurrency ?? 8,
      handledEvents: [...handlers.values()].map((h) => h[0]!.definition).filter((d): d is EventDefinition => d.kind === 'event'),
      routeOf: (typeName) => router.find(typeName),
      get publicAddress() {
        return endpoint.#publicAddress;
      },
      set publicAddress(address: Address) {
        endpoint.#publicAddress = checkAddress('Public address', address);
      },
      get prefetch() {
        return endpoint.#prefetch;
      },
      set prefetch(count: number) {
        endpoint.#prefetch = count;
      },
      controlMessage: (intent, headers, body = {}) =>
        buildMessage(controlDefinition(intent), body, { intent, identity, replyTo: this.#publicAddress, causedBy: undefined, headers, now: clock.now() }, limits),
      dispatch: (batch) => transport.dispatch(batch),
    };
  }

  async #start(): Promise<void> {
    const { logger, transport } = this.#deps;
    this.#status = 'starting';
    try {
      await this.#lifecycle.start();
    } catch (error) {
      this.#status = 'stopped';
      logger.error({ err: asError(error) }, `failed to start: ${asError(error).message}`);
      throw error;
    }
    this.#status = 'running';
    const receiving = this.#addresses.length ? `, receiving from ${this.#addresses.join(', ')} (concurrency ${this.#options.concurrency ?? 8})` : ', send-only';
    logger.info(`started instance ${this.identity.id} on ${transport.name}${receiving}`);
  }

  async #stop(signal: AbortSignal | undefined): Promise<void> {
    await this.#starting?.catch(() => undefined);
    this.#status = 'stopping';
    const errors = await this.#lifecycle.stop(signal);
    this.#status = 'stopped';
    this.#deps.logger.info(`stopped instance ${this.identity.id}${errors.length ? ` with ${errors.length} error(s)` : ''}`);
    if (errors.length > 0) throw new AggregateError(errors, `Endpoint ${this.name} stopped with errors: ${errors.map((e) => e.message).join('; ')}`);
  }

  #runningSends(): OutgoingBuilder {
    if (this.#status !== 'running' && this.#status !== 'starting') {
      throw new SwitchyardError(ErrorCodes.NOT_RUNNING, `Endpoint ${this.name} is ${this.#status}; it cannot send.`, {
        fix: 'await endpoint.start() before sending, and do not send after stop().',
      });
    }
    return this.#sends;
  }
}

const controlDefinitions = new Map<Intent, MessageDefinition>();
/** Control messages are typed like any other message: `Switchyard.Subscribe`, `Switchyard.Ready`, ... */
function controlDefinition(intent: Intent): MessageDefinition {
  let definition = controlDefinitions.get(intent);
  if (!definition) {
    definition = defineMessage(`Switchyard.${intent[0]!.toUpperCase()}${intent.slice(1)}`);
    controlDefinitions.set(intent, definition);
  }
  return definition;
}
