/**
 * One AMQP connection that comes back by itself.
 *
 * States: idle -> connecting -> connected <-> reconnecting -> closed.
 * - open(): the first connect fails fast with a coded error (wrong url, credentials, broker down).
 * - A connection lost afterwards (broker restart, network) moves to `reconnecting`: attempts are
 *   spaced by jittered exponential backoff (so a fleet does not stampede the broker), and on
 *   success the `onReconnected` hooks run (re-declare topology, resume consumers) before the
 *   state becomes `connected` again. Each change is one log line and one `onStateChange` call.
 * - Channels are the unit of failure on RabbitMQ: a refused declaration or publish closes only
 *   its channel, so the shared channels here are re-created on next use.
 */
import type { Channel, ChannelModel, ConfirmChannel } from 'amqplib';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { coalesceSocketWrites } from './coalesced-writes.js';
import { brokerError, redactUrl } from './errors.js';
import { loadPeerDependency } from '../core/peer-dependency.js';

const amqp = loadPeerDependency<typeof import('amqplib')>('amqplib', 'switchyard/rabbitmq');

export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

export interface ConnectionStateChange {
  readonly state: ConnectionState;
  readonly previous: ConnectionState;
  /** Why the connection was lost, or why an attempt failed. */
  readonly reason?: string;
  /** Reconnect attempt number (1 for the first retry). */
  readonly attempt?: number;
}

export interface ConnectionSettings {
  url: string;
  heartbeatSeconds: number;
  /** Bound on one connect attempt, TCP connect and AMQP handshake together. */
  connectTimeoutMs: number;
  reconnectInitialDelayMs: number;
  reconnectMaxDelayMs: number;
  tls: TlsOptions | undefined;
  logger: Logger;
  onStateChange: ((change: ConnectionStateChange) => void) | undefined;
}

export class BrokerConnection {
  private model: ChannelModel | undefined;
  private publisher: Promise<ConfirmChannel> | undefined;
  /** The publish channel once open, until it or the connection closes: the per-message fast path. */
  private openPublisher: ConfirmChannel | undefined;
  private declarer: Promise<Channel> | undefined;
  private stateValue: ConnectionState = 'idle';
  private readonly waiters = new Set<() => void>();
  private readonly reconnectedHooks: ((model: ChannelModel) => Promise<void>)[] = [];
  private readonly lostHooks: (() => void)[] = [];
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly channelErrors = new WeakMap<Channel, Error>();

  constructor(private readonly settings: ConnectionSettings) {}

  get state(): ConnectionState {
    return this.stateValue;
  }

  /** Runs after every reconnect, in registration order, before the state is `connected`. */
  onReconnected(hook: (model: ChannelModel) => Promise<void>): void {
    this.reconnectedHooks.push(hook);
  }

  /** Runs synchronously when the connection is lost. */
  onLost(hook: () => void): void {
    this.lostHooks.push(hook);
  }

  private setState(state: ConnectionState, detail: Omit<ConnectionStateChange, 'state' | 'previous'> = {}): void {
    const previous = this.stateValue;
    if (previous === state && state !== 'reconnecting') return;
    this.stateValue = state;
    const where = redactUrl(this.settings.url);
    const line = {
      idle: '',
      connecting: `connecting to RabbitMQ at ${where}`,
      connected: previous === 'reconnecting' ? `reconnected to RabbitMQ at ${where}; topology declared and consumers resumed` : `connected to RabbitMQ at ${where}`,
      reconnecting: `RabbitMQ connection lost (${detail.reason ?? 'unknown reason'}); reconnect attempt ${detail.attempt ?? 1} with backoff`,
      closed: `RabbitMQ connection closed`,
    }[state];
    if (state === 'reconnecting' && (detail.attempt ?? 1) > 1) this.settings.logger.debug?.(line);
    else if (state === 'reconnecting') this.settings.logger.warn(line);
    else if (line) this.settings.logger.info(line);
    if (state === 'connected' || state === 'closed') for (const wake of [...this.waiters]) wake();
    this.settings.onStateChange?.({ state, previous, ...detail });
  }

  private async connectOnce(): Promise<ChannelModel> {
    // amqplib reads the heartbeat from the url, not from the socket options.
    const url = new URL(this.settings.url);
    url.searchParams.set('heartbeat', String(this.settings.heartbeatSeconds));
    // noDelay: acks and confirms are tiny frames; Nagle's algorithm would hold them back.
    // timeout: amqplib destroys the socket when it is idle that long before the handshake
    // completes, so a peer that never answers fails this attempt instead of holding it forever.
    const timeoutMs = this.settings.connectTimeoutMs;
    const model = await amqp.connect(url.toString(), { noDelay: true, timeout: timeoutMs, ...this.settings.tls }).catch((error: Error) => {
      throw /ETIMEDOUT/.test(error.message) ? new Error(`no connect and handshake within connectTimeoutMs (${timeoutMs} ms)`, { cause: error }) : error;
    });
    if (!coalesceSocketWrites(model)) this.settings.logger.debug?.('amqplib socket not found: frames are written one by one');
    model.on('error', () => undefined); // 'close' follows with the reason; an unhandled 'error' would crash the process
    model.on('close', (error?: Error) => this.lost(model, error));
    return model;
  }

