/**
 * Tracing and metrics as pipeline behaviours (docs/pipeline.md):
 *   incoming, before `settle`  a CONSUMER `process` span around everything, its parent the
 *                              producer span the message's traceparent names; when settle is
 *                              done: the outcome (retry, error queue) as an event, the metrics
 *   handler, before `handler`  an INTERNAL span per handler call, the exception recorded
 *   outgoing, after `headers`  a PRODUCER span per send/publish/reply; the message's traceparent
 *                              is rewritten to name it, so the receiver's span is its child
 * A handler's sends find their parent through the message being handled (`ctx.incoming`), not
 * through the active context, so the chain holds without a context manager; the active context
 * is still set for the user's own instrumentation.
 */
import type { Attributes, Context, Span, Tracer } from '@opentelemetry/api';
import { api } from './api.js';
import type { ErrorCode } from '../core/errors.js';
import { Headers } from '../core/headers.js';
import type { Behaviour, HandlerInvocation, IncomingContext, OutgoingContext, Settlement } from '../core/pipeline.js';
import type { TransportMessage } from '../core/transport.js';
import { delayedRoundOf } from '../recoverability/failure-headers.js';
import { Attr, SpanEvents } from './attributes.js';
import type { MessageMetrics } from './metrics.js';
import { contextFromHeaders, writeTraceHeaders } from './propagation.js';

/** What the behaviours keep per message being handled. */
interface HandledMessage {
  /** The context a send from here is a child of: the process span, or the running handler's. */
  current: Context;
  /** Attributes of each send by its handlers: counted as sent only once the message is handled. */
  readonly sent: Attributes[];
}

export interface Instrumentation {
  readonly tracer: Tracer | undefined;
  readonly metrics: MessageMetrics | undefined;
  /** `messaging.system`: the endpoint's transport (`sqlite`, `rabbitmq`, ...). */
  readonly system: string;
}

/** What the behaviours of one endpoint share. */
interface Scope {
  readonly system: string;
  readonly tracer: Tracer | undefined;
  readonly metrics: MessageMetrics | undefined;
  /** A Map, not a WeakMap: every entry is deleted when its message is done, and ephemerons cost the GC (callgrind: tracing 71.5k -> 49k instructions per message). */
  readonly handling: Map<TransportMessage, HandledMessage>;
  /** Attribute sets that repeat for every message from one queue, or to one destination: made once. */
  readonly fromQueue: Map<string, Attributes>;
  readonly toDestination: Map<string, Attributes>;
}

export function telemetryBehaviours({ tracer, metrics, system }: Instrumentation): Behaviour[] {
  const scope: Scope = { system, tracer, metrics, handling: new Map(), fromQueue: new Map(), toDestination: new Map() };
  const behaviours: Behaviour[] = [
    { pipeline: 'incoming', name: 'opentelemetry-process', before: 'settle', run: (ctx, next) => processMessage(ctx, next, scope) },
    { pipeline: 'outgoing', name: 'opentelemetry-send', after: 'headers', run: (ctx, next) => sendMessage(ctx, next, scope) },
  ];
  if (tracer) behaviours.push({ pipeline: 'handler', name: 'opentelemetry-handler', before: 'handler', run: (invocation, next) => invokeHandler(invocation, next, tracer, scope.handling) });
  return behaviours;
}

// The behaviours chain on next() with then() rather than being async functions: they run for
// every message, and an async function costs a promise and a turn more (see incoming.ts).
function invokeHandler(invocation: HandlerInvocation, next: () => Promise<void>, tracer: Tracer, handling: Map<TransportMessage, HandledMessage>): Promise<void> {
  const state = handling.get(invocation.incoming.message);
  const parent = state?.current ?? api.context.active();
  const span = tracer.startSpan(`handle ${invocation.messageType}`, { kind: api.SpanKind.INTERNAL, attributes: { [Attr.Handler]: invocation.messageType } }, parent);
  const current = api.trace.setSpan(parent, span);
  if (state) state.current = current;
  const done = () => {
    span.end();
    if (state) state.current = parent;
  };
  return api.context.with(current, next).then(done, (error: unknown) => {
    recordFailure(span, error as Error);
    done();
    throw error;
  });
}

