/**
 * Publishing with publisher confirms: a batch is routed (queue -> default exchange, event ->
 * its exchange, delayed -> the delay topology), every destination is checked or declared before
 * the first byte is published (so a missing queue sends nothing), then every message is
 * published persistent and the batch resolves when the broker confirmed all of them (after its
 * fsync). A queue's existence is re-checked every few seconds (QUEUE_RECHECK_MS in
 * declarations.ts) rather than publishing `mandatory` (which cost a fifth of the throughput), so a
 * queue deleted by an operator while senders use it can drop messages for up to that long.
 *
 * A connection lost mid-batch: the batch is published again once reconnected (within
 * `sendTimeoutMs`); the broker may then hold a message twice, never zero times.
 */
import type { ConfirmChannel } from 'amqplib';
import { Headers } from '../core/headers.js';
import { isTopicOutgoing, type Outgoing, type TransportMessage } from '../core/transport.js';
import type { BrokerConnection } from './connection.js';
import type { Declarations } from './declarations.js';
import { delayTopology } from './delay.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import { brokerError, isRefusal, redactUrl } from './errors.js';
import type { QueueType, TopologySpec } from './specs.js';
import { eventHierarchySpecs } from './topology.js';
import { toAmqp, type WireFormat } from './wire.js';

interface Route {
  readonly exchange: string;
  /** Delayed routes compute theirs when published, so time spent declaring does not add to the delay. */
  readonly routingKey: string | (() => string);
  readonly message: TransportMessage;
}

export interface PublisherSettings {
  url: string;
  queueType: QueueType;
  createTopology: boolean;
  sendTimeoutMs: number;
  wireFormat: WireFormat;
}

export class Publisher {
  private readonly delay;

  constructor(
    private readonly connection: BrokerConnection,
    private readonly declarations: Declarations,
    private readonly settings: PublisherSettings,
  ) {
    this.delay = delayTopology(settings.queueType);
  }

