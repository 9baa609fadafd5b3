/**
 * Processing one received message, written out once:
 *   0. read the envelope (src/core/wire-headers.ts): a message the transport marked unreadable,
 *      or whose headers are not a string map, goes to the error queue now, no retries
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
import { uuidv7 } from '../core/ids.js';
import type { Outgoing, Receipt, TransportMessage } from '../core/transport.js';
import { readEnvelope, safeText } from '../core/wire-headers.js';
import { validateBody } from '../core/validation.js';
import { decide, type RecoverabilityConfig } from '../recoverability/policy.js';
import { delayedRetryHeaders, delayedRoundOf, errorQueueHeaders } from '../recoverability/failure-headers.js';
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

/** `release` is called when only the settlement is left (see Pump). Never throws. */
export async function processReceipt(deps: ProcessDeps, received: Receipt, stopSignal: AbortSignal, release: () => void): Promise<void> {
  // Step 0: a message the transport could not read as sent (or not a string map of headers) goes
  // to the error queue as it is, unprocessed and without retries: retrying cannot make it readable.
  const envelope = readEnvelope(received.message, () => `unreadable-${uuidv7()}`);
  const receipt = envelope.message === received.message ? received : withMessage(received, envelope.message);
  const { message } = receipt;
  let messageType: string | undefined;
  let controlFeature: EndpointFeature | undefined;
  const outgoing: Outgoing[] = [];
  try {
    if (envelope.problem !== undefined) {
      throw new SwitchyardError(ErrorCodes.MALFORMED_MESSAGE, `The stored message cannot be read as sent: ${envelope.problem}.`, {
        fix: `Inspect it with \`switchyard errors show\` (the stored headers are in ${Headers.RawHeaders}) and find what wrote it into the queue; retrying cannot help: delete it, or send its body again with a Switchyard endpoint.`,
      });
    }
    const intent = message.headers[Headers.Intent] as Intent | undefined;
    controlFeature = intent ? deps.controlFeatures.get(intent) : undefined;
    const scope = new HandlerScope(deps, receipt, stopSignal, outgoing);
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
      deps.logger.warn(`message ${safeText(message.id)} in ${receipt.address}: ${thrown.message}`);
      return;
    }
    release();
    const forced =
      envelope.problem !== undefined ? `malformed envelope: ${envelope.problem}` : controlFeature ? 'control message could not be processed' : undefined;
    await recover(deps, receipt, asError(thrown), messageType, forced);
  }
}

/** The receipt with a readable copy of its message in place of the one received. */
function withMessage(receipt: Receipt, message: TransportMessage): Receipt {
  return {
    message,
    address: receipt.address,
    deliveryCount: receipt.deliveryCount,
    get signal() {
      return receipt.signal;
    },
    complete: (outgoing) => receipt.complete(outgoing),
    abandon: (delayMs) => receipt.abandon(delayMs),
  };
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
    return this.#scope.receipt.deliveryCount;
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

/** `forced`: the reason to go straight to the error queue (a control message, a malformed envelope), bypassing the policy. */
async function recover(deps: ProcessDeps, receipt: Receipt, error: Error, messageType: string | undefined, forced: string | undefined): Promise<void> {
  const { message } = receipt;
  const action = forced !== undefined
    ? { kind: 'error' as const, reason: forced }
    : decide(deps.recoverability, {
        error,
        messageType,
        headers: message.headers,
        deliveryCount: receipt.deliveryCount,
        delayedRound: delayedRoundOf(message.headers),
      });
  // Header values are data: described with safeText, never asked to turn themselves into text.
  const where = `message ${safeText(message.id)} (${safeText(messageType ?? message.headers[Headers.EnclosedTypes] ?? 'unknown type')}) in ${receipt.address}`;
  // Delayed retries and manual retries from the error queue go back to the public address when
  // the message failed in this instance's own queue, so any instance (any worker behind a
  // distributor) can take them, and a dead instance's queue does not strand them.
  const returnAddress = receipt.address === deps.identity.address ? deps.publicAddress() : receipt.address;
  try {
    switch (action.kind) {
      case 'immediate':
        await receipt.abandon();
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
            deliveryCount: receipt.deliveryCount,
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
