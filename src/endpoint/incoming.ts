/**
 * The incoming pipeline, one list in this order (each step wraps the ones after it):
 *   settle        after the rest succeeded: commit the unit of work (completion + sends + the
 *                 handlers' own writes); on a throw: recoverability (src/recoverability/settle.ts)
 *   decode        a message the transport could not read as sent (src/core/wire-headers.ts) goes
 *                 to the error queue unprocessed; header and body limits; the message kind: a
 *                 control kind a feature registered, or a message whose enclosed types are readable
 *   control       a control message goes to its feature; its path ends here
 *   validate      allow-listed type, JSON body (no prototype poisoning), the Standard Schema
 *   unit-of-work  opens the storage session the handlers' writes join (where there is one)
 *   invoke        every handler of the enclosed types, nearest type first
 * with the endpoint's incoming behaviours placed among them (src/core/pipeline.ts). A failed
 * handler sends nothing; a completion fenced off by a lost lease changes nothing.
 */
import type { Handler } from '../core/context.js';
import { checkBodySize, checkHeaders, parseBody, readEnclosedTypes } from '../core/envelope.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { EndpointFeature } from '../core/feature.js';
import { Headers } from '../core/headers.js';
import type { InstanceIdentity } from '../core/identity.js';
import { withFields, type Logger } from '../core/logger.js';
import type { MessageDefinition } from '../core/messages.js';
import type { HandlerInvocation, IncomingContext, PipelineStep, Settlement } from '../core/pipeline.js';
import type { Outgoing, Receipt, StorageSession, TransportMessage } from '../core/transport.js';
import { validateBody } from '../core/validation.js';
import { traceIdOf, uuidv7 } from '../core/ids.js';
import { readEnvelope, safeText } from '../core/wire-headers.js';
import { attemptsOf } from '../recoverability/failure-headers.js';
import type { RecoverabilityConfig } from '../recoverability/policy.js';
import { dispatchRecords } from '../outbox/dispatch.js';
import type { Outbox } from '../outbox/outbox.js';
import { settle } from '../recoverability/settle.js';
import { MessageHandlerContext } from './handler-context.js';
import { OutgoingBuilder, type OutgoingDeps } from './outgoing.js';

export interface IncomingDeps extends OutgoingDeps {
  logger: Logger;
  handlers: ReadonlyMap<string, readonly Handler[]>;
  recoverability: RecoverabilityConfig;
  identity: InstanceIdentity;
  /** Control kinds (`subscribe`, `ready`, ...) and the feature that registered each. */
  controlFeatures: ReadonlyMap<string, EndpointFeature>;
  /** The handler pipeline, composed when the endpoint has handler behaviours; without, handlers are called directly. */
  invokeHandler: ((invocation: HandlerInvocation) => Promise<void>) | undefined;
  /** The transactional outbox on the application's database, when the endpoint has one (src/outbox). */
  outbox: Outbox | undefined;
}

/** One received message on its way through the pipeline (see IncomingContext). */
export class IncomingMessage implements IncomingContext {
  types: readonly string[] = [];
  definition: MessageDefinition | undefined;
  body: unknown;
  /** Set by decode when the message is a feature's control message. */
  control: EndpointFeature | undefined;
  readonly outgoing: Outgoing[] = [];
  settlement: Settlement | undefined;
  /** The message with a plain string map of headers: as received, or a safe copy of it. */
  readonly message: TransportMessage;
  /** What the transport or the envelope check found wrong with it (it then goes to the error queue as it is). */
  readonly envelopeProblem: string | undefined;
  #session: (() => StorageSession | undefined) | undefined;
  #signal: AbortSignal | undefined;
  #sends: OutgoingBuilder | undefined;

  constructor(
    readonly deps: IncomingDeps,
    readonly receipt: Receipt,
    private readonly stopSignal: AbortSignal,
    /** Frees the pump's slot: only the settlement is left. */
    readonly release: () => void,
  ) {
    const envelope = readEnvelope(receipt.message, () => `unreadable-${uuidv7()}`);
    this.message = envelope.message;
    this.envelopeProblem = envelope.problem;
  }

  get queue() {
    return this.receipt.address;
  }

  get endpoint(): InstanceIdentity {
    return this.deps.identity;
  }

  get attempts(): number {
    return attemptsOf(this.message.headers, this.receipt.deliveryCount);
  }

