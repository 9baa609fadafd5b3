/**
 * The RabbitMQ transport: durable queues (quorum by default), native publish/subscribe through
 * one fanout exchange per event type, delayed delivery through a TTL delay topology, publisher
 * confirms and manual acks. See docs/rabbitmq.md.
 *
 * complete(outgoing) publishes the outgoing messages and waits for their confirms, and only then
 * acks the received one (capabilities.atomicSendWithReceive = false): a crash or connection loss
 * between the two leaves the received message to be delivered again, so its sends may be
 * duplicated but are never lost. Handlers must be idempotent (or deduplicate on message id).
 */
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { Address } from '../core/identity.js';
import { consoleLogger, type Logger } from '../core/logger.js';
import type { QueueAdmin, Receipt, ReceiveOptions, Transport } from '../core/transport.js';
import { rabbitmqAdmin } from './admin.js';
import { BrokerConnection, notOpen, type ConnectionState, type ConnectionStateChange } from './connection.js';
import { QueueConsumer, type ConsumerDeps } from './consumer.js';
import { Declarations } from './declarations.js';
import { Publisher } from './publisher.js';
import type { QueueType } from './specs.js';
import { queueSpec, subscriptionSpecs } from './topology.js';
import { WIRE_FORMATS, type WireFormat } from './wire.js';

export interface RabbitMqTransportOptions {
  /** `amqp://user:password@host:5672/vhost` (or `amqps://` for TLS). */
  url: string;
  /** Type of the queues Switchyard declares (default `quorum`: replicated, durable, delivery counts). */
  queueType?: QueueType;
  /** Unacked deliveries per queue consumer. Default: the largest receive `max`, the endpoint's concurrency plus its prefetch. */
  prefetch?: number;
  /**
   * Where the Switchyard headers without an AMQP property travel: `envelope` (default) in the body,
   * as `{"headers":{...},"body":...}`; `headers` in the AMQP header `sy1-headers`, the body being
   * the message's JSON alone (for consumers that are not Switchyard). Both are always read.
   */
  wireFormat?: WireFormat;
  /** Declare queues, exchanges and bindings (default true). False: only check they exist; see rabbitmqTopology(). */
  createTopology?: boolean;
  /** Bound on each connect attempt, TCP connect and AMQP handshake (default 10000 ms); a reconnect attempt that runs out is retried with backoff. */
  connectTimeoutMs?: number;
  /** AMQP heartbeat in seconds (default 10): how fast a dead peer is noticed, on both sides. */
  heartbeatSeconds?: number;
  /** Reconnect backoff: first delay (default 100 ms), doubled per attempt up to `maxDelayMs` (default 5000), jittered. */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /**
   * Bound on a whole send (default 30 s): waiting for a lost connection, publishing and waiting
   * for the publisher confirms. A send that runs out fails with SY_ERR_TRANSPORT; its messages
   * may still arrive (at-least-once).
   */
  sendTimeoutMs?: number;
  /** TLS settings for `amqps://` (ca, cert, key, servername, ...); hostnames are verified by default. */
  tls?: TlsOptions;
  logger?: Logger;
  /** Called on each connection state change (also logged as one line). */
  onStateChange?: (change: ConnectionStateChange) => void;
}

export interface RabbitMqTransport extends Transport {
  /** The connection's state: `connected`, `reconnecting`, ... */
  readonly state: ConnectionState;
}

export function rabbitmqTransport(options: RabbitMqTransportOptions): RabbitMqTransport {
  const settings = checkOptions(options);
  const connection = new BrokerConnection({
    url: settings.url,
    heartbeatSeconds: settings.heartbeatSeconds,
    connectTimeoutMs: settings.connectTimeoutMs,
    reconnectInitialDelayMs: options.reconnect?.initialDelayMs ?? 100,
    reconnectMaxDelayMs: options.reconnect?.maxDelayMs ?? 5000,
    tls: options.tls,
    logger: options.logger ?? consoleLogger('rabbitmq'),
    onStateChange: options.onStateChange,
  });
  const declarations = new Declarations(connection, { url: settings.url, createTopology: settings.createTopology, timeoutMs: settings.sendTimeoutMs });
  const publisher = new Publisher(connection, declarations, settings);
  const publish = (batch: Parameters<Publisher['publish']>[0], publishOptions?: { retry?: boolean }) => publisher.publish(batch, publishOptions);
  const consumers = new Consumers(connection, { url: settings.url, prefetch: options.prefetch, sendTimeoutMs: settings.sendTimeoutMs, publish });
  let opened = false;
  let closed = false;

  const requireOpen = () => {
    if (!opened || closed) throw notOpen();
  };

  const admin: QueueAdmin = rabbitmqAdmin(connection, declarations, publish, { url: settings.url, timeoutMs: settings.sendTimeoutMs });

  return {
    name: 'rabbitmq',
    // Quorum queues count returns (x-delivery-count); classic queues only flag a redelivery.
    capabilities: { delayedDelivery: true, nativePubSub: true, atomicSendWithReceive: false, competingConsumers: true, exactDeliveryCount: settings.queueType === 'quorum' },
    admin,
    get state() {
      return connection.state;
    },
    async open() {
      if (closed) throw notOpen();
      await connection.open();
      opened = true;
    },
    async createQueue(address) {
      requireOpen();
      await declarations.ensure([queueSpec(address, settings.queueType)]);
    },
    async queueExists(address) {
      requireOpen();
      return declarations.queueExists(address);
    },
    async dispatch(batch) {
      requireOpen();
      await publish(batch);
    },
    async receive(address: Address, receiveOptions: ReceiveOptions): Promise<Receipt[]> {
      if (closed || receiveOptions.signal.aborted) return [];
      requireOpen();
      return consumers.receive(address, receiveOptions);
    },
    stopReceiving: (address) => consumers.stopReceiving(address),
    async subscribe(address, eventType) {
      requireOpen();
      await declarations.ensure(subscriptionSpecs(address, eventType));
    },
    async unsubscribe(address, eventType) {
      requireOpen();
      if (!settings.createTopology) return;
      await connection.declaring(settings.sendTimeoutMs, (channel) => channel.unbindQueue(address, eventType, ''));
      declarations.forget(subscriptionSpecs(address, eventType).filter((s) => s.kind === 'binding'));
    },
    async close() {
      if (closed) return;
      closed = true;
      await consumers.stop();
      await connection.close();
    },
  };
}

