/**
 * The transport port: moves messages between queues and settles receipts. It owns no loop, no
 * retries and no concurrency; the core pump does (src/core/pump.ts).
 *
 * Guarantees every transport gives (checked by src/testing/transport-conformance.ts):
 * - at-least-once: a receipt that is neither completed nor abandoned comes back after its lease;
 * - a message is held by one consumer at a time; a completion by a consumer whose lease was
 *   lost (fenced) fails with SY_ERR_LEASE_LOST and sends nothing;
 * - `complete(outgoing)` removes the message and sends `outgoing` together: atomically in one
 *   transaction where `capabilities.atomicSendWithReceive`, otherwise sends first (confirmed)
 *   and removes after, so a crash in between duplicates but never loses.
 */
import type { Address } from './identity.js';
import type { HeaderMap } from './headers.js';

export interface TransportMessage {
  readonly id: string;
  readonly headers: HeaderMap;
  /** UTF-8 JSON text. */
  readonly body: string;
}

interface OutgoingBase {
  readonly message: TransportMessage;
  /** Epoch ms: the message is not delivered before this. Needs `capabilities.delayedDelivery`. */
  readonly deliverAt?: number;
}
/** To one queue. */
export interface QueueOutgoing extends OutgoingBase {
  readonly destination: Address;
}
/** To every subscriber of an event type, through the broker. Needs `capabilities.nativePubSub`. */
export interface TopicOutgoing extends OutgoingBase {
  readonly topic: string;
}
export type Outgoing = QueueOutgoing | TopicOutgoing;

export function isTopicOutgoing(outgoing: Outgoing): outgoing is TopicOutgoing {
  return 'topic' in outgoing;
}

export interface TransportCapabilities {
  /** Honours `deliverAt`. */
  readonly delayedDelivery: boolean;
  /** Routes TopicOutgoing to queues bound with `subscribe`; otherwise the core uses message-driven pub/sub. */
  readonly nativePubSub: boolean;
  /** `complete(outgoing)` commits the removal and the sends in one transaction. */
  readonly atomicSendWithReceive: boolean;
  /** Several consumers may receive from one queue, each message going to one of them. */
  readonly competingConsumers: boolean;
  /**
   * `Receipt.deliveryCount` counts every delivery of a message, abandons and lease expiries
   * included. Where false (a RabbitMQ classic queue only says "redelivered"), the core counts
   * immediate retries itself: it re-sends the message with the attempt count in a header instead
   * of abandoning it, so retries end whatever the transport counts.
   */
  readonly exactDeliveryCount: boolean;
}

export interface ReceiveOptions {
  /** At most this many receipts. */
  readonly max: number;
  /** When the queue is empty, wait up to this long for a message before returning none. */
  readonly waitMs: number;
  readonly signal: AbortSignal;
}

export interface ForwardOptions extends ReceiveOptions {
  /**
   * Where the transport keeps its queues in a database (SQLite): called inside the forward's
   * transaction once `route` has chosen the copies and before anything is written, with a session
   * on that transaction. What it writes there commits with the forward; a SwitchyardError it throws
   * moves nothing. The distributor saves its slot takes this way when its store shares the database.
   * Not called when nothing is moved; transports without such a session ignore it.
   */
  readonly alongside?: (session: StorageSession) => void;
}

/**
 * A storage transaction that a handler's own writes join, so that they commit together with the
 * completion of the incoming message and its sends (the unit of work), and roll back with them.
 * Each storage adapter gives handlers a typed accessor for its own kind (`sqliteSession(ctx)`).
 */
export interface StorageSession {
  /** The storage it belongs to (`sqlite`, ...), for the accessor's check. */
  readonly storage: string;
  /** Forgets the writes so far: the handler failed, and what settles the message commits none of them. */
  discard(): void;
}