  /**
   * `retry: false` for a handler's sends: if the connection drops, the received message's
   * channel dropped with it, so the completion is fenced off rather than re-published.
   */
  async publish(batch: readonly Outgoing[], options: { retry?: boolean } = {}): Promise<void> {
    if (batch.length === 0) return;
    const startedAt = Date.now();
    const attempt = { phase: 'preparing the destinations', published: false, gaveUp: false };
    const sending = this.send(batch, options, startedAt, attempt);
    // The whole send, confirms included, ends by sendTimeoutMs: a confirm can wait forever on a
    // connection that is silently dead until the heartbeat notices.
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        attempt.gaveUp = true;
        reject(this.timedOut(batch.length, startedAt, attempt));
      }, this.settings.sendTimeoutMs);
    });
    try {
      await Promise.race([sending, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async send(batch: readonly Outgoing[], options: { retry?: boolean }, startedAt: number, attempt: { phase: string; published: boolean; gaveUp: boolean }): Promise<void> {
    const { routes, prepare } = this.route(batch);
    if (prepare) await prepare;
    const deadline = startedAt + this.settings.sendTimeoutMs;
    for (let pauseMs = 50; ; pauseMs = Math.min(2000, pauseMs * 2)) {
      if (attempt.gaveUp) return;
      try {
        attempt.phase = 'waiting for publisher confirms';
        attempt.published = true;
        await this.publishOnce(routes);
        return;
      } catch (error) {
        if (options.retry === false || isRefusal(error) || this.connection.state === 'closed' || attempt.gaveUp) {
          throw brokerError(error, `publishing ${batch.length} message(s)`, this.settings.url);
        }
        // Lost connection, or a nack (the broker could not store it): wait, then publish again.
        attempt.phase = 'waiting for the connection';
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(pauseMs, deadline - Date.now()))));
        await this.connection.whenConnected(Math.max(1, deadline - Date.now()), startedAt);
      }
    }
  }

  private timedOut(count: number, startedAt: number, attempt: { phase: string; published: boolean }): SwitchyardError {
    const mayArrive = attempt.published
      ? ' They were published and may still arrive (at-least-once): a caller that sends them again may deliver them twice.'
      : ' None was published.';
    return new SwitchyardError(
      ErrorCodes.TRANSPORT,
      `Sending ${count} message(s) to RabbitMQ at ${redactUrl(this.settings.url)} gave up after ${Date.now() - startedAt} ms (sendTimeoutMs ${this.settings.sendTimeoutMs}) while ${attempt.phase}.${mayArrive}`,
      { fix: 'Check the broker and the network to it (rabbitmqctl status); raise sendTimeoutMs if waiting longer is right; make handlers idempotent for the duplicates a resend may make.' },
    );
  }

  /**
   * Routes a batch; `prepare` is what must happen on the broker first (checking queues not seen
   * lately, declaring exchanges), and is undefined in the common case that nothing must.
   */
  private route(batch: readonly Outgoing[]): { routes: Route[]; prepare: Promise<void> | undefined } {
    const specs: TopologySpec[] = [];
    const routes: Route[] = [];
    const unseenQueues: string[] = [];
    const now = Date.now();
    let delayed = false;
    for (const outgoing of batch) {
      const delayMs = outgoing.deliverAt === undefined ? 0 : outgoing.deliverAt - now;
      const target: { exchange: string } | { queue: string } = isTopicOutgoing(outgoing) ? { exchange: outgoing.topic } : { queue: outgoing.destination };
      if (isTopicOutgoing(outgoing)) {
        const enclosed = outgoing.message.headers[Headers.EnclosedTypes]?.split(',') ?? [];
        specs.push(...eventHierarchySpecs(enclosed[0] === outgoing.topic ? enclosed : [outgoing.topic]));
      } else if (!this.declarations.seenQueue(outgoing.destination)) {
        unseenQueues.push(outgoing.destination);
      }
      if (delayMs > 0) {
        delayed = true;
        specs.push(this.delay.deliveryBinding(target));
        const deliverAt = outgoing.deliverAt!;
        this.delay.routingKey(delayMs, target); // refuses a too long delay before anything is declared
        routes.push({ exchange: this.delay.entryExchange, routingKey: () => this.delay.routingKey(deliverAt - Date.now(), target), message: outgoing.message });
      } else if ('exchange' in target) {
        routes.push({ exchange: target.exchange, routingKey: '', message: outgoing.message });
      } else {
        routes.push({ exchange: '', routingKey: target.queue, message: outgoing.message });
      }
    }
    const missing = this.declarations.missing(specs);
    const prepare = unseenQueues.length > 0 || missing.length > 0 || delayed ? this.prepare(unseenQueues, missing, delayed) : undefined;
    return { routes, prepare };
  }

  private async prepare(unseenQueues: readonly string[], specs: readonly TopologySpec[], delayed: boolean): Promise<void> {
    for (const queue of unseenQueues) await this.declarations.requireQueue(queue);
    if (delayed) await this.declarations.ensureMarked(this.delay.specs, this.delay.marker);
    await this.declarations.ensure(specs);
  }

  /** Publishes every route, then waits for all their confirms (one wait for the batch, not one per message). */
  private async publishOnce(routes: readonly Route[]): Promise<void> {
    const channel = this.connection.openPublishChannel ?? (await this.connection.publishChannel(this.settings.sendTimeoutMs));
    let unconfirmed = routes.length;
    let failure: Error | undefined;
    let allConfirmed!: () => void;
    const confirmed = new Promise<void>((resolve) => (allConfirmed = resolve));
    // Every confirm settles, a closed channel's with an error, so no callback fires into a finished batch.
    const onConfirm = (error: unknown) => {
      if (error && !failure) failure = this.reasonFor(channel, error as Error);
      if (--unconfirmed === 0) allConfirmed();
    };
    for (const route of routes) {
      const routingKey = typeof route.routingKey === 'string' ? route.routingKey : route.routingKey();
      const { content, options } = toAmqp(route.message, this.settings.wireFormat);
      const accepted = channel.publish(route.exchange, routingKey, content, options, onConfirm);
      // The socket buffer is full: wait for it to drain (or the channel to die) before writing more.
      if (!accepted) await new Promise((resolve) => (channel.once('drain', resolve), channel.once('close', resolve)));
    }
    await confirmed;
    if (failure) throw failure;
  }

  /** A confirm fails with "channel closed"; the channel's error event holds the broker's reason. */
  private reasonFor(channel: ConfirmChannel, error: Error): Error {
    return this.connection.channelError(channel) ?? error;
  }
}