  async open(): Promise<void> {
    if (this.model || this.stateValue === 'connecting') {
      await this.whenConnected(30_000);
      return;
    }
    this.setState('connecting');
    try {
      this.model = await this.connectOnce();
    } catch (error) {
      this.setState('idle', { reason: (error as Error).message });
      throw brokerError(error, 'connecting', this.settings.url);
    }
    this.setState('connected');
  }

  private lost(model: ChannelModel, error: Error | undefined): void {
    if (this.model !== model) return;
    this.model = undefined;
    this.publisher = undefined;
    this.openPublisher = undefined;
    this.declarer = undefined;
    for (const hook of this.lostHooks) hook();
    if (this.stateValue === 'closed') return;
    this.scheduleReconnect(1, error?.message ?? 'closed by the broker');
  }

  private scheduleReconnect(attempt: number, reason: string): void {
    this.setState('reconnecting', { reason, attempt });
    const ceiling = Math.min(this.settings.reconnectMaxDelayMs, this.settings.reconnectInitialDelayMs * 2 ** (attempt - 1));
    // Equal jitter: at least half the ceiling, so attempts stay spaced, randomised so a fleet spreads out.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.reconnectTimer = setTimeout(() => void this.reconnect(attempt), delay);
  }

  private isClosed(): boolean {
    return this.stateValue === 'closed';
  }

  private async reconnect(attempt: number): Promise<void> {
    if (this.isClosed()) return;
    let model: ChannelModel | undefined;
    try {
      model = await this.connectOnce();
      if (this.isClosed()) {
        await model.close().catch(() => undefined);
        return;
      }
      this.model = model;
      for (const hook of this.reconnectedHooks) await hook(model);
      this.setState('connected');
    } catch (error) {
      if (this.isClosed()) return;
      if (model && this.model === model) {
        this.model = undefined;
        await model.close().catch(() => undefined);
      }
      this.scheduleReconnect(attempt + 1, (error as Error).message);
    }
  }

  /**
   * Resolves when connected; throws NOT_RUNNING when closed, TRANSPORT after `timeoutMs`. The
   * error reports the time waited since `startedAt` (a caller's whole wait, e.g. a send's).
   */
  async whenConnected(timeoutMs: number, startedAt = Date.now()): Promise<ChannelModel> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.stateValue === 'closed') throw notOpen();
      if (this.model && this.stateValue === 'connected') return this.model;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new SwitchyardError(ErrorCodes.TRANSPORT, `RabbitMQ at ${redactUrl(this.settings.url)} is not reachable (state: ${this.stateValue}); gave up after ${Date.now() - startedAt} ms.`, {
          fix: 'Check the broker is running (rabbitmqctl status); Switchyard keeps reconnecting, and raises sendTimeoutMs if waiting longer is right.',
        });
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.waiters.add(done);
      });
    }
  }

  /** The shared confirm channel for publishing, re-created after it or the connection closed. */
  publishChannel(timeoutMs: number): Promise<ConfirmChannel> {
    if (this.publisher) return this.publisher;
    const opening = this.whenConnected(timeoutMs).then(async (model) => {
      const channel = await model.createConfirmChannel();
      channel.on('error', (error: Error) => this.channelErrors.set(channel, error));
      channel.on('close', () => {
        if (this.publisher === opening) this.publisher = this.openPublisher = undefined;
      });
      if (this.publisher === opening) this.openPublisher = channel;
      return channel;
    });
    opening.catch(() => {
      if (this.publisher === opening) this.publisher = undefined;
    });
    return (this.publisher = opening);
  }

  /** The publish channel when it is open now, without waiting (undefined: call publishChannel). */
  get openPublishChannel(): ConfirmChannel | undefined {
    return this.openPublisher;
  }

  /** The broker's reason for closing a channel, when it gave one. */
  channelError(channel: Channel): Error | undefined {
    return this.channelErrors.get(channel);
  }

  /** Runs `fn` on the shared declaration channel; a refusal closes it and the next call opens another. */
  async declaring<T>(timeoutMs: number, fn: (channel: Channel) => Promise<T>): Promise<T> {
    this.declarer ??= this.whenConnected(timeoutMs).then(async (model) => {
      const channel = await model.createChannel();
      channel.on('error', () => undefined);
      channel.on('close', () => {
        if (this.declarer === current) this.declarer = undefined;
      });
      return channel;
    });
    const current = this.declarer;
    try {
      return await fn(await current);
    } catch (error) {
      if (this.declarer === current) this.declarer = undefined;
      throw error;
    }
  }

  /** A channel of its own (consumers, operator tools); the caller closes it. */
  async channel(timeoutMs: number): Promise<Channel> {
    const model = await this.whenConnected(timeoutMs);
    const channel = await model.createChannel();
    channel.on('error', () => undefined);
    return channel;
  }

  async close(): Promise<void> {
    if (this.stateValue === 'closed') return;
    const model = this.model;
    this.model = undefined;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.setState('closed');
    for (const hook of this.lostHooks) hook();
    await model?.close().catch(() => undefined);
  }
}

export function notOpen(): SwitchyardError {
  return new SwitchyardError(ErrorCodes.NOT_RUNNING, 'The RabbitMQ transport is closed or not open.', {
    fix: 'Start the endpoint (or call transport.open()) before use, and do not use the transport after stop.',
  });
}
