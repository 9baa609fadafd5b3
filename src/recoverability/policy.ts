/**
 * Deciding what to do with a failed message is a pure function of the configuration and the
 * failure; the endpoint carries the decision out (src/recoverability/settle.ts).
 *
 * Defaults follow NServiceBus: 5 immediate retries, then 3 delayed retries at 10 s, 20 s, 30 s,
 * then the error queue. Immediate attempts are the transport's delivery count of this copy (so
 * they survive a crash and continue on another instance), plus the attempts a header carries
 * where the transport's count is inexact (see `attemptsOf`); the delayed round rides in a header.
 */
import { ErrorCodes, isSwitchyardError, SwitchyardError } from '../core/errors.js';
import type { HeaderMap } from '../core/headers.js';

export type RecoverabilityAction =
  | { readonly kind: 'immediate' }
  | { readonly kind: 'delayed'; readonly delayMs: number }
  | { readonly kind: 'error'; readonly reason: string }
  | { readonly kind: 'discard'; readonly reason: string };

export interface FailureInfo {
  readonly error: Error;
  readonly messageType: string | undefined;
  readonly headers: Readonly<HeaderMap>;
  /** Attempts in this round of immediate retries, this one included (1 = first attempt). */
  readonly deliveryCount: number;
  /** Delayed retries already done (0 before the first). */
  readonly delayedRound: number;
}

export interface RecoverabilityOptions {
  /** Immediate retries per round (default 5). */
  immediateRetries?: number;
  /** Delayed retries (default 3), the delay of round n being incrementMs * n, capped at maxDelayMs. */
  delayedRetries?: { count?: number; incrementMs?: number; maxDelayMs?: number };
  /** Error queue address (default `error`). */
  errorQueue?: string;
  /** Overrides the decision per failure; receives the default decision. */
  policy?: (failure: FailureInfo, defaultAction: RecoverabilityAction) => RecoverabilityAction;
}

export interface RecoverabilityConfig {
  readonly immediateRetries: number;
  readonly delayedCount: number;
  readonly delayedIncrementMs: number;
  readonly delayedMaxMs: number;
  readonly errorQueue: string;
  readonly policy: RecoverabilityOptions['policy'];
}

export function recoverabilityConfig(options: RecoverabilityOptions = {}): RecoverabilityConfig {
  return {
    immediateRetries: options.immediateRetries ?? 5,
    delayedCount: options.delayedRetries?.count ?? 3,
    delayedIncrementMs: options.delayedRetries?.incrementMs ?? 10_000,
    delayedMaxMs: options.delayedRetries?.maxDelayMs ?? 24 * 60 * 60 * 1000,
    errorQueue: options.errorQueue ?? 'error',
    policy: options.policy,
  };
}

/** Failures that retrying cannot fix: they go to the error queue at once. */
const NEVER_RETRY = new Set<string>([
  ErrorCodes.UNRECOVERABLE,
  ErrorCodes.MALFORMED_MESSAGE,
  ErrorCodes.UNKNOWN_MESSAGE_TYPE,
  ErrorCodes.MESSAGE_TOO_LARGE,
  ErrorCodes.VALIDATION_FAILED,
  ErrorCodes.NO_HANDLER,
  ErrorCodes.INVALID_HEADER,
  ErrorCodes.NOT_PUBLISHER,
  ErrorCodes.READY_INVALID,
]);

export function defaultDecision(config: RecoverabilityConfig, failure: FailureInfo): RecoverabilityAction {
  if (isSwitchyardError(failure.error) && NEVER_RETRY.has(failure.error.code)) {
    return { kind: 'error', reason: `${failure.error.code}: not retried` };
  }
  if (failure.deliveryCount <= config.immediateRetries) return { kind: 'immediate' };
  if (failure.delayedRound < config.delayedCount) {
    const delayMs = Math.min(config.delayedIncrementMs * (failure.delayedRound + 1), config.delayedMaxMs);
    return { kind: 'delayed', delayMs };
  }
  return {
    kind: 'error',
    reason: `failed ${config.immediateRetries + 1} times in each of ${config.delayedCount + 1} rounds`,
  };
}

/**
 * The default decision, overridden by the policy hook when there is one. A hook that throws or
 * returns something that is not an action sends the message to the error queue with the reason:
 * a bug in the policy must not lose the message or retry it forever.
 */
export function decide(config: RecoverabilityConfig, failure: FailureInfo): RecoverabilityAction {
  const action = defaultDecision(config, failure);
  if (!config.policy) return action;
  let chosen: unknown;
  try {
    chosen = config.policy(failure, action);
  } catch (thrown) {
    return { kind: 'error', reason: `the recoverability policy threw: ${thrown instanceof Error ? thrown.message : String(thrown)}` };
  }
  return isAction(chosen) ? chosen : { kind: 'error', reason: `the recoverability policy returned ${JSON.stringify(chosen) ?? String(chosen)}, which is not an action` };
}

function isAction(value: unknown): value is RecoverabilityAction {
  if (typeof value !== 'object' || value === null) return false;
  const action = value as { kind?: unknown; delayMs?: unknown; reason?: unknown };
  switch (action.kind) {
    case 'immediate':
      return true;
    case 'delayed':
      return typeof action.delayMs === 'number' && Number.isFinite(action.delayMs) && action.delayMs >= 0;
    case 'error':
    case 'discard':
      return typeof action.reason === 'string';
    default:
      return false;
  }
}

/**
 * Delayed retries need a transport that delivers later (`capabilities.delayedDelivery`); without
 * it they would come back at once. Refuse at start-up and name the setting.
 */
export function checkRecoverability(config: RecoverabilityConfig, transport: { readonly name: string; readonly capabilities: { readonly delayedDelivery: boolean } }): void {
  for (const [name, value] of [
    ['immediateRetries', config.immediateRetries],
    ['delayedRetries.count', config.delayedCount],
    ['delayedRetries.incrementMs', config.delayedIncrementMs],
    ['delayedRetries.maxDelayMs', config.delayedMaxMs],
  ] as const) {
    if (!Number.isInteger(value) || value < 0) {
      throw new SwitchyardError(ErrorCodes.CONFIG, `Endpoint option \`recoverability.${name}\` is ${String(value)}.`, {
        fix: 'Use a whole number, 0 or more (0 turns that kind of retry off).',
      });
    }
  }
  if (config.delayedCount > 0 && !transport.capabilities.delayedDelivery) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `Endpoint option \`recoverability.delayedRetries\` asks for ${config.delayedCount} delayed retries, but the ${transport.name} transport cannot deliver messages later.`, {
      fix: 'Set recoverability: { delayedRetries: { count: 0 } } to go from immediate retries straight to the error queue, or use a transport with delayed delivery.',
    });
  }
}