  /** Made on first use: most handlers never look at it. */
  get signal(): AbortSignal {
    return (this.#signal ??= AbortSignal.any([this.receipt.signal, this.stopSignal]));
  }

  get unitOfWork(): StorageSession | undefined {
    return this.#session?.();
  }

  get logger(): Logger {
    const { message } = this;
    return withFields(this.deps.logger, {
      messageId: message.id,
      type: this.definition?.typeName ?? (this.types.length > 0 ? this.types.join(',') : message.headers[Headers.EnclosedTypes]),
      endpoint: this.deps.identity.endpoint,
      traceId: traceIdOf(message.headers[Headers.TraceParent]),
    });
  }

  /** The unit-of-work step opens the session; it is made when a handler first asks for it. */
  openUnitOfWork(session: () => StorageSession | undefined): void {
    this.#session = session;
  }

  /** What handlers send: collected here, and left with the commit. */
  get sends(): OutgoingBuilder {
    return (this.#sends ??= new OutgoingBuilder(this.deps, this.message, async (batch) => void this.outgoing.push(...batch)));
  }
}

// Steps that need no await of their own return next() instead of awaiting it: one promise and
// its microtask turns fewer per step per message (measured on sqlite.send).
const decode: PipelineStep<IncomingMessage> = {
  name: 'decode',
  run(ctx, next) {
    const { message, deps } = ctx;
    if (ctx.envelopeProblem !== undefined) {
      throw new SwitchyardError(ErrorCodes.MALFORMED_MESSAGE, `The stored message cannot be read as sent: ${ctx.envelopeProblem}.`, {
        fix: `Inspect it with \`switchyard errors show\` (the stored headers are in ${Headers.RawHeaders}) and find what wrote it into the queue; retrying cannot help: delete it, or send its body again with a Switchyard endpoint.`,
      });
    }
    checkHeaders(message.headers, deps.limits);
    checkBodySize(message.body, deps.limits);
    const kind = message.headers[Headers.Intent];
    ctx.control = kind === undefined ? undefined : deps.controlFeatures.get(kind);
    if (!ctx.control) ctx.types = readEnclosedTypes(message.headers);
    return next();
  },
};

const control: PipelineStep<IncomingMessage> = {
  name: 'control',
  run(ctx, next) {
    if (!ctx.control) return next();
    return ctx.control.handleControl!({ message: ctx.message, signal: ctx.signal }).then((sends) => void ctx.outgoing.push(...sends));
  },
};

const validate: PipelineStep<IncomingMessage> = {
  name: 'validate',
  async run(ctx, next) {
    const definition = ctx.types.map((t) => ctx.deps.registry.get(t)).find((d) => d !== undefined);
    if (!definition) {
      throw new SwitchyardError(ErrorCodes.UNKNOWN_MESSAGE_TYPE, `The message type ${ctx.types.join(', ')} is not registered with this endpoint.`, {
        fix: 'Add a handler for it (or list its definition in `messages`) on this endpoint, or fix the route that sent it here.',
      });
    }
    ctx.definition = definition;
    const body = parseBody(ctx.message.body);
    if (!definition.schema) {
      ctx.body = body;
      return next();
    }
    ctx.body = await validateBody(definition, body, 'receive');
    await next();
  },
};

const unitOfWork: PipelineStep<IncomingMessage> = {
  name: 'unit-of-work',
  run(ctx, next) {
    const { receipt, deps } = ctx;
    if (deps.outbox) return inOutboxTransaction(ctx, deps.outbox, next);
    ctx.openUnitOfWork(() => receipt.session);
    return next();
  },
};

/**
 * With an outbox (src/outbox/outbox.ts): the inbox check, the handlers' writes and their sends in
 * one transaction of the application's database; the sends are dispatched after its commit, and
 * only then is the incoming message completed (by settle, with nothing more to send).
 */
async function inOutboxTransaction(ctx: IncomingMessage, outbox: Outbox, next: () => Promise<void>): Promise<void> {
  const { deps, message } = ctx;
  let redelivered = false;
  const { records, duplicate } = await outbox.store.transaction(deps.identity.id, outbox.leaseMs, async (tx) => {
    if (!(await tx.markProcessed(deps.identity.endpoint, message.id))) {
      redelivered = true;
      return;
    }
    ctx.openUnitOfWork(() => tx.session);
    await next();
    await tx.store(ctx.outgoing.splice(0));
  });
  if (redelivered || duplicate) {
    ctx.logger.info(`message ${safeText(message.id)} was already processed by ${deps.identity.endpoint} (outbox inbox): acknowledged without running its handlers`);
    return;
  }
  await dispatchRecords(outbox, deps.transport, records, ctx.logger);
}

const invoke: PipelineStep<IncomingMessage> = {
  name: 'invoke',
  async run(ctx, next) {
    const handlers = handlersFor(ctx.deps, ctx.types);
    if (handlers.length === 1) {
      await call(ctx, handlers[0]!);
      return next();
    }
    for (const handler of handlers) await call(ctx, handler);
    return next();
  },
};

function call(ctx: IncomingMessage, handler: Handler): Promise<void> {
  const messageType = handler.definition.typeName;
  const context = new MessageHandlerContext(ctx, messageType);
  const { invokeHandler } = ctx.deps;
  return invokeHandler ? invokeHandler({ incoming: ctx, messageType, handler, context }) : handler.invoke(ctx.body, context);
}

/** The handler pipeline's built-in step: the call itself. */
export const HANDLER_PIPELINE: readonly PipelineStep<HandlerInvocation>[] = [
  { name: 'handler', run: (invocation, next) => invocation.handler.invoke(invocation.incoming.body, invocation.context).then(next) },
];

/** Handlers of the enclosed types, nearest type first. */
function handlersFor(deps: IncomingDeps, types: readonly string[]): readonly Handler[] {
  const handlers = types.length === 1 ? (deps.handlers.get(types[0]!) ?? []) : types.flatMap((t) => deps.handlers.get(t) ?? []);
  if (handlers.length === 0) {
    throw new SwitchyardError(ErrorCodes.NO_HANDLER, `Endpoint ${deps.identity.endpoint} has no handler for ${types.join(', ')}.`, {
      fix: 'Add a handler for this type, or fix the route or subscription that sent it here; then retry it from the error queue.',
    });
  }
  return handlers;
}

export const INCOMING_PIPELINE: readonly PipelineStep<IncomingMessage>[] = [settle, decode, control, validate, unitOfWork, invoke];
