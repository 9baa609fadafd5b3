/**
 * A push consumer behind the pull `receive()` of the transport port: one channel per queue,
 * deliveries land in a local buffer and wake a waiting receive.
 *
 * The "lease" on RabbitMQ is the channel: a delivery can only be acked on the channel it came
 * on, and when that channel (or its connection) closes the broker requeues it. So each delivery's
 * signal aborts when its channel closes, and settling it afterwards raises SY_ERR_LEASE_LOST
 * (complete) or does nothing (abandon). Undelivered buffered messages of a closed channel are
 * dropped from the buffer: the broker gives them to another consumer.
 *
 * Prefetch (how many unacked deliveries the broker pushes) is `prefetch` when set, otherwise the
 * largest `max` a receive asked for: the pump asks for its free slots, so that is its concurrency.
 */
import { setMaxListeners } from 'node:events';
import type { Channel, ConsumeMessage } from 'amqplib';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { Address } from '../core/identity.js';
import { leaseLost, waitForWake } from '../core/leases.js';
import type { Outgoing, Receipt, TransportMessage } from '../core/transport.js';
import { ChannelAcks } from './channel-acks.js';
import type { BrokerConnection } from './connection.js';
import { brokerError } from './errors.js';
import { DELIVERY_BASE_HEADER, fromAmqp } from './wire.js';

export interface ConsumerDeps {
  readonly connection: BrokerConnection;
  readonly url: string;
  readonly prefetch: number | undefined;
  /** Publishes with confirms (the transport's dispatch). */
  publish(batch: readonly Outgoing[], options?: { retry?: boolean }): Promise<void>;
}

interface Delivery {
  readonly raw: ConsumeMessage;
  readonly channel: Channel;
  readonly acks: ChannelAcks;
  readonly signal: AbortSignal;
}

export class QueueConsumer {
  private buffer: Delivery[] = [];
  private readonly wakers = new Set<() => void>();
  private channel: Channel | undefined;
  private lease: AbortController | undefined;
  private starting: Promise<void> | undefined;
  private prefetch = 0;
  private consumerTag: string | undefined;
  /** The endpoint stopped receiving: no new consumer is started. */
  private receivingStopped = false;

  constructor(
    private readonly address: Address,
    private readonly deps: ConsumerDeps,
  ) {}

  /** Starts consuming (or raises the prefetch) so that `max` deliveries can be handed out. */
  async ensure(max: number, timeoutMs: number): Promise<void> {
    if (this.receivingStopped) return;
    const wanted = this.deps.prefetch ?? Math.max(this.prefetch, max);
    if (this.channel) {
      if (wanted > this.prefetch) {
        this.prefetch = wanted;
        await this.channel.prefetch(wanted);
      }
      return;
    }
    this.starting ??= this.start(wanted, timeoutMs).finally(() => (this.starting = undefined));
    await this.starting;
  }

  private async start(prefetch: number, timeoutMs: number): Promise<void> {
    const channel = await this.deps.connection.channel(timeoutMs);
    const lease = new AbortController();
    const acks = new ChannelAcks(channel);
    setMaxListeners(0, lease.signal); // one listener per unsettled delivery, up to the prefetch
    channel.on('close', () => this.channelClosed(channel, lease));
    try {
      await channel.prefetch(prefetch);
      const from = { channel, acks, signal: lease.signal };
      ({ consumerTag: this.consumerTag } = await channel.consume(this.address, (raw) => this.delivered(raw, from), { noAck: false }));
    } catch (error) {
      await channel.close().catch(() => undefined);
      throw brokerError(error, `consuming from queue ${this.address}`, this.deps.url);
    }
    // Closed while starting (a connection that dropped again): keeping it would stall this queue.
    if (lease.signal.aborted) throw brokerError(new Error('the channel closed while the consumer started'), `consuming from queue ${this.address}`, this.deps.url);
    this.channel = channel;
    this.lease = lease;
    this.prefetch = prefetch;
  }

  private delivered(raw: ConsumeMessage | null, from: Omit<Delivery, 'raw'>): void {
    if (raw === null) {
      // The broker cancelled the consumer (queue deleted): the next receive starts a new one.
      void from.channel.close().catch(() => undefined);
      return;
    }
    from.acks.delivered(raw);
    if (this.receivingStopped) {
      from.acks.nack(raw, true); // arrived while the cancel was under way: not ours to take
      return;
    }
    this.buffer.push({ channel: from.channel, acks: from.acks, signal: from.signal, raw });
    for (const wake of this.wakers) wake(); // a wake removes only itself: safe while iterating
  }

  private channelClosed(channel: Channel, lease: AbortController): void {
    if (!lease.signal.aborted) lease.abort(new SwitchyardError(ErrorCodes.LEASE_LOST, `The channel consuming from ${this.address} closed; its deliveries go back to the queue.`));
    this.buffer = this.buffer.filter((d) => d.channel !== channel);
    if (this.channel === channel) this.channel = undefined;
  }