/** One consumer per queue received from, started on the first receive and again after a reconnect. */
class Consumers {
  readonly #consumers = new Map<Address, QueueConsumer>();

  constructor(
    private readonly connection: BrokerConnection,
    private readonly settings: Omit<ConsumerDeps, 'connection'> & { readonly sendTimeoutMs: number },
  ) {
    connection.onLost(() => {
      for (const consumer of this.#consumers.values()) consumer.connectionLost();
    });
  }

  async receive(address: Address, { max, waitMs, signal }: ReceiveOptions): Promise<Receipt[]> {
    const { connection, settings } = this;
    if (connection.state !== 'connected') {
      // Reconnecting: wait quietly (the connection logs its own state); the pump asks again.
      const up = await connection.whenConnected(waitMs).then(() => true, () => false);
      if (!up) return [];
    }
    let consumer = this.#consumers.get(address);
    if (!consumer) this.#consumers.set(address, (consumer = new QueueConsumer(address, { ...settings, connection })));
    try {
      await consumer.ensure(max, settings.sendTimeoutMs);
    } catch (error) {
      // The connection dropped while the consumer started: the reconnect logs it; ask again later.
      if (connection.state !== 'connected') return [];
      throw error;
    }
    return consumer.take(max, waitMs, signal);
  }

  async stopReceiving(address: Address): Promise<void> {
    await this.#consumers.get(address)?.stopReceiving();
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#consumers.values()].map((c) => c.stop()));
    this.#consumers.clear();
  }
}

function checkOptions(options: RabbitMqTransportOptions) {
  const bad = (setting: string, value: unknown, fix: string) =>
    new SwitchyardError(ErrorCodes.CONFIG, `RabbitMQ transport option \`${setting}\` is ${JSON.stringify(value)}.`, { fix });
  if (!options || typeof options.url !== 'string' || !/^amqps?:\/\//.test(options.url)) {
    throw bad('url', options?.url, "Pass the broker url, e.g. rabbitmqTransport({ url: 'amqp://guest:guest@127.0.0.1:5672' }).");
  }
  const queueType = options.queueType ?? 'quorum';
  if (queueType !== 'quorum' && queueType !== 'classic') throw bad('queueType', queueType, "Use 'quorum' (default) or 'classic'.");
  const positive = (setting: string, value: number | undefined, fallback: number, max: number) => {
    if (value === undefined) return fallback;
    if (!Number.isInteger(value) || value < 0 || value > max) throw bad(setting, value, `Use a whole number from 0 to ${max}.`);
    return value;
  };
  const wireFormat = options.wireFormat ?? 'envelope';
  if (!WIRE_FORMATS.includes(wireFormat)) throw bad('wireFormat', wireFormat, "Use 'envelope' (default: headers in the body) or 'headers' (headers in an AMQP header, the body alone).");
  if (options.prefetch !== undefined && (!Number.isInteger(options.prefetch) || options.prefetch < 1 || options.prefetch > 65_535)) {
    throw bad('prefetch', options.prefetch, 'Use a whole number from 1 to 65535, or leave it out to follow the endpoint concurrency.');
  }
  return {
    url: options.url,
    queueType,
    wireFormat,
    createTopology: options.createTopology ?? true,
    heartbeatSeconds: positive('heartbeatSeconds', options.heartbeatSeconds, 10, 600),
    sendTimeoutMs: positive('sendTimeoutMs', options.sendTimeoutMs, 30_000, 3_600_000),
    connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs, 10_000, 600_000) || 10_000,
  };
}
