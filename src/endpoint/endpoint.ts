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
import { systemClock, type Clock } from '../core/clock.js';
import type { Handler, MessageSender, PublishOptions, SendOptions } from '../core/context.js';
import { DEFAULT_LIMITS, type MessageLimits } from '../core/envelope.js';
import { asError, ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { EndpointFeature, FeatureHost } from '../core/feature.js';
import { buildMessage } from '../core/envelope.js';
import { MESSAGE_INTENTS, type Intent } from '../core/headers.js';
import { randomId } from '../core/ids.js';
import { checkAddress, checkName, makeIdentity, sharedAddress, type Address, type InstanceIdentity } from '../core/identity.js';
import { consoleLogger, type Logger } from '../core/logger.js';
import { defineMessage, MessageRegistry, type EventDefinition, type MessageDefinition } from '../core/messages.js';
import { Lifecycle } from '../core/lifecycle.js';
import { arrange, compose, type Behaviour, type IncomingContext, type OutgoingContext, type Step } from '../core/pipeline.js';
import { Pump } from '../core/pump.js';
import { Router, type Routes } from '../core/routing.js';
import type { Transport } from '../core/transport.js';
import { checkRecoverability, recoverabilityConfig, type RecoverabilityOptions } from '../recoverability/policy.js';
import { OUTGOING_PIPELINE, OutgoingBuilder, type OutgoingMessage } from './outgoing.js';
import { INCOMING_PIPELINE, IncomingMessage, type IncomingDeps } from './incoming.js';

export interface EndpointOptions {
  /** The logical endpoint name, e.g. `Sales`: shared by all its instances. */
  name: string;
  transport: Transport;
  handlers?: readonly Handler[];
  /** Message definitions this endpoint sends or publishes without handling them (optional: they register on first use). */
  messages?: readonly MessageDefinition[];
  /** Which logical endpoint owns each command type: `{ 'Sales.PlaceOrder': 'Sales', 'Billing.*': 'Billing' }`. */
  routes?: Routes;
  /** Most messages handled at once by this instance (default 8). */
  concurrency?: number;
  /**
   * Messages received ahead of free handler slots and held by this instance (default 0), so a
   * finished handler starts the next message without waiting for a receive. Held messages are
   * leased to this instance: on a shared queue, other instances cannot take them meanwhile.
   */
  prefetch?: number;
  instance?: { discriminator?: string; host?: string };
  /**
   * Which queues this instance receives from. `shared` (default true): the logical endpoint's
   * queue, with competing consumers. `instance`: this instance's own queue (sender-side
   * distribution, distributor workers).
   */
  queues?: { shared?: boolean; instance?: boolean };
  /** Sends only: opens no queue and receives nothing. */
  sendOnly?: boolean;
  recoverability?: RecoverabilityOptions;
  limits?: Partial<MessageLimits>;
  features?: readonly EndpointFeature[];
  /** Your own pipeline steps, each before or after a built-in step (see docs/pipeline.md). */
  behaviours?: readonly Behaviour[];
  logger?: Logger;
  /** Where the endpoint reads time: deferred sends, delayed retries, time stamps (default: the system clock; the test kit passes a virtual one). */
  clock?: Clock;
  /**
   * How long `stop({ signal })` waits, after the signal aborts, for handlers that ignore their
   * own abort signal (default 10 000 ms); then it returns and their messages come back by lease.
   */
  stopGraceMs?: number;
}

export type EndpointStatus = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

export interface Endpoint extends MessageSender, AsyncDisposable {
  readonly name: string;
  readonly identity: InstanceIdentity;
  readonly status: EndpointStatus;
  /** The address replies and subscriptions point at. */
  readonly publicAddress: Address;
  start(): Promise<void>;
  stop(options?: { signal?: AbortSignal }): Promise<void>;
}

function configError(setting: string, problem: string, fix: string): SwitchyardError {
  return new SwitchyardError(ErrorCodes.CONFIG, `Endpoint option \`${setting}\` ${problem}.`, { fix });
}

function validate(options: EndpointOptions): void {
  if (!options || typeof options !== 'object') throw configError('options', 'is missing', 'Call createEndpoint({ name, transport, handlers }).');
  checkName('Endpoint name (option `name`)', options.name);
  const t = options.transport as Partial<Transport> | undefined;
  if (!t || typeof t.receive !== 'function' || typeof t.dispatch !== 'function') {
    throw configError('transport', 'is missing or is not a transport', "Pass one, e.g. transport: sqliteTransport({ path: './switchyard.db' }) from 'switchyard/sqlite'.");
  }
  const c = options.concurrency;
  if (c !== undefined && (!Number.isInteger(c) || c < 1 || c > 10_000)) {
    throw configError('concurrency', `is ${String(c)}`, 'Use a whole number from 1 to 10000 (default 8).');
  }
  const g = options.stopGraceMs;
  if (g !== undefined && (!Number.isInteger(g) || g < 0)) {
    throw configError('stopGraceMs', `is ${String(g)}`, 'Use a whole number of milliseconds, 0 or more (default 10000).');
  }
  const p = options.prefetch;
  if (p !== undefined && (!Number.isInteger(p) || p < 0 || p > 10_000)) {
    throw configError('prefetch', `is ${String(p)}`, 'Use a whole number from 0 to 10000 (default 0).');
  }
  if (options.sendOnly && (options.handlers?.length ?? 0) > 0) {
    throw configError('sendOnly', 'is set but handlers are given', 'A send-only endpoint receives nothing: remove the handlers or sendOnly.');
  }
  if (!options.sendOnly && options.queues && options.queues.shared === false && !options.queues.instance) {
    throw configError('queues', 'turns off both the shared and the instance queue', 'Receive from at least one queue, or set sendOnly: true.');
  }
  for (const [key, value] of Object.entries(options.limits ?? {})) {
    if (!(key in DEFAULT_LIMITS) || !Number.isInteger(value) || (value as number) < 1) {
      throw configError(`limits.${key}`, `is ${String(value)}`, `Use positive whole numbers for ${Object.keys(DEFAULT_LIMITS).join(', ')}.`);
    }
  }
}

export function createEndpoint(options: EndpointOptions): Endpoint {
  validate(options);
  const { transport } = options;
  const logger = options.logger ?? consoleLogger(options.name);
  const identity = makeIdentity(options.name, options.instance?.host ?? hostname(), process.pid, options.instance?.discriminator ?? randomId(4));
  const registry = new MessageRegistry(options.messages ?? []);
  const handlers = new Map<string, Handler[]>();
  for (const handler of options.handlers ?? []) {
    registry.add(handler.definition);
    const list = handlers.get(handler.definition.typeName) ?? [];
    list.push(handler);
    handlers.set(handler.definition.typeName, list);
  }
  const router = new Router(options.routes);
  const features = options.features ?? [];
  const limits: MessageLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const clock = options.clock ?? systemClock;
  const concurrency = options.concurrency ?? 8;
  const recoverability = recoverabilityConfig(options.recoverability);
  checkName('Error queue (option `recoverability.errorQueue`)', recoverability.errorQueue);
  checkRecoverability(recoverability, transport);
  const receiveShared = !options.sendOnly && options.queues?.shared !== false;
  const receiveInstance = !options.sendOnly && options.queues?.instance === true;
  let publicAddress: Address = receiveShared || options.sendOnly ? sharedAddress(identity.endpoint) : identity.address;
  let prefetch = options.prefetch ?? 0;

  const controlFeatures = new Map<string, EndpointFeature>();
  for (const feature of features) {
    for (const kind of feature.controlKinds ?? []) {
      if ((MESSAGE_INTENTS as readonly string[]).includes(kind)) throw configError('features', `has feature ${feature.name} claiming ${kind} messages as a control kind`, 'A control kind must not be a message intent (send, publish, reply).');
      if (controlFeatures.has(kind)) throw configError('features', `has two features handling ${kind} messages`, 'Remove one of them.');
      controlFeatures.set(kind, feature);
    }
  }

  const behaviours = options.behaviours ?? [];
  const incomingBehaviours = behaviours.filter((b) => b.pipeline === 'incoming') as { name: string; before?: string; after?: string; run: Step<IncomingContext> }[];
  const outgoingBehaviours = behaviours.filter((b) => b.pipeline === 'outgoing') as { name: string; before?: string; after?: string; run: Step<OutgoingContext> }[];
  const runIncoming = compose<IncomingMessage>(arrange(INCOMING_PIPELINE, incomingBehaviours, 'incoming'));
  const runOutgoing = compose<OutgoingMessage>(arrange(OUTGOING_PIPELINE, outgoingBehaviours, 'outgoing'));

  const deps: IncomingDeps = {
    identity,
    transport,
    registry,
    router,
    features,
    limits,
    clock,
    logger,
    handlers,
    recoverability,
    controlFeatures,
    publicAddress: () => publicAddress,
    outgoing: runOutgoing,
  };

  const host: FeatureHost = {
    identity,
    transport,
    registry,
    logger,
    clock,
    concurrency,
    handledEvents: [...handlers.values()].map((h) => h[0]!.definition).filter((d): d is EventDefinition => d.kind === 'event'),
    routeOf: (typeName) => router.find(typeName),
    get publicAddress() {
      return publicAddress;
    },
    set publicAddress(address: Address) {
      publicAddress = checkAddress('Public address', address);
    },
    get prefetch() {
      return prefetch;
    },
    set prefetch(count: number) {
      prefetch = count;
    },
    controlMessage: (intent, headers, body = {}) =>
      buildMessage(controlDefinition(intent), body, { intent, identity, replyTo: publicAddress, causedBy: undefined, headers, now: clock.now() }, limits),
    dispatch: (batch) => transport.dispatch(batch),
  };

  // Sends outside handlers leave at once.
  const endpointSends = new OutgoingBuilder(deps, undefined, (batch) => transport.dispatch(batch));
  let status: EndpointStatus = 'created';
  let pump: Pump | undefined;
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;

  const checkConfiguration = () => {
    for (const [typeName, list] of handlers) {
      const definition = list[0]!.definition;
      const owner = router.find(typeName);
      if (definition.kind === 'command' && owner !== undefined && owner !== identity.endpoint) {
        throw configError(
          'handlers',
          `has a handler for the command ${typeName}, but routes send it to ${owner}`,
          `A command has one owner: move the handler to ${owner}, or route ${typeName} to ${identity.endpoint}.`,
        );
      }
    }
  };

  const addresses: Address[] = [];
  if (receiveShared) addresses.push(sharedAddress(identity.endpoint));
  if (receiveInstance) addresses.push(identity.address);

  const lifecycle = new Lifecycle(
    [
      { name: 'configuration', start: checkConfiguration },
      { name: 'transport', start: () => transport.open(), undo: () => transport.close() },
      {
        name: 'queues',
        start: async () => {
          for (const address of [...addresses, recoverability.errorQueue]) await transport.createQueue(address);
        },
      },
      ...features.map((feature) => ({ name: `feature ${feature.name} setup`, start: () => feature.setup?.(host), undo: () => feature.stop?.() })),
      {
        name: 'bindings',
        start: async () => {
          // Native pub/sub: the broker routes events, so bind the public address to each handled event (idempotent).
          if (!transport.capabilities.nativePubSub || !transport.subscribe || addresses.length === 0) return;
          for (const event of host.handledEvents) await transport.subscribe(publicAddress, event.typeName);
        },
      },
      {
        name: 'handlers',
        start: () => {
          if (addresses.length === 0) return;
          pump = new Pump({
            transport,
            addresses,
            concurrency,
            prefetch,
            graceMs: options.stopGraceMs,
            logger,
            process: (receipt, stopSignal, release) => runIncoming(new IncomingMessage(deps, receipt, stopSignal, release)),
          });
        },
        undo: (signal) => pump?.stop(signal),
      },
      ...features.map((feature) => ({ name: `feature ${feature.name} start`, start: () => feature.start?.(host), undo: () => feature.stopping?.(host) })),
      { name: 'receiving', start: () => pump?.start(), undo: () => pump?.stopReceiving() },
    ],
    logger,
  );

  const start = async () => {
    status = 'starting';
    try {
      await lifecycle.start();
    } catch (error) {
      status = 'stopped';
      logger.error(`failed to start: ${asError(error).message}`);
      throw error;
    }
    status = 'running';
    logger.info(
      `started instance ${identity.id} on ${transport.name}` +
        (addresses.length ? `, receiving from ${addresses.join(', ')} (concurrency ${concurrency})` : ', send-only'),
    );
  };

  const stop = async (signal?: AbortSignal) => {
    await starting?.catch(() => undefined);
    status = 'stopping';
    const errors = await lifecycle.stop(signal);
    status = 'stopped';
    logger.info(`stopped instance ${identity.id}${errors.length ? ` with ${errors.length} error(s)` : ''}`);
    if (errors.length > 0) throw new AggregateError(errors, `Endpoint ${identity.endpoint} stopped with errors: ${errors.map((e) => e.message).join('; ')}`);
  };

  const requireRunning = () => {
    if (status !== 'running' && status !== 'starting') {
      throw new SwitchyardError(ErrorCodes.NOT_RUNNING, `Endpoint ${identity.endpoint} is ${status}; it cannot send.`, {
        fix: 'await endpoint.start() before sending, and do not send after stop().',
      });
    }
    return endpointSends;
  };

  const endpoint: Endpoint = {
    name: identity.endpoint,
    identity,
    get status() {
      return status;
    },
    get publicAddress() {
      return publicAddress;
    },
    start() {
      if (stopping) {
        return Promise.reject(
          new SwitchyardError(ErrorCodes.NOT_RUNNING, `Endpoint ${identity.endpoint} is ${status}; an endpoint starts once.`, {
            fix: 'Create a new endpoint with createEndpoint(...) to start again: stop() closed its transport.',
          }),
        );
      }
      starting ??= start();
      return starting;
    },
    stop(stopOptions = {}) {
      stopping ??= stop(stopOptions.signal);
      return stopping;
    },
    async send(definition, body, sendOptions?: SendOptions) {
      await requireRunning().send(definition, body, sendOptions);
    },
    async sendLocal(definition, body, sendOptions?: SendOptions) {
      await requireRunning().sendLocal(definition, body, sendOptions);
    },
    async publish(definition, body, publishOptions?: PublishOptions) {
      await requireRunning().publish(definition, body, publishOptions);
    },
    [Symbol.asyncDispose]() {
      return endpoint.stop();
    },
  };
  return endpoint;
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