/** Reply addresses come from the wire: the cache is bounded, so many distinct ones cannot grow it without end. */
function remember(cache: Map<string, Attributes>, key: string, attributes: Attributes): void {
  if (cache.size >= 1000) cache.clear();
  cache.set(key, attributes);
}

function consumerAttributes(scope: Scope, ctx: IncomingContext): Attributes {
  let attributes = scope.fromQueue.get(ctx.queue);
  if (!attributes) {
    attributes = { [Attr.System]: scope.system, [Attr.DestinationName]: ctx.queue, [Attr.ConsumerGroup]: ctx.endpoint.endpoint };
    remember(scope.fromQueue, ctx.queue, attributes);
  }
  return attributes;
}

function processSpan(tracer: Tracer, ctx: IncomingContext, scope: Scope, parent: Context): Span {
  const { message } = ctx;
  return tracer.startSpan(
    `process ${ctx.queue}`,
    {
      kind: api.SpanKind.CONSUMER,
      attributes: {
        [Attr.System]: scope.system,
        [Attr.DestinationName]: ctx.queue,
        [Attr.ConsumerGroup]: ctx.endpoint.endpoint,
        [Attr.OperationType]: 'process',
        [Attr.OperationName]: 'process',
        [Attr.MessageId]: message.id,
        [Attr.ClientId]: ctx.endpoint.id,
        [Attr.ConversationId]: message.headers[Headers.ConversationId],
        [Attr.Attempt]: ctx.attempts,
        [Attr.DelayedRetries]: delayedRoundOf(message.headers),
      },
    },
    parent,
  );
}

function processMessage(ctx: IncomingContext, next: () => Promise<void>, scope: Scope): Promise<void> {
  const { tracer, metrics, handling } = scope;
  const started = metrics ? performance.now() : 0;
  const { message } = ctx;
  if (metrics) metrics.consumed.add(1, consumerAttributes(scope, ctx));
  const parent = tracer ? contextFromHeaders(message.headers) : api.ROOT_CONTEXT;
  const span = tracer && processSpan(tracer, ctx, scope, parent);
  const current = span ? api.trace.setSpan(parent, span) : parent;
  const state: HandledMessage = { current, sent: [] };
  handling.set(message, state);
  const done = () => {
    handling.delete(message);
    const settlement = ctx.settlement ?? UNSETTLED;
    if (span) endProcessSpan(span, ctx, settlement);
    if (metrics) recordProcessMetrics(metrics, ctx, settlement, state, consumerAttributes(scope, ctx), performance.now() - started);
  };
  return (span ? api.context.with(current, next) : next()).then(done, (error: unknown) => {
    done();
    throw error;
  });
}

const UNSETTLED: Settlement = { outcome: 'unsettled' };

function endProcessSpan(span: Span, ctx: IncomingContext, settlement: Settlement): void {
  const type = ctx.definition?.typeName;
  if (type !== undefined) span.setAttribute(Attr.MessageType, type);
  span.setAttribute(Attr.Outcome, settlement.outcome);
  switch (settlement.outcome) {
    case 'immediate-retry':
      span.addEvent(SpanEvents.Retry, { [Attr.RetryKind]: 'immediate', [Attr.Attempt]: ctx.attempts });
      break;
    case 'delayed-retry':
      span.addEvent(SpanEvents.Retry, { [Attr.RetryKind]: 'delayed', [Attr.RetryDelayMs]: settlement.delayMs ?? 0, [Attr.DelayedRetries]: delayedRoundOf(ctx.message.headers) + 1 });
      break;
    case 'error-queue':
      span.addEvent(SpanEvents.ErrorQueue);
      break;
    case 'discarded':
      span.addEvent(SpanEvents.Discarded);
      break;
    case 'lease-lost':
      span.addEvent(SpanEvents.LeaseLost);
      break;
    case 'unsettled':
      span.addEvent(SpanEvents.Unsettled);
      break;
  }
  if (settlement.error && settlement.outcome !== 'lease-lost') recordFailure(span, settlement.error);
  span.end();
}