export interface Receipt {
  readonly message: TransportMessage;
  /** The queue the message was received from. */
  readonly address: Address;
  /** 1 on first delivery; counts redeliveries of this transport message (abandon, lease expiry); see `exactDeliveryCount`. */
  readonly deliveryCount: number;
  /** Aborts when the lease is lost or the transport closes: the handler should give up. */
  readonly signal: AbortSignal;
  /**
   * Where the transport keeps messages in a database a handler can write to: the session whose
   * writes `complete` commits in its own transaction (made on first use).
   */
  readonly session?: StorageSession;
  /** Removes the message and sends `outgoing` (see the file header). Throws SY_ERR_LEASE_LOST when fenced. */
  complete(outgoing?: readonly Outgoing[]): Promise<void>;
  /** Returns the message to its queue, visible again after `delayMs`. Never throws for a lost lease. */
  abandon(delayMs?: number): Promise<void>;
}

/** Operator views of queues, where the transport can give them (SQLite, PostgreSQL, memory). */
export interface QueueAdmin {
  /** Messages waiting or in flight in a queue. */
  depth(address: Address): Promise<number>;
  /** Known queues. */
  queues(): Promise<Address[]>;
  /** Messages in a queue, oldest first, without taking them (error queue tools, dashboards). */
  peek(address: Address, options: { offset: number; limit: number }): Promise<TransportMessage[]>;
  /** Removes messages by id, optionally sending replacements in the same transaction. Returns ids removed. */
  take(address: Address, ids: readonly string[], replacements?: (message: TransportMessage) => Outgoing[]): Promise<string[]>;
  /** Moves the messages of `from` that no consumer holds (all of them with `includeLeased`) to `to`. Returns how many. */
  moveAll(from: Address, to: Address, options?: { includeLeased?: boolean }): Promise<number>;
  /**
   * Every message in a queue with the time (the transport's clock, epoch ms) it is visible from,
   * oldest first; a held message shows its lease expiry. For the test kit, which moves virtual
   * time to the next due message; transports that cannot say leave it out.
   */
  schedule?(address: Address): Promise<ScheduledMessage[]>;
}

export interface ScheduledMessage {
  readonly message: TransportMessage;
  readonly visibleAt: number;
}

export interface Transport {
  /** `sqlite`, `memory`, `rabbitmq`, ... for logs, headers and benchmarks. */
  readonly name: string;
  readonly capabilities: TransportCapabilities;
  /** Present where the transport can inspect its queues. */
  readonly admin: QueueAdmin | undefined;
  /** Connects and prepares storage. Fails with a coded error naming the setting when it cannot. Idempotent. */
  open(): Promise<void>;
  createQueue(address: Address): Promise<void>;
  queueExists(address: Address): Promise<boolean>;
  /** Sends a batch; atomically where the transport can. */
  dispatch(batch: readonly Outgoing[]): Promise<void>;
  receive(address: Address, options: ReceiveOptions): Promise<Receipt[]>;
  /**
   * Moves up to `max` messages that no consumer holds from `from` to where `route` sends each
   * (a message it returns undefined for stays), in one transaction and with no lease in between:
   * a crash leaves each message in exactly one of the two queues. Waits up to `waitMs` for the
   * first message, like receive(). Returns how many moved. The distributor forwards with it where
   * the transport has it (SQLite); elsewhere it receives and completes with the forwarded copy.
   */
  forward?(from: Address, options: ForwardOptions, route: (message: TransportMessage) => QueueOutgoing | undefined): Promise<number>;
  /**
   * The endpoint stops receiving from `address`. Push transports stop the broker's deliveries
   * and give back the ones not handed out yet, so messages returned from now on (abandoned, or
   * never received) stay in the queue for others. Receipts handed out stay valid. Pull
   * transports (SQLite, memory) need nothing and leave it out.
   */
  stopReceiving?(address: Address): Promise<void>;
  /** Binds `address` to an event type (native pub/sub only). */
  subscribe?(address: Address, eventType: string): Promise<void>;
  unsubscribe?(address: Address, eventType: string): Promise<void>;
  /** Stops handing out receipts, aborts outstanding receipt signals, releases connections. Idempotent. */
  close(): Promise<void>;
}
