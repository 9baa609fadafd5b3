/**
 * A tracked session: what one action caused, once its whole cascade settled. Each accessor
 * without an argument gives every message of its kind; with a definition, the messages of that
 * type (or a subtype) with typed bodies:
 *
 *   const session = await bus.track(() => bus.send(PlaceOrder, { orderId: 'o-1' }));
 *   session.handled(OrderPlaced)[0]?.body.orderId   // typed
 *   session.handled(OrderPlaced)[0]?.endpoint       // 'Billing'
 */
import { Headers } from '../core/headers.js';
import type { BodyOf, MessageDefinition } from '../core/messages.js';
import type { RecordedKind, RecordedMessage } from './recorder.js';

/** A message due later than the bus's current (virtual) time. */
export interface ScheduledDelivery {
  readonly type: string;
  readonly messageId: string;
  readonly queue: string;
  /** Epoch ms on the bus's clock. */
  readonly dueAt: number;
  /** From the bus's current time. */
  readonly dueInMs: number;
}

export interface IdleReport {
  /** The bus's time when it settled. */
  readonly now: number;
  /** What is due later: `bus.advance()` delivers it. */
  readonly scheduled: readonly ScheduledDelivery[];
}

type Accessor = {
  (): readonly RecordedMessage[];
  <D extends MessageDefinition>(definition: D): readonly RecordedMessage<BodyOf<D>>[];
};

function isOfType(message: RecordedMessage, typeName: string): boolean {
  return (message.headers[Headers.EnclosedTypes] ?? '').split(',').includes(typeName);
}

export class TrackedSession implements IdleReport {
  readonly sent: Accessor;
  readonly published: Accessor;
  readonly handled: Accessor;
  readonly retried: Accessor;
  readonly failed: Accessor;
  readonly now: number;
  readonly scheduled: readonly ScheduledDelivery[];

  constructor(
    /** Everything recorded in the session, in order. */
    readonly all: readonly RecordedMessage[],
    report: IdleReport,
  ) {
    this.now = report.now;
    this.scheduled = report.scheduled;
    const of = (kind: RecordedKind): Accessor =>
      ((definition?: MessageDefinition) =>
        all.filter((m) => m.kind === kind && (definition === undefined || isOfType(m, definition.typeName)))) as Accessor;
    this.sent = of('sent');
    this.published = of('published');
    this.handled = of('handled');
    this.retried = of('retried');
    this.failed = of('failed');
  }
}
