/**
 * How a message in the error queue reads to an operator: its failure headers turned into named
 * fields, and the filters `errors list` offers. Everything here comes from headers, which are
 * untrusted data: it is parsed and displayed, never evaluated.
 */
import { Headers, type HeaderMap } from '../core/headers.js';
import type { TransportMessage } from '../core/transport.js';
import { safeText } from '../core/wire-headers.js';
import { FailureHeaders } from './failure-headers.js';

export interface FailedMessageSummary {
  readonly id: string;
  /** The message type (nearest enclosed type), or undefined when the header is missing. */
  readonly messageType: string | undefined;
  /** The queue it failed in: where a retry returns it. */
  readonly failedQueue: string | undefined;
  /** The logical endpoint and the instance that processed it when it failed. */
  readonly endpoint: string | undefined;
  readonly instance: string | undefined;
  readonly exceptionType: string | undefined;
  /** The SwitchyardError code, when the failure had one (e.g. SY_ERR_MALFORMED_MESSAGE). */
  readonly exceptionCode: string | undefined;
  readonly exceptionMessage: string | undefined;
  /** Why it went to the error queue (retries exhausted, not retried because...). */
  readonly reason: string | undefined;
  /** Time of failure, or undefined when the header is missing or not a date. */
  readonly failedAt: Date | undefined;
  /** Deliveries in the last round of immediate retries. */
  readonly immediateAttempts: number;
  /** Delayed retries done before it went to the error queue. */
  readonly delayedRetries: number;
  /** Times it was retried from the error queue before. */
  readonly manualRetries: number;
}

export interface FailedMessage extends FailedMessageSummary {
  readonly stack: string | undefined;
  readonly headers: Readonly<HeaderMap>;
  /** The body as it was received: unchanged, possibly not JSON (that may be why it failed). */
  readonly body: string;
}

export interface FailedMessageFilter {
  /** The processing logical endpoint, exactly. */
  readonly endpoint?: string;
  /** A message type name, or a namespace wildcard `Sales.*`; matches any enclosed type. */
  readonly messageType?: string;
  /** Text found (case-insensitively) in the exception type, code, message or reason. */
  readonly exception?: string;
  /** Failed at or after. */
  readonly since?: Date;
  /** Failed before. */
  readonly until?: Date;
}

function count(raw: string | undefined): number {
  const n = raw === undefined ? 0 : Number(raw);
  return Number.isInteger(n) && n >= 0 ? n : 0;
}

function date(raw: string | undefined): Date | undefined {
  if (raw === undefined) return undefined;
  const d = new Date(raw);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function enclosedTypesOf(headers: Readonly<HeaderMap>): string[] {
  return (text(headers[Headers.EnclosedTypes]) ?? '').split(',').filter((t) => t.length > 0);
}

/** A header value when it is a string. Transports hand over string maps, but a listing must never fail on one message. */
function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** Only the string-valued headers, from whatever the transport handed over. */
function stringHeaders(headers: unknown): Readonly<HeaderMap> {
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) return {};
  const entries = Object.entries(headers as Record<string, unknown>);
  return entries.every(([, v]) => typeof v === 'string') ? (headers as HeaderMap) : Object.fromEntries(entries.filter((e): e is [string, string] => typeof e[1] === 'string'));
}

export function describeFailedMessage(message: TransportMessage): FailedMessage {
  const h = stringHeaders(message.headers);
  return {
    id: typeof message.id === 'string' ? message.id : safeText(message.id),
    messageType: enclosedTypesOf(h)[0],
    failedQueue: text(h[FailureHeaders.FailedQueue]),
    endpoint: text(h[FailureHeaders.ProcessingEndpoint]),
    instance: text(h[FailureHeaders.ProcessingInstance]),
    exceptionType: text(h[FailureHeaders.ExceptionType]),
    exceptionCode: text(h[FailureHeaders.ExceptionCode]),
    exceptionMessage: text(h[FailureHeaders.ExceptionMessage]),
    // A row put straight into the error queue has no failure headers: what made it unreadable is the reason.
    reason: text(h[FailureHeaders.Reason]) ?? text(h[Headers.EnvelopeError]),
    failedAt: date(text(h[FailureHeaders.TimeOfFailure])),
    immediateAttempts: count(text(h[FailureHeaders.ImmediateAttempts])),
    delayedRetries: count(text(h[FailureHeaders.DelayedRound])),
    manualRetries: count(text(h[FailureHeaders.RetryCount])),
    stack: text(h[FailureHeaders.ExceptionStack]),
    headers: h,
    body: typeof message.body === 'string' ? message.body : safeText(message.body, Number.MAX_SAFE_INTEGER),
  };
}

export function summaryOf(failed: FailedMessage): FailedMessageSummary {
  const { stack: _stack, headers: _headers, body: _body, ...summary } = failed;
  return summary;
}

function typeMatches(pattern: string, types: readonly string[]): boolean {
  if (pattern.endsWith('.*')) {
    const prefix = pattern.slice(0, -1);
    return types.some((t) => t.startsWith(prefix));
  }
  return types.includes(pattern);
}

export function matchesFilter(failed: FailedMessage, filter: FailedMessageFilter): boolean {
  if (filter.endpoint !== undefined && failed.endpoint !== filter.endpoint) return false;
  if (filter.messageType !== undefined && !typeMatches(filter.messageType, enclosedTypesOf(failed.headers))) return false;
  if (filter.exception !== undefined) {
    const needle = filter.exception.toLowerCase();
    const haystack = [failed.exceptionType, failed.exceptionCode, failed.exceptionMessage, failed.reason].join('\n').toLowerCase();
    if (!haystack.includes(needle)) return false;
  }
  if (filter.since !== undefined && (failed.failedAt === undefined || failed.failedAt < filter.since)) return false;
  if (filter.until !== undefined && (failed.failedAt === undefined || failed.failedAt >= filter.until)) return false;
  return true;
}
