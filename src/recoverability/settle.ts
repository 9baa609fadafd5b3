/**
 * The `settle` step of the incoming pipeline: it wraps every other step. When they succeed it
 * commits the unit of work: the completion of the message, what its handlers sent and their
 * own writes, together (one transaction where the transport can). When one throws it carries
 * out the recoverability decision (src/recoverability/policy.ts):
 *   immediate  abandon (the transport counts the delivery), or, where the transport's count is
 *              inexact, complete with a copy carrying the attempt count to the same queue
 *   delayed    complete with a copy due later, to the public address
 *   error      complete with a copy carrying failure headers, to the error queue
 *   discard    complete, and log it
 * A failed handler's sends and writes are dropped first. A completion fenced off by a lost
 * lease changes nothing; a settlement that fails leaves the message to come back by its lease.
 */
import { asError, ErrorCodes, isSwitchyardError } from '../core/errors.js';
import type { SettleOutcome } from '../core/feature.js';
import { Headers } from '../core/headers.js';
import type { Clock } from '../core/clock.js';
import type { EndpointFeature } from '../core/feature.js';
import type { Address, InstanceIdentity } from '../core/identity.js';
import type { IncomingContext, PipelineStep, Settlement } from '../core/pipeline.js';
import type { Outgoing, Transport } from '../core/transport.js';
import { safeText } from '../core/wire-headers.js';
import { delayedRetryHeaders, delayedRoundOf, errorQueueHeaders, immediateRetryHeaders } from './failure-headers.js';
import { decide, type RecoverabilityAction, type RecoverabilityConfig } from './policy.js';

/** What settling needs of a message in the incoming pipeline (the endpoint's IncomingMessage is one). */
export interface SettlingMessage extends IncomingContext {
  settlement: Settlement | undefined;
  readonly outgoing: Outgoing[];
  /** What the envelope check found wrong with the message, if anything (it then goes to the error queue). */
  readonly envelopeProblem: string | undefined;
  /** Frees the pump's slot: only the settlement is left. */
  readonly release: () => void;
  readonly deps: {
    readonly features: readonly EndpointFeature[];
    readonly recoverability: RecoverabilityConfig;
    readonly identity: InstanceIdentity;
    readonly transport: Transport;
    readonly clock: Clock;
    publicAddress(): Address;
  };
}

export const settle: PipelineStep<SettlingMessage> = {
  name: 'settle',
  async run(ctx, next) {
    try {
      await next();
      ctx.release();
      await complete(ctx, ctx.outgoing, 'handled');
      ctx.settlement = HANDLED;
    } catch (thrown) {
      if (isSwitchyardError(thrown, ErrorCodes.LEASE_LOST)) {
        ctx.logger.warn(`message ${safeText(ctx.message.id)} in ${ctx.queue}: ${thrown.message}`);
        ctx.settlement = { outcome: 'lease-lost', error: thrown };
        return;
      }
      ctx.release();
      ctx.unitOfWork?.discard();
      await recover(ctx, asError(thrown));
    }
  },
};

const HANDLED: Settlement = { outcome: 'handled' };

async function complete(ctx: SettlingMessage, outgoing: Outgoing[], outcome: SettleOutcome): Promise<void> {
  for (const feature of ctx.deps.features) {
    const extra = feature.onSettled?.(ctx.message, outcome);
    if (extra) outgoing.push(...extra);
  }
  await ctx.receipt.complete(outgoing);
}

function decision(ctx: SettlingMessage, error: Error, attempts: number): RecoverabilityAction {
  // Retrying cannot make an unreadable message readable, and a policy must not be handed its headers.
  if (ctx.envelopeProblem !== undefined) return { kind: 'error', reason: `malformed envelope: ${ctx.envelopeProblem}` };
  return decide(ctx.deps.recoverability, {
    error,
    messageType: ctx.definition?.typeName,
    headers: ctx.message.headers,
    deliveryCount: attempts,
    delayedRound: delayedRoundOf(ctx.message.headers),
  });
}

async function recover(ctx: SettlingMessage, error: Error): Promise<void> {
  const { deps, message, receipt } = ctx;
  const logger = ctx.logger;
  const attempts = ctx.attempts;
  const action = decision(ctx, error, attempts);
  // Header values are data: described with safeText, never asked to turn themselves into text.
  const where = `message ${safeText(message.id)} (${safeText(ctx.definition?.typeName ?? (ctx.types.join(',') || message.headers[Headers.EnclosedTypes]) ?? 'unknown type')}) in ${ctx.queue}`;
  // Delayed retries and manual retries from the error queue go back to the public address when
  // the message failed in this instance's own queue, so any instance (any worker behind a
  // distributor) can take them, and a dead instance's queue does not strand them.
  const returnAddress = ctx.queue === deps.identity.address ? deps.publicAddress() : ctx.queue;
  try {
    switch (action.kind) {
      case 'immediate':
        if (deps.transport.capabilities.exactDeliveryCount) {
          await receipt.abandon();
          ctx.settlement = { outcome: 'immediate-retry', error };
          return;
        }
        // The transport cannot count redeliveries: send the next attempt as a copy that carries
        // the count, to the back of the same queue, instead of returning this one uncounted.
        await complete(ctx, [{ destination: ctx.queue, message: { id: message.id, headers: immediateRetryHeaders(message.headers, attempts), body: message.body } }], 'immediate-retry');
        ctx.settlement = { outcome: 'immediate-retry', error };
        return;
      case 'delayed': {
        const round = delayedRoundOf(message.headers) + 1;
        logger.warn({ err: error }, `${where} failed (${error.message}); delayed retry ${round} in ${action.delayMs} ms`);
        const retry = { id: message.id, headers: delayedRetryHeaders(message.headers, round, new Date(deps.clock.now())), body: message.body };
        await complete(ctx, [{ destination: returnAddress, message: retry, deliverAt: deps.clock.now() + action.delayMs }], 'delayed-retry');
        ctx.settlement = { outcome: 'delayed-retry', error, delayMs: action.delayMs };
        return;
      }
      case 'discard':
        logger.warn({ err: error }, `${where} discarded by the recoverability policy: ${action.reason}`);
        await complete(ctx, [], 'handled');
        ctx.settlement = { outcome: 'discarded', error };
        return;
      case 'error': {
        logger.error({ err: error }, `${where} moved to ${deps.recoverability.errorQueue}: ${error.message}`);
        const headers = errorQueueHeaders(message.headers, { error, reason: action.reason, failedQueue: returnAddress, identity: deps.identity, attempts, now: new Date(deps.clock.now()) });
        await complete(ctx, [{ destination: deps.recoverability.errorQueue, message: { id: message.id, headers, body: message.body } }], 'error');
        ctx.settlement = { outcome: 'error-queue', error };
        return;
      }
    }
  } catch (settleError) {
    // Not settled: the lease runs out and the message is delivered again. Nothing is lost.
    logger.error({ err: asError(settleError) }, `${where} could not be settled after a failure (${asError(settleError).message}); it will be delivered again`);
    ctx.settlement = { outcome: 'unsettled', error };
  }
}
