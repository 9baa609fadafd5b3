/**
 * Headers recoverability adds. On a delayed retry: the round and the first failure time. On the
 * way to the error queue: what failed, where and when; retry headers are kept for the record.
 * Error-queue metadata is displayed by tools, never evaluated.
 */
import type { HeaderMap } from '../core/headers.js';
import type { InstanceIdentity } from '../core/identity.js';

export const FailureHeaders = {
  DelayedRound: 'sy1-retries-delayed',
  FirstFailureAt: 'sy1-first-failure-at',
  ImmediateAttempts: 'sy1-retries-immediate',
  ExceptionType: 'sy1-failure-exception-type',
  ExceptionCode: 'sy1-failure-exception-code',
  ExceptionMessage: 'sy1-failure-exception-message',
  ExceptionStack: 'sy1-failure-stack',
  Reason: 'sy1-failure-reason',
  FailedQueue: 'sy1-failure-queue',
  TimeOfFailure: 'sy1-failure-time',
  ProcessingEndpoint: 'sy1-failure-endpoint',
  ProcessingInstance: 'sy1-failure-instance',
  /** Set by a manual retry from the error queue: when, and how many manual retries so far. */
  RetriedAt: 'sy1-retried-at',
  RetryCount: 'sy1-retry-count',
  /** Set when a failed message is archived (moved to the archive queue, kept for the record). */
  ArchivedAt: 'sy1-archived-at',
} as const;

/** Headers that describe one failure episode; a manual retry removes them so the message starts afresh. */
const EPISODE_HEADERS: readonly string[] = [
  FailureHeaders.DelayedRound,
  FailureHeaders.FirstFailureAt,
  FailureHeaders.ImmediateAttempts,
  FailureHeaders.ExceptionType,
  FailureHeaders.ExceptionCode,
  FailureHeaders.ExceptionMessage,
  FailureHeaders.ExceptionStack,
  FailureHeaders.Reason,
  FailureHeaders.FailedQueue,
  FailureHeaders.TimeOfFailure,
  FailureHeaders.ProcessingEndpoint,
  FailureHeaders.ProcessingInstance,
];

const MAX_STACK = 4000;

/** Reads the delayed round from a header, treating anything but a small non-negative integer as 0. */
export function delayedRoundOf(headers: Readonly<HeaderMap>): number {
  const n = countOf(headers[FailureHeaders.DelayedRound]);
  return n < 1000 ? n : 0;
}

/** Reads a small non-negative integer header (a count); anything else is 0. */
function countOf(raw: string | undefined): number {
  const n = raw === undefined ? 0 : Number(raw);
  return Number.isInteger(n) && n >= 0 && n < 1_000_000 ? n : 0;
}

/**
 * The headers of a message returned from the error queue to its queue: failure and retry
 * headers removed (it gets a fresh set of immediate and delayed retries), the manual retry
 * recorded.
 */
export function manualRetryHeaders(headers: Readonly<HeaderMap>, now: Date): HeaderMap {
  const out: HeaderMap = { ...headers };
  for (const name of EPISODE_HEADERS) delete out[name];
  out[FailureHeaders.RetriedAt] = now.toISOString();
  out[FailureHeaders.RetryCount] = String(countOf(headers[FailureHeaders.RetryCount]) + 1);
  return out;
}

/**
 * Attempts of a message in its current round of immediate retries, this delivery included: the
 * transport's delivery count of this copy plus the failed attempts of earlier copies, which an
 * immediate retry by re-send (transports without an exact delivery count) carries in a header.
 */
export function attemptsOf(headers: Readonly<HeaderMap>, deliveryCount: number): number {
  return countOf(headers[FailureHeaders.ImmediateAttempts]) + deliveryCount;
}

/** The copy an immediate retry re-sends where the transport cannot count deliveries exactly. */
export function immediateRetryHeaders(headers: Readonly<HeaderMap>, attempts: number): HeaderMap {
  return { ...headers, [FailureHeaders.ImmediateAttempts]: String(attempts) };
}

/** A delayed retry starts a new round of immediate retries. */
export function delayedRetryHeaders(headers: Readonly<HeaderMap>, round: number, now: Date): HeaderMap {
  const out: HeaderMap = {
    ...headers,
    [FailureHeaders.DelayedRound]: String(round),
    [FailureHeaders.FirstFailureAt]: headers[FailureHeaders.FirstFailureAt] ?? now.toISOString(),
  };
  delete out[FailureHeaders.ImmediateAttempts];
  return out;
}

export interface FailureRecord {
  error: Error;
  reason: string;
  failedQueue: string;
  identity: InstanceIdentity;
  /** Attempts in the last round (see attemptsOf). */
  attempts: number;
  now: Date;
}

export function errorQueueHeaders(headers: Readonly<HeaderMap>, record: FailureRecord): HeaderMap {
  const { error } = record;
  const code = (error as { code?: unknown }).code;
  const out: HeaderMap = {
    ...headers,
    [FailureHeaders.ExceptionType]: error.name || error.constructor.name || 'Error',
    [FailureHeaders.ExceptionMessage]: error.message.slice(0, 2000),
    [FailureHeaders.ExceptionStack]: (error.stack ?? '').slice(0, MAX_STACK),
    [FailureHeaders.Reason]: record.reason,
    [FailureHeaders.FailedQueue]: record.failedQueue,
    [FailureHeaders.TimeOfFailure]: record.now.toISOString(),
    [FailureHeaders.ProcessingEndpoint]: record.identity.endpoint,
    [FailureHeaders.ProcessingInstance]: record.identity.id,
    [FailureHeaders.ImmediateAttempts]: String(record.attempts),
    [FailureHeaders.DelayedRound]: String(delayedRoundOf(headers)),
  };
  if (typeof code === 'string') out[FailureHeaders.ExceptionCode] = code;
  return out;
}
