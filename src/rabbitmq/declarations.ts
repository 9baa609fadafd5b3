/**
 * What this transport has declared (or verified) on the broker, so each queue, exchange and
 * binding is declared once per connection, and all of it is declared again after a reconnect
 * (a broker that lost its definitions gets them back before consumers resume).
 *
 * With `createTopology: false` nothing is declared: queues and exchanges are only checked
 * (a missing one is a coded error naming the topology script), bindings are trusted.
 */
import type { Channel, ChannelModel } from 'amqplib';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { BrokerConnection } from './connection.js';
import { brokerError } from './errors.js';
import { declare, specKey, type TopologySpec } from './specs.js';

export class Declarations {
  private readonly declared = new Map<string, TopologySpec>();
  /** Queue name -> when it was last seen to exist. */
  private readonly knownQueues = new Map<string, number>();

  constructor(
    private readonly connection: BrokerConnection,
    private readonly settings: { url: string; createTopology: boolean; timeoutMs: number },
  ) {
    connection.onReconnected((model) => this.redeclare(model));
  }

  /** Queues this transport declared or found. */
  queues(): string[] {
    return [...this.knownQueues.keys()];
  }

  /** Forgets declarations undone on the broker (an unbind), so a later ensure declares them again. */
  forget(specs: readonly TopologySpec[]): void {
    for (const spec of specs) this.declared.delete(specKey(spec));
  }

  forgetQueue(name: string): void {
    this.knownQueues.delete(name);
    this.declared.delete(`q:${name}`);
  }

  /** The specs not declared yet on this connection. */
  missing(specs: readonly TopologySpec[]): TopologySpec[] {
    return specs.length === 0 ? [] : specs.filter((s) => !this.declared.has(specKey(s)));
  }

  /** Declares what is missing, exchanges first, then queues, then bindings (pipelined per group). */
  async ensure(specs: readonly TopologySpec[]): Promise<void> {
    const missing = this.missing(specs);
    if (missing.length === 0) return;
    for (const kind of ['exchange', 'queue', 'binding'] as const) {
      const group = missing.filter((s) => s.kind === kind);
      if (group.length === 0) continue;
      try {
        if (group.length <= PARALLEL_ABOVE) {
          await this.connection.declaring(this.settings.timeoutMs, (channel) => Promise.all(group.map((spec) => this.apply(channel, spec))));
        } else {
          // amqplib runs one RPC at a time per channel: spread a large group (the delay topology) over several.
          await Promise.all(chunks(group, CHANNELS).map((chunk) => this.onOwnChannel((channel) => Promise.all(chunk.map((spec) => this.apply(channel, spec))))));
        }
      } catch (error) {
        throw brokerError(error, `declaring ${describe(group)}`, this.settings.url);
      }
      for (const spec of group) {
        this.declared.set(specKey(spec), spec);
        if (spec.kind === 'queue') this.knownQueues.set(spec.name, Date.now());
      }
    }
  }

  /**
   * Declares `specs` and then `marker`; when the marker already exists (another process finished
   * the same declarations), one check replaces them all.
   */
  async ensureMarked(specs: readonly TopologySpec[], marker: TopologySpec): Promise<void> {
    if (this.declared.has(specKey(marker)) || marker.kind !== 'exchange') return;
    const exists = await this.connection
      .declaring(this.settings.timeoutMs, (channel) => channel.checkExchange(marker.name))
      .then(() => true, () => false);
    if (exists) {
      for (const spec of [...specs, marker]) this.declared.set(specKey(spec), spec);
      return;
    }
    await this.ensure(specs);
    await this.ensure([marker]);
  }

  private async onOwnChannel<T>(fn: (channel: Channel) => Promise<T>): Promise<T> {
    const channel = await this.connection.channel(this.settings.timeoutMs);
    try {
      return await fn(channel);
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  private async apply(channel: Channel, spec: TopologySpec): Promise<void> {
    if (this.settings.createTopology) return declare(channel, spec);
    if (spec.kind === 'queue') await channel.checkQueue(spec.name);
    else if (spec.kind === 'exchange') await channel.checkExchange(spec.name);
  }

  /** True when the queue was seen to exist within QUEUE_RECHECK_MS: no need to ask the broker. */
  seenQueue(name: string): boolean {
    const seen = this.knownQueues.get(name);
    return seen !== undefined && Date.now() - seen < QUEUE_RECHECK_MS;
  }

  /** True when the queue exists (seen within QUEUE_RECHECK_MS, or checked now). */
  async queueExists(name: string): Promise<boolean> {
    if (this.seenQueue(name)) return true;
    try {
      await this.connection.declaring(this.settings.timeoutMs, (channel) => channel.checkQueue(name));
    } catch (error) {
      const mapped = brokerError(error, `checking queue ${name}`, this.settings.url);
      if (mapped.code === ErrorCodes.QUEUE_NOT_FOUND) {
        this.forgetQueue(name);
        return false;
      }
      throw mapped;
    }
    this.knownQueues.set(name, Date.now());
    return true;
  }

  async requireQueue(name: string): Promise<void> {
    if (await this.queueExists(name)) return;
    throw new SwitchyardError(ErrorCodes.QUEUE_NOT_FOUND, `Queue ${name} does not exist on RabbitMQ; nothing was sent.`, {
      fix: this.settings.createTopology
        ? 'Start the endpoint that owns the queue first (it declares its queues), or create it with transport.createQueue().'
        : 'createTopology is false: create the topology first (rabbitmqTopology() prints it; see docs/rabbitmq.md).',
    });
  }

  private async redeclare(model: ChannelModel): Promise<void> {
    if (!this.settings.createTopology || this.declared.size === 0) return;
    const channel = await model.createChannel();
    channel.on('error', () => undefined);
    try {
      for (const kind of ['exchange', 'queue', 'binding'] as const) {
        await Promise.all([...this.declared.values()].filter((s) => s.kind === kind).map((spec) => declare(channel, spec)));
      }
    } finally {
      await channel.close().catch(() => undefined);
    }
  }
}

/** How long a queue seen to exist is trusted before a send checks again (a deleted queue drops sends meanwhile). */
export const QUEUE_RECHECK_MS = 5000;
const PARALLEL_ABOVE = 8;
const CHANNELS = 8;

function chunks<T>(items: readonly T[], count: number): T[][] {
  const out: T[][] = Array.from({ length: count }, () => []);
  items.forEach((item, i) => out[i % count]!.push(item));
  return out.filter((c) => c.length > 0);
}

function describe(specs: readonly TopologySpec[]): string {
  const names = specs.map((s) => (s.kind === 'binding' ? `binding ${s.source} -> ${s.destination}` : `${s.kind} ${s.name}`));
  return names.length > 3 ? `${names.slice(0, 3).join(', ')} and ${names.length - 3} more` : names.join(', ');
}
