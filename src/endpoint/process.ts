/**
 * Processing one received message, written out once:
 *   1. parse (limits, allow-listed type, JSON without poisoning keys)   -- fails: error queue now
 *   2. control intents go to the feature that owns them (subscribe, ready, ...)
 *   3. validate the body against the definition's schema               -- fails: error queue now
 *   4. run every handler for the enclosed types, collecting their sends
 *   5. success: complete the receipt with the collected sends (one transaction on SQLite)
 *      failure: decide (recoverability) -> immediate retry (abandon) | delayed retry (complete
 *      with a copy due later) | error queue (complete with a copy carrying failure headers)
 * A failed handler sends nothing. A completion fenced off by a lost lease changes nothing.
 */
import type { Handler, HandlerContext } from '../core/context.js';
import type { MessageLimits } from '../core/envelope.js';
import { parseMessage } from '../core/envelope.js';
import { asError, ErrorCodes, isSwitchyardError, SwitchyardError } from '../core/errors.js';
import type { EndpointFeature, SettleOutcome } from '../core/feature.js';
import { Headers, type HeaderMap, type Intent } from '../core/headers.js';
import type { InstanceIdentity } from '../core/identity.js';
import type { Logger } from '../core/logger.js';
import type { MessageRegistry } from '../core/messages.js';
import type { Outgoing, Receipt } from '../core/transport.js';
import { validateBody } from '../core/validation.js';
import { decide, type RecoverabilityConfig } from '../recoverability/policy.js';
import { attemptsOf, delayedRetryHeaders, delayedRoundOf, errorQueueHeaders, immediateRetryHeaders } from '../recoverability/failure-headers.js';
import { OutgoingBuilder, type OutgoingDeps } from './outgoing.js';

export interface ProcessDeps extends OutgoingDeps {
  logger: Logger;
  registry: MessageRegistry;
  handlers: ReadonlyMap<string, readonly Handler[]>;
  limits: MessageLimits;
  recoverability: RecoverabilityConfig;
  identity: InstanceIdentity;
  controlFeatures: ReadonlyMap<Intent, EndpointFeature>;
}

/** `release` is called when only the settlement is left (see Pump). */
export async function processReceipt(deps: ProcessDeps, receipt: Receipt, stopSignal: AbortSignal, release: () => void): Promise<void> {
  const { message } = receipt;
  let messageType: string | undefined;
  const intent = message.headers[Headers.Intent] as Intent | undefined;
  const controlFeature = intent ? deps.controlFeatures.get(intent) : undefined;
  const outgoing: Outgoing[] = [];
  const scope = new HandlerScope(deps, receipt, stopSignal, outgoing);
  try {
    if (controlFeature) {
      outgoing.push(...(await controlFeature.handleControl!({ message, signal: scope.signal })));
      release();
      await settle(deps, receipt, outgoing, 'handled');
      return;
    }
    const parsed = parseMessage(message, deps.registry, deps.limits);
    messageType = parsed.definition.typeName;
    const body = await validateBody(parsed.definition, parsed.body, 'receive');
    const handlers = handlersFor(deps, parsed.types);
    for (const handler of handlers) {
      await handler.invoke(body, new MessageHandlerContext(scope, handler.definition.typeName));
    }
    release();
    await settle(deps, receipt, outgoing, 'handled');
  } catch (thrown) {
    if (isSwitchyardError(thrown, ErrorCodes.LEASE_LOST)) {
      deps.logger.warn(`message ${message.id} in ${receipt.address}: ${thrown.message}`);
      return;
    }
    release();
    await recover(deps, receipt, asError(thrown), messageType, controlFeature !== undefined);
  }
}

/** Handlers of the enclosed types, nearest type first. */
function handlersFor(deps: ProcessDeps, types: readonly string[]): readonly Handler[] {
  const handlers = types.length === 1 ? (deps.handlers.get(types[0]!) ?? []) : types.flatMap((t) => deps.handlers.get(t) ?? []);
  if (handlers.length === 0) {
    throw new SwitchyardError(ErrorCodes.NO_HANDLER, `Endpoint ${deps.identity.endpoint} has no handler for ${types.join(', ')}.`, {
      fix: 'Add a handler for this type, or fix the route or subscription that sent it here; then retry it from the error queue.',
    });
  }
  return handlers;
}

/**
 * What the handlers of one message (or a control feature) share: their sends (left only when all
 * of them succeed), the outgoing builder and the abort signal, both made on first use since most
 * handlers need neither.
 */
class HandlerScope {
  private builder: OutgoingBuilder | undefined;
  private composed: AbortSignal | undefined;

  constructor(
    private readonly deps: ProcessDeps,
    readonly receipt: Receipt,
    private readonly stopSignal: AbortSignal,
    private readonly outgoing: Outgoing[],
  ) {}

  get signal(): AbortSignal {
    return (this.composed ??= AbortSignal.any([this.receipt.signal, this.stopSignal]));
  }

  get sends(): OutgoingBuilder {
    const { message } = this.receipt;
    return (this.builder ??= new OutgoingBuilder(this.deps, { messageId: message.id, headers: message.headers }));
  }

  async collect(built: Promise<Outgoing[]>): Promise<void> {
    this.outgoing.push(...(await built));
  }
}

