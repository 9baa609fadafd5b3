/**
 * The distributor's hop as a span. The distributor forwards a message unchanged (its traceparent
 * still names the sender's producer span, so the worker's `process` span is that span's child);
 * this wrapper of its transport adds a `forward <worker queue>` span per forwarded message, also
 * a child of the producer span, so the hop shows in the trace. It sees forwards where the
 * distributor makes them: `forward()` (SQLite), or completing a received message with its
 * stamped copy (other transports). Everything else passes through untouched.
 */
import type { Span, Tracer } from '@opentelemetry/api';
import { api } from './api.js';
import type { Address } from '../core/identity.js';
import type { Outgoing, QueueOutgoing, Receipt, Transport, TransportMessage } from '../core/transport.js';
import { DistributorHeaders } from '../scaleout/distributor-protocol.js';
import { Attr } from './attributes.js';
import { contextFromHeaders } from './propagation.js';

function startForward(tracer: Tracer, system: string, from: Address, original: TransportMessage, copy: QueueOutgoing): Span {
  return tracer.startSpan(
    `forward ${copy.destination}`,
    {
      kind: api.SpanKind.PRODUCER,
      attributes: {
        [Attr.System]: system,
        [Attr.OperationType]: 'send',
        [Attr.OperationName]: 'forward',
        [Attr.DestinationName]: copy.destination,
        [Attr.DataQueue]: from,
        [Attr.MessageId]: original.id,
        [Attr.WorkerSession]: copy.message.headers[DistributorHeaders.Session],
      },
    },
    contextFromHeaders(original.headers),
  );
}

async function ended(spans: readonly Span[], work: Promise<unknown>): Promise<void> {
  try {
    await work;
  } catch (error) {
    for (const span of spans) {
      span.recordException(error as Error);
      span.setStatus({ code: api.SpanStatusCode.ERROR, message: (error as Error).message });
    }
    throw error;
  } finally {
    for (const span of spans) span.end();
  }
}

const isForwardOf = (receipt: Receipt) => (out: Outgoing): out is QueueOutgoing =>
  'destination' in out && out.message.id === receipt.message.id && out.message.headers[DistributorHeaders.Session] !== undefined;

function tracedReceipt(tracer: Tracer, system: string, receipt: Receipt): Receipt {
  return {
    get message() {
      return receipt.message;
    },
    get address() {
      return receipt.address;
    },
    get deliveryCount() {
      return receipt.deliveryCount;
    },
    get signal() {
      return receipt.signal;
    },
    get session() {
      return receipt.session;
    },
    complete(outgoing) {
      const forwards = (outgoing ?? []).filter(isForwardOf(receipt));
      if (forwards.length === 0) return receipt.complete(outgoing);
      const spans = forwards.map((copy) => startForward(tracer, system, receipt.address, receipt.message, copy));
      return ended(spans, receipt.complete(outgoing));
    },
    abandon: (delayMs) => receipt.abandon(delayMs),
  };
}

/** `transport` with a span per message the distributor forwards (see the file header). */
export function traceForwards(tracer: Tracer, transport: Transport): Transport {
  const system = transport.name;
  const inner = transport;
  const traced: Transport = {
    name: inner.name,
    capabilities: inner.capabilities,
    get admin() {
      return inner.admin;
    },
    open: () => inner.open(),
    createQueue: (address) => inner.createQueue(address),
    queueExists: (address) => inner.queueExists(address),
    dispatch: (batch) => inner.dispatch(batch),
    receive: async (address, options) => (await inner.receive(address, options)).map((receipt) => tracedReceipt(tracer, system, receipt)),
    close: () => inner.close(),
  };
  if (inner.forward) {
    const forward = inner.forward.bind(inner);
    traced.forward = (from, options, route) => {
      const spans: Span[] = [];
      const moved = forward(from, options, (message) => {
        const copy = route(message);
        if (copy) spans.push(startForward(tracer, system, from, message, copy));
        return copy;
      });
      return ended(spans, moved).then(() => moved);
    };
  }
  if (inner.stopReceiving) traced.stopReceiving = inner.stopReceiving.bind(inner);
  if (inner.subscribe) traced.subscribe = inner.subscribe.bind(inner);
  if (inner.unsubscribe) traced.unsubscribe = inner.unsubscribe.bind(inner);
  return traced;
}