  /** The connection is gone: its channels are, too (in case a channel's own close event is late). */
  connectionLost(): void {
    const channel = this.channel;
    if (channel && this.lease) this.channelClosed(channel, this.lease);
  }

  /** Hands out up to `max` buffered deliveries, waiting up to `waitMs` for the first. */
  async take(max: number, waitMs: number, signal: AbortSignal): Promise<Receipt[]> {
    if (this.buffer.length === 0 && waitMs > 0) {
      await waitForWake(
        (wake) => {
          this.wakers.add(wake);
          return () => this.wakers.delete(wake);
        },
        waitMs,
        signal,
      );
    }
    return this.buffer.splice(0, max).map((d) => new DeliveryReceipt(d, this.address, this.deps));
  }

  /**
   * No more deliveries: cancels the consumer, then puts back the deliveries not handed out.
   * The channel stays open, so receipts already handed out can still be acked.
   */
  async stopReceiving(): Promise<void> {
    this.receivingStopped = true;
    const channel = this.channel;
    if (!channel) return;
    if (this.consumerTag) await channel.cancel(this.consumerTag).catch(() => undefined);
    for (const delivery of this.buffer.splice(0)) {
      try {
        delivery.acks.nack(delivery.raw, true);
      } catch {
        // Channel gone: the broker requeues them itself.
      }
    }
  }

  async stop(): Promise<void> {
    const channel = this.channel;
    this.channel = undefined;
    this.lease?.abort(new SwitchyardError(ErrorCodes.NOT_RUNNING, 'The transport closed.'));
    this.buffer = [];
    await channel?.close().catch(() => undefined);
  }
}

/**
 * One delivery handed out. A class, not a literal of closures: one receipt per message, and its
 * methods shared on the prototype, keep the allocation per delivery small.
 */
class DeliveryReceipt implements Receipt {
  readonly message: TransportMessage;
  readonly deliveryCount: number;
  private settled = false;
  /** Follows the channel until the receipt is settled; made on first use (most handlers never look). */
  private own: AbortController | undefined;
  private follow: (() => void) | undefined;

  constructor(
    private readonly delivery: Delivery,
    readonly address: Address,
    private readonly deps: ConsumerDeps,
  ) {
    this.message = fromAmqp(delivery.raw);
    this.deliveryCount = deliveryCountOf(delivery.raw);
  }

  /**
   * The receipt's own signal follows the channel until the receipt is settled, and no longer:
   * closing the channel later (transport stop) must not abort a handler that already finished.
   */
  get signal(): AbortSignal {
    if (!this.own) {
      const own = (this.own = new AbortController());
      const channel = this.delivery.signal;
      if (channel.aborted && !this.settled) own.abort(channel.reason);
      else if (!this.settled) channel.addEventListener('abort', (this.follow = () => own.abort(channel.reason)), { once: true });
    }
    return this.own.signal;
  }

  private done(): void {
    this.settled = true;
    if (this.follow) this.delivery.signal.removeEventListener('abort', this.follow);
  }

  async complete(outgoing: readonly Outgoing[] = []): Promise<void> {
    const { raw, acks, signal } = this.delivery;
    if (signal.aborted || this.settled) throw leaseLost(this.address, this.message.id);
    // Sends first, confirmed; then the ack. A loss in between duplicates, never loses.
    if (outgoing.length > 0) {
      try {
        await this.deps.publish(outgoing, { retry: false });
      } catch (error) {
        throw signal.aborted ? leaseLost(this.address, this.message.id) : error;
      }
    }
    if (signal.aborted) throw leaseLost(this.address, this.message.id);
    this.done();
    try {
      await acks.ack(raw);
    } catch {
      throw leaseLost(this.address, this.message.id);
    }
  }

  async abandon(delayMs = 0): Promise<void> {
    const { raw, acks, signal } = this.delivery;
    if (signal.aborted || this.settled) return;
    this.done();
    try {
      if (delayMs > 0) {
        const count = String(this.deliveryCount);
        const copy = { ...this.message, headers: { ...this.message.headers, [DELIVERY_BASE_HEADER]: count } };
        await this.deps.publish([{ destination: this.address, message: copy, deliverAt: Date.now() + delayMs }]);
        if (!signal.aborted) await acks.ack(raw);
      } else {
        acks.nack(raw, true);
      }
    } catch {
      // The delayed copy was not confirmed: put the message back now instead (never lose it).
      try {
        if (!signal.aborted) acks.nack(raw, true);
      } catch {
        // Channel gone: the broker requeues the message itself.
      }
    }
  }
}

/** Quorum queues count returns in x-delivery-count; classic ones only say "redelivered". */
function deliveryCountOf(raw: ConsumeMessage): number {
  const headers = raw.properties.headers ?? {};
  const base = Number(headers[DELIVERY_BASE_HEADER] ?? 0) || 0;
  const returned = headers['x-delivery-count'];
  const count = typeof returned === 'number' ? returned + 1 : raw.fields.redelivered ? 2 : 1;
  return base + count;
}