/**
 * One per handler call, so a class rather than a literal of closures. The send methods are made
 * on first use and bound, so `(message, { reply }) => reply(...)` works as with plain properties.
 * Its state is private (#): logging or serialising a context shows what a handler sees, not the
 * endpoint's internals.
 */
class MessageHandlerContext implements HandlerContext {
  readonly #scope: HandlerScope;
  #methods: Pick<HandlerContext, 'send' | 'sendLocal' | 'publish' | 'reply'> | undefined;

  constructor(
    scope: HandlerScope,
    readonly messageType: string,
  ) {
    this.#scope = scope;
  }

  get messageId(): string {
    return this.#scope.receipt.message.id;
  }

  get headers(): Readonly<HeaderMap> {
    return this.#scope.receipt.message.headers;
  }

  get deliveryCount(): number {
    const { receipt } = this.#scope;
    return attemptsOf(receipt.message.headers, receipt.deliveryCount);
  }

  get signal(): AbortSignal {
    return this.#scope.signal;
  }

  get send(): HandlerContext['send'] {
    return this.#bound().send;
  }

  get sendLocal(): HandlerContext['sendLocal'] {
    return this.#bound().sendLocal;
  }

  get publish(): HandlerContext['publish'] {
    return this.#bound().publish;
  }

  get reply(): HandlerContext['reply'] {
    return this.#bound().reply;
  }

  toJSON() {
    return { messageId: this.messageId, messageType: this.messageType, deliveryCount: this.deliveryCount, headers: this.headers };
  }

  #bound() {
    const scope = this.#scope;
    return (this.#methods ??= {
      send: (definition, body, options) => scope.collect(scope.sends.send(definition, body, options)),
      sendLocal: (definition, body, options) => scope.collect(scope.sends.sendLocal(definition, body, options)),
      publish: (definition, body, options) => scope.collect(scope.sends.publish(definition, body, options)),
      reply: (definition, body, options) => scope.collect(scope.sends.reply(definition, body, scope.receipt.message.headers, options)),
    });
  }
}

async function settle(deps: ProcessDeps, receipt: Receipt, outgoing: Outgoing[], outcome: SettleOutcome): Promise<void> {
  for (const feature of deps.features) {
    const extra = feature.onSettled?.(receipt.message, outcome);
    if (extra) outgoing.push(...extra);
  }
  await receipt.complete(outgoing);
}

async function recover(deps: ProcessDeps, receipt: Receipt, error: Error, messageType: string | undefined, isControl: boolean): Promise<void> {
  const { message } = receipt;
  const attempts = attemptsOf(message.headers, receipt.deliveryCount);
  const action = isControl
    ? { kind: 'error' as const, reason: 'control message could not be processed' }
    : decide(deps.recoverability, {
        error,
        messageType,
        headers: message.headers,
        deliveryCount: attempts,
        delayedRound: delayedRoundOf(message.headers),
      });
  const where = `message ${message.id} (${messageType ?? message.headers[Headers.EnclosedTypes] ?? 'unknown type'}) in ${receipt.address}`;
  // Delayed retries and manual retries from the error queue go back to the public address when
  // the message failed in this instance's own queue, so any instance (any worker behind a
  // distributor) can take them, and a dead instance's queue does not strand them.
  const returnAddress = receipt.address === deps.identity.address ? deps.publicAddress() : receipt.address;
  try {
    switch (action.kind) {
      case 'immediate':
        if (deps.transport.capabilities.exactDeliveryCount) {
          await receipt.abandon();
          return;
        }
        // The transport cannot count redeliveries: send the next attempt as a copy that carries
        // the count, to the back of the same queue, instead of returning this one uncounted.
        await settle(deps, receipt, [{ destination: receipt.address, message: { id: message.id, headers: immediateRetryHeaders(message.headers, attempts), body: message.body } }], 'immediate-retry');
        return;
      case 'delayed': {
        const round = delayedRoundOf(message.headers) + 1;
        deps.logger.warn(`${where} failed (${error.message}); delayed retry ${round} in ${action.delayMs} ms`);
        const retry = { id: message.id, headers: delayedRetryHeaders(message.headers, round, new Date()), body: message.body };
        await settle(deps, receipt, [{ destination: returnAddress, message: retry, deliverAt: Date.now() + action.delayMs }], 'delayed-retry');
        return;
      }
      case 'discard':
        deps.logger.warn(`${where} discarded by the recoverability policy: ${action.reason}`);
        await settle(deps, receipt, [], 'handled');
        return;
      case 'error': {
        deps.logger.error(`${where} moved to ${deps.recoverability.errorQueue}: ${error.message}`);
        const failed = {
          id: message.id,
          headers: errorQueueHeaders(message.headers, {
            error,
            reason: action.reason,
            failedQueue: returnAddress,
            identity: deps.identity,
            attempts,
            now: new Date(),
          }),
          body: message.body,
        };
        await settle(deps, receipt, [{ destination: deps.recoverability.errorQueue, message: failed }], 'error');
        return;
      }
    }
  } catch (settleError) {
    // Not settled: the lease runs out and the message is delivered again. Nothing is lost.
    const text = isSwitchyardError(settleError) ? settleError.message : asError(settleError).message;
    deps.logger.error(`${where} could not be settled after a failure (${text}); it will be delivered again`);
  }
}
