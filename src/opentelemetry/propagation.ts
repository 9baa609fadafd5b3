/**
 * W3C trace context between message headers and OpenTelemetry, written out (a dozen lines)
 * instead of through the global propagator, which an application may not have registered:
 * the traceparent Switchyard stamps is always W3C.
 */
import type { Context, SpanContext } from '@opentelemetry/api';
import { api } from './api.js';
import { Headers, type HeaderMap } from '../core/headers.js';

const TRACE_PARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

// The pattern checked the form; all zeros is the one invalid value left (cheaper than the API's
// isSpanContextValid, which tests both ids with regular expressions again, on every message).
const valid = (span: SpanContext) => span.traceId !== api.INVALID_TRACEID && span.spanId !== api.INVALID_SPANID;

/** The remote parent a message's headers name, or the root context when they name none (or an invalid one). */
export function contextFromHeaders(headers: Readonly<HeaderMap>): Context {
  const match = TRACE_PARENT.exec(headers[Headers.TraceParent] ?? '');
  if (!match) return api.ROOT_CONTEXT;
  const state = headers[Headers.TraceState];
  const parent: SpanContext = {
    traceId: match[1]!,
    spanId: match[2]!,
    traceFlags: parseInt(match[3]!, 16) & 1,
    isRemote: true,
    ...(state !== undefined ? { traceState: api.createTraceState(state) } : {}),
  };
  return valid(parent) ? api.trace.setSpanContext(api.ROOT_CONTEXT, parent) : api.ROOT_CONTEXT;
}

/** Points the message's trace headers at `span` (when it has a valid context: a no-op tracer's has none). */
export function writeTraceHeaders(headers: HeaderMap, span: SpanContext): void {
  if (!valid(span)) return;
  headers[Headers.TraceParent] = `00-${span.traceId}-${span.spanId}-${span.traceFlags & 1 ? '01' : '00'}`;
  const state = span.traceState?.serialize();
  if (state) headers[Headers.TraceState] = state;
}
