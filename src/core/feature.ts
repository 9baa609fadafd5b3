/**
 * The seam between the endpoint and optional capabilities (publish/subscribe, sender-side
 * distribution, the distributor worker). A feature is an explicit value passed in
 * `createEndpoint({ features: [...] })`; the endpoint calls its hooks at fixed points, listed
 * in src/endpoint/endpoint.ts.
 */
import type { Clock } from './clock.js';
import type { HeaderMap, Intent } from './headers.js';
import type { Address, EndpointName, InstanceIdentity } from './identity.js';
import type { Logger } from './logger.js';
import type { EventDefinition, MessageRegistry } from './messages.js';
import type { Outgoing, Transport, TransportMessage } from './transport.js';

/** What the endpoint offers its features. */
export interface FeatureHost {
  readonly identity: InstanceIdentity;
  readonly transport: Transport;
  readonly registry: MessageRegistry;
  readonly logger: Logger;
  /** The endpoint's clock: features read time through it (the test kit's is virtual). */
  readonly clock: Clock;
  /** Most messages this instance handles at once (the endpoint's `concurrency`). */
  readonly concurrency: number;
  /** Events this endpoint has handlers for (what it auto-subscribes to). */
  readonly handledEvents: readonly EventDefinition[];
  /** The logical endpoint that publishes `typeName`, from the endpoint's routes. */
  routeOf(typeName: string): EndpointName | undefined;
  /** The address replies and subscriptions point at. Defaults to the shared queue. */
  publicAddress: Address;
  /** Messages received ahead of free handler slots (the endpoint's `prefetch`); a feature may raise it in setup. */
  prefetch: number;
  /** Builds a control message (subscribe, ready, ...) with the standard headers. */
  controlMessage(intent: Intent, headers: HeaderMap, body?: unknown): TransportMessage;
  /** Sends now, outside any handler. */
  dispatch(batch: readonly Outgoing[]): Promise<void>;
}

/** How an incoming message was settled; `immediate-retry` is a re-send to the same queue (see `exactDeliveryCount`). */
export type SettleOutcome = 'handled' | 'error' | 'delayed-retry' | 'immediate-retry';

export interface ControlContext {
  readonly message: TransportMessage;
  readonly signal: AbortSignal;
}

export interface EndpointFeature {
  readonly name: string;
  /** Control kinds (the intent header of its control messages) that go to `handleControl` instead of handlers. */
  readonly controlKinds?: readonly string[];
  /**
   * True when this feature makes the events the endpoint handles reach it (by subscribing). On a
   * transport without native pub/sub, an endpoint that handles events refuses to start without one.
   */
  readonly deliversEvents?: boolean;
  /** Before receiving starts: validate options, create queues. */
  setup?(host: FeatureHost): Promise<void>;
  /** After receiving started: subscribe, announce readiness, start timers. */
  start?(host: FeatureHost): Promise<void>;
  /** Before receiving stops (withdraw, unsubscribe-on-stop if wanted). */
  stopping?(host: FeatureHost): Promise<void>;
  /** After receiving stopped and handlers drained: stop timers, close stores. */
  stop?(): Promise<void>;
  /** Handles a control message; what it returns is sent atomically with completing it. */
  handleControl?(context: ControlContext): Promise<readonly Outgoing[]>;
  /** Queue addresses a published event goes to (transports without native pub/sub). */
  publishDestinations?(enclosedTypes: readonly string[]): Promise<readonly Address[]>;
  /** The physical address for a logical endpoint (sender-side distribution); undefined = not mine. */
  resolveAddress?(endpoint: EndpointName): Address | undefined;
  /** Messages to send atomically with settling an incoming message (e.g. a worker's ready). */
  onSettled?(message: TransportMessage, outcome: SettleOutcome): readonly Outgoing[];
  /** What this feature adds to `endpoint.health()` (under `features`), each part under its own key: no I/O, plain JSON values. */
  health?(): Readonly<Record<string, unknown>>;
}
