/**
 * What the test bus sees: each endpoint's transport is wrapped so that every message sent,
 * published, handled, retried and failed is recorded with the endpoint and the virtual time, and
 * every receipt a handler holds is known until it is settled (what "in flight" means).
 */
import type { Clock } from '../core/clock.js';
import { Headers } from '../core/headers.js';
import type { Outgoing, Receipt, Transport, TransportMessage } from '../core/transport.js';
import { isTopicOutgoing } from '../core/transport.js';
import { FailureHeaders } from '../recoverability/failure-headers.js';

export type RecordedKind = 'sent' | 'published' | 'handled' | 'retried' | 'failed';

/** One message in one of the kinds above. Plain values: compare them with any assertion library. */
export interface RecordedMessage<TBody = unknown> {
  readonly kind: RecordedKind;
  /** The type name (the first enclosed type). */
  readonly type: string;
  readonly body: TBody;
  readonly messageId: string;
  readonly headers: Readonly<Record<string, string>>;
  /** sent/published: the sending endpoint; handled/retried/failed: the endpoint that received it. */
  readonly endpoint: string;
  /** sent/published: the destination queue (`topic:<type>` for native pub/sub); otherwise the queue it was received from. */
  readonly queue: string;
  /** Virtual time (epoch ms) it was recorded. */
  readonly at: number;
  /** sent/published with a delay: when it is due. */
  readonly deliverAt?: number;
  /** retried: `immediate` (received again now) or `delayed` (due at `deliverAt`). */
  readonly retry?: 'immediate' | 'delayed';
  /** failed: `<exception type>: <message>` from the failure headers. */
  readonly error?: string;
}

/** A receipt a handler of the bus holds. */
export interface InFlight {
  readonly endpoint: string;
  readonly queue: string;
  readonly type: string;
  readonly messageId: string;
  /** Wall-clock ms it was received: how long a stuck handler has been stuck. */
  readonly since: number;
}

const USER_INTENTS = new Set(['send', 'publish', 'reply']);

function typeOf(message: TransportMessage): string {
  return message.headers[Headers.EnclosedTypes]?.split(',')[0] ?? '';
}

function bodyOf(message: TransportMessage): unknown {
  try {
    return JSON.parse(message.body) as unknown;
  } catch {
    return message.body; // a hostile or broken body is recorded as the text it is
  }
}

export class Recorder {
  readonly events: RecordedMessage[] = [];
  readonly inFlight = new Set<InFlight>();

  constructor(
    private readonly clock: Clock,
    readonly errorQueues: ReadonlySet<string>,
  ) {}

  /** Control messages (subscribe, ready, ...) are the bus's own business, not the test's. */
  private add(kind: RecordedKind, message: TransportMessage, endpoint: string, queue: string, extra: Partial<RecordedMessage> = {}): void {
    if (!USER_INTENTS.has(message.headers[Headers.Intent] ?? '')) return;
    this.events.push({ kind, type: typeOf(message), body: bodyOf(message), messageId: message.id, headers: message.headers, endpoint, queue, at: this.clock.now(), ...extra });
  }

  private sends(endpoint: string, batch: readonly Outgoing[]): void {
    for (const o of batch) {
      const kind = o.message.headers[Headers.Intent] === 'publish' ? 'published' : 'sent';
      const queue = isTopicOutgoing(o) ? `topic:${o.topic}` : o.destination;
      this.add(kind, o.message, endpoint, queue, o.deliverAt === undefined ? {} : { deliverAt: o.deliverAt });
    }
  }

  /**
   * A completion is one of three outcomes: a copy of the message itself to an error queue
   * (failed), a copy of it anywhere else (a retry), or none (handled, and `outgoing` is what the
   * handlers sent).
   */
  private settled(endpoint: string, receipt: Receipt, outgoing: readonly Outgoing[]): void {
    const { message, address } = receipt;
    const copy = outgoing.find((o) => o.message.id === message.id);
    if (!copy) {
      this.add('handled', message, endpoint, address);
      this.sends(endpoint, outgoing);
    } else if (!isTopicOutgoing(copy) && this.errorQueues.has(copy.destination)) {
      const h = copy.message.headers;
      this.add('failed', message, endpoint, address, { error: `${h[FailureHeaders.ExceptionType] ?? 'Error'}: ${h[FailureHeaders.ExceptionMessage] ?? ''}` });
    } else {
      this.add('retried', message, endpoint, address, copy.deliverAt === undefined ? { retry: 'immediate' } : { retry: 'delayed', deliverAt: copy.deliverAt });
    }
  }

  private track(endpoint: string, receipt: Receipt): Receipt {
    const entry: InFlight = { endpoint, queue: receipt.address, type: typeOf(receipt.message), messageId: receipt.message.id, since: Date.now() };
    this.inFlight.add(entry);
    const done = () => void this.inFlight.delete(entry);
    return {
      message: receipt.message,
      address: receipt.address,
      deliveryCount: receipt.deliveryCount,
      get signal() {
        return receipt.signal;
      },
      get session() {
        return receipt.session;
      },
      complete: async (outgoing = []) => {
        try {
          await receipt.complete(outgoing);
          this.settled(endpoint, receipt, outgoing);
        } finally {
          done();
        }
      },
      abandon: async (delayMs) => {
        try {
          await receipt.abandon(delayMs);
          this.add('retried', receipt.message, endpoint, receipt.address, { retry: 'immediate' });
        } finally {
          done();
        }
      },
    };
  }

  /** The transport an endpoint of the bus uses: the real one, observed. */
  wrap(endpoint: string, transport: Transport): Transport {
    return {
      ...transport,
      dispatch: async (batch) => {
        await transport.dispatch(batch);
        this.sends(endpoint, batch);
      },
      receive: async (address, options) => (await transport.receive(address, options)).map((receipt) => this.track(endpoint, receipt)),
    };
  }
}