function recordProcessMetrics(metrics: MessageMetrics, ctx: IncomingContext, settlement: Settlement, state: HandledMessage, attributes: Attributes, elapsedMs: number): void {
  const type = ctx.definition?.typeName;
  const typed: Attributes = type === undefined ? attributes : { ...attributes, [Attr.MessageType]: type };
  const failed = settlement.error !== undefined && settlement.outcome !== 'lease-lost';
  metrics.processDuration.record(elapsedMs / 1000, failed ? { ...typed, [Attr.OperationName]: 'process', [Attr.ErrorType]: errorType(settlement.error!) } : { ...typed, [Attr.OperationName]: 'process' });
  if (settlement.outcome === 'handled') {
    const sentAt = Date.parse(ctx.message.headers[Headers.TimeSent] ?? '');
    if (Number.isFinite(sentAt)) metrics.criticalTime.record(Math.max(0, Date.now() - sentAt) / 1000, typed);
    for (const sent of state.sent) metrics.sent.add(1, sent);
  } else if (settlement.outcome === 'immediate-retry' || settlement.outcome === 'delayed-retry') {
    metrics.retries.add(1, { ...typed, [Attr.RetryKind]: settlement.outcome === 'immediate-retry' ? 'immediate' : 'delayed' });
  } else if (settlement.outcome === 'error-queue') {
    metrics.errorQueueMoves.add(1, typed);
  }
}

function producerAttributes(scope: Scope, ctx: OutgoingContext): Attributes {
  const destination = ctx.intent === 'publish' ? ctx.definition.typeName : destinationOf(ctx);
  const key = `${ctx.intent} ${destination}`;
  let attributes = scope.toDestination.get(key);
  if (!attributes) {
    attributes = { [Attr.System]: scope.system, [Attr.DestinationName]: destination, [Attr.OperationName]: ctx.intent };
    remember(scope.toDestination, key, attributes);
  }
  return attributes;
}

function producerSpan(tracer: Tracer, ctx: OutgoingContext, attributes: Attributes, parent: Context): Span {
  const { headers } = ctx;
  return tracer.startSpan(
    `${ctx.intent} ${String(attributes[Attr.DestinationName])}`,
    {
      kind: api.SpanKind.PRODUCER,
      // Written out, not spread from `attributes`: this runs for every message sent.
      attributes: {
        [Attr.System]: attributes[Attr.System],
        [Attr.DestinationName]: attributes[Attr.DestinationName],
        [Attr.OperationName]: attributes[Attr.OperationName],
        [Attr.OperationType]: 'send',
        [Attr.MessageId]: headers[Headers.MessageId],
        [Attr.ConversationId]: headers[Headers.ConversationId],
        [Attr.MessageType]: ctx.definition.typeName,
        [Attr.ClientId]: headers[Headers.OriginatingInstance],
      },
    },
    parent,
  );
}

function sendMessage(ctx: OutgoingContext, next: () => Promise<void>, scope: Scope): Promise<void> {
  const { tracer, metrics } = scope;
  const state = ctx.incoming && scope.handling.get(ctx.incoming);
  const attributes = producerAttributes(scope, ctx);
  let span: Span | undefined;
  if (tracer) {
    const parent = state?.current ?? (ctx.incoming ? contextFromHeaders(ctx.incoming.headers) : api.context.active());
    span = producerSpan(tracer, ctx, attributes, parent);
    // A no-op tracer (no provider registered) hands back the parent's context: then the header
    // Switchyard stamped, with its own new span id for this hop, stays.
    const made = span.spanContext();
    if (made.spanId !== api.trace.getSpanContext(parent)?.spanId) writeTraceHeaders(ctx.headers, made);
  }
  return next().then(
    () => {
      span?.end();
      // Inside a handler the message leaves with the commit: it counts once the handler's message is handled.
      if (metrics) for (let i = 0; i < ctx.destinations.length; i++) state ? state.sent.push(attributes) : metrics.sent.add(1, attributes);
    },
    (error: unknown) => {
      if (span) {
        recordFailure(span, error as Error);
        span.end();
      }
      throw error;
    },
  );
}

function destinationOf(ctx: OutgoingContext): string {
  const first = ctx.destinations[0];
  if (!first) return 'unknown';
  return 'destination' in first ? first.destination : first.topic;
}

function errorType(error: Error): string {
  const code = (error as Error & { code?: ErrorCode | string }).code;
  return typeof code === 'string' ? code : error.name;
}

function recordFailure(span: Span, error: Error): void {
  span.recordException(error);
  span.setStatus({ code: api.SpanStatusCode.ERROR, message: error.message });
  span.setAttribute(Attr.ErrorType, errorType(error));
}
